package dht

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/libp2p/go-libp2p"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"google.golang.org/protobuf/proto"
)

// kadHubEnv makes TestKadHub run the hub of TestKadAnnouncedLengthAttack.
const kadHubEnv = "CALLSIGN_TEST_KAD_HUB"

// TestKadHub is a public node serving the DHT, run by
// TestKadAnnouncedLengthAttack in a child process so that the memory the
// attack costs it is its own alone. It prints "hub <multiaddr>", then
// "heap <bytes>" (the Go heap's in-use spans) every 50 ms, and serves until
// its stdin closes.
func TestKadHub(t *testing.T) {
	if os.Getenv(kadHubEnv) != "1" {
		t.Skip("the hub process of TestKadAnnouncedLengthAttack")
	}
	h := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP; c.Public = true })
	d, err := New(Config{Host: h, Server: true, PoW: identity.TestPoW})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("hub %s/p2p/%s\n", h.Addrs()[0], h.ID())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			fmt.Printf("heap %d\n", ms.HeapInuse)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	_, _ = io.Copy(io.Discard, os.Stdin)
	close(done)
	wg.Wait()
}

// kadHubProcess is the hub child process of a test.
type kadHubProcess struct {
	cmd      *exec.Cmd
	info     peer.AddrInfo
	heap     atomic.Int64 // the last heap size it reported
	heapPeak atomic.Int64
}

