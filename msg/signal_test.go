package msg

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
)

type signalSink struct {
	mu  sync.Mutex
	got [][]byte
	src []identity.AccountID
}

func (s *signalSink) on(from identity.AccountID, _ identity.DeviceID, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, append([]byte(nil), p...))
	s.src = append(s.src, from)
}

func (s *signalSink) snapshot() ([][]byte, []identity.AccountID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.got...), append([]identity.AccountID(nil), s.src...)
}

// TestSignals: call signals travel inside the session, in order, once each,
// reach OnSignal (never the conversation), and still reach it from a
// blocked sender so the call policy can refuse and log the call.
func TestSignals(t *testing.T) {
	var sink signalSink
	a, b := pair(t, func(c *Config) { c.OnSignal = sink.on })
	ctx := context.Background()
	a.send(b, "a text first") // the session exists; signals share its order
	payloads := [][]byte{[]byte("invite"), []byte("candidate-1"), []byte("candidate-2"), bytes.Repeat([]byte{7}, MaxSignal)}
	for _, p := range payloads {
		if err := a.svc.SendSignal(ctx, b.id(), p); err != nil {
			t.Fatal(err)
		}
	}
	check.Until(t, 20*time.Second, "every signal at b", func() bool { got, _ := sink.snapshot(); return len(got) >= len(payloads) })
	got, src := sink.snapshot()
	if len(got) != len(payloads) {
		t.Fatalf("%d signals arrived, want %d (a duplicate?)", len(got), len(payloads))
	}
	for i := range payloads {
		if !bytes.Equal(got[i], payloads[i]) || src[i] != a.id() {
			t.Fatalf("signal %d: %d bytes from %s", i, len(got[i]), src[i])
		}
	}
	// The text goes on its own stream and may arrive after the signals
	// that overtook it; once it is in and a's outbox is empty, b holds
	// exactly that one message.
	check.Until(t, 10*time.Second, "a's outbox drained", func() bool { return len(a.outbox()) == 0 })
	check.Until(t, 10*time.Second, "the text at b", func() bool { return len(b.messages(a.id())) >= 1 })
	if n := len(b.messages(a.id())); n != 1 {
		t.Fatalf("signals were stored as messages: %d messages", n)
	}

	if err := a.svc.SendSignal(ctx, b.id(), make([]byte, MaxSignal+1)); !errors.Is(err, ErrSignalTooLarge) {
		t.Fatalf("oversized signal: %v", err)
	}
	if err := a.svc.SendSignal(ctx, b.id(), nil); !errors.Is(err, ErrSignalTooLarge) {
		t.Fatalf("empty signal: %v", err)
	}

	// Blocked: texts are dropped, signals still reach OnSignal.
	b.pol.set(a.id(), Drop)
	a.send(b, "dropped text")
	if err := a.svc.SendSignal(ctx, b.id(), []byte("invite from a blocked caller")); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 20*time.Second, "the blocked caller's signal", func() bool { got, _ := sink.snapshot(); return len(got) == len(payloads)+1 })
	check.Until(t, 10*time.Second, "a's outbox drained", func() bool { return len(a.outbox()) == 0 })
	if n := len(b.messages(a.id())); n != 1 {
		t.Fatalf("a blocked sender's text was stored: %d messages", n)
	}
}

