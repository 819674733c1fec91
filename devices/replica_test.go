package devices

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// device is one replica with its own store in its own data directory.
type device struct {
	id      identity.DeviceID
	x       []byte
	db      *store.DB
	r       *Replica
	applied []Op // what the appliers were handed, in order
}

func newDevice(t testing.TB, seed byte, dir string) *device {
	t.Helper()
	x := bytes.Repeat([]byte{seed}, identity.X25519KeySize)
	opts := store.Options{InMemory: true}
	if dir != "" {
		opts = store.Options{Dir: dir}
	}
	db, err := store.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d := &device{id: identity.DeviceIDOf(x), x: x, db: db}
	record := func(_ *store.Tx, op Op) error { d.applied = append(d.applied, op); return nil }
	d.r = NewReplica(d.id, map[Kind]Applier{KindContactName: record, KindRoster: record, KindCopy: record})
	return d
}

func (d *device) change(t testing.TB, kind Kind, key, value []byte) Op {
	t.Helper()
	var op Op
	err := d.db.Update(func(tx *store.Tx) (err error) {
		op, err = d.r.Change(tx, kind, key, value)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// apply sends ops to d through the wire form, as a sibling's frame would.
func (d *device) apply(t testing.TB, ops []Op) int {
	t.Helper()
	b, err := MarshalBatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := d.db.Update(func(tx *store.Tx) (err error) { n, err = d.r.Apply(tx, got); return err }); err != nil {
		t.Fatal(err)
	}
	return n
}

func (d *device) all(t testing.TB) []Op {
	t.Helper()
	var ops []Op
	if err := d.db.View(func(tx *store.Tx) (err error) { ops, err = d.r.All(tx); return err }); err != nil {
		t.Fatal(err)
	}
	return ops
}

func (d *device) get(t testing.TB, kind Kind, key []byte) (Op, bool) {
	t.Helper()
	var op Op
	var ok bool
	if err := d.db.View(func(tx *store.Tx) (err error) { op, ok, err = d.r.Get(tx, kind, key); return err }); err != nil {
		t.Fatal(err)
	}
	return op, ok
}

func rosterValue(x []byte, name string, revoked bool) []byte {
	e := RosterEntry{PeerID: []byte("peer-" + string(x[:1])), X25519: x, Name: name, Added: t0}
	if revoked {
		e.RevokedAt = t0.Add(time.Hour)
	}
	return e.Marshal()
}

// TestLWWConverges: three devices write the same registers concurrently and
// receive one another's ops in random orders, in random batches, some more
// than once. They end with the same registers, and each register holds
// what its rule picks among all the writes: the highest stamp, the greatest
// read mark, a revoked roster entry over any other.
func TestLWWConverges(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := mrand.New(mrand.NewPCG(seed, 7))
			devs := []*device{newDevice(t, 1, ""), newDevice(t, 2, ""), newDevice(t, 3, "")}
			rosterKeys := [][]byte{bytes.Repeat([]byte{9}, identity.X25519KeySize), bytes.Repeat([]byte{10}, identity.X25519KeySize)}
			var written []Op
			inbox := make([][]Op, len(devs)) // ops each device has not been sent yet
			for step := 0; step < 120; step++ {
				d := rng.IntN(len(devs))
				if rng.IntN(3) > 0 {
					var op Op
					switch rng.IntN(4) {
					case 0, 1:
						op = devs[d].change(t, KindContactName, []byte{'c', byte(rng.IntN(3))}, []byte(fmt.Sprintf("name %d.%d", d, step)))
					case 2:
						op = devs[d].change(t, KindRead, []byte("conv"), []byte{byte(rng.IntN(250)), byte(d)})
					case 3:
						x := rosterKeys[rng.IntN(2)]
						id := identity.DeviceIDOf(x)
						var err error
						err = devs[d].db.Update(func(tx *store.Tx) (err error) {
							op, err = devs[d].r.Change(tx, KindRoster, id[:], rosterValue(x, fmt.Sprint("dev", step), rng.IntN(4) == 0))
							return err
						})
						if errors.Is(err, ErrRevoked) {
							continue
						}
						if err != nil {
							t.Fatal(err)
						}
					}
					written = append(written, op)
					for o := range devs {
						if o != d {
							inbox[o] = append(inbox[o], op)
						}
					}
					continue
				}
				// Deliver a random part of d's inbox, shuffled, with duplicates.
				n := rng.IntN(len(inbox[d]) + 1)
				batch := slices.Clone(inbox[d][:n])
				inbox[d] = inbox[d][n:]
				if len(batch) > 0 && rng.IntN(2) == 0 {
					batch = append(batch, batch[rng.IntN(len(batch))])
				}
				rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				devs[d].apply(t, batch)
			}
			// Everyone gets everything, again and in another order.
			for _, d := range devs {
				all := slices.Clone(written)
				rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
				for len(all) > 0 {
					n := min(len(all), 1+rng.IntN(40))
					d.apply(t, all[:n])
					all = all[n:]
				}
			}
			want := expected(written)
			for i, d := range devs {
				got := d.all(t)
				if !slices.EqualFunc(got, want, opEqual) {
					t.Fatalf("device %d holds\n%s\nwant\n%s", i+1, dump(got), dump(want))
				}
			}
		})
	}
}

