package devices

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/callsign/callsign/store"
)

// TestPending: a change made here is kept (not applied: the caller made
// it) and pending until taken, once; a register changed twice is sent
// once, with its newest value; the batches a sibling gets from it make
// its replica hold what this one holds.
func TestPending(t *testing.T) {
	a, b := newDevice(t, 1, ""), newDevice(t, 2, "")
	changed := func(kind Kind, key, value string) {
		t.Helper()
		if err := a.db.Update(func(tx *store.Tx) error { return a.r.Changed(tx, kind, []byte(key), []byte(value)) }); err != nil {
			t.Fatal(err)
		}
	}
	changed(KindContactName, "bob", "bob")
	changed(KindContactName, "bob", "bobby")
	changed(KindContactFlags, "carol", "blocked")
	if len(a.applied) != 0 {
		t.Fatalf("the appliers saw %d of this device's own changes", len(a.applied))
	}
	take := func(max int) [][]byte {
		t.Helper()
		var out [][]byte
		if err := a.db.Update(func(tx *store.Tx) (err error) { out, err = a.r.TakePending(tx, max); return err }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	batches := take(MaxBatch)
	if len(batches) != 1 {
		t.Fatalf("%d batches, want one", len(batches))
	}
	ops, err := UnmarshalBatch(batches[0])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range ops {
		got = append(got, fmt.Sprintf("%v %s=%s", op.Kind, op.Key, op.Value))
	}
	if want := []string{"contact-name bob=bobby", "contact-flags carol=blocked"}; !slices.Equal(got, want) {
		t.Fatalf("pending %q, want %q", got, want)
	}
	if again := take(MaxBatch); len(again) != 0 {
		t.Fatalf("taken twice: %d batches", len(again))
	}
	if err := b.db.Update(func(tx *store.Tx) error { _, err := b.r.Apply(tx, ops); return err }); err != nil {
		t.Fatal(err)
	}
	if op, ok := b.get(t, KindContactName, []byte("bob")); !ok || string(op.Value) != "bobby" {
		t.Fatalf("the sibling holds %+v %v", op, ok)
	}
	if len(b.applied) != 1 || string(b.applied[0].Value) != "bobby" {
		t.Fatalf("the sibling applied %+v, want the rename", b.applied)
	}

	// Many changes: batches within the size and the count asked for.
	for i := range 600 {
		changed(KindContactName, fmt.Sprintf("c%03d", i), string(bytes.Repeat([]byte{'n'}, 40)))
	}
	batches = take(4 << 10)
	n := 0
	for _, b := range batches {
		ops, err := UnmarshalBatch(b)
		if err != nil || len(b) > 4<<10 || len(ops) > MaxOps {
			t.Fatalf("a batch of %d bytes, %d ops: %v", len(b), len(ops), err)
		}
		n += len(ops)
	}
	if n != 600 {
		t.Fatalf("%d ops in %d batches, want 600", n, len(batches))
	}
}