// TestSignalOvertakesBacklog: a call signal sent while hundreds of texts
// wait for the same peer reaches it before them, and so do the call's
// later signals however many texts are sent during the call. B's inbox is
// backed up (it reads one of A's text frames a second), so the texts stay
// queued at A; the signals travel on their own lane with their own
// budget and are acknowledged while nearly all the texts still wait.
func TestSignalOvertakesBacklog(t *testing.T) {
	const before, during = 500, 1500
	var sink signalSink
	w := newWorld()
	a := newNode(t, w, nil)
	b := newNode(t, w, func(c *Config) { c.OnSignal = sink.on; c.PeerRate, c.PeerBurst = 1, 1 })
	a.start()
	b.start()
	a.know(b)
	b.know(a)
	first := a.send(b, "the session exists")
	check.Until(t, 30*time.Second, "the first text delivered", func() bool { return a.state(b.id(), first.ID) == StateDelivered })
	signal := func(payload string, queued int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), SignalLife)
		defer cancel()
		if err := a.svc.SendSignal(ctx, b.id(), []byte(payload)); err != nil {
			t.Fatalf("%s behind %d queued texts: %v", payload, queued, err)
		}
		if got, _ := sink.snapshot(); len(got) == 0 || string(got[len(got)-1]) != payload {
			t.Fatalf("b's signals: %q", got)
		}
		if n := len(b.incoming(a.id())) - 1; n >= queued/10 {
			t.Fatalf("%s arrived after %d of the %d texts queued before it", payload, n, queued)
		}
	}
	for i := range before {
		a.send(b, fmt.Sprintf("backlog %d", i))
	}
	signal("invite", before)
	// During the call, texts are sealed only up to presealMax ahead, so
	// however many are sent, a signal can overtake them.
	for i := range during {
		a.send(b, fmt.Sprintf("during the call %d", i))
	}
	signal("hangup", before+during)
}

