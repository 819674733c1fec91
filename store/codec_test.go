package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/encoding/protowire"
)

func sameMessage(a, b Message) bool {
	return a.ID == b.ID && a.Peer == b.Peer && a.Direction == b.Direction && a.Seq == b.Seq &&
		bytes.Equal(a.Body, b.Body) && a.SentAt.Equal(b.SentAt) && a.SentAt.IsZero() == b.SentAt.IsZero() &&
		a.At.Equal(b.At) && a.State == b.State
}

func sameOutbox(a, b OutboxEntry) bool {
	return a.ID == b.ID && a.Peer == b.Peer && bytes.Equal(a.Envelope, b.Envelope) && a.Attempts == b.Attempts &&
		a.NextAttempt.Equal(b.NextAttempt) && a.CreatedAt.Equal(b.CreatedAt) && a.CreatedAt.IsZero() == b.CreatedAt.IsZero()
}

func sameConv(a, b Conversation) bool {
	return a.Peer == b.Peer && a.NextSeq == b.NextSeq && a.LastAt.Equal(b.LastAt) && a.LastAt.IsZero() == b.LastAt.IsZero() &&
		a.Unread == b.Unread && a.Request == b.Request
}

// schema1Store makes a store in dir at schema 1 holding the given values
// in their JSON form, as a build before the binary encoding wrote them.
func schema1Store(t *testing.T, dir string, write func(put func(k []byte, v any))) {
	t.Helper()
	oldStore(t, dir, 1, write)
}

// oldStore creates a store in dir whose data write puts (JSON for values
// that are not []byte), marked as schema version.
func oldStore(t *testing.T, dir string, version uint64, write func(put func(k []byte, v any))) {
	t.Helper()
	openT(t, dir, nil).Close()
	key, err := readKeyFile(filepath.Join(dir, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	bdb, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, dbDirName)).
		WithEncryptionKey(key).WithIndexCacheSize(1 << 20).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	wb := bdb.NewWriteBatch()
	write(func(k []byte, v any) {
		b, raw := v.([]byte)
		if !raw && v != nil {
			if b, err = json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		if err := wb.Set(k, b); err != nil {
			t.Fatal(err)
		}
	})
	if err := wb.Set(keySchema, binary.AppendUvarint(nil, version)); err != nil {
		t.Fatal(err)
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
}

// oldData writes n 1 KiB messages to two peers, their conversations and an
// outbox entry (with its outdue/ index key) per fifth message, in the
// schema-1 layout.
func oldData(n int) (func(put func(k []byte, v any)), []Message, []OutboxEntry, []Conversation) {
	var msgs []Message
	var outs []OutboxEntry
	convs := []Conversation{
		{Peer: "peer-a", NextSeq: uint64(n), LastAt: t0.Add(time.Duration(n) * time.Second), Unread: 3, Request: true},
		{Peer: "peer-b", NextSeq: 1},
	}
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Second)
		m := Message{ID: fmt.Sprintf("id%05d", i), Peer: []string{"peer-a", "peer-b"}[i%2], Direction: []string{DirIn, DirOut}[i%3%2],
			Seq: uint64(i + 1), Body: bytes.Repeat([]byte{byte(i)}, 1024), SentAt: at.Add(-time.Millisecond), At: at, State: "received"}
		msgs = append(msgs, m)
		if i%5 == 0 {
			outs = append(outs, OutboxEntry{ID: m.ID, Peer: m.Peer, Envelope: []byte{2, byte(i)}, Attempts: i % 4,
				NextAttempt: at.Add(time.Minute), CreatedAt: at})
		}
	}
	write := func(put func(k []byte, v any)) {
		for _, c := range convs {
			put(key(pfxConv, []byte(c.Peer)), c)
		}
		for _, m := range msgs {
			mk := key(pfxMsg, []byte(m.Peer), sep, be64(m.At), []byte(m.ID))
			put(mk, m)
			put(key(pfxMsgID, []byte(m.Peer), sep, []byte(m.ID)), mk) // raw key, not JSON
		}
		for _, e := range outs {
			put(key(pfxOut, []byte(e.ID)), e)
			put(key(pfxOutDue, be64(e.NextAttempt), []byte(e.ID)), nil)
		}
		put(key(pfxSeen, []byte("peer-a"), sep, []byte("x")), be64(t0))
		put(key(pfxSeen, []byte("peer-a"), sep, []byte("id00000")), be64(t0)) // also a message
	}
	return write, msgs, outs, convs
}

