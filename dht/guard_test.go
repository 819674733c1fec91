package dht

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

func kadRecord(t *testing.T, dkey string, value []byte) []byte {
	t.Helper()
	b, err := proto.Marshal(&recpb.Record{Key: []byte(dkey), Value: value})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGuardRules(t *testing.T) {
	clock := newClock()
	c := newChecker(clock.Now, identity.TestPoW)
	grace := time.Hour
	g := &guard{Batching: dssync.MutexWrap(ds.NewMapDatastore()), check: c, grace: grace}
	ctx := context.Background()
	alice, mallory := key(t, "alice"), key(t, "mallory")
	_, dkey, _, _ := parseName("golden")
	dsk := valueDsKey(dkey)
	now := clock.Now()
	put := func(k *identity.AccountKey, seq uint64, claimed time.Time) error {
		_, raw := handleRec(t, k, "golden", seq, claimed, clock.Now(), time.Hour)
		return g.Put(ctx, dsk, kadRecord(t, dkey, raw))
	}
	if err := put(alice, 2, now); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if err := put(alice, 3, now); err != nil {
		t.Fatalf("same owner, higher seq: %v", err)
	}
	if err := put(alice, 1, now); !errors.Is(err, ErrStaleSeq) {
		t.Fatalf("same owner, lower seq: %v", err)
	}
	if err := put(mallory, 9, now.Add(-24*time.Hour)); !errors.Is(err, ErrIncumbent) {
		t.Fatalf("other owner while valid: %v", err)
	}
	clock.Advance(time.Hour + time.Minute) // alice's record expired, within grace
	if err := put(mallory, 9, clock.Now()); !errors.Is(err, ErrIncumbent) {
		t.Fatalf("other owner within grace: %v", err)
	}
	clock.Advance(grace)
	if err := put(mallory, 9, clock.Now()); err != nil {
		t.Fatalf("other owner after grace: %v", err)
	}

	// Invalid incoming records, mismatched keys and garbage.
	_, other := handleRec(t, alice, "silver", 1, clock.Now(), clock.Now(), time.Hour)
	if err := g.Put(ctx, dsk, kadRecord(t, dkey, other)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("another name's record under this key: %v", err)
	}
	_, silverKey, _, _ := parseName("silver")
	if err := g.Put(ctx, dsk, kadRecord(t, silverKey, other)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("record filed under another datastore key: %v", err)
	}
	if err := g.Put(ctx, dsk, []byte{0xff, 0x01}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("garbage: %v", err)
	}
	// Garbage already stored does not hold the name.
	if err := g.Batching.Put(ctx, valueDsKey(silverKey), []byte("junk")); err != nil {
		t.Fatal(err)
	}
	if err := g.Put(ctx, valueDsKey(silverKey), kadRecord(t, silverKey, other)); err != nil {
		t.Fatalf("over stored garbage: %v", err)
	}
	// Other namespaces pass through, also in batches.
	b, _ := g.Batch(ctx)
	if err := b.Put(ctx, ds.NewKey("/csid/x"), []byte("anything")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, dsk, []byte("junk")); err != nil {
		t.Fatal(err) // basic batches buffer; the guard runs at Commit
	}
	if err := b.Commit(ctx); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("batched garbage: %v", err)
	}
}

// storingPair is a writer node and a storing node configured by cfg.
func storingPair(t *testing.T, cfg func(i int, c *Config)) (*testNet, *DHT, *DHT) {
	tn := newTestNet(t, 2, netOpts{cfg: cfg})
	return tn, tn.nodes[0], tn.nodes[1]
}

func TestGuardAloneRefusesWithPermissiveSelect(t *testing.T) {
	tn, writer, store := storingPair(t, func(i int, c *Config) { c.permissiveSelect = true })
	ctx := context.Background()
	alice, mallory := key(t, "alice"), key(t, "mallory")
	now := tn.clock.Now()
	_, dkey, _, _ := parseName("golden")
	_, ar := handleRec(t, alice, "golden", 1, now, now, time.Hour)
	to := []peer.ID{store.host.ID()}
	if writer.putTo(ctx, to, dkey, ar) != 1 {
		t.Fatal("alice's claim refused")
	}
	// A later claim: a correct Select would refuse it, but Select here takes
	// anything; the guard alone must refuse.
	_, mr := handleRec(t, mallory, "golden", 1, now.Add(time.Minute), now.Add(time.Minute), time.Hour)
	if writer.putTo(ctx, to, dkey, mr) != 0 {
		t.Fatal("guard let another owner replace a valid record")
	}
	if r, _ := openHandle(store.localValue(ctx, dkey)); r == nil || !r.Owner.Equal(alice.Public()) {
		t.Fatal("stored record is not alice's")
	}
	// A record of the same owner with a lower seq is refused too.
	_, ar2 := handleRec(t, alice, "golden", 2, now, now, time.Hour)
	if writer.putTo(ctx, to, dkey, ar2) != 1 {
		t.Fatal("alice's seq 2 refused")
	}
	if writer.putTo(ctx, to, dkey, ar) != 0 {
		t.Fatal("alice's seq 1 accepted after seq 2")
	}
}

func TestSelectAtStoringNodeWithoutGuard(t *testing.T) {
	tn, writer, store := storingPair(t, func(i int, c *Config) { c.noGuard = true })
	ctx := context.Background()
	alice, mallory := key(t, "alice"), key(t, "mallory")
	now := tn.clock.Now()
	_, dkey, _, _ := parseName("golden")
	_, ar := handleRec(t, alice, "golden", 1, now.Add(-time.Hour), now, time.Hour)
	to := []peer.ID{store.host.ID()}
	if writer.putTo(ctx, to, dkey, ar) != 1 {
		t.Fatal("alice's claim refused")
	}
	// Select at the storing node refuses a later claim by another owner...
	_, later := handleRec(t, mallory, "golden", 7, now, now, time.Hour)
	if writer.putTo(ctx, to, dkey, later) != 0 {
		t.Fatal("Select let a later claim replace the incumbent")
	}
	// ...but not a backdated one: claimed_at is self-asserted. This is why
	// the guard exists.
	_, backdated := handleRec(t, mallory, "golden", 7, now.Add(-48*time.Hour), now, time.Hour)
	if writer.putTo(ctx, to, dkey, backdated) != 1 {
		t.Fatal("expected Select alone to accept a backdated claim")
	}
}
