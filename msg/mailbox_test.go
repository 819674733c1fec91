package msg

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/mailbox"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/callsign/callsign/store"
)

// hub is a mailbox on its own host and store.
type hub struct {
	t    testing.TB
	cfg  mailbox.Config
	dir  string
	h    host.Host
	db   *store.DB
	srv  *mailbox.Server
	addr peer.AddrInfo
}

func newHub(t testing.TB) *hub {
	return newHubWith(t, mailbox.Config{DepositRate: 1e6, DepositBurst: 1e6})
}

func newHubWith(t testing.TB, cfg mailbox.Config) *hub {
	hb := &hub{t: t, dir: t.TempDir(), cfg: cfg}
	hb.start()
	t.Cleanup(hb.stop)
	return hb
}

func (hb *hub) start() {
	hb.h = p2ptest.NewHost(hb.t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	db, err := store.Open(context.Background(), store.Options{Dir: hb.dir})
	if err != nil {
		hb.t.Fatal(err)
	}
	hb.db = db
	cfg := hb.cfg
	cfg.Host, cfg.DB = hb.h, db
	srv, err := mailbox.New(cfg)
	if err != nil {
		hb.t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		hb.t.Fatal(err)
	}
	hb.srv = srv
	hb.addr = peer.AddrInfo{ID: hb.h.ID(), Addrs: hb.h.Addrs()}
}

func (hb *hub) stop() {
	if hb.srv != nil {
		hb.srv.Close()
		hb.srv = nil
	}
	if hb.db != nil {
		hb.db.Close()
		hb.db = nil
	}
	if hb.h != nil {
		hb.h.Close()
		hb.h = nil
	}
}

// TestMailboxOffline: Bob is offline while Alice writes; Alice's messages
// wait at Bob's mailbox (sent), Alice goes offline, Bob comes back and
// finds them all, once and in order; when Alice is back, they become
// delivered and nothing is shown twice.
func TestMailboxOffline(t *testing.T) {
	for _, stranger := range []bool{false, true} {
		name := "contact"
		if stranger {
			name = "stranger"
		}
		t.Run(name, func(t *testing.T) { testMailboxOffline(t, stranger) })
	}
}

func testMailboxOffline(t *testing.T, stranger bool) {
	const n = 40
	hb := newHub(t)
	w := newWorld()
	mbs := func() []peer.AddrInfo { return []peer.AddrInfo{hb.addr} }
	a := newNode(t, w, nil)
	b := newNode(t, w, func(c *Config) { c.Mailboxes = mbs; c.MailboxPoll = 100 * time.Millisecond })
	w.mu.Lock()
	b.mailboxes = mbs()
	w.mu.Unlock()
	if stranger {
		// Alice is no contact of Bob's: her first message needs a stamp.
		b.pol.set(a.id(), Request)
	}
	a.start()
	b.start()
	a.know(b)
	check.Until(t, 20*time.Second, "Bob registered", func() bool { return hb.srv.Stats().Members == 1 })
	b.stop()

	var ids []string
	for i := range n {
		ids = append(ids, a.send(b, fmt.Sprintf("m%03d", i)).ID)
	}
	check.Until(t, 60*time.Second, "every message sent to the mailbox", func() bool {
		for _, id := range ids {
			if a.state(b.id(), id) != StateSent {
				return false
			}
		}
		return hb.srv.Stats().Waiting == n
	})
	a.stop()

	b.start()
	check.Until(t, 30*time.Second, "Bob has every message", func() bool { return len(b.incoming(a.id())) >= n })
	in := b.incoming(a.id())
	if len(in) != n {
		t.Fatalf("Bob has %d messages, want %d", len(in), n)
	}
	for i, m := range in {
		if want := fmt.Sprintf("m%03d", i); string(m.Body) != want {
			t.Fatalf("message %d is %q, want %q", i, m.Body, want)
		}
	}
	check.Until(t, 10*time.Second, "the mailbox emptied", func() bool { return hb.srv.Stats().Waiting == 0 })

	a.start()
	a.know(b)
	a.svc.Kick(b.id())
	check.Until(t, 60*time.Second, "every message delivered", func() bool {
		for _, id := range ids {
			if a.state(b.id(), id) != StateDelivered {
				return false
			}
		}
		return true
	})
	if got := len(b.incoming(a.id())); got != n {
		t.Fatalf("Bob has %d messages after Alice's direct retry, want %d", got, n)
	}
}

// TestMailboxRefused: a mailbox that is full takes what fits; the rest
// stays queued, and the sender is told why.
func TestMailboxRefused(t *testing.T) {
	hb := newHubWith(t, mailbox.Config{MaxCount: 5})
	w := newWorld()
	mbs := func() []peer.AddrInfo { return []peer.AddrInfo{hb.addr} }
	a := newNode(t, w, nil)
	b := newNode(t, w, func(c *Config) { c.Mailboxes = mbs; c.MailboxPoll = time.Hour })
	w.mu.Lock()
	b.mailboxes = mbs()
	w.mu.Unlock()
	a.start()
	b.start()
	a.know(b)
	check.Until(t, 20*time.Second, "Bob registered", func() bool { return hb.srv.Stats().Members == 1 })
	b.stop()
	var ids []string
	for i := range 8 {
		ids = append(ids, a.send(b, fmt.Sprintf("m%d", i)).ID)
	}
	check.Until(t, 60*time.Second, "the refusal reported", func() bool {
		for _, e := range a.eventsOf(EventState) {
			if e.ID == ids[7] && e.State == StateQueued && strings.Contains(e.Reason, "over quota") {
				return true
			}
		}
		return false
	})
	for i, id := range ids {
		want := StateSent
		if i >= 5 {
			want = StateQueued
		}
		if got := a.state(b.id(), id); got != want {
			t.Errorf("message %d is %s, want %s", i, got, want)
		}
	}
	if w := hb.srv.Stats().Waiting; w != 5 {
		t.Fatalf("the mailbox holds %d, want 5", w)
	}
}

// TestMailboxReconnect: the mailbox was down when Bob started; when Bob's
// node connects to it again, Bob drains at once, not at the next poll.
func TestMailboxReconnect(t *testing.T) {
	hb := newHub(t)
	w := newWorld()
	mbs := func() []peer.AddrInfo { return []peer.AddrInfo{hb.addr} }
	a := newNode(t, w, nil)
	b := newNode(t, w, func(c *Config) { c.Mailboxes = mbs; c.MailboxPoll = time.Hour })
	w.mu.Lock()
	b.mailboxes = mbs()
	w.mu.Unlock()
	a.start()
	b.start()
	a.know(b)
	check.Until(t, 20*time.Second, "Bob registered", func() bool { return hb.srv.Stats().Members == 1 })
	b.stop()
	m := a.send(b, "while you were away")
	check.Until(t, 60*time.Second, "the message at the mailbox", func() bool { return hb.srv.Stats().Waiting == 1 })
	a.stop()
	// The mailbox is down while Bob starts; it comes back on its address.
	hb.srv.Close()
	b.start()
	check.Until(t, 20*time.Second, "Bob's drain failed", func() bool {
		st := b.svc.Mailboxes()
		return len(st) == 1 && st[0].LastError != ""
	})
	srv, err := mailbox.New(mailbox.Config{Host: hb.h, DB: hb.db})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hb.srv = srv
	b.host.Network().ClosePeer(hb.h.ID())
	if err := b.host.Connect(context.Background(), hb.addr); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 30*time.Second, "Bob has the message", func() bool {
		in := b.incoming(a.id())
		return len(in) == 1 && in[0].ID == m.ID
	})
}
