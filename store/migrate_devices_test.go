package store

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/dgraph-io/badger/v4"
)

// v8Sessions builds what schema 8 kept under sess/<peer> for a contact
// that moved to a second device: one set holding a session with each of
// its two devices, the second device's active. It returns the set and the
// two devices' X25519 keys, the active one first.
func v8Sessions(t *testing.T) (set []byte, active, older []byte) {
	t.Helper()
	dhA, _ := e2e.GenerateDHKey(nil)
	_, signA, _ := ed25519.GenerateKey(nil)
	alice := e2e.Identity{Signer: signA, DH: dhA}
	bobPub, bobKey, _ := ed25519.GenerateKey(nil)
	var s e2e.SessionSet
	var devs [][]byte
	for range 2 {
		dh, _ := e2e.GenerateDHKey(nil)
		bob := e2e.Identity{Signer: bobKey, DH: dh}
		st, err := e2e.NewPrekeyState(bob, time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Initiate(alice, bobPub, st.Bundle(), nil); err != nil {
			t.Fatal(err)
		}
		devs = append(devs, dh.PublicKey().Bytes())
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b, devs[1], devs[0]
}

// schema8Sessions writes a store in dir as schema 8 left it: bob's set of
// two devices, carol's empty set, dave's set that does not parse, and
// extra more contacts with a one-device set each; a message queued for bob
// with its envelope, one for carol not sealed yet, and their queue starts.
func schema8Sessions(t *testing.T, dir string, extra int) (bobSet, bobActive, bobOlder []byte) {
	t.Helper()
	openT(t, dir, nil).Close()
	bobSet, bobActive, bobOlder = v8Sessions(t)
	var one e2e.SessionSet
	dh, _ := e2e.GenerateDHKey(nil)
	_, sign, _ := ed25519.GenerateKey(nil)
	peerPub, peerKey, _ := ed25519.GenerateKey(nil)
	st, _ := e2e.NewPrekeyState(e2e.Identity{Signer: peerKey, DH: dh}, time.Now(), nil)
	self, _ := e2e.GenerateDHKey(nil)
	if err := one.Initiate(e2e.Identity{Signer: sign, DH: self}, peerPub, st.Bundle(), nil); err != nil {
		t.Fatal(err)
	}
	oneSet, _ := one.Marshal()
	empty, _ := (&e2e.SessionSet{}).Marshal()

	bdb, s := rawBadger(t, dir)
	defer bdb.Close()
	wb := bdb.NewWriteBatch()
	set := func(k string, v []byte) {
		if err := wb.Set([]byte(k), s.seal([]byte(k), v)); err != nil {
			t.Fatal(err)
		}
	}
	set("sess/csa1bob", bobSet)
	set("sess/csa1carol", empty)
	set("sess/csa1dave", []byte("not a session set"))
	set("msgid/csa1bob\x00m1", queuedV8(queuedEnvV8))
	set("msgid/csa1carol\x00m2", queuedV8(nil))
	set("msgid/csa1carol\x00m3", []byte{2, 0, 0, 0, 0, 0, 0, 0, 1, 'r', 'e', 'a', 'd'}) // delivered: left
	set("qstart/csa1bob", make([]byte, 8))
	set("qstart/csa1carol", make([]byte, 8))
	for i := range extra {
		set(fmt.Sprintf("sess/csa1bulk%04d", i), oneSet)
	}
	if err := wb.Set(keySchema, encodeSchema(s, 8)); err != nil {
		t.Fatal(err)
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	return bobSet, bobActive, bobOlder
}

// queuedEnvV8 is a schema-8 envelope: a sealed Deliver frame's size.
var queuedEnvV8 = append([]byte{2}, bytes.Repeat([]byte{0xee}, 300)...)

// queuedV8 is a schema-8 msgid/ entry of a queued message (kind 3) with
// envelope env.
func queuedV8(env []byte) []byte {
	b := append([]byte{3, 0, 0, 0, 0, 0, 0, 0, 7, 6}, "queued"...)
	return append(b, env...)
}

// sessionsAfter reads the msg keyspace's msgid/, dq/, qstart/ and sess/
// entries, opened.
func sessionsAfter(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	db := openT(t, dir, nil)
	defer db.Close()
	out := map[string][]byte{}
	err := db.View(func(tx *Tx) error {
		for _, p := range []string{"dq/", "msgid/", "sess/"} {
			err := tx.Space(SpaceMsg).Scan([]byte(p), nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
				v, err := val()
				out[string(k)] = v
				return true, err
			})
			if err != nil {
				return err
			}
		}
		// qstart/ is no longer msg's: read it under the store.
		return tx.scan(pfxQueueStart, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
			v, err := val()
			out[string(k)] = v
			return true, err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sessKey(peer string, dh []byte) string {
	dev := identity.DeviceIDOf(dh)
	return "sess/" + peer + "\x00" + string(dev[:])
}

// checkSessionsPerDevice checks the entries of schema8Sessions after the
// migration: bob's set split in two, each with its own device's session
// and the active device named by sdev/; carol's empty set
// gone; dave's unreadable one left where it was; each bulk contact moved.
func checkSessionsPerDevice(t *testing.T, got map[string][]byte, bobActive, bobOlder []byte, extra int) {
	t.Helper()
	for _, c := range []struct {
		dh []byte
	}{{bobActive}, {bobOlder}} {
		b, ok := got[sessKey("csa1bob", c.dh)]
		if !ok {
			t.Fatalf("no set for bob's device %s; entries: %q", identity.DeviceIDOf(c.dh), keysOf(got))
		}
		set, err := e2e.UnmarshalSessionSet(b)
		if err != nil {
			t.Fatal(err)
		}
		if dhs := set.PeerDHs(); len(dhs) != 1 || !bytes.Equal(dhs[0], c.dh) {
			t.Fatalf("bob's device %s: sessions with %x", identity.DeviceIDOf(c.dh), dhs)
		}
	}
	for _, k := range []string{"sess/csa1bob", "sess/csa1carol", "qstart/csa1bob", "qstart/csa1carol"} {
		if _, ok := got[k]; ok {
			t.Errorf("%q is left", k)
		}
	}
	// The queued messages: a copy for the device of the active session,
	// or for none (carol had no session), with the envelope; the entry
	// names the device.
	active := identity.DeviceIDOf(bobActive)
	var none identity.DeviceID
	for _, q := range []struct {
		peer, id string
		dev      identity.DeviceID
		env      []byte
	}{{"csa1bob", "m1", active, queuedEnvV8}, {"csa1carol", "m2", none, nil}} {
		if v, ok := got["dq/"+q.peer+"\x00"+string(q.dev[:])+"\x00"+q.id]; !ok || !bytes.Equal(v, q.env) {
			t.Errorf("%s's copy for %s = %d bytes (%v), want its envelope (%d)", q.id, q.dev, len(v), ok, len(q.env))
		}
		if ix := got["msgid/"+q.peer+"\x00"+q.id]; !bytes.Equal(ix, append(queuedV8(nil), q.dev[:]...)) {
			t.Errorf("%s's entry = %x, want it to name %s", q.id, ix, q.dev)
		}
	}
	if ix := got["msgid/csa1carol\x00m3"]; len(ix) != 13 {
		t.Errorf("a delivered message's entry = %x, want it left", ix)
	}
	if string(got["sess/csa1dave"]) != "not a session set" {
		t.Errorf("dave's unreadable set = %q, want it left as it was", got["sess/csa1dave"])
	}
	if _, ok := got["sdev/csa1dave"]; ok {
		t.Error("a device for dave's unreadable set")
	}
	// bob: 2 sets; dave: 1; each bulk contact: a set; 3 entries and 2 copies.
	if want := 2 + 1 + extra + 3 + 2; len(got) != want {
		t.Errorf("%d entries after the migration, want %d: %q", len(got), want, keysOf(got))
	}
}

func keysOf(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, fmt.Sprintf("%q", k))
	}
	return ks
}

// TestMigrateSessionsPerDevice opens a schema-8 data directory and finds
// each contact's sessions filed per device, the device that messages were
// sealed for named; a second open changes nothing.
func TestMigrateSessionsPerDevice(t *testing.T) {
	dir := t.TempDir()
	_, active, older := schema8Sessions(t, dir, 3)
	first := sessionsAfter(t, dir)
	checkSessionsPerDevice(t, first, active, older, 3)
	second := sessionsAfter(t, dir)
	if len(second) != len(first) {
		t.Fatalf("the second open changed the entries: %q, then %q", keysOf(first), keysOf(second))
	}
	for k, v := range first {
		if !bytes.Equal(second[k], v) {
			t.Errorf("the second open rewrote %q", k)
		}
	}
	var version uint64
	bdb, s := rawBadger(t, dir)
	bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(keySchema)
		if err == nil {
			err = it.Value(func(v []byte) error { version, err = decodeSchema(s, v); return err })
		}
		return err
	})
	bdb.Close()
	if version != 9 {
		t.Fatalf("schema %d after the migration, want 9", version)
	}
}

// TestMigrateSessionsPerDeviceInterrupted stops the migration after a
// batch, as a crash would, with more contacts than a batch moves: the next
// Open finishes it, and nothing moved before the crash is moved twice or
// lost.
func TestMigrateSessionsPerDeviceInterrupted(t *testing.T) {
	dir := t.TempDir()
	extra := migrateBatchEntries + 100
	_, active, older := schema8Sessions(t, dir, extra)
	bdb, s := rawBadger(t, dir)
	crash := errors.New("crash")
	calls := 0
	hooks := map[uint64]migration{8: func(txn *badger.Txn) error {
		if calls++; calls == 2 {
			return crash
		}
		return migratePerDevice(txn, s)
	}}
	if err := checkSchema(bdb, 9, hooks, s, slog.New(slog.DiscardHandler)); !errors.Is(err, crash) {
		bdb.Close()
		t.Fatalf("interrupted migration: %v", err)
	}
	moved, left := 0, 0
	bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte("sess/csa1bulk")
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if bytes.IndexByte(it.Item().Key()[len("sess/"):], 0) >= 0 {
				moved++
			} else {
				left++
			}
		}
		return nil
	})
	bdb.Close()
	if moved == 0 || left == 0 {
		t.Fatalf("after the crash: %d sets moved, %d left; want both", moved, left)
	}
	checkSessionsPerDevice(t, sessionsAfter(t, dir), active, older, extra)
}

// TestDeviceIDFrozen: the migration's frozen DeviceID is identity's.
func TestDeviceIDFrozen(t *testing.T) {
	dh, _ := e2e.GenerateDHKey(nil)
	want := identity.DeviceIDOf(dh.PublicKey().Bytes())
	if got := deviceIDV9(dh.PublicKey().Bytes()); !bytes.Equal(got, want[:]) {
		t.Fatalf("deviceIDV9 = %x, identity.DeviceIDOf = %x", got, want[:])
	}
	if deviceIDLabelV9 != identity.LabelDeviceID {
		t.Fatal("the frozen label is not identity.LabelDeviceID")
	}
}
