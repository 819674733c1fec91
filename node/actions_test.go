package node_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

// TestMessageActionsAPI: a reply shows what it quotes; a reaction, an edit
// and a delete reach the other side as "message-updated" events and in its
// pages, which never list the actions themselves; Bob cannot edit Alice's
// message.
func TestMessageActionsAPI(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}})
	ctx := ctxT(t, 3*time.Minute)
	alice, bob := net.Nodes[1], net.Nodes[2]
	befriend(t, ctx, alice, bob)
	bobEvents, err := bob.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, err := alice.Client.Send(ctx, "bob", "first")
	if err != nil {
		t.Fatal(err)
	}
	page := func(c *api.Client, peer string) map[string]api.Message {
		p, err := c.Messages(ctx, peer, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]api.Message{}
		for _, m := range p.Messages {
			out[m.ID] = m
		}
		return out
	}
	check.Until(t, time.Minute, "Alice's message at Bob", func() bool { _, ok := page(bob.Client, "alice")[first.ID]; return ok })

	reply, err := bob.Client.Reply(ctx, "alice", "answer", first.ID)
	if err != nil || reply.Quote == nil || reply.Quote.Text != "first" || reply.Quote.From != alice.Account().String() {
		t.Fatalf("reply: %+v %+v %v", reply, reply.Quote, err)
	}
	check.Until(t, time.Minute, "the reply with its quote at Alice", func() bool {
		m, ok := page(alice.Client, "bob")[reply.ID]
		return ok && m.Quote != nil && m.Quote.Text == "first"
	})

	if m, err := alice.Client.Act(ctx, "bob", reply.ID, "react", api.ActionRequest{Emoji: "👍"}); err != nil || len(m.Reactions) != 1 {
		t.Fatalf("react: %+v %v", m, err)
	}
	if m, err := alice.Client.Act(ctx, "bob", first.ID, "edit", api.ActionRequest{Text: "first, fixed"}); err != nil || !m.Edited || m.Text != "first, fixed" {
		t.Fatalf("edit: %+v %v", m, err)
	}
	if _, err := bob.Client.Act(ctx, "alice", first.ID, "edit", api.ActionRequest{Text: "mine now"}); !api.IsCode(err, api.CodeForbidden) {
		t.Errorf("Bob editing Alice's message: %v, want forbidden", err)
	}
	check.Until(t, time.Minute, "the reaction and the edit at Bob", func() bool {
		p := page(bob.Client, "alice")
		r, f := p[reply.ID], p[first.ID]
		return len(r.Reactions) == 1 && r.Reactions[0].Emoji == "👍" && r.Reactions[0].From == alice.Account().String() &&
			f.Edited && f.Text == "first, fixed"
	})
	if _, err := alice.Client.Act(ctx, "bob", first.ID, "delete", api.ActionRequest{}); err != nil {
		t.Fatal(err)
	}
	check.Until(t, time.Minute, "the delete at Bob", func() bool {
		f := page(bob.Client, "alice")[first.ID]
		return f.Deleted && f.Text == ""
	})
	// Bob's clients heard each change; his pages and Alice's hold the
	// two messages and nothing else.
	updates := 0
	for updates < 3 {
		select {
		case ev := <-bobEvents:
			var m api.Message
			if ev.Type == api.EventMessageUpdated && json.Unmarshal(ev.Data, &m) == nil {
				updates++
			}
		case <-ctx.Done():
			t.Fatalf("%d message-updated events at Bob, want 3", updates)
		}
	}
	if n, m := len(page(bob.Client, "alice")), len(page(alice.Client, "bob")); n != 2 || m != 2 {
		t.Errorf("the conversation lists %d messages at Bob and %d at Alice, want 2: actions are not messages", n, m)
	}
	convs, err := alice.Client.Conversations(ctx)
	if err != nil || len(convs) != 1 || convs[0].Last == nil || convs[0].Last.ID != reply.ID {
		t.Errorf("Alice's chat list: %+v %v; want the reply as the last message", convs, err)
	}
}
