package msg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/store"
)

func TestMessagesBothWays(t *testing.T) {
	a, b := pair(t, nil)
	var sentA, sentB []Message
	for i := range 3 {
		sentA = append(sentA, a.send(b, fmt.Sprintf("hello from a %d", i)))
		sentB = append(sentB, b.send(a, fmt.Sprintf("hello from b %d", i)))
	}
	check.Until(t, 10*time.Second, "both sides to receive", func() bool {
		return len(b.incoming(a.id())) == 3 && len(a.incoming(b.id())) == 3
	})
	for i, m := range b.incoming(a.id()) {
		if want := fmt.Sprintf("hello from a %d", i); string(m.Body) != want || m.ID != sentA[i].ID || m.Seq != uint64(i+1) {
			t.Errorf("b's message %d = %q (id %s seq %d), want %q (id %s)", i, m.Body, m.ID, m.Seq, want, sentA[i].ID)
		}
		if m.State != StateReceived {
			t.Errorf("b's message %d state %q, want %q", i, m.State, StateReceived)
		}
	}
	for i, m := range a.incoming(b.id()) {
		if want := fmt.Sprintf("hello from b %d", i); string(m.Body) != want || m.ID != sentB[i].ID {
			t.Errorf("a's message %d = %q, want %q", i, m.Body, want)
		}
	}
	check.Until(t, 5*time.Second, "acks", func() bool {
		for _, m := range sentA {
			if a.state(b.id(), m.ID) != StateDelivered {
				return false
			}
		}
		return len(a.outbox()) == 0 && len(b.outbox()) == 0
	})
	c, err := b.db.Conversation(string(a.id()))
	if err != nil || c.Unread != 3 || c.Request {
		t.Errorf("b's conversation with a = %+v, %v; want 3 unread, no request", c, err)
	}
	// Every state change of a's first message was an event, in order.
	var states []string
	for _, e := range a.eventsOf(EventState) {
		if e.ID == sentA[0].ID {
			states = append(states, e.State)
		}
	}
	if got := strings.Join(states, ","); got != "queued,sent,delivered" {
		t.Errorf("a's events for its first message: %s, want queued,sent,delivered", got)
	}
	if n := len(b.eventsOf(EventMessage)); n != 3 {
		t.Errorf("b saw %d message events, want 3", n)
	}
}

func TestInOrderBurst(t *testing.T) {
	a, b := pair(t, nil)
	const n = 400
	for i := range n {
		a.send(b, fmt.Sprintf("m%04d", i))
	}
	check.Until(t, 20*time.Second, "the burst", func() bool { return len(b.incoming(a.id())) == n })
	for i, m := range b.incoming(a.id()) {
		if want := fmt.Sprintf("m%04d", i); string(m.Body) != want {
			t.Fatalf("message %d is %q, want %q: out of order", i, m.Body, want)
		}
	}
	check.Until(t, 5*time.Second, "empty outbox", func() bool { return len(a.outbox()) == 0 })
}

// checkExactlyOnce asserts that b holds exactly the n messages a sent, in
// order, each once.
func checkExactlyOnce(t *testing.T, a, b *node, n int) {
	t.Helper()
	got := b.incoming(a.id())
	seen := map[string]bool{}
	for i, m := range got {
		if seen[string(m.Body)] {
			t.Fatalf("message %q stored twice", m.Body)
		}
		seen[string(m.Body)] = true
		if want := fmt.Sprintf("m%04d", i); string(m.Body) != want {
			t.Fatalf("message %d is %q, want %q", i, m.Body, want)
		}
	}
	if len(got) != n {
		t.Fatalf("b holds %d messages, want %d", len(got), n)
	}
}

func TestRecipientRestartMidBurst(t *testing.T) {
	a, b := pair(t, nil)
	const n = 600
	for i := range n {
		a.send(b, fmt.Sprintf("m%04d", i))
	}
	check.Until(t, 20*time.Second, "part of the burst", func() bool { return len(b.incoming(a.id())) > 50 })
	b.stop()
	b.start()
	a.know(b)
	b.know(a)
	check.Until(t, 30*time.Second, "the rest of the burst", func() bool {
		return len(a.outbox()) == 0 && len(b.incoming(a.id())) >= n
	})
	checkExactlyOnce(t, a, b, n)
}