// startKadHub runs TestKadHub in a child process and stops it when tb ends.
func startKadHub(tb testing.TB) *kadHubProcess {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKadHub$", "-test.count=1")
	cmd.Env = append(os.Environ(), kadHubEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &kadHubProcess{cmd: cmd}
	addrc := make(chan string, 1)
	waited := make(chan error, 1)
	go func() {
		br := bufio.NewReader(stdout)
		for {
			l, err := br.ReadString('\n')
			if a, ok := strings.CutPrefix(l, "hub "); ok {
				addrc <- strings.TrimSpace(a)
			}
			if h, ok := strings.CutPrefix(l, "heap "); ok {
				if n, err := strconv.ParseInt(strings.TrimSpace(h), 10, 64); err == nil {
					p.heap.Store(n)
					if n > p.heapPeak.Load() {
						p.heapPeak.Store(n) // this goroutine is the only writer
					}
				}
			}
			if err != nil {
				break // Wait needs stdout read to its end
			}
		}
		waited <- cmd.Wait()
	}()
	tb.Cleanup(func() {
		_ = stdin.Close()
		select {
		case err := <-waited:
			if err != nil && !tb.Failed() {
				tb.Errorf("hub process: %v\n%s", err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
			tb.Errorf("hub process did not stop")
		}
	})
	var addr string
	select {
	case addr = <-addrc:
	case err := <-waited:
		waited <- err
		tb.Fatalf("hub process ended: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		tb.Fatalf("hub process did not start\n%s", stderr.String())
	}
	info, err := peer.AddrInfoFromString(addr)
	if err != nil {
		_ = cmd.Process.Kill()
		tb.Fatalf("hub address %q: %v\n%s", addr, err, stderr.String())
	}
	p.info = *info
	return p
}

// rss returns the hub's resident set size and its peak so far, from
// /proc/<pid>/status.
func (p *kadHubProcess) rss() (now, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	field := func(name string) int64 {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == name+":" && f[2] == "kB" {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n << 10
			}
		}
		return -1
	}
	now, peak = field("VmRSS"), field("VmHWM")
	if now < 0 || peak < 0 {
		return 0, 0, fmt.Errorf("no VmRSS or VmHWM in /proc/%d/status", p.cmd.Process.Pid)
	}
	return now, peak, nil
}

// kadAttack counts what the attackers of TestKadAnnouncedLengthAttack saw.
type kadAttack struct {
	streams   atomic.Int64 // announcements written
	tooLarge  atomic.Int64 // reset with p2p.CodeTooLarge
	timedOut  atomic.Int64 // reset with p2p.CodeTimeout
	refused   atomic.Int64 // streams that could not be opened
	otherEnds atomic.Int64
}

// attackKad opens kad streams to hub on h until ctx ends, one at a time:
// each announces a message of announce bytes, sends 64 of them and waits
// for the hub to end the stream; a new one follows 20 ms later.
func attackKad(ctx context.Context, h host.Host, hub peer.ID, announce int, a *kadAttack) {
	msg := binary.AppendUvarint(nil, uint64(announce))
	msg = append(msg, bytes.Repeat([]byte{0x0a}, 64)...)
	buf := make([]byte, 1)
	for ctx.Err() == nil {
		s, err := h.NewStream(ctx, hub, kadProtocol)
		if err != nil {
			a.refused.Add(1)
		} else {
			stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
			if _, err = s.Write(msg); err == nil {
				a.streams.Add(1)
				_, err = s.Read(buf)
			}
			stop()
			_ = s.Reset()
			code, _ := p2p.CodeOf(err)
			switch {
			case ctx.Err() != nil:
			case code == p2p.CodeTooLarge:
				a.tooLarge.Add(1)
			case code == p2p.CodeTimeout:
				a.timedOut.Add(1)
			default:
				a.otherEnds.Add(1)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestKadAnnouncedLengthAttack: 12 throwaway identities open kad streams
// to a public node, 64 at a time each (a peer may hold 32 of a protocol):
// three in four announce a 4 MiB message and send 64 bytes of it, the
// fourth announces the largest request the hub accepts and stalls. Every
// stream the hub ends is replaced 20 ms later. The hub, a child process,
// must stay under 150 MB, both its RSS (what the machine pays) and its Go
// heap's in-use spans (what it has allocated, touched or not: msgio's 4 MiB
// buffers cost RSS only as the attacker fills them), and the members'
// lookups through it must keep answering throughout.
func TestKadAnnouncedLengthAttack(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the hub's RSS from /proc")
	}
	const (
		attackers       = 12
		streamsPerPeer  = 64
		attackFor       = kadFrameTimeout + 3*time.Second // stalled streams time out once
		maxMem          = 150_000_000
		members         = 3
		resolveDeadline = 5 * time.Second
	)
	// The race detector's shadow memory triples the hub's RSS and more
	// (the heap stays the same), so RSS is bounded only without it.
	maxRSS := int64(maxMem)
	if kadRace {
		maxRSS = math.MaxInt64
	}
	hub := startKadHub(t)
	ctx := context.Background()

	var nodes []*DHT
	for i := range members {
		h := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
		d, err := New(Config{
			Host: h, PoW: identity.TestPoW, Bootstrap: []peer.AddrInfo{hub.info},
			CacheTTL: time.Nanosecond, NegativeCacheTTL: time.Nanosecond, // every Resolve asks the hub
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		if err := d.Start(ctx); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		nodes = append(nodes, d)
	}
	alice := key(t, "alice")
	if _, err := nodes[0].PublishIdentity(ctx, alice, testIdentity(t, alice, time.Now())); err != nil {
		t.Fatalf("publish identity: %v", err)
	}
	if res, err := nodes[0].ClaimHandle(ctx, alice, "alice", nil); err != nil || res.Status != ClaimClaimed {
		t.Fatalf("claim: %v %+v", err, res)
	}
	resolve := func(d *DHT) error {
		rctx, cancel := context.WithTimeout(ctx, resolveDeadline)
		defer cancel()
		r, err := d.Resolve(rctx, "alice")
		switch {
		case err != nil:
			return err
		case r.Status != StatusOK || !r.Owner.Equal(alice.Public()) || r.Identity == nil:
			return fmt.Errorf("status %s, owner %v, identity %v", r.Status, r.Owner, r.Identity != nil)
		}
		return nil
	}
	for i, d := range nodes {
		if err := resolve(d); err != nil {
			t.Fatalf("member %d before the attack: %v", i, err)
		}
	}
	rss0, _, err := hub.rss()
	if err != nil {
		t.Fatal(err)
	}
	heap0 := hub.heap.Load()

	var atkHosts []host.Host
	for range attackers {
		h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.DisableRelay(),
			libp2p.ResourceManager(&network.NullResourceManager{}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		if err := h.Connect(ctx, hub.info); err != nil {
			t.Fatal(err)
		}
		atkHosts = append(atkHosts, h)
	}

	actx, stop := context.WithTimeout(ctx, attackFor)
	defer stop()
	var wg sync.WaitGroup
	var atk kadAttack
	for _, h := range atkHosts {
		for w := range streamsPerPeer {
			announce := 4 << 20
			if w%4 == 3 {
				announce = maxKadRequest
			}
			wg.Go(func() { attackKad(actx, h, hub.info.ID, announce, &atk) })
		}
	}

	type tally struct {
		ok, failed int
		errs       []string // the first few
		slowest    time.Duration
	}
	tallies := make([]tally, members)
	for i, d := range nodes {
		wg.Go(func() {
			tl := &tallies[i]
			for actx.Err() == nil {
				start := time.Now()
				err := resolve(d)
				tl.slowest = max(tl.slowest, time.Since(start))
				if err == nil {
					tl.ok++
					continue
				}
				if tl.failed++; len(tl.errs) < 5 {
					tl.errs = append(tl.errs, fmt.Sprintf("after %.1fs: %v", time.Since(start).Seconds(), err))
				}
				select { // a failure can be instant; don't spin
				case <-actx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}

	// Sampled to end a failing run early: the hub would go on growing.
	began := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for actx.Err() == nil {
		rss, _, err := hub.rss()
		if err != nil {
			stop()
			wg.Wait()
			t.Fatal(err)
		}
		if heap := hub.heap.Load(); rss > maxRSS || heap > maxMem {
			stop()
			wg.Wait()
			t.Fatalf("hub at %d MB RSS, %d MB heap %.1fs into the attack (%d MB, %d MB before it), limit %d MB",
				rss/1_000_000, heap/1_000_000, time.Since(began).Seconds(), rss0/1_000_000, heap0/1_000_000, min(maxRSS, maxMem)/1_000_000)
		}
		select {
		case <-actx.Done():
		case <-tick.C:
		}
	}
	wg.Wait()
	_, rssPeak, err := hub.rss()
	if err != nil {
		t.Fatal(err)
	}
	heapPeak := hub.heapPeak.Load()
	t.Logf("hub RSS %d MB before the attack, peak %d MB; heap %d MB before, peak %d MB",
		rss0/1_000_000, rssPeak/1_000_000, heap0/1_000_000, heapPeak/1_000_000)
	t.Logf("%d streams announced: %d reset as too large, %d timed out, %d refused or reset otherwise; %d not opened",
		atk.streams.Load(), atk.tooLarge.Load(), atk.timedOut.Load(), atk.otherEnds.Load(), atk.refused.Load())
	if rssPeak > maxRSS || heapPeak > maxMem {
		t.Errorf("hub peaked at %d MB RSS, %d MB heap; limit %d MB", rssPeak/1_000_000, heapPeak/1_000_000, maxMem/1_000_000)
	}
	for i, tl := range tallies {
		t.Logf("member %d: %d lookups answered during the attack, slowest %v", i, tl.ok, tl.slowest.Round(time.Millisecond))
		if tl.failed > 0 || tl.ok < 3 {
			t.Errorf("member %d: %d lookups answered, %d failed: %v", i, tl.ok, tl.failed, tl.errs)
		}
	}
	// The attack ran, and was cut short where the fix says.
	if atk.streams.Load() < attackers*streamsPerPeer || atk.tooLarge.Load() == 0 || atk.timedOut.Load() == 0 {
		t.Errorf("the attack did not run as intended")
	}
}

// kadPeer returns a fresh host on loopback TCP (reset codes travel over
// yamux, not over mocknet) connected to to.
func kadPeer(t *testing.T, to host.Host) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	if err := h.Connect(context.Background(), peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h
}

// sendRaw writes b on a new kad stream from h to p and reads the answer:
// the first message, or the error that ended the stream.
func sendRaw(t *testing.T, h host.Host, p peer.ID, b ...[]byte) (*pb.Message, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, kadProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	for _, x := range b {
		if _, err := s.Write(x); err != nil {
			return nil, err
		}
	}
	return readMsg(s, maxResponseSize)
}

// sizedGetValue is a GET_VALUE whose encoding is exactly size bytes.
func sizedGetValue(t *testing.T, size int) []byte {
	t.Helper()
	for n := size - 16; n <= size; n++ {
		b, err := proto.Marshal(pb.NewMessage(pb.Message_GET_VALUE, bytes.Repeat([]byte{'k'}, n), 0))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == size {
			return p2p.AppendFrame(nil, b)
		}
	}
	t.Fatalf("no GET_VALUE of %d bytes", size)
	return nil
}

func TestKadRequestCap(t *testing.T) {
	// The largest request, a PUT_VALUE of an identity record at its size
	// limit under a key longer than any valid one, fits under the cap.
	long := identityKey(identity.AccountID("csa1" + strings.Repeat("q", 100)))
	put := pb.NewMessage(pb.Message_PUT_VALUE, []byte(long), 0)
	put.Record = &recpb.Record{Key: []byte(long), Value: make([]byte, MaxIdentityRecordSize),
		TimeReceived: time.Now().UTC().Format(time.RFC3339Nano)}
	if b, err := proto.Marshal(put); err != nil || len(b) > maxKadRequest {
		t.Fatalf("largest PUT_VALUE is %d bytes (%v), cap %d", len(b), err, maxKadRequest)
	}

	tn := newTestNet(t, 2, netOpts{tcp: true})
	hub := tn.hosts[0].ID()
	p := kadPeer(t, tn.hosts[0])
	// A request of exactly the cap is served.
	if m, err := sendRaw(t, p, hub, sizedGetValue(t, maxKadRequest)); err != nil || m.GetType() != pb.Message_GET_VALUE {
		t.Fatalf("request at the cap: %v %v", m, err)
	}
	// One byte more, announced in a prefix sent alone, is refused before
	// the message is sent.
	if _, err := sendRaw(t, p, hub, binary.AppendUvarint(nil, maxKadRequest+1)); !isCode(err, p2p.CodeTooLarge) {
		t.Fatalf("request over the cap: %v", err)
	}
	// Announcing 4 MiB; a prefix longer than 9 bytes; a non-minimal one.
	for _, tc := range []struct {
		prefix []byte
		code   network.StreamErrorCode
	}{
		{binary.AppendUvarint(nil, 4<<20), p2p.CodeTooLarge},
		{bytes.Repeat([]byte{0x80}, 10), p2p.CodeBadRequest},
		{[]byte{0x81, 0x00}, p2p.CodeBadRequest},
	} {
		if _, err := sendRaw(t, p, hub, tc.prefix); !isCode(err, tc.code) {
			t.Errorf("prefix %x: %v, want %s", tc.prefix, err, p2p.CodeName(tc.code))
		}
	}
	// A stream carrying several requests is checked at each of them.
	ping := framed(pb.NewMessage(pb.Message_PING, nil, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := p.NewStream(ctx, hub, kadProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	for range 3 {
		if _, err := s.Write(ping); err != nil {
			t.Fatal(err)
		}
		if m, err := readMsg(s, maxResponseSize); err != nil || m.GetType() != pb.Message_PING {
			t.Fatalf("ping on a reused stream: %v %v", m, err)
		}
	}
	if _, err := s.Write(binary.AppendUvarint(nil, 4<<20)); err != nil {
		t.Fatal(err)
	}
	if _, err := readMsg(s, maxResponseSize); !isCode(err, p2p.CodeTooLarge) {
		t.Fatalf("4 MiB after pings: %v", err)
	}
}

// TestKadAnswerCap: kad-dht's own client (Ping here; routing table refresh
// and FindPeer alike) refuses an answer announcing more than
// maxResponseSize before reading it, and takes one within it.
func TestKadAnswerCap(t *testing.T) {
	tn := newTestNet(t, 1, netOpts{tcp: true})
	d := tn.nodes[0]
	evil := kadPeer(t, tn.hosts[0])
	var mu sync.Mutex // guards the two below
	var codes []network.StreamErrorCode
	announce := 4 << 20
	evil.SetStreamHandler(kadProtocol, func(s network.Stream) {
		defer s.Reset()
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		req, err := readMsg(s, maxKadRequest)
		if err != nil {
			return
		}
		resp := framed(req)
		mu.Lock()
		if announce > 0 {
			resp = append(binary.AppendUvarint(nil, uint64(announce)), make([]byte, 64)...)
		}
		mu.Unlock()
		if _, err := s.Write(resp); err != nil {
			return
		}
		_, err = readMsg(s, maxKadRequest)
		code, _ := p2p.CodeOf(err)
		mu.Lock()
		codes = append(codes, code)
		mu.Unlock()
	})
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return d.kad.Ping(ctx, evil.ID())
	}
	if err := ping(); err == nil {
		t.Fatal("ping answered with a 4 MiB announcement succeeded")
	}
	check.Until(t, 10*time.Second, "the evil peer to see the reset", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(codes) > 0
	})
	mu.Lock()
	if codes[0] != p2p.CodeTooLarge {
		t.Errorf("evil peer's stream ended with %s, want too-large", p2p.CodeName(codes[0]))
	}
	announce = 0
	mu.Unlock()
	if err := ping(); err != nil {
		t.Fatalf("ping with a normal answer: %v", err)
	}
}

// TestKadMessagesInResourceManager: the memory for each kad message is
// reserved in the stream's resource scope before it is read, so the
// resource manager's limits apply to it; a message the kad protocol's
// memory limit can't hold is refused with p2p.CodeOverloaded.
func TestKadMessagesInResourceManager(t *testing.T) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	limits.AddProtocolLimit(kadProtocol,
		rcmgr.BaseLimit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 128, Memory: 8 << 10},
		rcmgr.BaseLimitIncrease{})
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		t.Fatal(err)
	}
	hh, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.ResourceManager(rm))
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	d, err := New(Config{Host: hh, Server: true, PoW: identity.TestPoW})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p, err := libp2p.New(libp2p.NoListenAddrs, libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Connect(context.Background(), peer.AddrInfo{ID: hh.ID(), Addrs: hh.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if m, err := sendRaw(t, p, hh.ID(), sizedGetValue(t, 2<<10)); err != nil || m.GetType() != pb.Message_GET_VALUE {
		t.Fatalf("2 KiB request: %v %v", m, err)
	}
	if _, err := sendRaw(t, p, hh.ID(), sizedGetValue(t, 8<<10)); !isCode(err, p2p.CodeOverloaded) {
		t.Fatalf("8 KiB request over the protocol's 8 KiB: %v", err)
	}
}

// isCode reports whether err is a reset by the remote with code.
func isCode(err error, code network.StreamErrorCode) bool {
	c, ok := p2p.CodeOf(err)
	return ok && c == code
}

// scanStream is the network.Stream under a kadStream in FuzzKadStreamScan:
// a scope that tracks reservations, and a reset that counts.
type scanStream struct {
	network.Stream // nil: scan uses only the methods below
	scope          scanScope
	resets         int
}

type scanScope struct {
	network.NullScope
	reserved, peak int
}

func (s *scanStream) Scope() network.StreamScope { return &s.scope }
func (s *scanStream) ResetWithError(network.StreamErrorCode) error {
	s.resets++
	return nil
}

func (s *scanScope) ReserveMemory(n int, _ uint8) error {
	s.reserved += n
	s.peak = max(s.peak, s.reserved)
	return nil
}
func (s *scanScope) ReleaseMemory(n int) { s.reserved -= n }

// FuzzKadStreamScan: the length checks agree with p2p.ReadFrame, the
// framing kad shares, however the bytes are split into reads; they never
// reserve more than one message of at most the cap.
func FuzzKadStreamScan(f *testing.F) {
	f.Add(framed(pb.NewMessage(pb.Message_PING, nil, 0)), uint8(3))
	f.Add(sizedGetValueBytes(300), uint8(1))
	f.Add(binary.AppendUvarint(nil, 4<<20), uint8(2))
	f.Add([]byte{0x81, 0x00}, uint8(1))
	f.Add(bytes.Repeat([]byte{0x80}, 10), uint8(4))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		const limit = 256
		under := &scanStream{}
		ks := newKadStream(under, limit, 0, 0)
		var err error
		for rest := in; len(rest) > 0 && err == nil; {
			n := min(len(rest), int(step)+1)
			err = ks.scan(rest[:n])
			rest = rest[n:]
		}
		if under.scope.peak > limit {
			t.Fatalf("reserved %d bytes at once, cap %d", under.scope.peak, limit)
		}
		if (err != nil) != (under.resets > 0) {
			t.Fatalf("error %v with %d resets", err, under.resets)
		}
		// The same bytes through p2p.ReadFrame.
		r := bytes.NewReader(in)
		var ferr error
		for ferr == nil {
			_, ferr = p2p.ReadFrame(r, limit)
		}
		switch {
		case err == nil && (errors.Is(ferr, p2p.ErrFrameTooLarge) || errors.Is(ferr, p2p.ErrBadVarint)):
			t.Fatalf("scan took what ReadFrame refuses: %v", ferr)
		case errors.Is(err, errKadBadLength) && !errors.Is(ferr, p2p.ErrBadVarint):
			t.Fatalf("scan: %v; ReadFrame: %v", err, ferr)
		case errors.Is(err, errKadTooLarge) && !errors.Is(ferr, p2p.ErrFrameTooLarge) &&
			!errors.Is(ferr, p2p.ErrBadVarint) && !errors.Is(ferr, io.ErrUnexpectedEOF):
			// A length whose first bytes exceed the cap is refused before
			// the rest arrives (or turns out malformed).
			t.Fatalf("scan: %v; ReadFrame: %v", err, ferr)
		}
	})
}

// sizedGetValueBytes is a framed GET_VALUE of about size bytes.
func sizedGetValueBytes(size int) []byte {
	b, _ := proto.Marshal(pb.NewMessage(pb.Message_GET_VALUE, bytes.Repeat([]byte{'k'}, size), 0))
	return p2p.AppendFrame(nil, b)
}
