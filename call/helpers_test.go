package call

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/callsign/callsign/turn"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var loopback = []netip.Addr{netip.MustParseAddr("127.0.0.1")}

func testLogger() *slog.Logger {
	if os.Getenv("CALL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func newAccount(tb testing.TB) identity.AccountID {
	tb.Helper()
	k, err := identity.GenerateAccountKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return k.Public().ID()
}

// fakeNet stands for the E2E sessions between nodes: each SendSignal hands
// the payload to a goroutine per (from, to) link, which delivers it, in
// order, to the other side's HandleSignal.
type fakeNet struct {
	mu    sync.Mutex
	nodes map[identity.AccountID]*Service
	links map[[2]identity.AccountID]chan []byte
	taps  []func(from, to identity.AccountID, sig signal)
	drop  func(from, to identity.AccountID, sig signal) bool
	lost  [][]byte // payloads drop took
	wg    sync.WaitGroup
	sends int
}

func newFakeNet(tb testing.TB) *fakeNet {
	n := &fakeNet{nodes: map[identity.AccountID]*Service{}, links: map[[2]identity.AccountID]chan []byte{}}
	tb.Cleanup(func() {
		n.mu.Lock()
		for _, ch := range n.links {
			close(ch)
		}
		n.links = nil
		n.mu.Unlock()
		n.wg.Wait()
	})
	return n
}

// loseSignals makes the network lose every signal f picks from now on;
// lostSignals returns them.
func (n *fakeNet) loseSignals(f func(from, to identity.AccountID, sig signal) bool) {
	n.mu.Lock()
	n.drop = f
	n.mu.Unlock()
}

func (n *fakeNet) lostSignals() [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([][]byte(nil), n.lost...)
}

// tap calls f for every signal sent (decoded) from now on.
func (n *fakeNet) tap(f func(from, to identity.AccountID, sig signal)) {
	n.mu.Lock()
	n.taps = append(n.taps, f)
	n.mu.Unlock()
}

type endpoint struct {
	n    *fakeNet
	self identity.AccountID
}

func (e endpoint) SendSignal(ctx context.Context, to identity.AccountID, _ identity.DeviceID, payload []byte) error {
	n := e.n
	sig, err := decodeSignal(payload)
	if err != nil {
		return errors.New("test: service sent an undecodable signal: " + err.Error())
	}
	n.mu.Lock()
	if n.links == nil {
		n.mu.Unlock()
		return errors.New("network down")
	}
	n.sends++
	for _, f := range n.taps {
		f(e.self, to, sig)
	}
	if n.drop != nil && n.drop(e.self, to, sig) {
		n.lost = append(n.lost, append([]byte(nil), payload...))
		n.mu.Unlock()
		return nil // handed to the session, lost on the way
	}
	key := [2]identity.AccountID{e.self, to}
	ch := n.links[key]
	if ch == nil {
		ch = make(chan []byte, 1024)
		n.links[key] = ch
		n.wg.Go(func() {
			for p := range ch {
				n.mu.Lock()
				svc := n.nodes[to]
				n.mu.Unlock()
				if svc != nil {
					svc.HandleSignal(e.self, identity.DeviceID{}, p)
				}
			}
		})
	}
	n.mu.Unlock()
	select {
	case ch <- append([]byte(nil), payload...):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fakePolicy returns a settable decision for every caller.
type fakePolicy struct {
	mu  sync.Mutex
	dec Decision
	n   int
}

func (p *fakePolicy) Check(identity.AccountID) Decision {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	return p.dec
}

func (p *fakePolicy) set(d Decision) {
	p.mu.Lock()
	p.dec = d
	p.mu.Unlock()
}

// memLog is an in-memory CallLog.
type memLog struct {
	mu  sync.Mutex
	rec []Record
}

func (l *memLog) PutCall(r Record) error {
	l.mu.Lock()
	l.rec = append(l.rec, r)
	l.mu.Unlock()
	return nil
}

func (l *memLog) records() []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Record(nil), l.rec...)
}

// eventLog records OnEvent calls.
type eventLog struct {
	mu   sync.Mutex
	evs  []Event
	seen int // events consumed by incoming
}

func (e *eventLog) add(ev Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

func (e *eventLog) events() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.evs...)
}

// tnode is one node's call service with its fakes.
type tnode struct {
	id     identity.AccountID
	svc    *Service
	eng    *media.Engine
	log    *memLog
	ev     *eventLog
	policy *fakePolicy
	host   host.Host
}

// newNode builds a started Service on loopback, admitted callers by
// default, and closes it at the end of the test.
func newNode(tb testing.TB, n *fakeNet, mod func(*Config)) *tnode {
	tb.Helper()
	eng, err := media.NewEngine(media.Config{IPs: loopback})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = eng.Close() })
	tn := &tnode{id: newAccount(tb), eng: eng, log: &memLog{}, ev: &eventLog{}, policy: &fakePolicy{dec: Decision{Allow: true}}}
	cfg := Config{
		Self: tn.id, Engine: eng, Signal: endpoint{n: n, self: tn.id}, Policy: tn.policy,
		Log: tn.log, OnEvent: tn.ev.add, Logger: testLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	tn.host = cfg.Host
	svc, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	if err := svc.Start(context.Background()); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() { _ = svc.Close() })
	tn.svc = svc
	n.mu.Lock()
	n.nodes[tn.id] = svc
	n.mu.Unlock()
	return tn
}

