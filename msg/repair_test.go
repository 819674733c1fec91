package msg

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
)

// TestRepairToSibling: Bob read Alice's record when she had two devices;
// she links a third. Bob's next text goes to the two he knows, naming
// them; the first of them relays it to the third, which shows it once, as
// from Bob, in his conversation, and counts it unread. A text that named
// every device is not relayed, and a relay the third device already has
// is not stored again.
func TestRepairToSibling(t *testing.T) {
	a1, b := pair(t, nil)
	a2 := linkDevice(t, a1, nil)
	a2.start()
	introduce([]*node{a1, a2, b})
	ctx := context.Background()
	for _, d := range []*node{a1, a2} {
		if err := d.svc.RefreshSelf(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Bob looks Alice up now: two devices.
	first := b.send(a1, "before the third device")
	check.Until(t, 20*time.Second, "the first text on both devices", func() bool {
		return len(a1.incoming(b.id())) == 1 && len(a2.incoming(b.id())) == 1
	})
	a3 := linkDevice(t, a1, nil)
	a3.start()
	introduce([]*node{a1, a2, a3, b})
	for _, d := range []*node{a1, a2, a3} {
		if err := d.svc.RefreshSelf(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Bob's view is a minute old at most: he still sends to two.
	m := b.send(a1, "after the third was linked")
	check.Until(t, 20*time.Second, "the text on the third device, relayed", func() bool {
		in := a3.incoming(b.id())
		return len(in) == 1 && in[0].ID == m.ID && string(in[0].Body) == "after the third was linked" && eventCount(a3, EventMessage, m.ID, "") == 1
	})
	if got := a3.incoming(b.id()); slices.ContainsFunc(got, func(x Message) bool { return x.ID == first.ID }) {
		t.Fatal("a text from before the link was relayed")
	}
	c, err := a3.db.Conversation(string(b.id()))
	if err != nil || c.Unread != 1 {
		t.Fatalf("the third device's conversation with Bob: %+v %v, want one unread", c, err)
	}
	check.Until(t, 20*time.Second, "the relay acknowledged", func() bool {
		return len(a1.outbox()) == 0 && len(a2.outbox()) == 0
	})
	// Bob reads the record again: his next text goes to all three, and
	// none relays it.
	if _, err := b.svc.lookup(ctx, a1.id()); err != nil {
		t.Fatal(err)
	}
	all := b.send(a1, "to all three")
	check.Until(t, 20*time.Second, "the text on all three, acknowledged", func() bool {
		for _, d := range []*node{a1, a2, a3} {
			if !slices.ContainsFunc(d.incoming(b.id()), func(x Message) bool { return x.ID == all.ID }) {
				return false
			}
		}
		return len(b.outbox()) == 0 && len(a1.outbox()) == 0 && len(a2.outbox()) == 0
	})
	for _, id := range []string{m.ID, all.ID} {
		relayed, err := a3.db.Seen(string(a1.id()), id)
		if err != nil || relayed != (id == m.ID) {
			t.Fatalf("relay of %s seen on the third device: %v %v", id, relayed, err)
		}
	}
	// The same relay again changes nothing.
	a3.svc.storeRelayed([]Message{{ID: m.ID, Peer: string(b.id()), Direction: DirIn, Body: []byte("again"), At: time.Now(), State: StateReceived}})
	if in := a3.incoming(b.id()); len(in) != 2 || in[0].ID != m.ID || string(in[0].Body) != "after the third was linked" {
		t.Fatalf("after the relay again: %+v", in)
	}
}
