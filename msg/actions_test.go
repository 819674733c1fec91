package msg

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/store"
)

// TestMessageActions: a reply names what it quotes; a reaction, an edit
// and a delete for everyone land on their target on both sides and on the
// sender's other devices, and never show as messages of their own; an
// edit of someone else's message, made by hand, changes nothing anywhere.
func TestMessageActions(t *testing.T) {
	alice, b := threeDevices(t)
	introduce(alice)
	a2, a1 := alice[1], alice[0] // device 2 knows its siblings from the start
	ctx := context.Background()
	first := b.send(a2, "first")
	get := func(n *node, id string) Message {
		peer := b.id()
		if n == b {
			peer = a2.id()
		}
		m, err := n.db.Message(string(peer), id)
		if err != nil {
			return Message{}
		}
		return m
	}
	check.Until(t, 20*time.Second, "Bob's message on Alice's devices", func() bool {
		return get(a2, first.ID).ID != "" && get(a1, first.ID).ID != ""
	})

	reply, err := a2.svc.SendMessage(ctx, b.id(), Outgoing{Text: []byte("answer"), ReplyTo: first.ID})
	if err != nil {
		t.Fatal(err)
	}
	check.Until(t, 20*time.Second, "the reply, naming what it quotes, at Bob and on device 1", func() bool {
		return get(b, reply.ID).ReplyTo == first.ID && get(a1, reply.ID).ReplyTo == first.ID
	})

	if _, err := a2.svc.SendAction(ctx, b.id(), Action{Kind: ActionReact, Target: first.ID, Emoji: "👍"}, nil); err != nil {
		t.Fatal(err)
	}
	reacted := func(n *node, dir string) bool {
		rs := get(n, first.ID).Reactions
		return len(rs) == 1 && rs[0].Emoji == "👍" && rs[0].Dir == dir
	}
	check.Until(t, 20*time.Second, "Alice's 👍 on Bob's message, on every device", func() bool {
		return reacted(b, DirIn) && reacted(a2, DirOut) && reacted(a1, DirOut)
	})

	if _, err := b.svc.SendAction(ctx, a2.id(), Action{Kind: ActionEdit, Target: first.ID}, []byte("first, fixed")); err != nil {
		t.Fatal(err)
	}
	edited := func(n *node) bool { m := get(n, first.ID); return m.Edited && string(m.Body) == "first, fixed" }
	check.Until(t, 20*time.Second, "Bob's edit everywhere", func() bool { return edited(b) && edited(a2) && edited(a1) })

	// Alice may not edit Bob's message: refused before it goes, and one
	// made by hand changes nothing, at Bob or at her own devices.
	if _, err := a2.svc.SendAction(ctx, b.id(), Action{Kind: ActionEdit, Target: first.ID}, []byte("forged")); !errors.Is(err, ErrNotYours) {
		t.Errorf("an edit of the other side's message: %v, want ErrNotYours", err)
	}
	forged, err := a2.svc.send(ctx, b.id(), Outgoing{Text: []byte("forged"), Action: &Action{Kind: ActionDelete, Target: first.ID}})
	if err != nil {
		t.Fatal(err)
	}
	check.Until(t, 20*time.Second, "the forged delete delivered", func() bool {
		m, err := a2.db.Message(string(b.id()), forged.ID)
		return err == nil && (m.State == StateDelivered || m.State == StateRead)
	})
	for _, n := range []*node{b, a2, a1} {
		if m := get(n, first.ID); m.Deleted || !edited(n) {
			t.Errorf("a delete of Bob's message by Alice changed it: %+v", m)
		}
	}

	if _, err := b.svc.SendAction(ctx, a2.id(), Action{Kind: ActionDelete, Target: first.ID}, nil); err != nil {
		t.Fatal(err)
	}
	gone := func(n *node) bool { m := get(n, first.ID); return m.Deleted && m.Body == nil && m.Reactions == nil }
	check.Until(t, 20*time.Second, "Bob's delete everywhere", func() bool { return gone(b) && gone(a2) && gone(a1) })
	if _, err := b.svc.SendAction(ctx, a2.id(), Action{Kind: ActionEdit, Target: first.ID}, []byte("again")); !errors.Is(err, ErrTooLate) {
		t.Errorf("an edit of a deleted message: %v, want ErrTooLate", err)
	}
	if _, err := b.svc.SendAction(ctx, a2.id(), Action{Kind: ActionReact, Target: "00112233445566778899aabbccddeeff", Emoji: "👍"}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a reaction to a message that is not there: %v, want not found", err)
	}
	// The actions show as nothing of their own at Alice's devices.
	for _, n := range []*node{a2, a1} {
		for _, m := range n.messages(b.id()) {
			if m.Action != nil && m.Direction == DirIn {
				t.Errorf("an action stored as a message: %+v", m)
			}
		}
	}
}