// expected is the oracle: each register's value by its rule, computed
// from every write at once, in the order All returns registers (key order).
func expected(written []Op) []Op {
	best := map[string]Op{}
	for _, op := range written {
		k := string(regKey(op.Kind, op.Key))
		old, ok := best[k]
		if !ok || better(op, old) {
			best[k] = op
		}
	}
	keys := make([]string, 0, len(best))
	for k := range best {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]Op, 0, len(keys))
	for _, k := range keys {
		out = append(out, best[k])
	}
	return out
}

// better restates the rules without the package's code: read marks by
// value, roster entries revoked first, then the stamp.
func better(a, b Op) bool {
	if a.Kind == KindRead && !bytes.Equal(a.Value, b.Value) {
		return bytes.Compare(a.Value, b.Value) > 0
	}
	if a.Kind == KindRoster {
		ra, _ := UnmarshalRosterEntry(a.Value)
		rb, _ := UnmarshalRosterEntry(b.Value)
		if ra.Revoked() != rb.Revoked() {
			return ra.Revoked()
		}
	}
	if a.Stamp.Clock != b.Stamp.Clock {
		return a.Stamp.Clock > b.Stamp.Clock
	}
	return bytes.Compare(a.Stamp.Origin[:], b.Stamp.Origin[:]) > 0
}

func opEqual(a, b Op) bool {
	return a.Kind == b.Kind && bytes.Equal(a.Key, b.Key) && a.Stamp == b.Stamp && bytes.Equal(a.Value, b.Value)
}

func dump(ops []Op) string {
	var b bytes.Buffer
	for _, op := range ops {
		fmt.Fprintf(&b, "  %v %q @%d/%v = %q\n", op.Kind, op.Key, op.Stamp.Clock, op.Stamp.Origin, op.Value)
	}
	return b.String()
}

// TestRosterRevokedTerminal: once a device is revoked, no write brings it
// back, whatever its stamp, on the device that revoked it or on a sibling
// that hears of the revocation after a later rename.
func TestRosterRevokedTerminal(t *testing.T) {
	a, b := newDevice(t, 1, ""), newDevice(t, 2, "")
	x := bytes.Repeat([]byte{9}, identity.X25519KeySize)
	id := identity.DeviceIDOf(x)
	added := a.change(t, KindRoster, id[:], rosterValue(x, "phone", false))
	b.apply(t, []Op{added})
	revoke := a.change(t, KindRoster, id[:], rosterValue(x, "phone", true))
	// b renames it after (a higher clock), not knowing of the revocation yet.
	rename := b.change(t, KindRoster, id[:], rosterValue(x, "old phone", false))
	if rename.Stamp.Compare(revoke.Stamp) <= 0 {
		t.Fatalf("rename stamped %+v, not after the revocation %+v: the test shows nothing", rename.Stamp, revoke.Stamp)
	}
	b.apply(t, []Op{revoke})
	a.apply(t, []Op{rename})
	for name, d := range map[string]*device{"the revoking device": a, "the sibling": b} {
		got, ok := d.get(t, KindRoster, id[:])
		e, err := UnmarshalRosterEntry(got.Value)
		if !ok || err != nil || !e.Revoked() {
			t.Errorf("%s holds %+v (%v): want the device revoked", name, e, err)
		}
	}
	err := a.db.Update(func(tx *store.Tx) error {
		_, err := a.r.Change(tx, KindRoster, id[:], rosterValue(x, "back", false))
		return err
	})
	if !errors.Is(err, ErrRevoked) {
		t.Fatalf("re-adding a revoked device: %v, want ErrRevoked", err)
	}
}

