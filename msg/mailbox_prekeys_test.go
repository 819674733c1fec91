package msg

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/mailbox"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/callsign/callsign/store"
)

// TestMailboxFirstContact: Bob leaves one-time prekeys at his mailbox and
// goes away before anyone writes to him. Alice's first message, written
// while Bob is away and never online with her, starts its session with one
// of them (the mailbox then holds one fewer); Carol's first contact gets
// another; once the mailbox has none left, Dave's first contact uses the
// signed prekeys of Bob's record. Bob reads all three when he is back.
func TestMailboxFirstContact(t *testing.T) {
	hb := newHubWith(t, mailbox.Config{DepositRate: 1e6, DepositBurst: 1e6,
		FetchRate: rate.Inf, MemberRate: rate.Inf})
	w := newWorld()
	mbs := func() []peer.AddrInfo { return []peer.AddrInfo{hb.addr} }
	b := newNode(t, w, func(c *Config) { c.Mailboxes = mbs; c.MailboxPoll = 100 * time.Millisecond })
	w.mu.Lock()
	b.mailboxes = mbs()
	w.mu.Unlock()
	bobAcct := b.acct.Public().Bytes()
	held := func() (int, int) { return hb.srv.Prekeys(bobAcct) }
	b.start()
	check.Until(t, 20*time.Second, "Bob's one-time prekeys at his mailbox, and his status says so", func() bool {
		x, pq := held()
		st := b.svc.Mailboxes()
		return x == mailboxPrekeyBatch && pq == mailboxPrekeyBatch && len(st) == 1 && st[0].Prekeys == mailboxPrekeyBatch
	})
	b.stop()

	// firstContact sends one message from a new node to Bob, who is away,
	// and returns the box the mailbox then holds for it.
	firstContact := func(name string) (*node, []byte) {
		t.Helper()
		n := newNode(t, w, nil)
		n.start()
		before := hb.srv.Stats().Waiting
		m := n.send(b, "hello from "+name)
		check.Until(t, 60*time.Second, name+"'s message at the mailbox", func() bool {
			return n.state(b.id(), m.ID) == StateSent && hb.srv.Stats().Waiting == before+1
		})
		var box []byte
		if err := hb.db.View(func(tx *store.Tx) error {
			envs, err := tx.MailboxEnvelopes(bobAcct, 0, 100, 1<<20)
			if err == nil && len(envs) > 0 {
				box = append([]byte(nil), envs[len(envs)-1].Data...)
			}
			return err
		}); err != nil || box == nil {
			t.Fatalf("read %s's box at the mailbox: %v", name, err)
		}
		n.stop()
		return n, box
	}

	a, aliceBox := firstContact("Alice")
	if x, pq := held(); x != mailboxPrekeyBatch-1 || pq != mailboxPrekeyBatch-1 {
		t.Fatalf("after Alice's first contact the mailbox holds %d, %d one-time prekeys; want one fewer of each, %d", x, pq, mailboxPrekeyBatch-1)
	}
	c, carolBox := firstContact("Carol")
	if x, pq := held(); x != mailboxPrekeyBatch-2 || pq != mailboxPrekeyBatch-2 {
		t.Fatalf("after Carol's first contact the mailbox holds %d, %d; want %d", x, pq, mailboxPrekeyBatch-2)
	}
	// Someone takes every key left.
	thief := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	thief.Peerstore().AddAddrs(hb.addr.ID, hb.addr.Addrs, time.Hour)
	tok := mailbox.Token(bobAcct, []byte(hb.addr.ID), mailbox.Day(time.Now()))
	for {
		x, pq, err := mailbox.FetchPrekeys(context.Background(), thief, hb.addr.ID, tok)
		if err != nil {
			t.Fatal(err)
		}
		if x == nil && pq == nil {
			break
		}
	}
	d, daveBox := firstContact("Dave")

	b.start()
	for _, n := range []*node{a, c, d} {
		check.Until(t, 30*time.Second, "Bob reads the first contact", func() bool { return len(b.incoming(n.id())) == 1 })
	}
	// What each first message started its session with.
	used := func(name string, box []byte) e2e.InitialPrekeys {
		t.Helper()
		frame, err := mailbox.Open(b.svc.cfg.DeviceDH, pqPrekeys{b.svc}, box)
		if err != nil {
			t.Fatalf("open %s's box: %v", name, err)
		}
		f, err := unmarshalDeliver(frame, b.svc.maxCT, v11)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := e2e.ParseInitialPrekeys(f.ciphertext)
		if err != nil {
			t.Fatalf("%s's first message is no initial message: %v", name, err)
		}
		return ids
	}
	ai, ci, di := used("Alice", aliceBox), used("Carol", carolBox), used("Dave", daveBox)
	if ai.OneTime == 0 || !ai.PQOneTime || ci.OneTime == 0 || !ci.PQOneTime {
		t.Fatalf("first contacts through the mailbox used %+v and %+v; want one-time prekeys of both kinds", ai, ci)
	}
	if ai.OneTime == ci.OneTime || ai.PQPrekey == ci.PQPrekey {
		t.Fatalf("Alice and Carol were handed the same one-time prekey: %+v, %+v", ai, ci)
	}
	if di.OneTime != 0 || di.PQOneTime {
		t.Fatalf("with the mailbox's keys gone Dave used %+v; want the signed prekeys", di)
	}
	// Bob, back online, leaves a fresh batch.
	check.Until(t, 20*time.Second, "Bob tops up his mailbox", func() bool {
		x, pq := held()
		return x == mailboxPrekeyBatch && pq == mailboxPrekeyBatch
	})
}

