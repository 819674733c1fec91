package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

// waitState polls until message id in c's conversation with peer reaches state.
//
// It waits up to two minutes: a first message to a stranger carries a
// first-contact stamp, whose cost is random (about 256 Argon2id
// evaluations on average, geometric: one in twenty takes three times
// that), 0.3 s on average here but 7–10 s, and past 30 s in the tail, for
// a race-detector build on a busy machine. The tests that use it check
// that a message gets there, not how fast.
func waitState(t *testing.T, c *api.Client, peer, id, state string) {
	t.Helper()
	check.Eventually(t, 2*time.Minute, func() error {
		p, err := c.Messages(context.Background(), peer, "", 1000)
		if err != nil {
			return err
		}
		for _, m := range p.Messages {
			if m.ID == id {
				if m.State == state {
					return nil
				}
				return fmt.Errorf("message %s is %s, want %s", id, m.State, state)
			}
		}
		return fmt.Errorf("message %s not in the conversation", id)
	})
}

// befriend makes alice and bob each other's contacts, by account id, as
// "alice" and "bob": what they send each other is no request.
func befriend(t *testing.T, ctx context.Context, alice, bob *testnet.Node) {
	t.Helper()
	if _, err := bob.Client.AddContact(ctx, alice.Account().String(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.AddContact(ctx, bob.Account().String(), "bob"); err != nil {
		t.Fatal(err)
	}
}

func texts(t *testing.T, c *api.Client, peer string) []string {
	t.Helper()
	p, err := c.Messages(context.Background(), peer, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range p.Messages {
		out = append(out, m.Direction+":"+m.Text)
	}
	return out
}

// TestMessaging: two people who found each other by handle write both ways;
// a stranger's message waits in requests; accept, block and read receipts
// behave as a user expects.
func TestMessaging(t *testing.T) {
	net := testnet.New(t, 5, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}})
	ctx := ctxT(t, 3*time.Minute)
	alice, bob, carol := net.Nodes[1], net.Nodes[2], net.Nodes[3]
	for nd, name := range map[*testnet.Node]string{alice: "alice", bob: "bob", carol: "carol"} {
		if cl, err := nd.Client.Claim(ctx, name); err != nil || cl.Status != "claimed" {
			t.Fatalf("claim %s: %+v %v", name, cl, err)
		}
	}
	aliceEvents, err := alice.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Bob writes to @alice by handle: durable at once, then delivered.
	m, err := bob.Client.Send(ctx, "@alice", "hello alice")
	if err != nil {
		t.Fatal(err)
	}
	if m.State != "queued" || m.Direction != "out" || m.To != alice.Account().String() || m.ID == "" {
		t.Fatalf("send: %+v", m)
	}
	waitState(t, bob.Client, "alice", m.ID, "delivered")

	// Bob is no contact of Alice's: his message is a request, with an event.
	reqs, err := alice.Client.Requests(ctx)
	if err != nil || len(reqs) != 1 || reqs[0].Peer != bob.Account().String() || reqs[0].Unread != 1 {
		t.Fatalf("requests: %+v %v", reqs, err)
	}
	sawRequest := false
	for !sawRequest {
		select {
		case ev := <-aliceEvents:
			if ev.Type == api.EventRequest && strings.Contains(string(ev.Data), "hello alice") {
				sawRequest = true
			}
		case <-ctx.Done():
			t.Fatal("no request event")
		}
	}
	if convs, _ := alice.Client.Conversations(ctx); len(convs) != 0 {
		t.Fatalf("a request shows as a conversation: %+v", convs)
	}
	// She accepts; the conversation moves out of requests; she replies.
	ct, err := alice.Client.Accept(ctx, bob.Account().String())
	if err != nil || ct.Account != bob.Account().String() || ct.Petname != "bob" {
		t.Fatalf("accept: %+v %v", ct, err)
	}
	if reqs, _ := alice.Client.Requests(ctx); len(reqs) != 0 {
		t.Fatalf("requests after accept: %+v", reqs)
	}
	r, err := alice.Client.Send(ctx, "bob", "hi bob")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, alice.Client, "bob", r.ID, "delivered")
	if got := texts(t, bob.Client, "alice"); strings.Join(got, "|") != "out:hello alice|in:hi bob" {
		t.Fatalf("bob's conversation: %v", got)
	}
	if got := texts(t, alice.Client, "bob"); strings.Join(got, "|") != "in:hello alice|out:hi bob" {
		t.Fatalf("alice's conversation: %v", got)
	}
	// Bob sent to Alice first, so her reply is no request for him.
	if reqs, _ := bob.Client.Requests(ctx); len(reqs) != 0 {
		t.Fatalf("bob's requests: %+v", reqs)
	}

	// Read receipts go to contacts: Alice reads, Bob sees "read".
	if err := alice.Client.MarkRead(ctx, "bob", nil); err != nil {
		t.Fatal(err)
	}
	waitState(t, bob.Client, "alice", m.ID, "read")
	// Bob reads Alice's reply; Alice is Bob's contact (he wrote first).
	if err := bob.Client.MarkRead(ctx, "alice", nil); err != nil {
		t.Fatal(err)
	}
	waitState(t, alice.Client, "bob", r.ID, "read")

	// Carol, a stranger, writes; Alice blocks her; Carol's next message is
	// dropped silently (Carol learns nothing), and nothing is stored.
	c1, err := carol.Client.Send(ctx, "alice", "first from carol")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, carol.Client, "alice", c1.ID, "delivered")
	if _, err := alice.Client.ContactAction(ctx, carol.Account().String(), "block"); err != nil {
		t.Fatal(err)
	}
	c2, err := carol.Client.Send(ctx, "alice", "second from carol")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, carol.Client, "alice", c2.ID, "delivered")
	if got := texts(t, alice.Client, carol.Account().String()); strings.Join(got, "|") != "in:first from carol" {
		t.Fatalf("alice's messages from carol after blocking: %v", got)
	}
	// Her request no longer asks Alice for a decision.
	if reqs, err := alice.Client.Requests(ctx); err != nil || len(reqs) != 0 {
		t.Fatalf("alice's requests after blocking carol: %+v %v", reqs, err)
	}
	// Reading a request sends no receipt to a non-contact.
	if _, err := alice.Client.ContactAction(ctx, carol.Account().String(), "unblock"); err != nil {
		t.Fatal(err)
	}

	// Bad input: too large, empty, unknown recipient, yourself.
	if _, err := bob.Client.Send(ctx, "alice", strings.Repeat("x", 70000)); !api.IsCode(err, api.CodeTooLarge) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := bob.Client.Send(ctx, "alice", ""); !api.IsCode(err, api.CodeBadRequest) {
		t.Fatalf("empty: %v", err)
	}
	if _, err := bob.Client.Send(ctx, "nobody-at-all", "hi"); !api.IsCode(err, api.CodeNotFound) {
		t.Fatalf("unknown recipient: %v", err)
	}
	if _, err := bob.Client.Send(ctx, bob.Account().String(), "hi"); !api.IsCode(err, api.CodeBadRequest) {
		t.Fatalf("to self: %v", err)
	}

	// Safety numbers match on both sides; confirming marks verified.
	sa, err := alice.Client.Safety(ctx, "bob", false)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := bob.Client.Safety(ctx, "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	if sa.SafetyNumber != sb.SafetyNumber || len(strings.ReplaceAll(sa.SafetyNumber, " ", "")) != 60 || sa.Verified || !sb.Verified {
		t.Fatalf("safety: %+v %+v", sa, sb)
	}
}

