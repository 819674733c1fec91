package dht

import (
	"context"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
)

// TestRepublishOnReconnect: a node that loses every peer and gets one back
// republishes what it owns at once, without waiting for the interval.
func TestRepublishOnReconnect(t *testing.T) {
	tn := newTestNet(t, 3, netOpts{})
	ctx := context.Background()
	d := tn.nodes[0]
	k := key(t, "sleeper")
	d.SetOwned(k, longIdentity(t, k, tn.clock.Now()), nil)
	// Unlinked, the others can't dial back in.
	for _, h := range tn.hosts[1:] {
		if err := tn.mn.UnlinkPeers(tn.hosts[0].ID(), h.ID()); err != nil {
			t.Fatal(err)
		}
		if err := tn.hosts[0].Network().ClosePeer(h.ID()); err != nil {
			t.Fatal(err)
		}
	}
	check.Until(t, 30*time.Second, "no peers", func() bool { return len(tn.hosts[0].Network().Peers()) == 0 })
	if d.reconnects.Load() != 0 {
		t.Fatal("republished before any reconnect")
	}
	if _, err := tn.mn.LinkPeers(tn.hosts[0].ID(), tn.hosts[1].ID()); err != nil {
		t.Fatal(err)
	}
	if err := tn.hosts[0].Connect(ctx, tn.hosts[1].Peerstore().PeerInfo(tn.hosts[1].ID())); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 60*time.Second, "a republish on reconnect", func() bool { return d.reconnects.Load() >= 1 })
	tn.nodes[1].cache.clear()
	ir, err := tn.nodes[1].ResolveIdentity(ctx, k.Public().ID())
	if err != nil || !ir.Account.Equal(k.Public()) {
		t.Fatalf("identity after the reconnect: %v", err)
	}
}
