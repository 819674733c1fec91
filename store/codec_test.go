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

// Golden binary encodings: a change to one of these is a schema change and
// needs a migration.
var (
	goldenMessage = Message{ID: "m1", Peer: "p", Direction: DirOut, Seq: 3, Body: []byte("hi"),
		SentAt: time.Unix(0, 5), At: time.Unix(0, 6), State: "sent"}
	goldenMessageHex = "0a026d3112017018022003" + "2a026869300a380c420473656e74"

	goldenOutbox = OutboxEntry{ID: "m1", Peer: "p", Envelope: []byte{2, 9}, Attempts: 1,
		NextAttempt: time.Unix(0, 64), CreatedAt: time.Unix(0, 0)}
	goldenOutboxHex = "0a026d311201701a02020920022880013000"

	goldenConv    = Conversation{Peer: "p", NextSeq: 4, LastAt: time.Unix(0, -1), Unread: 2, Request: true}
	goldenConvHex = "0a01701004180120042801"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCodecGolden(t *testing.T) {
	mb, err := marshalMessage(&goldenMessage)
	if err != nil || hex.EncodeToString(mb) != goldenMessageHex {
		t.Errorf("message = %x, %v; want %s", mb, err, goldenMessageHex)
	}
	ob, err := marshalOutbox(&goldenOutbox)
	if err != nil || hex.EncodeToString(ob) != goldenOutboxHex {
		t.Errorf("outbox = %x, %v; want %s", ob, err, goldenOutboxHex)
	}
	cb, err := marshalConversation(&goldenConv)
	if err != nil || hex.EncodeToString(cb) != goldenConvHex {
		t.Errorf("conversation = %x, %v; want %s", cb, err, goldenConvHex)
	}
	m, err := unmarshalMessage(mustHex(t, goldenMessageHex))
	if err != nil || !sameMessage(m, goldenMessage) {
		t.Errorf("decoded message = %+v, %v", m, err)
	}
	o, err := unmarshalOutbox(mustHex(t, goldenOutboxHex))
	if err != nil || !sameOutbox(o, goldenOutbox) {
		t.Errorf("decoded outbox = %+v, %v", o, err)
	}
	// The unix epoch is a time, not the zero time.
	if o.CreatedAt.IsZero() || o.CreatedAt.UnixNano() != 0 {
		t.Errorf("epoch CreatedAt decoded as %v", o.CreatedAt)
	}
	c, err := unmarshalConversation(mustHex(t, goldenConvHex))
	if err != nil || !sameConv(c, goldenConv) {
		t.Errorf("decoded conversation = %+v, %v", c, err)
	}
}

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

// TestCodecStrict feeds the decoders every way a value can be malformed or
// non-canonical; each must be refused with errCorrupt.
func TestCodecStrict(t *testing.T) {
	long := strings.Repeat("x", maxIDLen+1)
	cases := map[string]string{
		"empty":              "",
		"truncated tag":      "80",
		"truncated bytes":    "0a056d31",
		"out of order":       "1201700a026d31",
		"repeated field":     "0a026d310a026d32",
		"unknown field":      "0a026d311201701802380c4801",
		"wrong wire type":    "08011201701802380c",
		"non-minimal varint": "0a026d3112017018820038 0c",
		"non-minimal tag":    "8a00026d31",
		"non-minimal length": "0a82006d311201701802380c",
		"zero varint":        "0a026d31120170180220 00380c",
		"empty bytes":        "0a0012017018 02380c",
		"bad direction":      "0a026d311201701803380c",
		"missing time":       "0a026d3112017018 02",
		"long id":            "0a" + hex.EncodeToString(binary.AppendUvarint(nil, uint64(len(long)))) + hex.EncodeToString([]byte(long)) + "120170180238 0c",
		"state not utf8":     "0a026d311201701802380c4201ff",
		"truncated varint":   "0a026d311201701802380c5080",
	}
	for name, h := range cases {
		b := mustHex(t, strings.ReplaceAll(h, " ", ""))
		if _, err := unmarshalMessage(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: unmarshalMessage(%x) = %v, want errCorrupt", name, b, err)
		}
	}
	// A minimal valid message, to show the cases above fail for their own reason.
	if _, err := unmarshalMessage(mustHex(t, "0a026d311201701802380c")); err != nil {
		t.Fatalf("minimal message: %v", err)
	}
	for name, h := range map[string]string{
		"no next attempt":   "0a026d31120170",
		"negative attempts": "0a026d311201702001 2802",
		"empty":             "",
	} {
		b := mustHex(t, strings.ReplaceAll(h, " ", ""))
		if _, err := unmarshalOutbox(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: unmarshalOutbox(%x) = %v, want errCorrupt", name, b, err)
		}
	}
	for name, h := range map[string]string{
		"no peer":        "1004",
		"request flag 2": "0a01702802",
		"unread too big": "0a0170 20 80808080 20",
	} {
		b := mustHex(t, strings.ReplaceAll(h, " ", ""))
		if _, err := unmarshalConversation(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: unmarshalConversation(%x) = %v, want errCorrupt", name, b, err)
		}
	}
}

func TestCodecLimits(t *testing.T) {
	db := openT(t, t.TempDir(), nil)
	big := make([]byte, MaxBodySize+1)
	if err := db.PutMessage(Message{ID: "a", Peer: "p", Direction: DirIn, Body: big}); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized body: %v", err)
	}
	if err := db.PutOutbox(OutboxEntry{ID: "a", Peer: "p", NextAttempt: t0, Envelope: make([]byte, maxEnvelopeLen+1)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized envelope: %v", err)
	}
	if err := db.PutMessage(Message{ID: "a", Peer: "p", Direction: DirIn, At: t0, SentAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("sent time out of range: %v", err)
	}
	// The largest body round-trips, and so does a sender clock at the epoch.
	body := bytes.Repeat([]byte{7}, MaxBodySize)
	m := Message{ID: "b", Peer: "p", Direction: DirIn, Body: body, SentAt: time.Unix(0, 0), At: t0}
	if err := db.PutMessage(m); err != nil {
		t.Fatal(err)
	}
	got, err := db.Message("p", "b")
	if err != nil || !sameMessage(got, m) {
		t.Fatalf("max body message = %v", err)
	}
}

func FuzzStoredValues(f *testing.F) {
	for _, h := range []string{goldenMessageHex, goldenOutboxHex, goldenConvHex, "0a026d311201701802380c", "00188a4e0c34af0000", "03188a4e0c34af00000473656e7402aa", goldenConvHex + "880105"} {
		f.Add(mustHex(f, h))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := unmarshalMessage(b); err == nil {
			out, err := marshalMessage(&m)
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("message %x re-encodes as %x, %v", b, out, err)
			}
		}
		if e, err := unmarshalOutbox(b); err == nil {
			out, err := marshalOutbox(&e)
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("outbox %x re-encodes as %x, %v", b, out, err)
			}
			id, next, err := outboxDue(b)
			if err != nil || string(id) != e.ID || !next.Equal(e.NextAttempt) {
				t.Fatalf("outboxDue(%x) = %q %v %v", b, id, next, err)
			}
		}
		if ix, err := unmarshalIndex(b); err == nil {
			var out []byte
			out, err = ix.marshal()
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("index %x re-encodes as %x, %v", b, out, err)
			}
		}
		if c, err := unmarshalConversation(b); err == nil {
			out, err := marshalConversation(&c)
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("conversation %x re-encodes as %x, %v", b, out, err)
			}
		}
	})
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
		starts, err := tx.QueueStarts()
		if err != nil {
			return err
		}
		if len(starts) != 2 {
			return fmt.Errorf("queue starts %v, want one per peer", starts)
		}
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
			v, err := marshalMessage(&body)
			if err != nil {
				t.Fatal(err)
			}
			put(mk, v)
			d := map[string]byte{DirIn: dirInCode, DirOut: dirOutCode}[m.Direction]
			ix := append(append(protowire.AppendVarint(nil, uint64(len(mk))), mk...), d)
			put(key(pfxMsgID, []byte(m.Peer), sep, []byte(m.ID)), append(ix, m.State...))
		}
		put(key(pfxMsgID, []byte("peer-a"), sep, []byte("seen-only")), marshalSeen(t0))
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
			if _, err := unmarshalIndex(v); err != nil {
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

func TestRoundTripThroughAccessors(t *testing.T) {
	db := memT(t)
	m := goldenMessage
	m.SentAt = time.Time{} // absent stays absent
	if err := db.PutMessage(m); err != nil {
		t.Fatal(err)
	}
	got, err := db.Message("p", "m1")
	if err != nil || !reflect.DeepEqual(got.Body, m.Body) || !got.SentAt.IsZero() || !got.At.Equal(m.At) {
		t.Fatalf("Message = %+v, %v", got, err)
	}
	var calls int
	err = db.Update(func(tx *Tx) error {
		out, err := tx.UpdateMessageState("p", "m1", func(old Message) (string, bool) {
			calls++
			return "delivered", old.State == "sent"
		})
		if err != nil || out.State != "delivered" {
			return fmt.Errorf("UpdateMessageState = %+v, %v", out.State, err)
		}
		out, err = tx.UpdateMessageState("p", "m1", func(old Message) (string, bool) {
			calls++
			return "sent", old.State == "sent"
		})
		if err != nil || out.State != "delivered" {
			return fmt.Errorf("declined UpdateMessageState = %+v, %v", out.State, err)
		}
		_, err = tx.UpdateMessageState("p", "nope", func(Message) (string, bool) { return "x", true })
		if !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("UpdateMessageState on a missing message: %v", err)
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("%v (decide called %d times)", err, calls)
	}
	if got, _ := db.Message("p", "m1"); got.State != "delivered" {
		t.Fatalf("state after commit = %q", got.State)
	}
}

func TestAddMessageNeverReplaces(t *testing.T) {
	db := memT(t)
	mine := Message{ID: "x", Peer: "p", Direction: DirOut, Body: []byte("mine"), At: t0}
	if added, err := db.AddMessage(mine); err != nil || !added {
		t.Fatalf("first AddMessage = %v, %v", added, err)
	}
	theirs := Message{ID: "x", Peer: "p", Direction: DirIn, Body: []byte("theirs"), At: t0.Add(time.Second)}
	if added, err := db.AddMessage(theirs); err != nil || added {
		t.Fatalf("AddMessage over an existing id = %v, %v; want false", added, err)
	}
	got, err := db.Message("p", "x")
	if err != nil || string(got.Body) != "mine" || got.Direction != DirOut || !got.At.Equal(t0) {
		t.Fatalf("message after a refused AddMessage = %+v, %v", got, err)
	}
	if ms, _, _ := db.Messages("p", Page{}); len(ms) != 1 {
		t.Fatalf("%d messages, want 1", len(ms))
	}
	// The same id under another peer is another message.
	theirs.Peer = "q"
	if added, err := db.AddMessage(theirs); err != nil || !added {
		t.Fatalf("AddMessage for another peer = %v, %v", added, err)
	}
}

func TestMessageIndex(t *testing.T) {
	b, err := marshalIndex(t0, DirOut, "sent")
	if err != nil {
		t.Fatal(err)
	}
	want := "02" + hex.EncodeToString(be64(t0)) + "73656e74"
	if hex.EncodeToString(b) != want {
		t.Fatalf("index = %x, want %s", b, want)
	}
	ix, err := unmarshalIndex(b)
	if err != nil || ix.marker() || ix.dir != DirOut || ix.state != "sent" || !ix.at.Equal(t0) {
		t.Fatalf("decoded index = %+v, %v", ix, err)
	}
	if ix, err := unmarshalIndex(b[:9]); err != nil || ix.state != "" || ix.dir != DirOut {
		t.Fatalf("index without a state = %+v, %v", ix, err)
	}
	// A seen-only marker: 0x00 and the time first seen.
	mb := marshalSeen(t0)
	if want := "00" + hex.EncodeToString(be64(t0)); hex.EncodeToString(mb) != want {
		t.Fatalf("marker = %x, want %s", mb, want)
	}
	if ix, err := unmarshalIndex(mb); err != nil || !ix.marker() || !ix.at.Equal(t0) {
		t.Fatalf("decoded marker = %+v, %v", ix, err)
	}
	for name, bad := range map[string][]byte{
		"marker short":   mb[:8],
		"marker long":    append(bytes.Clone(mb), 0),
		"marker < 1970":  append([]byte{0}, 0x80, 0, 0, 0, 0, 0, 0, 0),
		"index < 1970":   append([]byte{2, 0x80, 0, 0, 0, 0, 0, 0, 0}, "sent"...),
		"index ≥ 2262":   append([]byte{1, 0x7f, 0xff, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30}, "sent"...),
		"empty":          {},
		"short time":     b[:8],
		"unknown kind":   append([]byte{3}, b[1:]...),
		"schema-3 form":  append([]byte{0x10}, append([]byte("msg/p\x00........m1"), 2)...),
		"state not utf8": append(bytes.Clone(b[:9]), 0xff),
		"state too long": append(bytes.Clone(b[:9]), strings.Repeat("s", maxStateLen+1)...),
	} {
		if _, err := unmarshalIndex(bad); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: unmarshalIndex(%x) = %v, want errCorrupt", name, bad, err)
		}
	}
	if _, err := marshalIndex(time.Time{}, DirIn, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("marshalIndex(zero time) = %v, want ErrInvalid", err)
	}

	// The schema-3/4 form the 4 → 5 migration reads.
	mk := key(pfxMsg, []byte("p"), sep, be64(t0), []byte("m1"))
	old := mustHex(t, "106d73672f7000"+hex.EncodeToString(be64(t0))+"6d310273656e74")
	if k, dir, state, err := unmarshalIndexV3(old); err != nil || !bytes.Equal(k, mk) || dir != DirOut || state != "sent" {
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

// TestStateChangeLeavesBody: a state change rewrites the index entry only;
// the stored message value is byte for byte what it was.
func TestStateChangeLeavesBody(t *testing.T) {
	db := memT(t)
	m := Message{ID: "m1", Peer: "p", Direction: DirOut, Body: []byte("body"), At: t0, State: "queued"}
	if err := db.PutMessage(m); err != nil {
		t.Fatal(err)
	}
	mk := key(pfxMsg, []byte("p"), sep, be64(t0), []byte("m1"))
	raw := func() []byte {
		var v []byte
		db.View(func(tx *Tx) error { v, _ = tx.getRaw(mk); return nil })
		return v
	}
	before := raw()
	if err := db.SetMessageState("p", "m1", "delivered"); err != nil {
		t.Fatal(err)
	}
	if after := raw(); !bytes.Equal(before, after) {
		t.Fatalf("message value changed with its state: %x -> %x", before, after)
	}
	got, err := db.Message("p", "m1")
	if err != nil || got.State != "delivered" || string(got.Body) != "body" {
		t.Fatalf("Message = %+v, %v", got, err)
	}
	ms, _, err := db.Messages("p", Page{})
	if err != nil || len(ms) != 1 || ms[0].State != "delivered" {
		t.Fatalf("Messages = %+v, %v", ms, err)
	}
}