// TestSignalAfterRefusal: when the recipient refuses the lane's stream
// (its gate said no to the sender), the signal it refused fails, but one
// the sender wrote behind it before it heard of the refusal goes again on
// a new stream and is judged there: a callee who changed the call policy
// a moment after refusing a stranger gets the stranger's next invite.
func TestSignalAfterRefusal(t *testing.T) {
	var sink signalSink
	judging, decide := make(chan struct{}), make(chan struct{})
	var asked atomic.Int32
	a, b := pair(t, func(c *Config) {
		c.OnSignal = sink.on
		c.AcceptSignal = func(identity.AccountID) bool {
			if asked.Add(1) > 1 {
				return true // the policy changed
			}
			close(judging)
			<-decide
			return false
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), SignalLife)
	defer cancel()
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { first <- a.svc.SendSignal(ctx, b.id(), []byte("before the change")) }()
	<-judging
	go func() { second <- a.svc.SendSignal(ctx, b.id(), []byte("after the change")) }()
	// The second frame is written behind the first on the same stream
	// (at once: a lane writes what is queued as soon as it wakes).
	time.Sleep(200 * time.Millisecond)
	close(decide)
	if err := <-first; !errors.Is(err, ErrSignalUndelivered) {
		t.Fatalf("the refused signal: %v, want undelivered", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the signal sent after the change: %v", err)
	}
	if got, _ := sink.snapshot(); len(got) != 1 || string(got[0]) != "after the change" {
		t.Fatalf("b's signals: %q", got)
	}
}

// TestSignalToOfflinePeerFailsFast: a signal to a peer that can't be
// reached fails at once, is not queued, and never arrives later.
func TestSignalToOfflinePeerFailsFast(t *testing.T) {
	var sink signalSink
	a, b := pair(t, func(c *Config) { c.OnSignal = sink.on })
	m := a.send(b, "hello")
	check.Until(t, 30*time.Second, "the first text delivered", func() bool { return a.state(b.id(), m.ID) == StateDelivered })
	b.stop()
	// No deadline: the life is SignalLife, and the failure must not wait
	// for it.
	err := a.svc.SendSignal(context.Background(), b.id(), []byte("invite to nobody"))
	if !errors.Is(err, ErrSignalUndelivered) || strings.Contains(err.Error(), "life") {
		t.Fatalf("signal to an offline peer: %v, want a failure to reach it", err)
	}
	t.Logf("signal to an offline peer: %v", err)
	if n := len(a.outbox()); n != 0 {
		t.Fatalf("a's outbox holds %d entries after a failed signal", n)
	}
	b.start()
	a.know(b)
	b.know(a)
	m = a.send(b, "after the failed signal")
	check.Until(t, 30*time.Second, "the next text delivered", func() bool { return a.state(b.id(), m.ID) == StateDelivered })
	if got, _ := sink.snapshot(); len(got) != 0 {
		t.Fatalf("the failed signal was delivered later: %q", got)
	}
}

// TestSignalRatchetSurvivesRestart: a signal's ratchet step is committed
// before it leaves, so the texts a restarted sender seals next use fresh
// message keys and are read, not refused as replays.
func TestSignalRatchetSurvivesRestart(t *testing.T) {
	var sink signalSink
	a, b := pair(t, func(c *Config) { c.OnSignal = sink.on })
	m := a.send(b, "hello")
	check.Until(t, 30*time.Second, "the first text delivered", func() bool { return a.state(b.id(), m.ID) == StateDelivered })
	for i := range 3 {
		if err := a.svc.SendSignal(context.Background(), b.id(), fmt.Appendf(nil, "candidate %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	a.stop()
	a.start()
	a.know(b)
	m = a.send(b, "after a restart")
	check.Until(t, 30*time.Second, "the text after the restart delivered", func() bool {
		st := a.state(b.id(), m.ID)
		if st == StateFailed {
			evs := a.eventsOf(EventState)
			t.Fatalf("the text after the restart failed: %s", evs[len(evs)-1].Reason)
		}
		return st == StateDelivered
	})
	if got, _ := sink.snapshot(); len(got) != 3 {
		t.Fatalf("b got %d signals, want 3", len(got))
	}
}

// TestSignalFirstContact: signals from a stranger (no conversation) are
// read only with a first-contact stamp; the lane pays it once, and the
// signals written before it was paid go again, stamped.
func TestSignalFirstContact(t *testing.T) {
	var sink signalSink
	a, b := pair(t, func(c *Config) { c.OnSignal = sink.on })
	b.pol.set(a.id(), Request)
	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- a.svc.SendSignal(context.Background(), b.id(), fmt.Appendf(nil, "signal %d", i)) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := sink.snapshot(); len(got) != n {
		t.Fatalf("b got %d signals, want %d", len(got), n)
	}
}

// TestSignalToOlderPeer: a peer that does not serve the signal lane (the
// version before it) gets signals on a msg stream, and reads them as
// before.
func TestSignalToOlderPeer(t *testing.T) {
	var sink signalSink
	a, b := pair(t, func(c *Config) { c.OnSignal = sink.on })
	b.host.RemoveStreamHandler(ProtocolSignal)
	for _, p := range []string{"invite", "candidate"} {
		if err := a.svc.SendSignal(context.Background(), b.id(), []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := sink.snapshot(); len(got) != 2 || string(got[0]) != "invite" || string(got[1]) != "candidate" {
		t.Fatalf("the older peer got %q", got)
	}
}

// TestSignalFromOlderPeer: a peer of the version before the lane sends
// its signals as control frames on a msg stream; they reach OnSignal as
// before (Config.AcceptSignal applies to the lane only: on a msg stream a
// signal looks like a read receipt until it is decrypted).
func TestSignalFromOlderPeer(t *testing.T) {
	var sink signalSink
	a, b := pair(t, func(c *Config) {
		c.OnSignal = sink.on
		c.AcceptSignal = func(identity.AccountID) bool { return false }
	})
	r := newRawPeer(t, a.w)
	st := r.open(t, b)
	for _, p := range []string{"invite", "candidate"} {
		if ack := exchange(t, st, r.signalFrame(t, b, newMsgID(), content{kind: contentSignal, body: []byte(p)})); ack.status != statusStored {
			t.Fatalf("%s from an older peer: %+v", p, ack)
		}
	}
	if got, src := sink.snapshot(); len(got) != 2 || string(got[0]) != "invite" || string(got[1]) != "candidate" || src[0] != r.id() {
		t.Fatalf("b's signals from the older peer: %q", got)
	}
}

// signalFrame seals payload for b as a signal-lane frame with id.
func (r *rawPeer) signalFrame(t *testing.T, b *node, id msgID, c content) []byte {
	t.Helper()
	f := r.seal(t, b, id, c)
	// seal chose the kind for a text; a signal's frame is a control frame.
	ct, err := r.set.Encrypt(c.marshal(), messageAD(id, kindReceipt))
	if err != nil {
		t.Fatal(err)
	}
	f.kind, f.ciphertext = kindReceipt, ct
	return f.marshal()
}

// TestHostileSignals: what a hostile or broken peer sends on the signal
// lane resets the stream or is refused, and nothing of it is stored.
func TestHostileSignals(t *testing.T) {
	var sink signalSink
	var refuse atomic.Bool
	a, b := pair(t, func(c *Config) {
		c.OnSignal = sink.on
		c.AcceptSignal = func(identity.AccountID) bool { return !refuse.Load() }
	})
	r := newRawPeer(t, a.w)
	expectReset := func(st network.Stream, what string, code network.StreamErrorCode) {
		t.Helper()
		_, err := p2p.ReadFrame(st, ackMax11)
		if got, ok := p2p.CodeOf(err); !ok || got != code {
			t.Fatalf("%s: read = %v, want a reset with %s", what, err, p2p.CodeName(code))
		}
	}
	nothingStored := func(what string) {
		t.Helper()
		err := b.db.View(func(tx *store.Tx) error {
			if _, err := In(tx).Conversation(string(r.id())); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("a conversation with the sender: %v", err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ks := sessionKeys(t, b.db.DB, string(r.id())); len(ks) != 0 {
			t.Fatalf("%s: sessions with the sender: %q", what, ks)
		}
		if got, _ := sink.snapshot(); len(got) != 0 {
			t.Fatalf("%s: OnSignal got %q", what, got)
		}
	}

	// Over the lane's cap (a text-sized frame is too large here).
	st := r.openProto(t, b, ProtocolSignal)
	var hdr [10]byte
	n := binary.PutUvarint(hdr[:], uint64(maxSignalFrame+1))
	st.Write(hdr[:n])
	st.Write(make([]byte, 1024))
	expectReset(st, "oversized signal frame", p2p.CodeTooLarge)
	nothingStored("oversized signal frame")

	// A text on the lane.
	st = r.openProto(t, b, ProtocolSignal)
	_, text := r.frame(t, b, "a text where signals go")
	p2p.WriteFrame(st, text)
	expectReset(st, "text on the signal lane", p2p.CodeBadRequest)
	nothingStored("text on the signal lane")

	// From an account the recipient does not take signals from: reset
	// before anything is decrypted.
	refuse.Store(true)
	r.set = e2e.SessionSet{}
	st = r.openProto(t, b, ProtocolSignal)
	p2p.WriteFrame(st, r.signalFrame(t, b, newMsgID(), content{kind: contentSignal, body: []byte("invite")}))
	expectReset(st, "signal from a refused account", p2p.CodeRefused)
	nothingStored("signal from a refused account")
	refuse.Store(false)

	// A text, or a read receipt, sealed in a control frame: decrypted,
	// refused, not applied.
	r.set = e2e.SessionSet{}
	st = r.openProto(t, b, ProtocolSignal)
	if a := exchange(t, st, r.signalFrame(t, b, newMsgID(), content{kind: contentText, seq: 1, sentAt: 1, body: []byte("smuggled")})); a.status != statusRefused {
		t.Fatalf("a text inside a control frame on the lane: %+v", a)
	}
	if n := len(b.incoming(r.id())); n != 0 {
		t.Fatalf("a text smuggled on the signal lane was stored: %d messages", n)
	}
	rid := newMsgID()
	if a := exchange(t, st, r.signalFrame(t, b, rid, content{kind: contentReceipt, ids: []msgID{newMsgID()}})); a.status != statusRefused {
		t.Fatalf("a read receipt on the signal lane: %+v", a)
	}
	if use := idUse(t, b, r.id(), rid); use != IDFree {
		t.Fatalf("a read receipt on the signal lane was recorded as seen (%v)", use)
	}

	// The same signal twice: read once, the second answered duplicate;
	// its ciphertext under another id: refused.
	id := newMsgID()
	f := r.signalFrame(t, b, id, content{kind: contentSignal, body: []byte("invite")})
	if a := exchange(t, st, f); a.status != statusStored {
		t.Fatalf("signal: %+v", a)
	}
	if a := exchange(t, st, f); a.status != statusDuplicate {
		t.Fatalf("replayed signal: %+v", a)
	}
	d, err := unmarshalSignalFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	d.id = newMsgID()
	if a := exchange(t, st, d.marshal()); a.status != statusRefused {
		t.Fatalf("signal replayed under another id: %+v", a)
	}
	if got, _ := sink.snapshot(); len(got) != 1 {
		t.Fatalf("OnSignal got %d signals, want the one", len(got))
	}
	if use := idUse(t, b, r.id(), d.id); use != IDFree {
		t.Fatalf("the signal replayed under another id was recorded (%v)", use)
	}
	// The host keeps serving a's lane.
	if err := a.svc.SendSignal(context.Background(), b.id(), []byte("still here")); err != nil {
		t.Fatal(err)
	}
}

// idUse reports what n's store knows of the message id from peer.
func idUse(t *testing.T, n *node, from identity.AccountID, id msgID) IDUse {
	t.Helper()
	var use IDUse
	err := n.db.View(func(tx *store.Tx) error {
		var err error
		use, err = In(tx).IDUse(string(from), id.String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return use
}

func FuzzSignalFrame(f *testing.F) {
	sig := goldenDeliver
	sig.kind = kindReceipt
	f.Add(sig.marshal())
	f.Add(append(sig.marshal(), mustHex(laterDeliverAdditions)...))
	f.Add(mustHex(goldenDeliverHex))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := unmarshalSignalFrame(b)
		if err != nil {
			return
		}
		if d.kind != kindReceipt || len(d.ciphertext) > maxSignalCiphertext {
			t.Fatalf("signal frame %x decoded to kind %d, %d bytes of ciphertext", b, d.kind, len(d.ciphertext))
		}
		if !bytes.Equal(d.marshal(), b) {
			t.Fatalf("signal frame %x re-encodes to %x", b, d.marshal())
		}
	})
}

// TestSignalsToDevices: a signal to an account reaches each of its devices
// once, and tells OnSignal which device of the sender it came from; one
// sent to a device reaches that device only.
func TestSignalsToDevices(t *testing.T) {
	type got struct {
		from identity.DeviceID
		p    string
	}
	var mu sync.Mutex
	seen := map[int][]got{}
	on := func(i int) func(*Config) {
		return func(c *Config) {
			c.OnSignal = func(_ identity.AccountID, dev identity.DeviceID, p []byte) {
				mu.Lock()
				defer mu.Unlock()
				seen[i] = append(seen[i], got{dev, string(p)})
			}
		}
	}
	a, b1 := pair(t, on(0))
	b2 := linkDevice(t, b1, on(1))
	b2.start()
	introduce([]*node{a, b1, b2})
	ctx := context.Background()
	if err := a.svc.SendSignal(ctx, b1.id(), []byte("invite")); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 20*time.Second, "the invite on both devices", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen[0]) == 1 && len(seen[1]) == 1
	})
	if err := a.svc.SendSignalTo(ctx, b1.id(), b2.cert.DeviceID(), []byte("accept-ack")); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 20*time.Second, "the second signal on the second device", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen[1]) == 2
	})
	mu.Lock()
	first, second := slices.Clone(seen[0]), slices.Clone(seen[1])
	mu.Unlock()
	if len(first) != 1 || second[1].p != "accept-ack" {
		t.Fatalf("first device %v, second %v: want the invite on each and the second signal on the second only", first, second)
	}
	for i, got := range [][]got{first, second} {
		if got[0].from != a.cert.DeviceID() || got[0].p != "invite" {
			t.Fatalf("device %d got %+v, want the invite from %s", i+1, got[0], a.cert.DeviceID())
		}
	}

	// One device gone silent (its address now a listener that accepts
	// and never answers): a signal to the account returns at the other's
	// ack, not at the end of the signal's life.
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var holeWG sync.WaitGroup
	holeWG.Go(func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	})
	t.Cleanup(func() {
		hole.Close()
		holeWG.Wait()
		for _, c := range held {
			c.Close()
		}
	})
	b2pid := b2.host.ID()
	b2.stop()
	a.host.Network().ClosePeer(b2pid)
	a.host.Peerstore().ClearAddrs(b2pid)
	a.host.Peerstore().AddAddr(b2pid, ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", hole.Addr().(*net.TCPAddr).Port)), time.Hour)
	start := time.Now()
	if err := a.svc.SendSignal(ctx, b1.id(), []byte("second invite")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > SignalLife/2 {
		t.Fatalf("a signal to an account with a device away took %v: it waited for that device", took)
	}
}
