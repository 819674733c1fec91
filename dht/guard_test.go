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

// TestGuardAsksBeforeAFirstRecord: with nothing held for a name, the guard
// asks verify (the network check) and its refusal refuses the record; with
// a record held it decides alone; a record stored while verify ran is the
// incumbent the new one meets; and our own records skip the check.
func TestGuardAsksBeforeAFirstRecord(t *testing.T) {
	clock := newClock()
	c := newChecker(clock.Now, identity.TestPoW)
	ctx := context.Background()
	alice, mallory := key(t, "alice"), key(t, "mallory")
	_, dkey, _, _ := parseName("golden")
	dsk := valueDsKey(dkey)
	now := clock.Now()
	_, ar := handleRec(t, alice, "golden", 1, now, now, time.Hour)
	_, mr := handleRec(t, mallory, "golden", 1, now.Add(-24*time.Hour), now, time.Hour)

	var asked []string
	g := &guard{Batching: dssync.MutexWrap(ds.NewMapDatastore()), check: c, grace: time.Hour,
		verify: func(_ context.Context, key string, in *HandleRecord) error {
			asked = append(asked, key)
			if in.Owner.Equal(mallory.Public()) {
				return ErrIncumbent
			}
			return nil
		}}
	if err := g.Put(ctx, dsk, kadRecord(t, dkey, mr)); !errors.Is(err, ErrIncumbent) || len(asked) != 1 || asked[0] != dkey {
		t.Fatalf("first record, network refuses: %v (asked %v)", err, asked)
	}
	if _, err := g.Batching.Get(ctx, dsk); !errors.Is(err, ds.ErrNotFound) {
		t.Fatalf("refused record stored: %v", err)
	}
	if err := g.Put(ctx, dsk, kadRecord(t, dkey, ar)); err != nil || len(asked) != 2 {
		t.Fatalf("first record, network agrees: %v (asked %d)", err, len(asked))
	}
	// Held: the stored record decides, the network is not asked.
	_, ar2 := handleRec(t, alice, "golden", 2, now, now, time.Hour)
	if err := g.Put(ctx, dsk, kadRecord(t, dkey, ar2)); err != nil || len(asked) != 2 {
		t.Fatalf("same owner, held: %v (asked %d)", err, len(asked))
	}

	// A record stored while verify runs (the guard is unlocked then) is the
	// incumbent the checked one meets.
	_, skey, _, _ := parseName("silver")
	_, sa := handleRec(t, alice, "silver", 1, now, now, time.Hour)
	_, sm := handleRec(t, mallory, "silver", 1, now, now, time.Hour)
	g.verify = func(ctx context.Context, key string, in *HandleRecord) error {
		if in.Owner.Equal(alice.Public()) {
			g.verify = func(context.Context, string, *HandleRecord) error { return nil }
			if err := g.Put(ctx, valueDsKey(skey), kadRecord(t, skey, sm)); err != nil {
				t.Errorf("put during the check: %v", err)
			}
		}
		return nil
	}
	if err := g.Put(ctx, valueDsKey(skey), kadRecord(t, skey, sa)); !errors.Is(err, ErrIncumbent) {
		t.Fatalf("after another owner's record was stored during the check: %v", err)
	}

	// Our own record: no network check, but a held incumbent still holds.
	g.verify = func(context.Context, string, *HandleRecord) error { return errors.New("asked") }
	_, bkey, _, _ := parseName("bronze")
	_, ba := handleRec(t, alice, "bronze", 1, now, now, time.Hour)
	if err := g.put(ctx, valueDsKey(bkey), kadRecord(t, bkey, ba), false); err != nil {
		t.Fatalf("own first record: %v", err)
	}
	_, bm := handleRec(t, mallory, "bronze", 1, now, now, time.Hour)
	if err := g.put(ctx, valueDsKey(bkey), kadRecord(t, bkey, bm), false); !errors.Is(err, ErrIncumbent) {
		t.Fatalf("unchecked put over an incumbent: %v", err)
	}
}