func TestSenderRestartMidBurst(t *testing.T) {
	a, b := pair(t, nil)
	const n = 600
	for i := range n {
		a.send(b, fmt.Sprintf("m%04d", i))
	}
	check.Until(t, 20*time.Second, "part of the burst", func() bool { return len(b.incoming(a.id())) > 50 })
	a.stop()
	a.start()
	a.know(b)
	b.know(a)
	check.Until(t, 30*time.Second, "the outbox to drain", func() bool {
		return len(a.outbox()) == 0 && len(b.incoming(a.id())) >= n
	})
	checkExactlyOnce(t, a, b, n)
	for _, m := range a.messages(b.id()) {
		if m.State != StateDelivered {
			t.Fatalf("a's message %q is %q after the restart, want delivered", m.Body, m.State)
		}
	}
}

func TestOfflineRecipientDeliveredOnReturn(t *testing.T) {
	const retryMax = time.Second
	a, b := pair(t, func(c *Config) { c.RetryMin, c.RetryMax = 100*time.Millisecond, retryMax })
	b.stop()
	m := a.send(b, "are you there")
	if m.State != StateQueued {
		t.Fatalf("Send returned state %q, want queued", m.State)
	}
	// Let a fail a few attempts, so its backoff reaches RetryMax.
	time.Sleep(2 * retryMax)
	if s := a.state(b.id(), m.ID); s != StateQueued {
		t.Fatalf("message to an offline peer is %q, want queued", s)
	}
	b.start()
	a.know(b)
	back := time.Now()
	check.Until(t, 5*time.Second, "delivery after return", func() bool { return a.state(b.id(), m.ID) == StateDelivered })
	// One retry interval (RetryMax + 20% jitter) plus the connection setup.
	if took := time.Since(back); took > retryMax*12/10+time.Second {
		t.Errorf("delivered %v after the recipient returned, want within one retry interval (%v)", took, retryMax*12/10)
	}
	if got := b.incoming(a.id()); len(got) != 1 || string(got[0].Body) != "are you there" {
		t.Fatalf("b holds %v", got)
	}
}

func TestConnectKicksQueue(t *testing.T) {
	a, b := pair(t, func(c *Config) { c.RetryMin, c.RetryMax = time.Minute, time.Minute })
	bpid := b.host.ID()
	b.stop()
	m := a.send(b, "ping")
	check.Until(t, 5*time.Second, "the first attempt to fail", func() bool {
		a.svc.mu.Lock()
		defer a.svc.mu.Unlock()
		_, known := a.svc.byPeerID[bpid]
		return known
	})
	time.Sleep(200 * time.Millisecond) // let the dial fail; the next retry is a minute away
	b.start()
	b.know(a)
	start := time.Now()
	if err := b.host.Connect(context.Background(), a.host.Peerstore().PeerInfo(a.host.ID())); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 10*time.Second, "delivery after the peer connected", func() bool { return a.state(b.id(), m.ID) == StateDelivered })
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("delivery took %v after connect", took)
	}
}

func TestSendTooLarge(t *testing.T) {
	a, b := pair(t, nil)
	_, err := a.svc.Send(context.Background(), b.id(), make([]byte, DefaultMaxMessage+1))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprint(DefaultMaxMessage)) {
		t.Fatalf("Send of %d bytes = %v, want ErrTooLarge naming the limit %d", DefaultMaxMessage+1, err, DefaultMaxMessage)
	}
	if len(a.outbox()) != 0 || len(a.messages(b.id())) != 0 {
		t.Fatal("a refused message was stored")
	}
	// The largest message goes through.
	big := strings.Repeat("x", DefaultMaxMessage)
	m := a.send(b, big)
	check.Until(t, 10*time.Second, "the largest message", func() bool { return a.state(b.id(), m.ID) == StateDelivered })
	if got := b.incoming(a.id()); len(got) != 1 || string(got[0].Body) != big {
		t.Fatal("largest message not stored intact")
	}

	w := newWorld()
	c := newNode(t, w, func(c *Config) { c.MaxMessage = 1000 })
	c.start()
	if _, err := c.svc.Send(context.Background(), b.id(), make([]byte, 1001)); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1000 bytes") {
		t.Fatalf("Send over a 1000-byte limit = %v", err)
	}
}

