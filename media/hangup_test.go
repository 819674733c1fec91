package media

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v4"
	"github.com/pion/webrtc/v4"

	"github.com/callsign/callsign/internal/check"
)

// TestRemoteClose: the callee closes its connection; the caller's engine
// detects it from the DTLS close alone (RemoteClosed), reports nothing
// after it, and refuses further signalling. Whether that ends the call as
// remote-hangup, however it races the hangup signal, is package call's
// (call.TestRemoteHangupRacesDTLSClose).
func TestRemoteClose(t *testing.T) {
	eA, eB := newEngine(t, Config{}), newEngine(t, Config{})
	caller := newCall(t, eA, CallConfig{ID: "c", Outgoing: true, Source: Tone()})
	callee := newCall(t, eB, CallConfig{ID: "c", Source: Tone()})
	wA, wB := watch(t, caller), watch(t, callee)
	connect(t, caller, callee, nil)
	wA.wait(t, Connected, 10*time.Second)
	wB.wait(t, Connected, 10*time.Second)

	callee.Close()
	if got := wA.final(t, 10*time.Second); got.Kind != RemoteClosed {
		t.Errorf("caller detected %q, want %q", got.Kind, RemoteClosed)
	}
	if caller.Down() != RemoteClosed {
		t.Errorf("Down() = %q, want %q", caller.Down(), RemoteClosed)
	}
	if err := caller.AddRemoteCandidate(`{"candidate":""}`); !errors.Is(err, ErrEnded) {
		t.Errorf("AddRemoteCandidate after the remote closed = %v, want ErrEnded", err)
	}
	caller.Close()
	<-wA.done
	if got, want := kindsOf(wA.history()), []EventKind{Connected, RemoteClosed}; !slices.Equal(got, want) {
		t.Errorf("caller reported %v, want %v", got, want)
	}
	if got, want := kindsOf(wB.history()), []EventKind{Connected}; !slices.Equal(got, want) {
		t.Errorf("callee reported %v, want %v (its own close is no event)", got, want)
	}
}

// TestCloseDuringLastFlight: the callee hangs up while its DTLS handshake
// waits for the server's last flight, which the caller has sent and is
// connected by. The caller still learns from the DTLS close alone that the
// callee has gone (RemoteClosed), at once, not from ICE failing a dozen
// seconds later: the callee's Close lets the handshake end first, so that
// it can send the close.
func TestCloseDuringLastFlight(t *testing.T) {
	base, err := newBufferedNet()
	if err != nil {
		t.Fatal(err)
	}
	hold := &lastFlightNet{Net: base, held: map[*lastFlightConn][]heldDatagram{}}
	eA := newEngine(t, Config{})
	eB := newEngine(t, Config{Net: hold, IPs: loopback})
	waited := make(chan struct{})
	eB.testHookHandshakeWait = func(*Call) {
		close(waited)
		hold.release()
	}
	caller := newCall(t, eA, CallConfig{ID: "l", Outgoing: true, Source: Tone()})
	callee := newCall(t, eB, CallConfig{ID: "l", Source: Tone()})
	wA, wB := watch(t, caller), watch(t, callee)
	connect(t, caller, callee, nil)
	wA.wait(t, Connected, 10*time.Second)
	check.Until(t, 10*time.Second, "the caller's last flight held back from the callee", func() bool { return hold.count() > 0 })
	if h := wB.history(); len(h) != 0 || callee.pc.SCTP().Transport().State() != webrtc.DTLSTransportStateConnecting {
		t.Fatalf("callee reported %v, DTLS %s; want nothing yet, its handshake under way", h, callee.pc.SCTP().Transport().State())
	}

	callee.Close()
	select {
	case <-waited:
	default:
		t.Error("the callee's Close did not wait for its handshake to end")
	}
	if got := wA.final(t, 20*time.Second); got.Kind != RemoteClosed {
		t.Errorf("caller detected %q, want %q: the callee closed without a word", got.Kind, RemoteClosed)
	}
	if got, want := kindsOf(wB.history()), []EventKind(nil); !slices.Equal(got, want) {
		t.Errorf("callee reported %v, want nothing (its own close is no event)", got)
	}
}

// lastFlightNet is the network of a DTLS client whose handshake's last
// flight is held back: from the first inbound datagram that opens with a
// ChangeCipherSpec record (of the DTLS server's only, its last flight),
// every inbound DTLS datagram waits until release. Other datagrams (ICE,
// SRTP) pass.
type lastFlightNet struct {
	transport.Net
	mu       sync.Mutex
	holding  bool
	released bool
	held     map[*lastFlightConn][]heldDatagram
	n        int
}

type heldDatagram struct {
	b    []byte
	from net.Addr
}

func (n *lastFlightNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &lastFlightConn{UDPConn: c, n: n}, nil
}

// keep holds b when it is to wait, and reports whether it did.
func (n *lastFlightNet) keep(c *lastFlightConn, b []byte, from net.Addr) bool {
	const changeCipherSpec = 20
	dtls := len(b) > 0 && b[0] >= 20 && b[0] <= 63 // RFC 7983
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.released || !dtls {
		return false
	}
	if b[0] == changeCipherSpec {
		n.holding = true
	}
	if !n.holding {
		return false
	}
	n.held[c] = append(n.held[c], heldDatagram{b: slices.Clone(b), from: from})
	n.n++
	return true
}