// TestApplyRefusesFarAhead: an op stamped more than 2^32 past the
// receiving device's clock is refused with its whole batch, nothing kept or
// applied, and the clock does not jump.
func TestApplyRefusesFarAhead(t *testing.T) {
	a, b := newDevice(t, 1, ""), newDevice(t, 2, "")
	good := a.change(t, KindContactName, []byte("carol"), []byte("Carol"))
	bad := Op{Kind: KindContactName, Key: []byte("bob"), Stamp: Stamp{Clock: 1<<32 + 2, Origin: a.id}, Value: []byte("frozen")}
	err := b.db.Update(func(tx *store.Tx) error { _, err := b.r.Apply(tx, []Op{good, bad}); return err })
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("apply = %v, want ErrMalformed", err)
	}
	if got := b.all(t); len(got) != 0 || len(b.applied) != 0 {
		t.Fatalf("after a refused batch b holds %s and applied %d ops", dump(got), len(b.applied))
	}
	var clock uint64
	b.db.View(func(tx *store.Tx) (err error) { clock, err = b.r.Clock(tx); return err })
	if clock != 0 {
		t.Fatalf("clock %d after a refused batch, want 0", clock)
	}
	if n := b.apply(t, []Op{good}); n != 1 || len(b.applied) != 1 {
		t.Fatalf("the good op alone: %d won, %d applied; want 1, 1", n, len(b.applied))
	}
}

// TestAppliersAndEvents: a winning op reaches its kind's Applier once, a
// losing or repeated one does not; event ops keep no register and reach
// the Applier each time (it inserts by id).
func TestAppliersAndEvents(t *testing.T) {
	a, b := newDevice(t, 1, ""), newDevice(t, 2, "")
	old := a.change(t, KindContactName, []byte("bob"), []byte("Bob"))
	newer := b.change(t, KindContactName, []byte("bob"), []byte("Robert"))
	b.apply(t, []Op{old})
	a.apply(t, []Op{newer, newer})
	if len(b.applied) != 1 || string(b.applied[0].Value) != "Robert" {
		t.Fatalf("b applied %s; want only its own rename (Alice's older name loses)", dump(b.applied))
	}
	if len(a.applied) != 2 || string(a.applied[1].Value) != "Robert" {
		t.Fatalf("a applied %s; want its own name, then Robert once", dump(a.applied))
	}
	cp := a.change(t, KindCopy, []byte("msg-1"), []byte("hello"))
	b.apply(t, []Op{cp})
	b.apply(t, []Op{cp})
	if n := len(b.applied); n != 3 {
		t.Fatalf("b's applier saw the copy %d times, want 2 (it dedups by id)", n-1)
	}
	if _, ok := b.get(t, KindCopy, []byte("msg-1")); ok {
		t.Fatal("an event kept a register")
	}
}

// TestReplicaKeepsAcrossRestart: the registers and the clock are in the
// data directory, so a restarted device stamps above what it saw.
func TestReplicaKeepsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	a := newDevice(t, 1, dir)
	a.change(t, KindSetting, []byte("theme"), []byte("dark"))
	seen := Op{Kind: KindSetting, Key: []byte("lang"), Stamp: Stamp{Clock: 1000, Origin: identity.DeviceIDOf(bytes.Repeat([]byte{5}, 32))}, Value: []byte("fr")}
	a.apply(t, []Op{seen})
	a.db.Close()
	a = newDevice(t, 1, dir)
	if got := a.all(t); len(got) != 2 {
		t.Fatalf("after a restart: %s", dump(got))
	}
	if op := a.change(t, KindSetting, []byte("lang"), []byte("en")); op.Stamp.Clock != 1001 {
		t.Fatalf("first change after a restart stamped %d, want 1001", op.Stamp.Clock)
	}
}

// Roster reads the roster registers alone, with their entries: the other
// registers beside them are not in it.
func TestRoster(t *testing.T) {
	d := newDevice(t, 1, "")
	laptop, phone := bytes.Repeat([]byte{7}, identity.X25519KeySize), bytes.Repeat([]byte{8}, identity.X25519KeySize)
	for _, x := range [][]byte{laptop, phone} {
		id := identity.DeviceIDOf(x)
		d.change(t, KindRoster, id[:], rosterValue(x, "dev", x[0] == 8))
	}
	d.change(t, KindContactName, []byte("bob"), []byte("Bob"))
	var ops []Op
	var entries []RosterEntry
	if err := d.db.View(func(tx *store.Tx) (err error) { ops, entries, err = d.r.Roster(tx); return err }); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 || len(entries) != 2 {
		t.Fatalf("roster: %d ops, %d entries; want the two devices", len(ops), len(entries))
	}
	for i, e := range entries {
		if ops[i].Kind != KindRoster || e.DeviceID() != identity.DeviceID(ops[i].Key) || e.Revoked() != (e.X25519[0] == 8) {
			t.Fatalf("entry %d: %+v for op %v", i, e, ops[i])
		}
	}
}
