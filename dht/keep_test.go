package dht

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

// longIdentity is testIdentity with a device certificate valid a year, so
// that records signed for the next 90 days validate.
func longIdentity(tb testing.TB, k *identity.AccountKey, now time.Time) *IdentityRecord {
	tb.Helper()
	r := testIdentity(tb, k, now)
	x := sha256.Sum256([]byte("x25519" + string(k.Public().ID())))
	cert, err := identity.IssueDeviceCert(k, []byte("peer-"+string(k.Public().ID())[:8]), x[:], now.Add(-time.Hour), now.Add(365*24*time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	r.Devices = []identity.DeviceCert{cert}
	return r
}

// presignFor publishes k's identity and handle name on owner, hands them to
// its republisher and returns the signed schedule.
func presignFor(t *testing.T, tn *testNet, owner *DHT, k *identity.AccountKey, name string) []byte {
	t.Helper()
	ctx := context.Background()
	rec := longIdentity(t, k, tn.clock.Now())
	if _, err := owner.PublishIdentity(ctx, k, rec); err != nil {
		t.Fatalf("publish identity: %v", err)
	}
	res, err := owner.ClaimHandle(ctx, k, name, nil)
	if err != nil || res.Status != ClaimClaimed {
		t.Fatalf("claim: %v %+v", err, res)
	}
	owner.SetOwned(k, rec, []HandleClaim{*res.Claim})
	raw, err := owner.Presign()
	if err != nil || raw == nil {
		t.Fatalf("presign: %v", err)
	}
	return raw
}

// TestKeepNinetyDays: a member hands its keeper a schedule and goes away for
// good. A third node resolves its handle and identity on every day up to
// day 90 (the keeper publishing each record as its window starts), and at
// day 91 finds the name expired, as docs/ADDRESSBOOK.md says.
func TestKeepNinetyDays(t *testing.T) {
	tn := newTestNet(t, 6, netOpts{})
	ctx := context.Background()
	owner, keeper, reader := tn.nodes[0], tn.nodes[1], tn.nodes[2]
	k := key(t, "holiday")
	raw := presignFor(t, tn, owner, k, "holiday")
	n, err := keeper.AcceptKeep(ctx, raw)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	if want := 2 * int(KeepHorizon/KeepStep); n != want {
		t.Fatalf("kept %d records, want %d", n, want)
	}
	// The owner leaves.
	owner.SetOwned(nil, nil, nil)
	_ = owner.Close()
	_ = tn.hosts[0].Close()

	resolve := func(day float64) *Resolution {
		t.Helper()
		reader.cache.clear()
		r, err := reader.Resolve(ctx, "holiday")
		if err != nil {
			t.Fatalf("day %.2f: resolve: %v", day, err)
		}
		return r
	}
	start := tn.clock.Now()
	var lastSeq uint64
	for day := 1; day < 90; day++ {
		tn.clock.Advance(24 * time.Hour)
		keeper.keepPass(ctx, "")
		// Once in each record's window (and at its last day) is enough.
		if day%6 != 5 && day != 89 {
			continue
		}
		r := resolve(float64(day))
		if r.Status != StatusOK || !r.Owner.Equal(k.Public()) {
			t.Fatalf("day %d: %s owner %v", day, r.Status, r.Owner)
		}
		if r.Identity == nil || r.Identity.Seq < lastSeq {
			t.Fatalf("day %d: identity %+v (last seq %d)", day, r.Identity, lastSeq)
		}
		lastSeq = r.Identity.Seq
	}
	// The last minute of day 90 still resolves.
	tn.clock.Advance(start.Add(KeepHorizon - time.Minute).Sub(tn.clock.Now()))
	keeper.keepPass(ctx, "")
	if r := resolve(90); r.Status != StatusOK {
		t.Fatalf("day 90 less a minute: %s", r.Status)
	}
	// Day 91, no renewal: expired everywhere, and the keeper has let go.
	tn.clock.Advance(25 * time.Hour)
	keeper.keepPass(ctx, "")
	if r := resolve(91); r.Status != StatusExpired {
		t.Fatalf("day 91: %s, want %s", r.Status, StatusExpired)
	}
	if keeper.KeptMembers() != 0 {
		t.Fatalf("keeper still keeps %d schedules after they ended", keeper.KeptMembers())
	}
	if _, err := keeper.store.Get(ctx, keepDsKey(k.Public().ID())); !errors.Is(err, ds.ErrNotFound) {
		t.Fatalf("ended schedule still stored: %v", err)
	}
}

// TestKeepRefusesBadSchedules: forged, backdated, out-of-window, foreign
// and stale schedules are refused with a clear error, and nothing is kept
// or stored.
func TestKeepRefusesBadSchedules(t *testing.T) {
	tn := newTestNet(t, 2, netOpts{})
	ctx := context.Background()
	keeper := tn.nodes[1]
	now := tn.clock.Now().Truncate(time.Millisecond)
	alice, mallory := key(t, "alice"), key(t, "mallory")
	idRec := func(k *identity.AccountKey, seq uint64, issued time.Time) KeptRecord {
		r := longIdentity(t, k, now)
		r.Seq, r.Issued, r.Expires = seq, issued, issued.Add(MaxTTL)
		raw, err := sealIdentity(k, r)
		if err != nil {
			t.Fatal(err)
		}
		return KeptRecord{Key: identityKey(k.Public().ID()), Raw: raw}
	}
	hRec := func(k *identity.AccountKey, seq uint64, issued time.Time) KeptRecord {
		_, raw := handleRec(t, k, "alice", seq, now, issued, MaxTTL)
		_, dkey, _, _ := parseName("alice")
		return KeptRecord{Key: dkey, Raw: raw}
	}
	sign := func(k *identity.AccountKey, created time.Time, recs ...KeptRecord) []byte {
		raw, err := SignKeepRequest(k, &KeepRequest{Created: created, Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good := sign(alice, now, idRec(alice, 2, now), idRec(alice, 3, now.Add(KeepStep)), hRec(alice, 2, now))
	forged := bytes.Clone(good)
	forged[len(forged)-1] ^= 1 // the request's signature
	// A record of alice's re-signed by mallory: its signature is mallory's.
	swapped := idRec(mallory, 2, now)
	swapped.Key = identityKey(alice.Public().ID())

	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		{"garbage", []byte("not a request"), ErrKeepRefused},
		{"forged request signature", forged, ErrBadSignature},
		{"record signed by another key", sign(alice, now, swapped), ErrWrongKey},
		{"another account's handle", sign(alice, now, hRec(mallory, 2, now)), ErrKeepRefused},
		{"backdated request", sign(alice, now.Add(-time.Hour), idRec(alice, 2, now)), ErrBackdated},
		{"backdated record", sign(alice, now, idRec(alice, 2, now.Add(-time.Hour))), ErrBackdated},
		{"beyond the horizon", sign(alice, now, idRec(alice, 2, now.Add(KeepHorizon))), ErrOutOfWindow},
		{"dated in the future", sign(alice, now.Add(time.Hour), idRec(alice, 2, now.Add(time.Hour))), ErrOutOfWindow},
		{"seq not increasing", sign(alice, now, idRec(alice, 3, now), idRec(alice, 3, now.Add(KeepStep))), ErrKeepRefused},
		{"no records", sign(alice, now), ErrKeepRefused},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := keeper.AcceptKeep(ctx, c.raw)
			if !errors.Is(err, c.want) || !errors.Is(err, ErrKeepRefused) {
				t.Fatalf("AcceptKeep: %v, want %v", err, c.want)
			}
			if keeper.KeptMembers() != 0 {
				t.Fatal("a refused schedule is kept")
			}
			if _, err := keeper.store.Get(ctx, keepDsKey(alice.Public().ID())); !errors.Is(err, ds.ErrNotFound) {
				t.Fatalf("a refused schedule is stored: %v", err)
			}
		})
	}
	// The good one is kept; an older one of the same member is then stale.
	if _, err := keeper.AcceptKeep(ctx, good); err != nil {
		t.Fatalf("good schedule: %v", err)
	}
	older := sign(alice, now.Add(-time.Minute), idRec(alice, 2, now))
	if _, err := keeper.AcceptKeep(ctx, older); !errors.Is(err, ErrKeepStale) {
		t.Fatalf("older schedule: %v, want ErrKeepStale", err)
	}
	if _, err := keeper.AcceptKeep(ctx, good); !errors.Is(err, ErrKeepStale) {
		t.Fatalf("replayed schedule: %v, want ErrKeepStale", err)
	}
}

// TestKeepSurvivesRestart: a keeper's schedules are in its datastore; a new
// DHT on the same store keeps them and republishes the current records.
func TestKeepSurvivesRestart(t *testing.T) {
	store := dssync.MutexWrap(ds.NewMapDatastore())
	tn := newTestNet(t, 4, netOpts{cfg: func(i int, c *Config) {
		if i == 1 {
			c.Datastore = store
		}
	}})
	ctx := context.Background()
	k := key(t, "traveller")
	raw := presignFor(t, tn, tn.nodes[0], k, "traveller")
	if _, err := tn.nodes[1].AcceptKeep(ctx, raw); err != nil {
		t.Fatal(err)
	}
	_ = tn.nodes[1].Close()
	d, err := New(Config{Host: tn.hosts[1], Server: true, PoW: identity.TestPoW, Now: tn.clock.Now,
		Datastore: store, peerTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tn.nodes[1] = d
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if d.KeptMembers() != 1 {
		t.Fatalf("after restart: %d schedules, want 1", d.KeptMembers())
	}
	check.Until(t, 30*time.Second, "the current records kept again", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.kept) == 2
	})
}
