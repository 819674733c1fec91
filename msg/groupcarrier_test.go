package msg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
)

// groupLog records the carriers OnGroup is given, as "from:body" (with
// "?" after from for a request); a body starting with "bad" is refused.
type groupLog struct {
	mu  sync.Mutex
	got []string
}

func (l *groupLog) apply(from identity.AccountID, _ identity.DeviceID, b []byte, request bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if bytes.HasPrefix(b, []byte("bad")) {
		return errors.New("not a group carrier")
	}
	q := ""
	if request {
		q = "?"
	}
	l.got = append(l.got, fmt.Sprintf("%s%s:%s", from[len(from)-4:], q, b))
	return nil
}

func (l *groupLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// TestGroupCarriers: a carrier queued for a group's accounts reaches each
// device of each (the sender's other device too) once, in order; one the
// recipient refuses is dropped and the next goes on; a stranger's is
// marked a request and a blocked sender's is dropped unread; a device
// that is away finds what was queued meanwhile at its mailbox, after the
// sender went offline.
func TestGroupCarriers(t *testing.T) {
	hb := newHub(t)
	w := newWorld()
	mbs := func() []peer.AddrInfo { return []peer.AddrInfo{hb.addr} }
	var la2, lb1, lb2, lc groupLog
	a1 := newNode(t, w, nil)
	a2 := linkDevice(t, a1, func(c *Config) { c.OnGroup = la2.apply })
	b1 := newNode(t, w, func(c *Config) { c.OnGroup = lb1.apply; c.Mailboxes = mbs; c.MailboxPoll = 100 * time.Millisecond })
	b2 := linkDevice(t, b1, func(c *Config) { c.OnGroup = lb2.apply })
	c := newNode(t, w, func(c *Config) { c.OnGroup = lc.apply })
	w.mu.Lock()
	b1.mailboxes = mbs()
	w.mu.Unlock()
	all := []*node{a1, a2, b1, b2, c}
	for _, n := range all {
		n.start()
	}
	introduce(all)
	c.pol.set(a1.id(), Request)
	a := a1.id()
	tag := string(a[len(a)-4:])
	queue := func(to []identity.AccountID, bodies ...string) {
		t.Helper()
		var bs [][]byte
		for _, b := range bodies {
			bs = append(bs, []byte(b))
		}
		if err := a1.svc.QueueGroup(context.Background(), to, bs...); err != nil {
			t.Fatal(err)
		}
	}
	want := func(l *groupLog, who string, w ...string) {
		t.Helper()
		check.Until(t, 30*time.Second, who+" has the carriers", func() bool { return len(l.list()) >= len(w) })
		if got := l.list(); !slices.Equal(got, w) {
			t.Fatalf("%s got %q, want %q", who, got, w)
		}
	}
	queue([]identity.AccountID{a, b1.id(), c.id()}, "one", "bad one", "two")
	one, two := tag+":one", tag+":two"
	want(&la2, "Alice's other device", one, two)
	want(&lb1, "Bob's first device", one, two)
	want(&lb2, "Bob's second device", one, two)
	want(&lc, "Carol, to whom Alice is a stranger", tag+"?:one", tag+"?:two")
	check.Until(t, 20*time.Second, "Alice's outbox empty", func() bool { return len(a1.outbox()) == 0 })

	c.pol.set(a, Drop)
	queue([]identity.AccountID{c.id()}, "three")
	check.Until(t, 20*time.Second, "the carrier to Carol acknowledged", func() bool { return len(a1.outbox()) == 0 })
	if got := lc.list(); len(got) != 2 {
		t.Fatalf("Carol, who blocked Alice, got %q", got)
	}

	// Bob's first device is away (his second is stopped too, so only the
	// mailbox can carry it); Alice queues, deposits, and goes offline.
	check.Until(t, 20*time.Second, "Bob registered at his mailbox", func() bool { return hb.srv.Stats().Members >= 1 })
	b1.stop()
	b2.stop()
	// A carrier queued direct (a group's receipts) goes to no mailbox.
	if err := a1.svc.QueueGroupDirect(context.Background(), []identity.AccountID{b1.id()}, []byte("direct")); err != nil {
		t.Fatal(err)
	}
	queue([]identity.AccountID{b1.id()}, "four")
	check.Until(t, 60*time.Second, "the carrier at Bob's mailbox", func() bool { return hb.srv.Stats().Waiting >= 1 })
	if n := hb.srv.Stats().Waiting; n != 1 {
		t.Fatalf("%d envelopes at Bob's mailbox, want 1: the direct carrier went there too", n)
	}
	a1.stop()
	b1.start()
	want(&lb1, "Bob's first device, from the mailbox", one, two, tag+":four")
	if n := len(a1.eventsOf(EventState)); n != 0 {
		t.Fatalf("carriers made %d state events: they are no messages", n)
	}
}

// TestQueueGroupLarge: the largest carriers to 300 accounts at once (a
// long log sent to many new members), 36 MB of copies, are queued whole
// (in transactions of at most maxGroupTxn), every copy in the outbox.
func TestQueueGroupLarge(t *testing.T) {
	w := newWorld()
	a := newNode(t, w, nil)
	a.start()
	var to []identity.AccountID
	for range 300 {
		k, err := identity.GenerateAccountKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		to = append(to, k.Public().ID())
	}
	big := bytes.Repeat([]byte{7}, MaxGroupBody)
	if err := a.svc.QueueGroup(context.Background(), to, big, big); err != nil {
		t.Fatal(err)
	}
	if n := len(a.outbox()); n != 600 {
		t.Fatalf("%d copies in the outbox, want 600", n)
	}
}
