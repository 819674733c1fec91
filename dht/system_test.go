package dht

import (
	"context"
	"testing"
	"time"
)

func TestClaimResolvesEverywhere(t *testing.T) {
	tn := newTestNet(t, 20, netOpts{})
	ctx := context.Background()
	alice := key(t, "alice")
	owner := tn.nodes[3]
	if _, err := owner.PublishIdentity(ctx, alice, testIdentity(t, alice, tn.clock.Now())); err != nil {
		t.Fatalf("publish identity: %v", err)
	}
	res, err := owner.ClaimHandle(ctx, alice, "@Alice", nil)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if res.Status != ClaimClaimed || res.Name != "alice" || !res.Owner.Equal(alice.Public()) {
		t.Fatalf("claim = %+v", res)
	}
	for i, d := range tn.nodes {
		r, err := d.Resolve(ctx, "alice")
		if err != nil {
			t.Fatalf("node %d: resolve: %v", i, err)
		}
		if r.Status != StatusOK || !r.Owner.Equal(alice.Public()) {
			t.Fatalf("node %d: resolve = %s %v", i, r.Status, r.Conflicts)
		}
		if r.Identity == nil || r.Identity.DisplayName == "" {
			t.Fatalf("node %d: no identity record", i)
		}
	}
	_ = time.Second
}
