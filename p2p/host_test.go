package p2p_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"
)

func TestMain(m *testing.M) {
	// No goleak ignores: every host is closed by its test, and go-libp2p
	// v0.51 leaves no process-global goroutines behind here.
	goleak.VerifyTestMain(m)
}

const echoProto = "/callsign-test/frame-echo/1.0.0"

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// serveUpper answers each request with its upper-cased payload.
func serveUpper(t *testing.T, h host.Host, cfg p2p.HandlerConfig) *p2p.Server {
	srv := p2p.Handle(h, echoProto, cfg, func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
		return bytes.ToUpper(req), nil
	})
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestConnectTCPAndQUIC(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listen []string
		proto  int
	}{{"tcp", p2ptest.ListenTCP, ma.P_TCP}, {"quic", p2ptest.ListenQUIC, ma.P_QUIC_V1}} {
		t.Run(tc.name, func(t *testing.T) {
			only := func(c *p2p.HostConfig) { c.Listen = tc.listen }
			a, b := p2ptest.NewHost(t, only), p2ptest.NewHost(t, only)
			serveUpper(t, b, p2p.HandlerConfig{})
			p2ptest.Connect(t, a, b)
			resp, err := p2p.Request(ctxT(t, 10*time.Second), a, b.ID(), echoProto, false, []byte("hello"), 100)
			if err != nil || string(resp) != "HELLO" {
				t.Fatalf("Request = %q, %v", resp, err)
			}
			conns := a.Network().ConnsToPeer(b.ID())
			if len(conns) == 0 {
				t.Fatal("no connection")
			}
			if _, err := conns[0].RemoteMultiaddr().ValueForProtocol(tc.proto); err != nil {
				t.Fatalf("connection %s is not %s", conns[0].RemoteMultiaddr(), tc.name)
			}
		})
	}
}

// TestRelayedExchange: two private hosts that cannot dial each other (no
// listen addresses at all) reach each other through a public relay, using
// only a /p2p-circuit address, and exchange a frame on the limited conn;
// the relay counts its reservation, the circuit and the bytes it carried
// (HostStats).
func TestRelayedExchange(t *testing.T) {
	var stats p2p.HostStats
	relayH := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP; c.Public = true; c.Stats = &stats })
	relayInfo := peer.AddrInfo{ID: relayH.ID(), Addrs: relayH.Addrs()}
	noListen := func(c *p2p.HostConfig) { c.Listen = []string{} }
	a, b := p2ptest.NewHost(t, noListen), p2ptest.NewHost(t, noListen)
	if len(a.Addrs()) != 0 || len(b.Addrs()) != 0 {
		t.Fatalf("outbound-only hosts listen on %v / %v", a.Addrs(), b.Addrs())
	}
	serveUpper(t, b, p2p.HandlerConfig{})

	ctx := ctxT(t, 20*time.Second)
	if err := b.Connect(ctx, relayInfo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, b, relayInfo); err != nil {
		t.Fatalf("reserve: %v", err)
	}
	circuit, err := ma.NewMultiaddr(fmt.Sprintf("%s/p2p/%s/p2p-circuit", relayH.Addrs()[0], relayH.ID()))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatalf("connect through relay: %v", err)
	}
	if got := a.Network().Connectedness(b.ID()); got != network.Limited {
		t.Fatalf("connectedness %v, want Limited", got)
	}

	// Without allowLimited the stream is refused: no direct path exists.
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := p2p.Request(short, a, b.ID(), echoProto, false, []byte("x"), 100); err == nil {
		t.Fatal("stream opened on a limited conn without allowLimited")
	}

	s, err := p2p.Dial(ctx, a, b.ID(), echoProto, true)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Conn().Stat().Limited {
		t.Fatal("stream is not on the limited (relayed) connection")
	}
	if _, err := s.Conn().RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT); err != nil {
		t.Fatalf("remote addr %s is not a circuit", s.Conn().RemoteMultiaddr())
	}
	msg := bytes.Repeat([]byte("relayed "), 1000)
	resp, err := p2p.Exchange(ctx, s, msg, 1<<20)
	if err != nil || !bytes.Equal(resp, bytes.ToUpper(msg)) {
		t.Fatalf("relayed exchange: %d bytes, %v", len(resp), err)
	}
	// The request and its answer crossed the relay, each with its frame
	// header and the stream's negotiation and encryption around it. (The
	// relay counts a chunk after passing it on, so the answer may be here
	// before its count.)
	relayed := func() bool {
		r := stats.Relay()
		return r.Bytes >= uint64(2*len(msg)) && r.Reservations == 1 && r.Circuits == 1 && r.CircuitsAll == 1
	}
	check.Until(t, 10*time.Second, "the relay's figures after the exchange", relayed)
	for _, c := range a.Network().ConnsToPeer(b.ID()) {
		_ = c.Close()
	}
	check.Until(t, 10*time.Second, "the circuit counted closed", func() bool { return stats.Relay().Circuits == 0 })
}

