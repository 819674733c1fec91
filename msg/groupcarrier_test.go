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

// TestGroupCarrierOnNewDevice: carriers queued for a member's device that
// is away reach the device that replaces it in the account's record (a
// restore from a backup), in order: one sealed for the old device (for its
// mailbox) sealed again, a direct one (never sealed: it waits for the
// device) as it was; the next carrier follows them.
func TestGroupCarrierOnNewDevice(t *testing.T) {
	hb := newHub(t)
	w := newWorld()
	mbs := func() []peer.AddrInfo { return []peer.AddrInfo{hb.addr} }
	var lb, lb2 groupLog
	a := newNode(t, w, nil)
	b := newNode(t, w, func(c *Config) { c.OnGroup = lb.apply; c.Mailboxes = mbs })
	w.mu.Lock()
	b.mailboxes = mbs()
	w.mu.Unlock()
	a.start()
	b.start()
	introduce([]*node{a, b})
	tag := string(a.id()[len(a.id())-4:])
	to := []identity.AccountID{b.id()}
	if err := a.svc.QueueGroup(context.Background(), to, []byte("one")); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 20*time.Second, "the first carrier at Bob's device", func() bool { return len(lb.list()) == 1 })
	// (A mailbox takes deposits only for its members; a carrier not yet
	// acknowledged when Bob goes would wait for his new device too.)
	check.Until(t, 20*time.Second, "Bob registered at his mailbox", func() bool { return hb.srv.Stats().Members >= 1 })
	check.Until(t, 20*time.Second, "the first carrier acknowledged", func() bool { return len(a.outbox()) == 0 })

	// Bob's machine is gone; Alice's node seals what it queues meanwhile
	// for his old device, the one the directory still names, and deposits
	// it at his mailbox.
	b.stop()
	if err := a.svc.QueueGroup(context.Background(), to, []byte("while away")); err != nil {
		t.Fatal(err)
	}
	if err := a.svc.QueueGroupDirect(context.Background(), to, []byte("direct")); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 60*time.Second, "a carrier sealed for Bob's old device and deposited", func() bool {
		sealed := 0
		for _, e := range a.outbox() {
			if len(e.Envelope) > 0 && e.Envelope[0] == envGroupSealed && len(e.Content) > 0 {
				sealed++
			}
		}
		return sealed == 1 && hb.srv.Stats().Waiting == 1
	})
	b2 := newDevice(t, w, b.acct, func(c *Config) { c.OnGroup = lb2.apply })
	b2.start()
	a.know(b2)
	b2.know(a)
	a.svc.Kick(b.id())
	if err := a.svc.QueueGroup(context.Background(), to, []byte("after")); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 30*time.Second, "the carriers at Bob's new device", func() bool { return len(lb2.list()) >= 3 })
	if got, want := lb2.list(), []string{tag + ":while away", tag + ":direct", tag + ":after"}; !slices.Equal(got, want) {
		t.Fatalf("Bob's new device got %q, want %q", got, want)
	}
	check.Until(t, 20*time.Second, "Alice's outbox empty", func() bool { return len(a.outbox()) == 0 })
}

// TestGroupFileDeposited: a group carrier queued with its attachment
// (QueueGroupFile) for a member who is away names the attachment when a
// mailbox takes it (Config.OnDeposited), though the sender's node
// restarted in between; the member's device finds the carrier there.
func TestGroupFileDeposited(t *testing.T) {
	hb := newHub(t)
	w := newWorld()
	mbs := func() []peer.AddrInfo { return []peer.AddrInfo{hb.addr} }
	var mu sync.Mutex
	var deposited []string
	a := newNode(t, w, func(c *Config) {
		c.OnDeposited = func(_ identity.AccountID, _ peer.ID, _ []byte, _ []string, files [][]byte) {
			mu.Lock()
			defer mu.Unlock()
			for _, f := range files {
				deposited = append(deposited, string(f))
			}
		}
	})
	var lb groupLog
	b := newNode(t, w, func(c *Config) { c.OnGroup = lb.apply; c.Mailboxes = mbs; c.MailboxPoll = 100 * time.Millisecond })
	a.start()
	b.start()
	introduce([]*node{a, b})
	check.Until(t, 20*time.Second, "Bob registered at his mailbox", func() bool { return hb.srv.Stats().Members >= 1 })
	b.stop()
	// Bob's record names no mailbox yet: Alice's node keeps the carrier.
	if err := a.svc.QueueGroupFile(context.Background(), []identity.AccountID{b.id()}, []byte("the file's reference"), []byte("a photo")); err != nil {
		t.Fatal(err)
	}
	a.stop()
	w.mu.Lock()
	b.mailboxes = mbs()
	w.mu.Unlock()
	a.start()
	check.Until(t, 60*time.Second, "the carrier at Bob's mailbox, its attachment named", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(deposited) > 0
	})
	mu.Lock()
	got := slices.Clone(deposited)
	mu.Unlock()
	if !slices.Equal(got, []string{"the file's reference"}) {
		t.Fatalf("deposits named %q", got)
	}
	a.stop()
	b.start()
	tag := string(a.id()[len(a.id())-4:])
	check.Until(t, 30*time.Second, "the carrier at Bob's device, from the mailbox", func() bool { return len(lb.list()) == 1 })
	if got := lb.list(); got[0] != tag+":a photo" {
		t.Fatalf("Bob got %q", got)
	}
}
