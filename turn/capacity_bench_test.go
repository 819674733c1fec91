package turn

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/benchproc"
	"github.com/callsign/callsign/internal/cputime"
	pionturn "github.com/pion/turn/v5"
)

// What one core of a public node relays (issue 15): calls at 1 Mbit/s
// each way, RTP-sized packets (1,200 B, 104 a second each way) through
// real TURN allocations, adding calls until more than 0.1 % of the packets
// are lost.
//
// The relay runs as the node runs it (UDP, TCP and TLS listeners, the
// node's socket set-up and limits, except the per-IP, per-user and rate
// limits, raised because every benchmark client is on 127.0.0.1 under one
// credential) in a child process of this test binary, pinned to one CPU
// (taskset -c 0, GOMAXPROCS=1), so its CPU time and memory are its own.
// Each call is one pion TURN client (its own socket and allocation,
// channel-bound as browsers and pion's ICE agent do) exchanging packets
// with its remote party, a plain UDP socket: a call where both parties
// relay through the same node costs two of these.
//
// Baseline, same run and same generator: the same calls sent directly,
// client socket to party socket, without a relay. If the direct calls
// lose packets too, the generator (this process, on the other core) is
// the limit, not the relay; the robust figure is then the relay's CPU per
// call-second, from which calls per core are derived.
//
//	go test ./turn -run '^$' -bench TURNCalls -benchtime 1x -timeout 30m
func BenchmarkTURNCalls(b *testing.B) {
	steps := []int{25, 50, 100, 150, 200, 250, 300, 400, 500, 600, 800}
	if s := os.Getenv("TURN_CALLS_STEPS"); s != "" {
		steps = steps[:0]
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatal(err)
			}
			steps = append(steps, n)
		}
	}
	window := 4 * time.Second
	b.Logf("load average at start: %s", benchproc.LoadAvg())
	for range b.N {
		direct := newCallGen(b, nil)
		relay := newCallGen(b, startRelayChild(b))
		var last, atLoss int
		var cpuPerCallSec []float64
		for _, n := range steps {
			d := direct.step(b, n, window)
			r := relay.step(b, n, window)
			b.Logf("calls=%d relay: loss %.3f%% (%d/%d), relay CPU %.1f%% of a core = %.1f µs per call-second, RSS %.1f MiB, heap %.1f MiB, generator CPU %.0f%%; direct: loss %.3f%% (%d/%d), generator CPU %.0f%%; load %s",
				n, r.lossPct(), r.lost, r.sent, 100*r.childCPU.Seconds()/r.wall.Seconds(),
				r.childCPU.Seconds()/r.wall.Seconds()/float64(n)*1e6,
				float64(r.rss)/(1<<20), float64(r.heap)/(1<<20), 100*r.genCPU.Seconds()/r.wall.Seconds(),
				d.lossPct(), d.lost, d.sent, 100*d.genCPU.Seconds()/d.wall.Seconds(), benchproc.LoadAvg())
			cpuPerCallSec = append(cpuPerCallSec, r.childCPU.Seconds()/r.wall.Seconds()/float64(n))
			if r.lossPct() > 0.1 {
				atLoss = n
				break
			}
			last = n
		}
		// Memory per call: the relay's RSS and heap growth from the
		// smallest to the largest step, over the calls added.
		first, end := relay.samples[0], relay.samples[len(relay.samples)-1]
		if end.calls > first.calls {
			per := float64(end.calls - first.calls)
			b.ReportMetric(float64(end.rss-first.rss)/per/1024, "rss-KiB/call")
			b.ReportMetric(float64(end.heap-first.heap)/per/1024, "heap-KiB/call")
		}
		b.ReportMetric(float64(last), "calls-under-0.1%loss")
		b.ReportMetric(float64(atLoss), "calls-at-loss")
		// The median step's CPU per call-second, as calls per core.
		if len(cpuPerCallSec) > 0 {
			c := median(cpuPerCallSec)
			b.ReportMetric(c*1e6, "relay-cpu-µs/call-s")
			b.ReportMetric(1/c, "calls/core")
		}
		direct.close()
		relay.close()
	}
	b.Logf("load average at end: %s", benchproc.LoadAvg())
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

const (
	callPacket   = 1200                               // bytes of RTP payload and header
	callInterval = callPacket * 8 * time.Second / 1e6 // 1 Mbit/s: 9.6 ms
	callSenders  = 4                                  // sender goroutines
	callParties  = 8                                  // remote parties' sockets, shared by the calls
)

