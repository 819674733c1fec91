package node_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

// TestTypingIndicators: typing indicators are off until a person turns
// them on, and then go only between contacts who both have them on: Bob
// sees Alice typing and stopping once both turned them on, not before;
// Carol, who has Alice as a contact but is none of hers, is never shown
// to Alice.
func TestTypingIndicators(t *testing.T) {
	net := testnet.New(t, 4, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}})
	ctx := ctxT(t, 2*time.Minute)
	alice, bob, carol := net.Nodes[1], net.Nodes[2], net.Nodes[3]
	befriend(t, ctx, alice, bob)
	if _, err := carol.Client.AddContact(ctx, alice.Account().String(), "alice"); err != nil {
		t.Fatal(err)
	}
	// A message each way first: the signal lane then has its sessions.
	if _, err := alice.Client.Send(ctx, "bob", "hi"); err != nil {
		t.Fatal(err)
	}
	if s, err := alice.Client.TypingSettings(ctx); err != nil || s.On {
		t.Fatalf("typing indicators by default: %+v %v, want off", s, err)
	}
	typing := func(c *api.Client) <-chan api.Typing {
		events, err := c.Events(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := make(chan api.Typing, 16)
		go func() {
			for ev := range events {
				var ty api.Typing
				if ev.Type == api.EventTyping && json.Unmarshal(ev.Data, &ty) == nil {
					out <- ty
				}
			}
		}()
		return out
	}
	atBob, atAlice := typing(bob.Client), typing(alice.Client)
	none := func(ch <-chan api.Typing, who string) {
		t.Helper()
		select {
		case ty := <-ch:
			t.Fatalf("%s was shown %+v", who, ty)
		case <-time.After(2 * time.Second):
		}
	}
	want := func(ch <-chan api.Typing, peer string, on bool) {
		t.Helper()
		select {
		case ty := <-ch:
			if ty.Peer != peer || ty.Typing != on {
				t.Fatalf("shown %+v, want %s typing=%v", ty, peer, on)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no typing event for %s typing=%v", peer, on)
		}
	}

	// Off on both sides, then on at Bob's only: nothing.
	if err := alice.Client.Typing(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	none(atBob, "Bob, indicators off everywhere,")
	if err := alice.Client.Typing(ctx, "bob", false); err != nil {
		t.Fatal(err)
	}
	on := api.TypingSettings{On: true}
	if _, err := bob.Client.SetTypingSettings(ctx, on); err != nil {
		t.Fatal(err)
	}
	if err := alice.Client.Typing(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	none(atBob, "Bob, Alice's indicators off,")
	if err := alice.Client.Typing(ctx, "bob", false); err != nil {
		t.Fatal(err)
	}
	none(atBob, "Bob, Alice's indicators off,")

	// Both on: Bob sees Alice type, then stop.
	if s, err := alice.Client.SetTypingSettings(ctx, on); err != nil || !s.On {
		t.Fatalf("turn on: %+v %v", s, err)
	}
	if err := alice.Client.Typing(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	want(atBob, alice.Account().String(), true)
	if err := alice.Client.Typing(ctx, "bob", false); err != nil {
		t.Fatal(err)
	}
	want(atBob, alice.Account().String(), false)

	// Carol (indicators on) is no contact of Alice's: Alice is not shown.
	if _, err := carol.Client.SetTypingSettings(ctx, on); err != nil {
		t.Fatal(err)
	}
	if err := carol.Client.Typing(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	none(atAlice, "Alice, Carol no contact of hers,")
}