// rawStream opens a stream and writes raw bytes, bypassing framing.
func rawStream(t *testing.T, a, b host.Host, raw []byte) network.Stream {
	t.Helper()
	s, err := a.NewStream(ctxT(t, 5*time.Second), b.ID(), echoProto)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(raw); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	return s
}

func wantCode(t *testing.T, s network.Stream, code network.StreamErrorCode) {
	t.Helper()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(s)
	if got, ok := p2p.CodeOf(err); !ok || got != code {
		t.Fatalf("read after garbage: %v (code %v %v), want reset with %s", err, got, ok, p2p.CodeName(code))
	}
}

func TestGarbageResetsStreamHostKeepsServing(t *testing.T) {
	a, b := p2ptest.NewHost(t, nil), p2ptest.NewHost(t, nil)
	serveUpper(t, b, p2p.HandlerConfig{MaxRequest: 1024, Rate: rate.Inf})
	p2ptest.Connect(t, a, b)

	wantCode(t, rawStream(t, a, b, []byte{0x80, 0x00}), p2p.CodeBadRequest)             // non-minimal varint
	wantCode(t, rawStream(t, a, b, []byte{0xff, 0xff, 0xff, 0x7f}), p2p.CodeTooLarge)   // 256 MiB claim
	wantCode(t, rawStream(t, a, b, []byte{0x05, 'a'}), p2p.CodeBadRequest)              // truncated
	wantCode(t, rawStream(t, a, b, bytes.Repeat([]byte{0xff}, 12)), p2p.CodeBadRequest) // overlong varint

	resp, err := p2p.Request(ctxT(t, 5*time.Second), a, b.ID(), echoProto, false, []byte("still here"), 100)
	if err != nil || string(resp) != "STILL HERE" {
		t.Fatalf("after garbage: %q, %v", resp, err)
	}
}

func TestHandlerErrorsAndPanics(t *testing.T) {
	a, b := p2ptest.NewHost(t, nil), p2ptest.NewHost(t, nil)
	srv := p2p.Handle(b, echoProto, p2p.HandlerConfig{Rate: rate.Inf}, func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
		switch string(req) {
		case "panic":
			panic("boom")
		case "refuse":
			return nil, errors.New("not allowed")
		case "busy":
			return nil, p2p.WithCode(p2p.CodeOverloaded, errors.New("busy"))
		}
		return req, nil
	})
	defer srv.Close()
	p2ptest.Connect(t, a, b)
	for req, code := range map[string]network.StreamErrorCode{"panic": p2p.CodeInternal, "refuse": p2p.CodeBadRequest, "busy": p2p.CodeOverloaded} {
		_, err := p2p.Request(ctxT(t, 5*time.Second), a, b.ID(), echoProto, false, []byte(req), 100)
		if got, ok := p2p.CodeOf(err); !ok || got != code {
			t.Errorf("%s: %v, want %s", req, err, p2p.CodeName(code))
		}
	}
	if resp, err := p2p.Request(ctxT(t, 5*time.Second), a, b.ID(), echoProto, false, []byte("ok"), 100); err != nil || string(resp) != "ok" {
		t.Fatalf("after a panic: %q, %v", resp, err)
	}
	// A response over the requester's cap is refused on its side.
	if _, err := p2p.Request(ctxT(t, 5*time.Second), a, b.ID(), echoProto, false, bytes.Repeat([]byte("x"), 200), 100); !errors.Is(err, p2p.ErrFrameTooLarge) {
		t.Fatalf("oversize response: %v, want ErrFrameTooLarge", err)
	}
}

