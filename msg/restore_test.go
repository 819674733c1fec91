package msg

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/mailbox"
)

// TestContactOnNewDevice: a contact's account moves to a new device (a
// restore from a backup: the same account key, new device keys, an empty
// store). Messages sent to the account afterwards reach the new device:
// the sender sees that its session is with a device the account no longer
// names and starts one with the new device. Both ways, nothing failed.
func TestContactOnNewDevice(t *testing.T) {
	for _, tc := range []struct {
		name                             string
		replied, newWritesFirst, restart bool
	}{
		{"after a reply", true, false, false},
		{"only received", false, false, false},
		// Bob's node still holds the old record when the new device's
		// first message arrives: his session with the new device is
		// then one it started, and his queue is sealed again for it.
		{"the new device writes first", false, true, false},
		// Bob's node restarts with the message sealed for the old device
		// in its queue and finds only the new device in the directory: its
		// copy names the device it was sealed for (dq/), so it is moved to
		// the new one and sealed again.
		{"Bob restarts before the move", true, false, true},
	} {
		replied := tc.replied
		t.Run(tc.name, func(t *testing.T) {
			a, b := pair(t, nil)
			first := a.send(b, "before")
			check.Until(t, 10*time.Second, "the first message delivered", func() bool { return a.state(b.id(), first.ID) == StateDelivered })
			if replied {
				reply := b.send(a, "reply")
				check.Until(t, 10*time.Second, "the reply delivered", func() bool { return b.state(a.id(), reply.ID) == StateDelivered })
			}
			// Alice's machine is gone; Bob writes while the directory
			// still names her old device.
			a.stop()
			away := b.send(a, "while away")
			if tc.restart {
				b.stop()
			}
			a2 := newDevice(t, a.w, a.acct, nil)
			if tc.restart {
				b.start() // the directory names only the new device now
			}
			a2.start()
			a2.know(b)
			b.know(a2)
			var hello Message
			if tc.newWritesFirst {
				a.w.mu.Lock()
				a.w.nodes[a.id()] = a // Bob's directory: the old record
				a.w.mu.Unlock()
				hello = a2.send(b, "hello from the new device")
				check.Until(t, 10*time.Second, "the new device's message at Bob", func() bool { return a2.state(b.id(), hello.ID) == StateDelivered })
				a.w.mu.Lock()
				a.w.nodes[a.id()] = a2
				a.w.mu.Unlock()
			}
			after := b.send(a2, "after the move")
			defer func() {
				if t.Failed() {
					t.Logf("b: %s %s; the new device holds %d of b's messages; b's events %+v",
						b.state(a.id(), away.ID), b.state(a.id(), after.ID), len(a2.incoming(b.id())), b.eventsOf(EventState))
				}
			}()
			b.svc.Kick(a.id())
			check.Until(t, 20*time.Second, "both messages on the new device", func() bool {
				in := a2.incoming(b.id())
				return len(in) == 2 && b.state(a.id(), away.ID) == StateDelivered && b.state(a.id(), after.ID) == StateDelivered
			})
			if in := a2.incoming(b.id()); string(in[0].Body) != "while away" || string(in[1].Body) != "after the move" {
				t.Errorf("the new device shows %q, %q", in[0].Body, in[1].Body)
			}
			back := a2.send(b, "from the new device")
			check.Until(t, 20*time.Second, "the new device's message", func() bool {
				in := b.incoming(a.id())
				return len(in) > 0 && string(in[len(in)-1].Body) == "from the new device" && a2.state(b.id(), back.ID) == StateDelivered
			})
			for _, e := range b.eventsOf(EventState) {
				if e.State == StateFailed {
					t.Errorf("b: message %s failed: %s", e.ID, e.Reason)
				}
			}
		})
	}
}

// TestNewDeviceMailboxPrekeys: the one-time prekeys an account's mailbox
// holds are its current device's. Alice's old device left a batch at her
// mailbox; her account moves to a new device, which registers there and
// goes away before anyone writes. Bob's first message, which starts its
// session with a key from the mailbox, is one the new device opens.
func TestNewDeviceMailboxPrekeys(t *testing.T) {
	hb := newHubWith(t, mailbox.Config{DepositRate: 1e6, DepositBurst: 1e6, FetchRate: rate.Inf, MemberRate: rate.Inf})
	w := newWorld()
	mbs := func() []peer.AddrInfo { return []peer.AddrInfo{hb.addr} }
	withHub := func(c *Config) { c.Mailboxes = mbs; c.MailboxPoll = 100 * time.Millisecond }
	a := newNode(t, w, withHub)
	acct := a.acct.Public().Bytes()
	for _, dev := range []*node{a, newDevice(t, w, a.acct, withHub)} {
		w.mu.Lock()
		w.nodes[a.id()] = dev
		dev.mailboxes = mbs()
		w.mu.Unlock()
		dev.start()
		check.Until(t, 20*time.Second, "the device registered, its keys left and its mailbox drained", func() bool {
			x, pq := hb.srv.Prekeys(acct)
			st := dev.svc.Mailboxes()
			return x == mailboxPrekeyBatch && pq == mailboxPrekeyBatch && len(st) == 1 && !st[0].LastDrain.IsZero()
		})
		dev.stop()
	}
	a2 := w.nodes[a.id()]
	b := newNode(t, w, nil)
	b.start()
	m := b.send(a2, "a first contact while the new device is away")
	check.Until(t, 60*time.Second, "Bob's message at the mailbox", func() bool { return b.state(a.id(), m.ID) == StateSent })
	if x, _ := hb.srv.Prekeys(acct); x != mailboxPrekeyBatch {
		t.Errorf("Bob took one of the old device's one-time prekeys (%d left of %d)", x, mailboxPrekeyBatch)
	}
	a2.start()
	check.Until(t, 30*time.Second, "the new device reads it from its own queue, its session started with one of its own keys", func() bool {
		st := a2.svc.Mailboxes()
		return len(a2.incoming(b.id())) == 1 && len(st) == 1 && st[0].Prekeys == mailboxPrekeyBatch-1
	})
}