func checkMigrated(t *testing.T, db *DB, msgs []Message, outs []OutboxEntry, convs []Conversation) {
	t.Helper()
	for _, m := range msgs {
		got, err := db.Message(m.Peer, m.ID)
		if err != nil || !sameMessage(got, m) {
			t.Fatalf("message %s after migration = %+v, %v", m.ID, got.ID, err)
		}
	}
	page, _, err := db.Messages("peer-a", Page{Limit: 1000})
	if err != nil || len(page) != min(1000, (len(msgs)+1)/2) || page[0].ID != "id00000" {
		t.Fatalf("Messages after migration: %d, %v", len(page), err)
	}
	// Outbox entries of outgoing messages are now those messages' queued
	// index entries (schema 6); the rest stay outbox entries.
	dir := map[string]string{}
	for _, m := range msgs {
		dir[m.ID] = m.Direction
	}
	var keep, queued []OutboxEntry
	for _, e := range outs {
		if dir[e.ID] == DirOut {
			queued = append(queued, e)
		} else {
			keep = append(keep, e)
		}
	}
	if len(keep) == 0 || len(queued) == 0 {
		t.Fatal("test data without both kinds of outbox entry")
	}
	due, err := db.DueOutbox(t0.Add(365*24*time.Hour), 1<<20)
	if err != nil || len(due) != len(keep) {
		t.Fatalf("DueOutbox after migration: %d entries, %v; want %d", len(due), err, len(keep))
	}
	for i, e := range keep {
		if !sameOutbox(due[i], e) {
			t.Fatalf("outbox %d after migration = %+v, want %+v", i, due[i], e)
		}
	}
	err = db.View(func(tx *Tx) error {
		got, err := tx.Queued()
		if err != nil {
			return err
		}
		if len(got) != len(queued) {
			return fmt.Errorf("%d queued messages, want %d", len(got), len(queued))
		}
		for _, e := range queued {
			env, err := tx.QueuedEnvelope(e.Peer, e.ID)
			if err != nil || !bytes.Equal(env, e.Envelope) {
				return fmt.Errorf("envelope of %s = %x, %v; want %x", e.ID, env, err, e.Envelope)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("queued messages after migration: %v", err)
	}
	cs, err := db.Conversations()
	if err != nil || len(cs) != len(convs) {
		t.Fatalf("Conversations after migration = %+v, %v", cs, err)
	}
	for i := range convs {
		if !sameConv(cs[i], convs[i]) {
			t.Fatalf("conversation %d after migration = %+v, want %+v", i, cs[i], convs[i])
		}
	}
	// seen/ entries became msgid/ markers, except where a message has the id.
	err = db.View(func(tx *Tx) error {
		for id, want := range map[string]IDUse{"x": IDSeen, "id00000": IDSeen, "y": IDFree} {
			if u, err := tx.IDUse("peer-a", id); err != nil || u != want {
				return fmt.Errorf("IDUse(%s) after migration = %d, %v; want %d", id, u, err, want)
			}
		}
		if m, err := tx.Message("peer-a", "id00000"); err != nil || len(m.Body) != 1024 {
			return fmt.Errorf("message id00000 after migration: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every value is sealed (schema 7) and binary now, the schema is
	// current and the cursor is gone.
	err = db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			raw, _ := it.Item().ValueCopy(nil)
			v, err := db.seal.open(nil, k, raw)
			if err != nil {
				return fmt.Errorf("%q is not sealed: %v", k, err)
			}
			n++
			for _, pfx := range [][]byte{pfxConv, pfxMsg, pfxOut} {
				if bytes.HasPrefix(k, pfx) && len(v) > 0 && v[0] == '{' {
					return fmt.Errorf("%q is still JSON", k)
				}
			}
		}
		if n < len(msgs) {
			return fmt.Errorf("only %d entries", n)
		}
		for _, pfx := range [][]byte{pfxOutDue, pfxSeen} {
			o := badger.DefaultIteratorOptions
			o.Prefix = pfx
			dit := txn.NewIterator(o)
			dit.Rewind()
			left := dit.Valid()
			dit.Close()
			if left {
				return fmt.Errorf("old keys under %s are still there", pfx)
			}
		}
		if _, err := txn.Get(keyMigrateCursor); !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("migration cursor left behind: %v", err)
		}
		sv, err := txn.Get(keySchema)
		if err != nil {
			return err
		}
		return sv.Value(func(v []byte) error {
			if n, err := decodeSchema(db.seal, v); err != nil || n != currentSchema {
				return fmt.Errorf("schema %d after migration, %v", n, err)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateJSONToBinary opens a schema-1 store whose JSON values are far
// more than one transaction can rewrite, and checks that every message,
// outbox entry and conversation reads back unchanged.
func TestMigrateJSONToBinary(t *testing.T) {
	dir := t.TempDir()
	write, msgs, outs, convs := oldData(3000)
	schema1Store(t, dir, write)
	db := openT(t, dir, nil)
	checkMigrated(t, db, msgs, outs, convs)
	// New writes use the binary form alongside the migrated values.
	if err := db.SetMessageState("peer-a", "id00002", "read"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openT(t, dir, nil)
	if m, err := db.Message("peer-a", "id00002"); err != nil || m.State != "read" || len(m.Body) != 1024 {
		t.Fatalf("after reopen: %+v, %v", m.State, err)
	}
}

// TestMigrateIndexTime opens a schema-4 store whose msgid/ entries hold
// whole msg/ keys (more than one migration batch of them, beside seen-only
// markers) and checks that every message, state and seen id reads back.
func TestMigrateIndexTime(t *testing.T) {
	dir := t.TempDir()
	var msgs []Message
	oldStore(t, dir, 4, func(put func(k []byte, v any)) {
		for i := range 1500 {
			at := t0.Add(time.Duration(i) * time.Second)
			m := Message{ID: fmt.Sprintf("id%05d", i), Peer: []string{"peer-a", "peer-b"}[i%2], Direction: []string{DirIn, DirOut}[i%3%2],
				Seq: uint64(i + 1), Body: []byte(fmt.Sprint("body ", i)), SentAt: at, At: at, State: []string{"received", "delivered", ""}[i%3]}
			msgs = append(msgs, m)
			mk := key(pfxMsg, []byte(m.Peer), sep, be64(m.At), []byte(m.ID))
			body := m
			body.State = ""
			v, err := (*messageV2)(&body).marshal()
			if err != nil {
				t.Fatal(err)
			}
			put(mk, v)
			d := map[string]byte{DirIn: dirInCode, DirOut: dirOutCode}[m.Direction]
			ix := append(append(protowire.AppendVarint(nil, uint64(len(mk))), mk...), d)
			put(key(pfxMsgID, []byte(m.Peer), sep, []byte(m.ID)), append(ix, m.State...))
		}
		put(key(pfxMsgID, []byte("peer-a"), sep, []byte("seen-only")), append([]byte{0}, be64(t0)...)) // a seen-only marker
	})
	db := openT(t, dir, nil)
	for _, m := range msgs {
		got, err := db.Message(m.Peer, m.ID)
		if err != nil || !sameMessage(got, m) {
			t.Fatalf("message %s after migration = %+v, %v", m.ID, got, err)
		}
	}
	page, _, err := db.Messages("peer-b", Page{Limit: 1000})
	if err != nil || len(page) != 750 || page[0].ID != "id00001" || page[0].State != "delivered" {
		t.Fatalf("Messages after migration: %d, %v", len(page), err)
	}
	err = db.View(func(tx *Tx) error {
		for id, want := range map[string]IDUse{"seen-only": IDSeen, "id00000": IDSeen, "id00004": IDOurs, "id99999": IDFree} {
			if u, err := tx.IDUse("peer-a", id); err != nil || u != want {
				return fmt.Errorf("IDUse(%s) = %d, %v; want %d", id, u, err, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every index entry is in the new form and the schema is current.
	err = db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = pfxMsgID
		it := txn.NewIterator(o)
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			raw, _ := it.Item().ValueCopy(nil)
			v, err := db.seal.open(nil, it.Item().Key(), raw)
			if err != nil {
				return fmt.Errorf("%q is not sealed: %v", it.Item().Key(), err)
			}
			if _, err := unmarshalIndexV6(v); err != nil {
				return fmt.Errorf("%q: %v", it.Item().Key(), err)
			}
			n++
		}
		if n != len(msgs)+1 {
			return fmt.Errorf("%d index entries, want %d", n, len(msgs)+1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetMessageState("peer-a", "id00002", "read"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openT(t, dir, nil)
	if m, err := db.Message("peer-a", "id00002"); err != nil || m.State != "read" {
		t.Fatalf("after reopen: %+v, %v", m.State, err)
	}
}

// TestMigrationInterrupted stops the migration after two committed
// batches, as a crash would, and checks that the next Open finishes it.
func TestMigrationInterrupted(t *testing.T) {
	dir := t.TempDir()
	write, msgs, outs, convs := oldData(1200)
	schema1Store(t, dir, write)

	key0, err := readKeyFile(filepath.Join(dir, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	bdb, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, dbDirName)).
		WithEncryptionKey(key0).WithIndexCacheSize(1 << 20).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	crash := errors.New("crash")
	calls := 0
	hooks := map[uint64]migration{1: func(txn *badger.Txn) error {
		if calls++; calls == 3 {
			return crash
		}
		return migrateBinaryValues(txn)
	}}
	if err := checkSchema(bdb, 2, hooks, nil, slog.New(slog.DiscardHandler)); !errors.Is(err, crash) {
		t.Fatalf("interrupted migration: %v", err)
	}
	// Two batches are binary, the rest still JSON, the version still 1.
	var binaryN, jsonN int
	bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = pfxMsg
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, _ := it.Item().ValueCopy(nil)
			if v[0] == '{' {
				jsonN++
			} else {
				binaryN++
			}
		}
		return nil
	})
	bdb.Close()
	if binaryN == 0 || jsonN == 0 {
		t.Fatalf("after the crash: %d binary, %d JSON messages; want both", binaryN, jsonN)
	}
	db := openT(t, dir, nil)
	checkMigrated(t, db, msgs, outs, convs)
}

// TestMigrationRefusesGarbage: a schema-1 value that is neither JSON of
// the right shape nor binary stops the migration with a clear error and
// leaves the store at version 1.
func TestMigrationRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	schema1Store(t, dir, func(put func(k []byte, v any)) {
		put(key(pfxConv, []byte("p")), json.RawMessage(`{"peer":"p","next_seq":"many"}`))
	})
	_, err := Open(context.Background(), Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "migrate schema 1 to 2") {
		t.Fatalf("Open with a corrupt JSON value: %v", err)
	}
}

// The goldens of msg's stored forms (msg/storecodec_test.go): the frozen
// forms the migrations write (migrate_msg.go) are the same bytes.
const (
	goldenMessageHex = "0a026d3112017018022003" + "2a026869300a380c420473656e74"
	goldenOutboxHex  = "0a026d311201701a02020920022880013000"
	goldenConvHex    = "0a01701004180120042801"
)

func TestFrozenForms(t *testing.T) {
	m := messageV2{ID: "m1", Peer: "p", Direction: dirOutV2, Seq: 3, Body: []byte("hi"),
		SentAt: time.Unix(0, 5), At: time.Unix(0, 6), State: "sent"}
	if b, err := m.marshal(); err != nil || hex.EncodeToString(b) != goldenMessageHex {
		t.Errorf("message = %x, %v; want %s", b, err, goldenMessageHex)
	}
	if got, err := unmarshalMessageV2(mustHex(t, goldenMessageHex)); err != nil || !reflect.DeepEqual(got.Body, m.Body) ||
		got.ID != m.ID || got.Peer != m.Peer || got.Direction != m.Direction || got.Seq != m.Seq ||
		!got.SentAt.Equal(m.SentAt) || !got.At.Equal(m.At) || got.State != m.State {
		t.Errorf("decoded message = %+v, %v", got, err)
	}
	o := outboxV2{ID: "m1", Peer: "p", Envelope: []byte{2, 9}, Attempts: 1, NextAttempt: time.Unix(0, 64), CreatedAt: time.Unix(0, 0)}
	if b, err := o.marshal(); err != nil || hex.EncodeToString(b) != goldenOutboxHex {
		t.Errorf("outbox = %x, %v; want %s", b, err, goldenOutboxHex)
	}
	if got, err := unmarshalOutboxV2(mustHex(t, goldenOutboxHex)); err != nil || got.ID != "m1" || got.Peer != "p" ||
		!bytes.Equal(got.Envelope, o.Envelope) || got.Attempts != 1 || !got.NextAttempt.Equal(o.NextAttempt) || !got.CreatedAt.Equal(o.CreatedAt) {
		t.Errorf("decoded outbox = %+v, %v", got, err)
	}
	c := conversationV2{Peer: "p", NextSeq: 4, LastAt: time.Unix(0, -1), Unread: 2, Request: true}
	if b, err := c.marshal(); err != nil || hex.EncodeToString(b) != goldenConvHex {
		t.Errorf("conversation = %x, %v; want %s", b, err, goldenConvHex)
	}
	// The index entries, as msg's TestMessageIndex and TestQueuedIndexCodec pin them.
	ix, err := marshalIndexV5(t0, dirOutV2, "sent")
	if want := "02" + hex.EncodeToString(be64(t0)) + "73656e74"; err != nil || hex.EncodeToString(ix) != want {
		t.Errorf("index = %x, %v; want %s", ix, err, want)
	}
	q, err := marshalQueuedV6(t0, "sent", []byte{0xaa})
	if want := "03" + hex.EncodeToString(be64(t0)) + "04" + hex.EncodeToString([]byte("sent")) + "aa"; err != nil || hex.EncodeToString(q) != want {
		t.Errorf("queued index = %x, %v; want %s", q, err, want)
	}
	for _, b := range [][]byte{ix, q, append([]byte{0}, be64(t0)...)} {
		if _, err := unmarshalIndexV6(b); err != nil {
			t.Errorf("unmarshalIndexV6(%x) = %v", b, err)
		}
	}
	if _, err := unmarshalIndexV6(append([]byte{4}, be64(t0)...)); !errors.Is(err, errCorrupt) {
		t.Errorf("unknown index kind: %v, want errCorrupt", err)
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMessageIndexV3 checks the schema-3/4 form the 4 → 5 migration reads.
func TestMessageIndexV3(t *testing.T) {
	// The schema-3/4 form the 4 → 5 migration reads.
	mk := key(pfxMsg, []byte("p"), sep, be64(t0), []byte("m1"))
	old := mustHex(t, "106d73672f7000"+hex.EncodeToString(be64(t0))+"6d310273656e74")
	if k, dir, state, err := unmarshalIndexV3(old); err != nil || !bytes.Equal(k, mk) || dir != dirOutV2 || state != "sent" {
		t.Fatalf("unmarshalIndexV3 = %q %s %s %v", k, dir, state, err)
	}
	for name, bad := range map[string][]byte{
		"long length":   append([]byte{0x7f}, old[1:]...),
		"short length":  append([]byte{0x05}, old[1:]...),
		"not a msg key": append([]byte{0x10}, append([]byte("xyz/p\x00........m1"), 2)...),
		"no direction":  old[:1+0x10],
		"bad direction": append(bytes.Clone(old[:1+0x10]), 3),
		"non-minimal":   append([]byte{0x90, 0x00}, old[1:]...),
	} {
		if _, _, _, err := unmarshalIndexV3(bad); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: unmarshalIndexV3(%x) = %v, want errCorrupt", name, bad, err)
		}
	}
}
