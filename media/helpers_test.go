package media

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v4"
	"github.com/pion/turn/v5"
	"go.uber.org/goleak"

	"github.com/callsign/callsign/internal/check"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var loopback = []netip.Addr{netip.MustParseAddr("127.0.0.1")}

// newEngine builds an engine on loopback (or on n when set) and closes it
// at the end of the test.
func newEngine(tb testing.TB, cfg Config) *Engine {
	tb.Helper()
	if cfg.Net == nil && cfg.IPs == nil {
		cfg.IPs = loopback
	}
	e, err := NewEngine(cfg)
	if err != nil {
		tb.Fatalf("NewEngine: %v", err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	return e
}

func newCall(tb testing.TB, e *Engine, cfg CallConfig) *Call {
	tb.Helper()
	c, err := e.NewCall(cfg)
	if err != nil {
		tb.Fatalf("NewCall(%s): %v", cfg.ID, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// watcher drains a call's Events and lets a test wait for one.
type watcher struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{}
	done    chan struct{}
}

func watch(tb testing.TB, c *Call) *watcher {
	w := &watcher{changed: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ev := range c.Events() {
			w.mu.Lock()
			w.events = append(w.events, ev)
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}()
	tb.Cleanup(func() {
		_ = c.Close()
		<-w.done
	})
	return w
}

func (w *watcher) history() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Event(nil), w.events...)
}

// wait blocks until the call has reported k and returns that event.
func (w *watcher) wait(tb testing.TB, k EventKind, timeout time.Duration) Event {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		for _, ev := range w.history() {
			if ev.Kind == k {
				return ev
			}
		}
		select {
		case <-w.changed:
		case <-w.done:
			for _, ev := range w.history() {
				if ev.Kind == k {
					return ev
				}
			}
			tb.Fatalf("call closed without reporting %s: %v", k, w.history())
		case <-deadline.C:
			tb.Fatalf("call did not report %s within %v: %v", k, timeout, w.history())
		}
	}
}

// final waits until the call has reported a final kind and returns it.
func (w *watcher) final(tb testing.TB, timeout time.Duration) Event {
	tb.Helper()
	var out Event
	check.Until(tb, timeout, "a final event", func() bool {
		for _, ev := range w.history() {
			if ev.Kind.Final() {
				out = ev
				return true
			}
		}
		return false
	})
	return out
}

func kindsOf(h []Event) []EventKind {
	out := make([]EventKind, len(h))
	for i, ev := range h {
		out[i] = ev.Kind
	}
	return out
}

// pumpCandidates forwards from's local candidates to to until from stops
// gathering. seen receives each candidate too, when not nil.
func pumpCandidates(tb testing.TB, from, to *Call, seen func(string)) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for cand := range from.Candidates() {
			if seen != nil {
				seen(cand)
			}
			if err := to.AddRemoteCandidate(cand); err != nil && to.Down() == "" && !errors.Is(err, ErrEnded) {
				tb.Errorf("AddRemoteCandidate(%s): %v", cand, err)
			}
		}
	})
	tb.Cleanup(func() {
		_ = from.Close()
		wg.Wait()
	})
}

// connect runs the signalling between caller and callee the way the node
// does: offer, answer, candidates both ways.
func connect(tb testing.TB, caller, callee *Call, seen func(string)) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offer, err := caller.Offer(ctx)
	if err != nil {
		tb.Fatalf("Offer: %v", err)
	}
	pumpCandidates(tb, caller, callee, seen)
	answer, err := callee.Answer(ctx, offer)
	if err != nil {
		tb.Fatalf("Answer: %v", err)
	}
	pumpCandidates(tb, callee, caller, seen)
	if err := caller.SetAnswer(answer); err != nil {
		tb.Fatalf("SetAnswer: %v", err)
	}
}

const (
	turnUser  = "callsign"
	turnPass  = "test-credential"
	turnRealm = "callsign.test"
)

// startTURN runs a pion TURN server on pc (a UDP socket on loopback or on
// a vnet), relaying from relayIP, and closes it at the end of the test.
func startTURN(tb testing.TB, pc net.PacketConn, relayIP net.IP, n transport.Net) *turn.Server {
	tb.Helper()
	if n == nil {
		// Real sockets: the same large buffers the engine uses.
		var err error
		if n, err = newBufferedNet(); err != nil {
			tb.Fatal(err)
		}
		grow(pc)
	}
	key := turn.GenerateAuthKey(turnUser, turnRealm, turnPass)
	gen := &turn.RelayAddressGeneratorStatic{RelayAddress: relayIP, Address: relayIP.String(), Net: n}
	s, err := turn.NewServer(turn.ServerConfig{
		Realm: turnRealm,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			if ra.Username != turnUser {
				return "", nil, false
			}
			return ra.Username, key, true
		},
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: pc, RelayAddressGenerator: gen}},
		LoggerFactory:     quietLogs(),
	})
	if err != nil {
		tb.Fatalf("TURN server: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// loopbackTURN starts a TURN server on 127.0.0.1 and returns its ICE server.
func loopbackTURN(tb testing.TB) ICEServer {
	tb.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	startTURN(tb, pc, net.IPv4(127, 0, 0, 1), nil)
	return ICEServer{
		URLs:     []string{"turn:" + pc.LocalAddr().String() + "?transport=udp"},
		Username: turnUser, Credential: turnPass,
	}
}

func quietLogs() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelDisabled
	if os.Getenv("MEDIA_TEST_LOG") != "" {
		f.DefaultLogLevel = logging.LogLevelDebug
	}
	return f
}