// TestDeadlineAbortsStalledPeer: a server that never answers cannot hold
// a requester past its context, and a client that never writes cannot hold
// a handler past its Timeout.
func TestDeadlineAbortsStalledPeer(t *testing.T) {
	a, b := p2ptest.NewHost(t, nil), p2ptest.NewHost(t, nil)
	const stallProto = "/callsign-test/stall/1.0.0"
	release := make(chan struct{})
	stalled := make(chan struct{}, 1)
	b.SetStreamHandler(stallProto, func(s network.Stream) {
		stalled <- struct{}{}
		<-release // read nothing, answer nothing
		s.Reset()
	})
	defer close(release)
	p2ptest.Connect(t, a, b)

	start := time.Now()
	_, err := p2p.Request(ctxT(t, 300*time.Millisecond), a, b.ID(), stallProto, false, []byte("hi"), 100)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled server: %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("requester held for %v", d)
	}
	<-stalled

	// Cancellation (not only deadlines) aborts blocked reads.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if _, err := p2p.Request(ctx, a, b.ID(), stallProto, false, []byte("hi"), 100); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled request: %v", err)
	}
	<-stalled

	// Server side: a client that opens a stream and sends nothing.
	var handled atomic.Int32
	srv := p2p.HandleStream(b, echoProto, p2p.HandlerConfig{Timeout: 300 * time.Millisecond}, func(ctx context.Context, s network.Stream) error {
		handled.Add(1)
		_, err := p2p.ReadFrame(s, 100)
		return err
	})
	defer srv.Close()
	s, err := a.NewStream(ctxT(t, 5*time.Second), b.ID(), echoProto)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte{0x05}) // a length, then silence
	start = time.Now()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(s)
	if got, ok := p2p.CodeOf(err); !ok || got != p2p.CodeTimeout {
		t.Fatalf("silent client: %v, want reset with timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second || handled.Load() != 1 {
		t.Fatalf("handler deadline took %v (handled %d)", d, handled.Load())
	}
}

func TestServerCloseAbortsInFlight(t *testing.T) {
	a, b := p2ptest.NewHost(t, nil), p2ptest.NewHost(t, nil)
	entered := make(chan struct{})
	srv := p2p.HandleStream(b, echoProto, p2p.HandlerConfig{}, func(ctx context.Context, s network.Stream) error {
		close(entered)
		_, err := p2p.ReadFrame(s, 100) // blocks: the client sends nothing
		return err
	})
	p2ptest.Connect(t, a, b)
	s, err := a.NewStream(ctxT(t, 5*time.Second), b.ID(), echoProto)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte{0x05})
	<-entered
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Server.Close did not abort a blocked handler")
	}
	if _, err := p2p.Request(ctxT(t, 5*time.Second), a, b.ID(), echoProto, false, []byte("x"), 10); err == nil {
		t.Fatal("closed server still answers")
	}
}