func TestBlockedSenderDroppedSilently(t *testing.T) {
	a, b := pair(t, nil)
	b.pol.set(a.id(), Drop)
	m := a.send(b, "let me in")
	check.Until(t, 10*time.Second, "ack", func() bool { return a.state(b.id(), m.ID) == StateDelivered })
	if got := b.messages(a.id()); len(got) != 0 {
		t.Fatalf("blocked sender's message stored: %v", got)
	}
	if _, err := b.db.Conversation(string(a.id())); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("conversation with a blocked sender: %v", err)
	}
	if ev := b.eventsOf(EventMessage); len(ev) != 0 {
		t.Fatalf("events for a blocked sender: %v", ev)
	}
}

func TestRequestFlagForStrangers(t *testing.T) {
	a, b := pair(t, nil)
	b.pol.set(a.id(), Request)
	a.send(b, "hi, we have not met")
	check.Until(t, 10*time.Second, "the request", func() bool { return len(b.incoming(a.id())) == 1 })
	c, err := b.db.Conversation(string(a.id()))
	if err != nil || !c.Request || c.Unread != 1 {
		t.Fatalf("conversation = %+v, %v; want a request with 1 unread", c, err)
	}
	ev := b.eventsOf(EventMessage)
	if len(ev) != 1 || !ev[0].Request || string(ev[0].Message.Body) != "hi, we have not met" {
		t.Fatalf("events = %+v", ev)
	}
}