// next returns c's next held datagram once released.
func (n *lastFlightNet) next(c *lastFlightConn) (heldDatagram, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.held[c]
	if !n.released || len(q) == 0 {
		return heldDatagram{}, false
	}
	n.held[c] = q[1:]
	return q[0], true
}

// release lets the held datagrams through, each with the next read on its
// socket (the caller's media keeps them coming), and holds nothing more.
func (n *lastFlightNet) release() {
	n.mu.Lock()
	n.released = true
	n.mu.Unlock()
}

// count is how many datagrams were held.
func (n *lastFlightNet) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.n
}

type lastFlightConn struct {
	transport.UDPConn
	n *lastFlightNet
}

func (c *lastFlightConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		if d, ok := c.n.next(c); ok {
			return copy(p, d.b), d.from, nil
		}
		k, from, err := c.UDPConn.ReadFrom(p)
		if err != nil || !c.n.keep(c, p[:k], from) {
			return k, from, err
		}
	}
}

// TestCloseBeforeAnswer: a connection closed before the remote answered
// (the call was declined, busy, missed or cancelled: package call decides
// which) reports nothing, closes its channels, and refuses the late
// answer and candidates.
func TestCloseBeforeAnswer(t *testing.T) {
	e := newEngine(t, Config{})
	c := newCall(t, e, CallConfig{ID: "x", Outgoing: true, Source: Sources(Tone(), Pattern())})
	w := watch(t, c)
	if _, err := c.Offer(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	<-w.done
	if h := w.history(); len(h) != 0 {
		t.Errorf("a connection closed before the answer reported %v", h)
	}
	for range c.Candidates() { // closed once Close has begun
	}
	if err := c.SetAnswer(golden(t, "answer.sdp")); !errors.Is(err, ErrEnded) {
		t.Errorf("SetAnswer after Close = %v, want ErrEnded", err)
	}
	if err := c.AddRemoteCandidate(`{"candidate":""}`); !errors.Is(err, ErrEnded) {
		t.Errorf("AddRemoteCandidate after Close = %v, want ErrEnded", err)
	}
	if st := c.Stats(); st.PacketsSent != 0 || st.Path != "" {
		t.Errorf("stats of a connection that never connected: %+v", st)
	}
	_ = c.Close() // idempotent
}

func TestSignallingOrder(t *testing.T) {
	e := newEngine(t, Config{})
	caller := newCall(t, e, CallConfig{ID: "o", Outgoing: true})
	callee := newCall(t, e, CallConfig{ID: "o"})
	ctx := context.Background()
	if _, err := callee.Offer(ctx); !errors.Is(err, ErrWrongRole) {
		t.Errorf("callee Offer = %v, want ErrWrongRole", err)
	}
	if _, err := caller.Answer(ctx, golden(t, "offer.sdp")); !errors.Is(err, ErrWrongRole) {
		t.Errorf("caller Answer = %v, want ErrWrongRole", err)
	}
	if err := caller.SetAnswer(golden(t, "answer.sdp")); !errors.Is(err, ErrSignal) {
		t.Errorf("SetAnswer before Offer = %v, want ErrSignal", err)
	}
	if _, err := caller.Offer(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.Offer(ctx); !errors.Is(err, ErrSignal) {
		t.Errorf("second Offer = %v, want ErrSignal", err)
	}
	if _, err := e.NewCall(CallConfig{}); err == nil {
		t.Error("NewCall without an ID succeeded")
	}
}

// TestConnectTimeout: the remote vanishes after the answer; the engine
// reports SetupTimeout instead of waiting forever.
func TestConnectTimeout(t *testing.T) {
	e := newEngine(t, Config{ConnectTimeout: 300 * time.Millisecond})
	eB := newEngine(t, Config{})
	caller := newCall(t, e, CallConfig{ID: "t", Outgoing: true})
	callee := newCall(t, eB, CallConfig{ID: "t"})
	w := watch(t, caller)
	offer, err := caller.Offer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	answer, err := callee.Answer(context.Background(), offer)
	if err != nil {
		t.Fatal(err)
	}
	callee.Close() // gone before any candidate was exchanged
	if err := caller.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
	if got := w.final(t, 5*time.Second).Kind; got != SetupTimeout {
		t.Errorf("detected %q, want %q", got, SetupTimeout)
	}
}

func TestEngineClose(t *testing.T) {
	e, err := NewEngine(Config{IPs: loopback})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.NewCall(CallConfig{ID: "a", Outgoing: true, Source: Tone()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Offer(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-c.Events(); ok {
		t.Error("an event after engine Close")
	}
	if err := c.AddRemoteCandidate(`{"candidate":""}`); !errors.Is(err, ErrEnded) {
		t.Errorf("AddRemoteCandidate after engine Close = %v, want ErrEnded", err)
	}
	if _, err := e.NewCall(CallConfig{ID: "b"}); !errors.Is(err, ErrClosed) {
		t.Errorf("NewCall after Close = %v, want ErrClosed", err)
	}
	_ = e.Close()
}

func TestNewEngineRejectsBadConfig(t *testing.T) {
	bad := map[string]Config{
		"half port range": {PortMin: 5000},
		"inverted range":  {PortMin: 6000, PortMax: 5000},
		"bad ice url":     {ICEServers: []ICEServer{{URLs: []string{"http://example.com"}}}},
		"no urls":         {ICEServers: []ICEServer{{}}},
		"negative wait":   {ConnectTimeout: -time.Second},
	}
	for name, cfg := range bad {
		if _, err := NewEngine(cfg); err == nil {
			t.Errorf("%s: NewEngine succeeded", name)
		}
	}
}