func TestRateLimitPerPeer(t *testing.T) {
	b := p2ptest.NewHost(t, nil)
	a1, a2 := p2ptest.NewHost(t, nil), p2ptest.NewHost(t, nil)
	serveUpper(t, b, p2p.HandlerConfig{Rate: 0.01, Burst: 3})
	p2ptest.Connect(t, a1, b)
	p2ptest.Connect(t, a2, b)
	req := func(a host.Host) error {
		_, err := p2p.Request(ctxT(t, 5*time.Second), a, b.ID(), echoProto, false, []byte("x"), 10)
		return err
	}
	for i := range 3 {
		if err := req(a1); err != nil {
			t.Fatalf("request %d within burst: %v", i, err)
		}
	}
	err := req(a1)
	if code, ok := p2p.CodeOf(err); !ok || code != p2p.CodeRateLimited {
		t.Fatalf("request over the rate: %v, want rate-limited", err)
	}
	if err := req(a2); err != nil {
		t.Fatalf("another peer was limited too: %v", err)
	}
}

func TestOverloaded(t *testing.T) {
	a, b := p2ptest.NewHost(t, nil), p2ptest.NewHost(t, nil)
	entered := make(chan struct{}, 1)
	srv := p2p.HandleStream(b, echoProto, p2p.HandlerConfig{MaxConcurrent: 1, Rate: rate.Inf}, func(ctx context.Context, s network.Stream) error {
		entered <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	defer srv.Close()
	p2ptest.Connect(t, a, b)
	s1, err := a.NewStream(ctxT(t, 5*time.Second), b.ID(), echoProto)
	if err != nil {
		t.Fatal(err)
	}
	s1.Write([]byte{0})
	<-entered
	_, err = p2p.Request(ctxT(t, 5*time.Second), a, b.ID(), echoProto, false, []byte("x"), 10)
	if code, ok := p2p.CodeOf(err); !ok || code != p2p.CodeOverloaded {
		t.Fatalf("second concurrent stream: %v, want overloaded", err)
	}
	s1.Reset()
}

func TestHostConfigValidation(t *testing.T) {
	k, _ := p2p.GeneratePeerKey()
	for _, tc := range []struct {
		name string
		cfg  p2p.HostConfig
		want string
	}{
		{"no key", p2p.HostConfig{}, "PrivKey"},
		{"garbage listen", p2p.HostConfig{PrivKey: k, Listen: []string{"not-an-addr"}}, `"not-an-addr"`},
		{"websocket listen", p2p.HostConfig{PrivKey: k, Listen: []string{"/ip4/127.0.0.1/tcp/0/ws"}}, "/ws"},
		{"no transport", p2p.HostConfig{PrivKey: k, Listen: []string{"/ip4/127.0.0.1"}}, "/ip4/127.0.0.1"},
		{"bad announce", p2p.HostConfig{PrivKey: k, Listen: []string{}, Announce: []string{"/ip4/300.1.1.1/tcp/1"}}, "announce"},
		{"relay without addrs", p2p.HostConfig{PrivKey: k, Listen: []string{}, StaticRelays: []peer.AddrInfo{{ID: "x"}}}, "static relay 0"},
		{"watermarks", p2p.HostConfig{PrivKey: k, Listen: []string{}, ConnLow: 10, ConnHigh: 5}, "watermarks"},
	} {
		h, err := p2p.NewHost(tc.cfg)
		if err == nil {
			h.Close()
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", tc.name, err, tc.want)
		}
	}
}

func TestAnnounceReplacesAddrs(t *testing.T) {
	ann := "/ip4/203.0.113.7/tcp/4001"
	h := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP; c.Announce = []string{ann} })
	addrs := h.Addrs()
	if len(addrs) != 1 || addrs[0].String() != ann {
		t.Fatalf("Addrs = %v, want only %s", addrs, ann)
	}
}

func TestPeerKeys(t *testing.T) {
	k, err := p2p.GeneratePeerKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := p2p.MarshalPeerKey(k)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := p2p.PeerKeyFromBytes(b)
	if err != nil || !k.Equals(k2) {
		t.Fatalf("round trip: %v", err)
	}
	id1, _ := peer.IDFromPrivateKey(k)
	id2, _ := peer.IDFromPrivateKey(k2)
	if id1 != id2 {
		t.Fatal("peer id changed across marshal/unmarshal")
	}
	sk, _, _ := crypto.GenerateSecp256k1Key(nil)
	sb, _ := crypto.MarshalPrivateKey(sk)
	if _, err := p2p.PeerKeyFromBytes(sb); err == nil {
		t.Fatal("secp256k1 key accepted")
	}
	if _, err := p2p.PeerKeyFromBytes([]byte{1, 2, 3}); err == nil {
		t.Fatal("garbage accepted")
	}
}