// TestMessagingThroughRelay: two nodes that nobody can dial (behind NATs)
// share a public node; their messages travel over relayed (limited)
// connections through it.
func TestMessagingThroughRelay(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}})
	ctx := ctxT(t, 2*time.Minute)
	a, b := net.AddBehindNAT(), net.AddBehindNAT()
	check.Eventually(t, 30*time.Second, func() error {
		if !a.Published() || !b.Published() {
			return fmt.Errorf("not published yet")
		}
		return nil
	})
	if _, err := b.Client.AddContact(ctx, a.Account().String(), "a"); err != nil {
		t.Fatal(err)
	}
	m, err := a.Client.Send(ctx, b.Account().String(), "through the relay")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, a.Client, b.Account().String(), m.ID, "delivered")
	if got := texts(t, b.Client, "a"); strings.Join(got, "|") != "in:through the relay" {
		t.Fatalf("b's conversation: %v", got)
	}
	r, err := b.Client.Send(ctx, "a", "and back")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, b.Client, "a", r.ID, "delivered")
	// Every connection between the two is relayed: neither listens.
	conns := a.Host().Network().ConnsToPeer(b.Host().ID())
	if len(conns) == 0 {
		t.Fatal("no connection between the two")
	}
	for _, c := range conns {
		if !c.Stat().Limited || !strings.Contains(c.RemoteMultiaddr().String(), "/p2p-circuit") {
			t.Fatalf("direct connection between NATed nodes: %s", c.RemoteMultiaddr())
		}
	}
}
