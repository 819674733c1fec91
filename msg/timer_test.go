package msg

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/store"
)

// TestDisappearingMessages: a timer set on one side holds on both and on
// the sender's other devices; a text sent under it vanishes from every
// store that held it, the timer change stays, and a timer turned off
// keeps what is sent after.
func TestDisappearingMessages(t *testing.T) {
	defer func(d time.Duration) { expireEvery = d }(expireEvery)
	expireEvery = 100 * time.Millisecond
	alice, b := threeDevices(t)
	introduce(alice)
	a2, a1 := alice[1], alice[0]
	ctx := context.Background()
	b.send(a2, "hello first") // so each is the other's conversation
	check.Until(t, 20*time.Second, "the first message at Alice", func() bool { return len(a2.incoming(b.id())) == 1 })

	set, err := a2.svc.SetTimer(ctx, b.id(), 2*time.Second)
	if err != nil || set.TimerSet == nil || *set.TimerSet != 2*time.Second {
		t.Fatalf("SetTimer: %+v %v", set, err)
	}
	timer := func(n *node, peer *node) time.Duration {
		c, err := n.db.Conversation(string(peer.id()))
		if err != nil {
			return -1
		}
		return c.Timer
	}
	check.Until(t, 20*time.Second, "the timer on both sides and on device 1", func() bool {
		return timer(a2, b) == 2*time.Second && timer(b, a2) == 2*time.Second && timer(a1, b) == 2*time.Second
	})
	if c, _ := b.db.Conversation(string(a2.id())); c.Unread != 0 {
		t.Errorf("the timer change counts as %d unread at Bob", c.Unread)
	}
	gone := b.send(a2, "this will vanish")
	has := func(n *node, peer *node, id string) bool {
		_, err := n.db.Message(string(peer.id()), id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	check.Until(t, 20*time.Second, "the timed message at Alice", func() bool { return has(a2, b, gone.ID) && has(a1, b, gone.ID) })
	if m, _ := a2.db.Message(string(b.id()), gone.ID); m.Expires != 2*time.Second {
		t.Errorf("the message at Alice expires after %v, want 2s", m.Expires)
	}
	check.Until(t, 30*time.Second, "the timed message gone from every store", func() bool {
		return !has(b, a2, gone.ID) && !has(a2, b, gone.ID) && !has(a1, b, gone.ID)
	})
	for _, n := range []*node{a2, a1} {
		if !has(n, b, set.ID) {
			t.Errorf("the timer change itself was deleted")
		}
		if c, _ := n.db.Conversation(string(b.id())); c.Expiring != 0 {
			t.Errorf("the conversation still counts %d expiring messages", c.Expiring)
		}
	}
	deleted := 0
	for _, e := range a2.eventsOf(EventDeleted) {
		if e.ID == gone.ID {
			deleted++
		}
	}
	if deleted != 1 {
		t.Errorf("%d deleted events for the message at Alice, want 1", deleted)
	}

	// Off: what is sent after stays.
	if _, err := b.svc.SetTimer(ctx, a2.id(), 0); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 20*time.Second, "the timer off on both sides", func() bool { return timer(a2, b) == 0 && timer(b, a2) == 0 })
	kept := b.send(a2, "this stays")
	check.Until(t, 20*time.Second, "the last message at Alice", func() bool { return has(a2, b, kept.ID) })
	time.Sleep(500 * time.Millisecond)
	if !has(a2, b, kept.ID) || !has(b, a2, kept.ID) {
		t.Errorf("a message sent with the timer off was deleted")
	}
	if _, err := b.svc.SetTimer(ctx, a2.id(), 1500*time.Millisecond); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a timer of 1.5 s: %v, want refused", err)
	}
}