// TestAutoRelayStaticRelays: a private host configured with a static relay
// reserves a slot there by itself, and a peer reaches it through the relay.
// (AutoRelay advertises circuit addresses only through relays with public
// addresses, so on loopback the test builds the circuit address itself.)
func TestAutoRelayStaticRelays(t *testing.T) {
	relayH := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP; c.Public = true })
	relayInfo := peer.AddrInfo{ID: relayH.ID(), Addrs: relayH.Addrs()}
	b := p2ptest.NewHost(t, func(c *p2p.HostConfig) {
		c.Listen = []string{}
		c.ForcePrivate = true
		c.StaticRelays = []peer.AddrInfo{relayInfo}
	})
	serveUpper(t, b, p2p.HandlerConfig{})
	reserved := func() bool {
		ti := relayH.ConnManager().GetTagInfo(b.ID())
		return ti != nil && ti.Tags["relay-reservation"] > 0
	}
	deadline := time.Now().Add(20 * time.Second)
	for !reserved() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !reserved() {
		t.Fatal("the private host reserved no slot at its static relay within 20s")
	}
	circuit, err := ma.NewMultiaddr(fmt.Sprintf("%s/p2p/%s/p2p-circuit", relayH.Addrs()[0], relayH.ID()))
	if err != nil {
		t.Fatal(err)
	}
	a := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = []string{} })
	ctx := ctxT(t, 10*time.Second)
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatal(err)
	}
	resp, err := p2p.Request(ctx, a, b.ID(), echoProto, true, []byte("via autorelay"), 100)
	if err != nil || string(resp) != "VIA AUTORELAY" {
		t.Fatalf("Request = %q, %v", resp, err)
	}
}

// TestRelayLimitsApplied: the relay enforces RelayLimits.Data on a circuit.
func TestRelayLimitsApplied(t *testing.T) {
	relayH := p2ptest.NewHost(t, func(c *p2p.HostConfig) {
		c.Listen = p2ptest.ListenTCP
		c.Public = true
		c.RelayLimits = &p2p.RelayLimits{Data: 4096}
	})
	relayInfo := peer.AddrInfo{ID: relayH.ID(), Addrs: relayH.Addrs()}
	noListen := func(c *p2p.HostConfig) { c.Listen = []string{} }
	a, b := p2ptest.NewHost(t, noListen), p2ptest.NewHost(t, noListen)
	serveUpper(t, b, p2p.HandlerConfig{MaxRequest: 1 << 20, Rate: rate.Inf})
	ctx := ctxT(t, 10*time.Second)
	if err := b.Connect(ctx, relayInfo); err != nil {
		t.Fatal(err)
	}
	rsvp, err := client.Reserve(ctx, b, relayInfo)
	if err != nil {
		t.Fatal(err)
	}
	if rsvp.LimitData != 4096 {
		t.Fatalf("reservation data limit %d, want 4096", rsvp.LimitData)
	}
	circuit, _ := ma.NewMultiaddr(fmt.Sprintf("%s/p2p/%s/p2p-circuit", relayH.Addrs()[0], relayH.ID()))
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p2p.Request(ctx, a, b.ID(), echoProto, true, []byte("small"), 100); err != nil {
		t.Fatalf("small message over the limited relay: %v", err)
	}
	if _, err := p2p.Request(ctx, a, b.ID(), echoProto, true, bytes.Repeat([]byte("x"), 64<<10), 1<<20); err == nil {
		t.Fatal("64 KiB crossed a relay limited to 4 KiB")
	}
}