// incoming waits for the next incoming call the node announced on
// OnEvent and returns it.
func (tn *tnode) incoming(tb testing.TB) *Call {
	tb.Helper()
	var c *Call
	check.Until(tb, 5*time.Second, "an incoming call", func() bool {
		tn.ev.mu.Lock()
		defer tn.ev.mu.Unlock()
		for i, ev := range tn.ev.evs {
			if i >= tn.ev.seen && ev.Kind == EventIncoming {
				tn.ev.seen = i + 1
				c = tn.svc.lookup(ev.Call.ID)
				if c == nil {
					tb.Fatalf("incoming call %s already gone", ev.Call.ID)
				}
				return true
			}
		}
		return false
	})
	return c
}

// ended waits for c to end and returns its state history.
func ended(tb testing.TB, c *Call, timeout time.Duration) []StateChange {
	tb.Helper()
	select {
	case <-c.Done():
	case <-time.After(timeout):
		tb.Fatalf("call %s did not end within %v (state %s)", c.ID(), timeout, c.State())
	}
	var h []StateChange
	for sc := range c.Changes() {
		h = append(h, sc)
	}
	return h
}

func states(h []StateChange) string {
	var s []string
	for _, sc := range h {
		s = append(s, string(sc.State))
	}
	return strings.Join(s, ",")
}

func waitState(tb testing.TB, c *Call, st State, timeout time.Duration) {
	tb.Helper()
	check.Until(tb, timeout, "call "+string(st), func() bool {
		s := c.State()
		if s == StateEnded && st != StateEnded {
			tb.Fatalf("call ended (%s) before reaching %s", c.Reason(), st)
		}
		return s == st
	})
}

// record returns the node's one log record for the call id.
func (tn *tnode) record(tb testing.TB, id string) Record {
	tb.Helper()
	var out Record
	check.Until(tb, 5*time.Second, "call log record "+id, func() bool {
		for _, r := range tn.log.records() {
			if r.ID == id {
				out = r
				return true
			}
		}
		return false
	})
	return out
}

// candidateType returns the "typ" of a candidate JSON.
func candidateType(tb testing.TB, candJSON string) string {
	tb.Helper()
	var ci struct{ Candidate string }
	if err := json.Unmarshal([]byte(candJSON), &ci); err != nil {
		tb.Fatalf("candidate %q: %v", candJSON, err)
	}
	f := strings.Fields(ci.Candidate)
	for i := range f {
		if f[i] == "typ" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// relayNode is a public node: a libp2p host, a TURN server on 127.0.0.1
// and a Service that serves its credentials.
type relayNode struct {
	host host.Host
	turn *turn.Server
	svc  *Service
}

func newRelay(tb testing.TB, n *fakeNet, tcfg turn.Config, mod func(*Config)) *relayNode {
	tb.Helper()
	return newRelayOn(tb, n, p2ptest.NewHost(tb, nil), tcfg, mod)
}

// newRelayOn is newRelay on host h (a relay node that restarts keeps its
// peer id).
func newRelayOn(tb testing.TB, n *fakeNet, h host.Host, tcfg turn.Config, mod func(*Config)) *relayNode {
	tb.Helper()
	tcfg.ListenUDP = "127.0.0.1:0"
	tcfg.AllowLoopbackPeers = true
	if tcfg.Secret == nil {
		tcfg.Secret = []byte("0123456789abcdef0123456789abcdef")
	}
	ts, err := turn.New(tcfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ts.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ts.Close() })
	tn := newNode(tb, n, func(c *Config) {
		c.Host = h
		c.TURN = ts
		c.TURNMembers = &memberList{}
		if mod != nil {
			mod(c)
		}
	})
	return &relayNode{host: h, turn: ts, svc: tn.svc}
}

// withRelay configures a node to fetch TURN credentials from r over libp2p.
func withRelay(tb testing.TB, r *relayNode, mod func(*Config)) func(*Config) {
	return func(c *Config) {
		h := p2ptest.NewHost(tb, nil)
		p2ptest.Connect(tb, h, r.host)
		c.Host = h
		c.Relays = func() []peer.ID { return []peer.ID{r.host.ID()} }
		if mod != nil {
			mod(c)
		}
	}
}

// memberList is a relay's members in tests: the peers admitted, each with
// the account it must name; nil admits every peer naming any account.
type memberList struct {
	mu     sync.Mutex
	admit  map[peer.ID]identity.AccountID // nil: everyone
	asked  []identity.AccountID           // every account Check was asked about
	passed map[peer.ID]bool
}

func (m *memberList) Check(_ context.Context, p peer.ID, account identity.AccountID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.asked = append(m.asked, account)
	if m.admit != nil {
		if want, ok := m.admit[p]; !ok || want != account {
			return errors.New("not a member")
		}
	}
	if m.passed == nil {
		m.passed = map[peer.ID]bool{}
	}
	m.passed[p] = true
	return nil
}

func (m *memberList) Known(p peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.passed[p]
}
