package dht

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

func TestKeepRepublishesMembersRecords(t *testing.T) {
	tn := newTestNet(t, testNodes, netOpts{})
	ctx := context.Background()
	member := key(t, "member")
	res := claim(t, tn, tn.nodes[3], member, "member")
	_, dkey, _, _ := parseName("member")
	raw := tn.nodes[3].localValue(ctx, dkey)
	if raw == nil {
		for _, d := range tn.nodes {
			if raw = d.localValue(ctx, dkey); raw != nil {
				break
			}
		}
	}
	if r, err := openHandle(raw); err != nil || r.Seq != res.Claim.Seq {
		t.Fatalf("stored record: %v", err)
	}
	public := tn.nodes[20]
	if err := public.Keep(dkey, raw); err != nil {
		t.Fatalf("keep: %v", err)
	}
	if err := public.Keep(dkey, []byte("junk")); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("keep junk: %v", err)
	}
	// Churn wipes the record from every node; the member's node is gone.
	for _, d := range tn.nodes {
		_ = d.store.Delete(ctx, valueDsKey(dkey))
	}
	r, err := tn.nodes[9].Resolve(ctx, "member")
	if err != nil || r.Status != StatusNotFound {
		t.Fatalf("after wipe: %v %+v", err, r)
	}
	if err := public.Republish(ctx); err != nil {
		t.Fatalf("republish: %v", err)
	}
	expectOwner(t, tn, "member", member.Public())
}

func TestLifecycle(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without host succeeded")
	}
	if _, err := New(Config{Host: h, PoW: identity.TestPoW, RecordTTL: MaxTTL + time.Hour}); err == nil {
		t.Fatal("RecordTTL above MaxTTL accepted")
	}
	d, err := New(Config{Host: h, PoW: identity.TestPoW, RepublishInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A client node with no peers can't resolve, and says so.
	if _, err := d.Resolve(context.Background(), "alice"); !errors.Is(err, ErrNoPeers) {
		t.Fatalf("resolve without peers: %v", err)
	}
	if _, err := d.Resolve(context.Background(), "no spaces allowed"); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("invalid handle: %v", err)
	}
	// The republish loop runs (and fails quietly) without peers, and Close
	// waits for it; Close is idempotent.
	k := key(t, "alice")
	d.SetOwned(k, testIdentity(t, k, time.Now()), []HandleClaim{{Name: "alice", Nonce: 1, Seq: 1, ClaimedAt: time.Now()}})
	check.Until(t, 10*time.Second, "republish passes", func() bool { return d.republishes.Load() >= 3 })
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("start after close: %v", err)
	}
	_ = h.Close()
}