// TestMailboxForgedPrekeys: a mailbox that hands out one-time prekeys Bob
// never signed does not get a first contact started on them: Alice checks
// them, drops them and uses the signed prekeys of Bob's record at once
// (one fetch, not one per retry); Bob reads her message.
func TestMailboxForgedPrekeys(t *testing.T) {
	hb := newHubWith(t, mailbox.Config{DepositRate: 1e6, DepositBurst: 1e6, FetchRate: rate.Inf, MemberRate: rate.Inf})
	w := newWorld()
	mbs := func() []peer.AddrInfo { return []peer.AddrInfo{hb.addr} }
	b := newNode(t, w, func(c *Config) { c.Mailboxes = mbs; c.MailboxPoll = 100 * time.Millisecond })
	w.mu.Lock()
	b.mailboxes = mbs()
	w.mu.Unlock()
	bobAcct := b.acct.Public().Bytes()
	b.start()
	check.Until(t, 20*time.Second, "Bob registered", func() bool { return hb.srv.Stats().Members == 1 })
	b.stop()

	// The operator swaps in keys of its own, in the right shape.
	mallory := newNode(t, w, nil)
	mallory.start()
	mallory.svc.preMu.Lock()
	const forged = 5
	if err := mallory.svc.prekeys.GenerateOneTime(mallory.svc.self, forged, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	fx, fpq := mallory.svc.prekeys.IssueOneTime(forged)
	mallory.svc.preMu.Unlock()
	mallory.stop()
	hb.srv.Close()
	if err := hb.db.Update(func(tx *store.Tx) error {
		for _, kind := range []byte{store.MailboxPrekeyX25519, store.MailboxPrekeyPQ} {
			if _, err := tx.DeleteMailboxPrekeys(bobAcct, kind); err != nil {
				return err
			}
		}
		for i := range forged {
			if err := tx.PutMailboxPrekey(bobAcct, store.MailboxPrekeyX25519, fx[i].ID, e2e.MarshalOneTimePrekey(fx[i])); err != nil {
				return err
			}
			if err := tx.PutMailboxPrekey(bobAcct, store.MailboxPrekeyPQ, fpq[i].ID, e2e.MarshalOneTimePrekey(fpq[i])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	srv, err := mailbox.New(mailbox.Config{Host: hb.h, DB: hb.db, DepositRate: 1e6, DepositBurst: 1e6, FetchRate: rate.Inf, MemberRate: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hb.srv = srv

	a := newNode(t, w, nil)
	a.start()
	m := a.send(b, "hello")
	check.Until(t, 60*time.Second, "Alice's message at the mailbox", func() bool { return a.state(b.id(), m.ID) == StateSent })
	if x, pq := srv.Prekeys(bobAcct); x != forged-1 || pq != forged-1 {
		t.Fatalf("%d, %d forged keys left; want one fetch, %d of each left", x, pq, forged-1)
	}
	a.stop()
	b.start()
	check.Until(t, 30*time.Second, "Bob reads Alice's first message", func() bool { return len(b.incoming(a.id())) == 1 })
}
