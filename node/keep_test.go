package node_test

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
	"github.com/callsign/callsign/p2p"
)

// TestPublicNodeRestartKeepsNames: members hand the community node their
// schedules and leave; the community node restarts; a newcomer whose only
// peer is the community node resolves every member at once, from the
// community node's store on disk. Strangers' keep requests are refused.
func TestPublicNodeRestartKeepsNames(t *testing.T) {
	net := testnet.New(t, 4, testnet.Options{})
	ctx := ctxT(t, 3*time.Minute)
	hub := net.Nodes[0]
	names := []string{"erin", "frank", "grace"}
	accounts := map[string]string{}
	for i, name := range names {
		nd := net.Nodes[i+1]
		cl, err := nd.Client.Claim(ctx, name)
		if err != nil || cl.Status != "claimed" {
			t.Fatalf("claim %s: %+v %v", name, cl, err)
		}
		accounts[name] = cl.Owner
	}
	// Each member hands its schedule to the hub after it publishes.
	check.Eventually(t, 2*time.Minute, func() error {
		if n := hub.DHT().KeptMembers(); n < len(names) {
			return fmt.Errorf("the hub keeps %d members' records", n)
		}
		return nil
	})

	// Strangers: garbage, and a well-formed request of an account that is
	// no member, are refused, and nothing more is kept.
	stranger := net.Nodes[1].Host()
	if _, err := p2p.Request(ctx, stranger, hub.Host().ID(), node.KeepProtocol, false, []byte("junk"), 64); err == nil {
		t.Fatal("garbage keep request accepted")
	}
	k, err := identity.GenerateAccountKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	req, err := dht.SignKeepRequest(k, &dht.KeepRequest{Created: time.Now(),
		Records: []dht.KeptRecord{{Key: "/csid/" + string(k.Public().ID()), Raw: []byte("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2p.Request(ctx, stranger, hub.Host().ID(), node.KeepProtocol, false, req, 64); err == nil {
		t.Fatal("a non-member's keep request accepted")
	}
	if n := hub.DHT().KeptMembers(); n != len(names) {
		t.Fatalf("the hub keeps %d members' records after strangers' requests", n)
	}

	// The members leave; the hub restarts; a newcomer joins through it.
	for _, nd := range net.Nodes[1:4] {
		nd.Client.Close()
		if err := nd.Node.Close(); err != nil {
			t.Fatal(err)
		}
	}
	hub = net.Restart(hub)
	if n := hub.DHT().KeptMembers(); n != len(names) {
		t.Fatalf("after restart the hub keeps %d members' records", n)
	}
	reader := net.Add(false)
	// It joins in the background: wait for its one peer, not for names.
	check.Eventually(t, time.Minute, func() error {
		if reader.DHT().RoutingTableSize() == 0 {
			return fmt.Errorf("the newcomer has no peer yet")
		}
		return nil
	})
	for _, name := range names {
		w, err := reader.Client.Whois(ctx, name)
		if err != nil || w.Status != "ok" || w.Account != accounts[name] {
			t.Fatalf("whois %s after the hub restarted: %+v %v", name, w, err)
		}
		w, err = reader.Client.Whois(ctx, accounts[name])
		if err != nil || w.Status != "ok" || len(w.Devices) != 1 {
			t.Fatalf("whois %s's account after the hub restarted: %+v %v", name, w, err)
		}
	}
}