func TestReadReceiptsOnlyToContacts(t *testing.T) {
	a, b := pair(t, nil)
	m1 := a.send(b, "contact message")
	check.Until(t, 10*time.Second, "delivery", func() bool { return a.state(b.id(), m1.ID) == StateDelivered })
	if err := b.svc.MarkRead(context.Background(), a.id(), []string{m1.ID}); err != nil {
		t.Fatal(err)
	}
	if s := b.state(a.id(), m1.ID); s != StateRead {
		t.Fatalf("b's copy is %q after MarkRead", s)
	}
	check.Until(t, 10*time.Second, "the read receipt", func() bool { return a.state(b.id(), m1.ID) == StateRead })
	if c, _ := b.db.Conversation(string(a.id())); c.Unread != 0 {
		t.Errorf("unread = %d after reading everything", c.Unread)
	}

	// Not a contact any more: read locally, no receipt queued.
	b.pol.set(a.id(), Request)
	m2 := a.send(b, "stranger message")
	check.Until(t, 10*time.Second, "delivery", func() bool { return a.state(b.id(), m2.ID) == StateDelivered })
	check.Until(t, 5*time.Second, "b's outbox to drain", func() bool { return len(b.outbox()) == 0 })
	if err := b.svc.MarkRead(context.Background(), a.id(), []string{m2.ID}); err != nil {
		t.Fatal(err)
	}
	if s := b.state(a.id(), m2.ID); s != StateRead {
		t.Fatalf("b's copy is %q after MarkRead", s)
	}
	if ob := b.outbox(); len(ob) != 0 {
		t.Fatalf("a receipt was queued for a non-contact: %d entries", len(ob))
	}
	// Marking a's message twice or an unknown id.
	if err := b.svc.MarkRead(context.Background(), a.id(), []string{"00112233445566778899aabbccddeeff"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("MarkRead of an unknown id = %v", err)
	}
	if s := a.state(b.id(), m2.ID); s != StateDelivered {
		t.Fatalf("a's message to a non-contact is %q, want delivered (no receipt)", s)
	}
}

func TestSimultaneousFirstMessages(t *testing.T) {
	a, b := pair(t, nil)
	done := make(chan struct{})
	go func() { defer close(done); a.send(b, "a first") }()
	b.send(a, "b first")
	<-done
	check.Until(t, 10*time.Second, "both first messages", func() bool {
		return len(b.incoming(a.id())) == 1 && len(a.incoming(b.id())) == 1
	})
	// The sessions settle: conversation continues both ways without loss.
	for i := range 5 {
		a.send(b, fmt.Sprintf("a %d", i))
		b.send(a, fmt.Sprintf("b %d", i))
	}
	check.Until(t, 15*time.Second, "the conversation", func() bool {
		return len(b.incoming(a.id())) == 6 && len(a.incoming(b.id())) == 6 && len(a.outbox()) == 0 && len(b.outbox()) == 0
	})
	for _, n := range []*node{a, b} {
		for _, m := range n.messages(map[*node]*node{a: b, b: a}[n].id()) {
			if m.Direction == DirOut && m.State != StateDelivered {
				t.Errorf("message %q is %q", m.Body, m.State)
			}
		}
	}
}

func TestOneTimePrekeyUsed(t *testing.T) {
	a, b := pair(t, nil)
	b.svc.preMu.Lock()
	before, _ := b.svc.prekeys.OneTimeAvailable()
	b.svc.preMu.Unlock()
	m := a.send(b, "first")
	check.Until(t, 10*time.Second, "delivery", func() bool { return a.state(b.id(), m.ID) == StateDelivered })
	b.svc.preMu.Lock()
	after, _ := b.svc.prekeys.OneTimeAvailable()
	b.svc.preMu.Unlock()
	if after != before-1 {
		t.Fatalf("one-time prekeys available %d -> %d, want one issued", before, after)
	}
}

func TestBundleRotates(t *testing.T) {
	var skew atomic.Int64
	a, _ := pair(t, func(c *Config) { c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) } })
	b1, err := a.svc.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.svc.BundleChanged():
		t.Fatal("BundleChanged fired without a rotation")
	default:
	}
	skew.Store(int64(8 * 24 * time.Hour))
	a.svc.preMu.Lock()
	_, err = a.svc.maintainPrekeysLocked()
	a.svc.preMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.svc.BundleChanged():
	default:
		t.Fatal("BundleChanged did not fire after a week")
	}
	b2, _ := a.svc.Bundle()
	if string(b1) == string(b2) {
		t.Fatal("bundle unchanged after rotation")
	}
}

// TestQueueFollowsTheQueue: the queued copies go as the queue empties and
// come back with the next messages, for the peer's device, so messages
// queued after a drained queue are still found after a restart.
func TestQueueFollowsTheQueue(t *testing.T) {
	a, b := pair(t, func(c *Config) { c.RetryMin, c.RetryMax = 50*time.Millisecond, 200*time.Millisecond })
	starts := func() []QueuedMessage {
		t.Helper()
		var s []QueuedMessage
		if err := a.db.View(func(tx *store.Tx) (err error) { s, err = In(tx).Queued(); return err }); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for i := range 3 {
		a.send(b, fmt.Sprintf("m%04d", i))
	}
	check.Until(t, 10*time.Second, "the first messages delivered", func() bool {
		return len(a.outbox()) == 0 && len(b.incoming(a.id())) == 3
	})
	if s := starts(); len(s) != 0 {
		t.Fatalf("queued copies %v left after the queue emptied", s)
	}
	b.stop()
	for i := 3; i < 5; i++ {
		a.send(b, fmt.Sprintf("m%04d", i))
	}
	if s := starts(); len(s) != 2 || s[0].Dev != b.cert.DeviceID() || s[1].Dev != b.cert.DeviceID() {
		t.Fatalf("queued copies %+v after queuing two for an offline peer, want two for its device", s)
	}
	a.stop()
	a.start()
	b.start()
	a.know(b)
	b.know(a)
	check.Until(t, 20*time.Second, "the messages queued before the restart", func() bool {
		return len(a.outbox()) == 0 && len(b.incoming(a.id())) == 5
	})
	checkExactlyOnce(t, a, b, 5)
	if s := starts(); len(s) != 0 {
		t.Fatalf("queued copies %v left after the queue emptied again", s)
	}
}