// relayChild is the TURN server running in a child process.
type relayChild struct {
	*benchproc.Child
	addr  *net.UDPAddr
	creds Credentials
}

// startRelayChild runs TestTURNCapacityServer in a child process pinned to
// CPU 0 with one P.
func startRelayChild(b *testing.B) *relayChild {
	c := &relayChild{Child: benchproc.Start(b, "TestTURNCapacityServer", "CALLSIGN_TURN_CAPACITY_CHILD")}
	if len(c.Ready) != 3 {
		b.Fatalf("relay child ready with %q", c.Ready)
	}
	var err error
	if c.addr, err = net.ResolveUDPAddr("udp4", c.Ready[0]); err != nil {
		b.Fatal(err)
	}
	c.creds = Credentials{Username: c.Ready[1], Password: c.Ready[2]}
	return c
}

// TestTURNCapacityServer is BenchmarkTURNCalls's relay: it runs only as
// its child process (internal/benchproc), ready with "<addr> <username>
// <password>".
func TestTURNCapacityServer(t *testing.T) {
	if !benchproc.IsChild("CALLSIGN_TURN_CAPACITY_CHILD") {
		t.Skip("the relay of BenchmarkTURNCalls, run in its own process")
	}
	cert, err := LoadOrCreateCertificate(filepath.Join(t.TempDir(), "turn-tls.pem"), net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	// As node.startTURN builds it for a node on loopback.
	s, err := New(Config{ListenUDP: "127.0.0.1:0", ListenTCP: "127.0.0.1:0", ListenTLS: "127.0.0.1:0",
		TLSCertificate: &cert, RelayAddress: net.IPv4(127, 0, 0, 1), AllowLoopbackPeers: true,
		MaxAllocationsPerIP: 1 << 20, MaxAllocationsPerUser: 1 << 20, AllocationRate: 1 << 20, AllocationBurst: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cr := s.Credentials("bench")
	benchproc.Serve([]string{s.Addr().String(), cr.Username, cr.Password}, nil)
}

// callGen generates the calls: through the child's relay, or directly
// when child is nil.
type callGen struct {
	child   *relayChild
	parties []*net.UDPConn
	calls   []*genCall
	readers sync.WaitGroup
	closers []func()
	samples []stepResult
}

// genCall is one call: its client's socket (the relay conn of its
// allocation, or a plain socket), where its party sends to, and counters.
type genCall struct {
	conn  net.PacketConn
	addr  net.Addr // where the party sends: the relayed address, or conn's own
	party *net.UDPConn
	tc    *testClient
	gotA  atomic.Int64 // received by the client (party → client)
	gotB  atomic.Int64 // received by the party (client → party)
}

type stepResult struct {
	calls      int
	sent, lost int64
	wall       time.Duration
	childCPU   time.Duration
	genCPU     time.Duration
	rss, heap  int64
}

func (r stepResult) lossPct() float64 {
	if r.sent == 0 {
		return 0
	}
	return 100 * float64(r.lost) / float64(r.sent)
}

func newCallGen(b *testing.B, child *relayChild) *callGen {
	g := &callGen{child: child}
	if child != nil {
		g.closers = append(g.closers, child.Close)
	}
	for range callParties {
		p, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		tuneSocket(p, DefaultSocketBuffer)
		g.parties = append(g.parties, p)
		g.closers = append(g.closers, func() { _ = p.Close() })
		g.readers.Go(func() { g.readParty(p) })
	}
	return g
}

// readParty counts what reaches a party: packets carry their call's index.
func (g *callGen) readParty(p *net.UDPConn) {
	buf := make([]byte, 1600)
	for {
		n, _, err := p.ReadFrom(buf)
		if err != nil {
			return
		}
		if n < 8 {
			continue
		}
		i := int(binary.BigEndian.Uint32(buf))
		if calls := g.snapshot(); i < len(calls) {
			calls[i].gotB.Add(1)
		}
	}
}

var genMu sync.Mutex

func (g *callGen) snapshot() []*genCall {
	genMu.Lock()
	defer genMu.Unlock()
	return g.calls
}

// add brings the generator up to n calls, warming each one up (the
// allocation's permission and channel binding in place both ways).
func (g *callGen) add(b *testing.B, n int) {
	for i := len(g.calls); i < n; i++ {
		c := &genCall{party: g.parties[i%len(g.parties)]}
		if g.child == nil {
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			tuneSocket(conn, DefaultSocketBuffer)
			c.conn, c.addr = conn, conn.LocalAddr()
			g.closers = append(g.closers, func() { _ = conn.Close() })
		} else {
			conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			tuneSocket(conn, DefaultSocketBuffer)
			pc, err := newPionClientAt(g.child.addr, conn, g.child.creds)
			if err != nil {
				b.Fatal(err)
			}
			c.tc = &testClient{Client: pc, conn: conn}
			if err := c.tc.allocate(); err != nil {
				c.tc.close()
				b.Fatalf("allocate call %d: %v", i, err)
			}
			g.closers = append(g.closers, c.tc.close)
			c.conn, c.addr = c.tc.relay, c.tc.relay.LocalAddr()
		}
		genMu.Lock()
		g.calls = append(g.calls, c)
		genMu.Unlock()
		g.readers.Go(func() { g.readClient(i, c) })
		// Warm-up: client → party until the party has one (permission and
		// channel in place), then party → client.
		pkt := make([]byte, callPacket)
		binary.BigEndian.PutUint32(pkt, uint32(i))
		deadline := time.Now().Add(10 * time.Second)
		for c.gotB.Load() == 0 || c.gotA.Load() == 0 {
			if time.Now().After(deadline) {
				b.Fatalf("call %d never carried a packet both ways", i)
			}
			_, _ = c.conn.WriteTo(pkt, c.party.LocalAddr())
			if c.gotB.Load() > 0 {
				_, _ = c.party.WriteTo(pkt, c.addr)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

func (g *callGen) readClient(_ int, c *genCall) {
	buf := make([]byte, 1600)
	for {
		_, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		c.gotA.Add(1)
	}
}

// step runs n calls for window, each sending callPacket bytes every
// callInterval each way, and counts what arrived.
func (g *callGen) step(b *testing.B, n int, window time.Duration) stepResult {
	g.add(b, n)
	calls := g.snapshot()[:n]
	time.Sleep(200 * time.Millisecond) // warm-up stragglers
	var got0 int64
	for _, c := range calls {
		got0 += c.gotA.Load() + c.gotB.Load()
	}
	var before benchproc.Stats
	if g.child != nil {
		before = g.child.Stats(b)
	}
	cpu0, start := cputime.Process(), time.Now()
	var sent atomic.Int64
	var wg sync.WaitGroup
	for s := range callSenders {
		wg.Go(func() {
			pkt := make([]byte, callPacket)
			var mine []int
			for i := s; i < n; i += callSenders {
				mine = append(mine, i)
			}
			if len(mine) == 0 {
				return
			}
			gap := callInterval / time.Duration(len(mine))
			// Stagger the senders over one interval.
			t := start.Add(callInterval * time.Duration(s) / callSenders)
			for k := 0; time.Since(start) < window; k++ {
				for _, i := range mine {
					if d := time.Until(t); d > 100*time.Microsecond {
						time.Sleep(d)
					}
					t = t.Add(gap)
					c := calls[i]
					binary.BigEndian.PutUint32(pkt, uint32(i))
					binary.BigEndian.PutUint32(pkt[4:], uint32(k))
					if _, err := c.conn.WriteTo(pkt, c.party.LocalAddr()); err == nil {
						sent.Add(1)
					}
					if _, err := c.party.WriteTo(pkt, c.addr); err == nil {
						sent.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	genCPU := cputime.Process() - cpu0
	var after benchproc.Stats
	if g.child != nil {
		after = g.child.Stats(b)
	}
	// Let the last packets land.
	var got int64
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		got = -got0
		for _, c := range calls {
			got += c.gotA.Load() + c.gotB.Load()
		}
		if got >= sent.Load() {
			break
		}
	}
	r := stepResult{calls: n, sent: sent.Load(), lost: max(0, sent.Load()-got), wall: wall, genCPU: genCPU,
		childCPU: after.CPU - before.CPU, rss: after.RSS, heap: after.Heap}
	g.samples = append(g.samples, r)
	return r
}

func (g *callGen) close() {
	for i := len(g.closers) - 1; i >= 0; i-- {
		g.closers[i]()
	}
	g.readers.Wait()
}

// newPionClientAt is newPionClient for a server known by its address.
func newPionClientAt(addr *net.UDPAddr, conn net.PacketConn, creds Credentials) (*pionturn.Client, error) {
	c, err := pionturn.NewClient(&pionturn.ClientConfig{
		TURNServerAddr: addr.String(),
		STUNServerAddr: addr.String(),
		Conn:           conn,
		Username:       creds.Username,
		Password:       creds.Password,
		RTO:            100 * time.Millisecond,
		LoggerFactory:  pionLoggerFactory{log: discardLogger},
	})
	if err != nil {
		return nil, err
	}
	if err := c.Listen(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
