package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// rawBadger opens the badger database of a closed store in dir directly,
// with the store's sealer.
func rawBadger(t *testing.T, dir string) (*badger.DB, *sealer) {
	t.Helper()
	key, err := readKeyFile(filepath.Join(dir, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	// The store's own options: values of 1 KiB and more go to the value log.
	bdb, err := badger.Open(badgerOptions(filepath.Join(dir, dbDirName), key, false, slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return bdb, s
}

// unsealStore turns a closed schema-7 store into the schema-6 store that
// held the same data: every value opened back to its raw bytes.
func unsealStore(t *testing.T, dir string) {
	t.Helper()
	bdb, s := rawBadger(t, dir)
	defer bdb.Close()
	wb := bdb.NewWriteBatch()
	err := bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			raw, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if bytes.Equal(k, keySchema) {
				continue
			}
			v, err := s.open(nil, k, raw)
			if err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
			if err := wb.Set(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := wb.Set(keySchema, encodeSchema(nil, 6)); err != nil {
		t.Fatal(err)
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
}

// sealedCount counts the values in a closed store that open under its
// sealer, and those that do not, meta/schema and the cursor aside.
func sealedCount(t *testing.T, bdb *badger.DB, s *sealer) (sealed, raw int) {
	t.Helper()
	bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if bytes.Equal(k, keySchema) || bytes.Equal(k, keyMigrateCursor) {
				continue
			}
			v, _ := it.Item().ValueCopy(nil)
			if _, err := s.open(nil, k, v); err == nil {
				sealed++
			} else {
				raw++
			}
		}
		return nil
	})
	return sealed, raw
}

// sealStore is a schema-6 store: integrityStore's data (600 messages, each
// a message entry and an index entry, half of the messages in the value
// log; contacts, petnames), conversations, a setting and a secret,
// unsealed: more than twice the entries one batch seals.
func sealStore(t *testing.T) (string, []Message) {
	t.Helper()
	dir, msgs := integrityStore(t, 600)
	db := openT(t, dir, nil)
	for p := range 3 {
		if err := db.PutConversation(Conversation{Peer: fmt.Sprint("peer", p), NextSeq: 7, LastAt: t0, Unread: p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutSetting("theme", []byte("dark")); err != nil {
		t.Fatal(err)
	}
	if err := db.PutSecrets(Secrets{AccountSeed: []byte("seed")}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	unsealStore(t, dir)
	return dir, msgs
}

// checkSealed checks that a migrated store is at the current schema with every
// value sealed, and that everything reads back.
func checkSealed(t *testing.T, dir string, msgs []Message) {
	t.Helper()
	db := openT(t, dir, nil)
	if damaged := checkReads(t, db, msgs); len(damaged) != 0 {
		t.Fatalf("%d messages damaged after sealing", len(damaged))
	}
	c, err := db.ContactByPetname("pet1")
	if err != nil || c.Account != "peer1" {
		t.Fatalf("contact after sealing: %+v, %v", c, err)
	}
	conv, err := db.Conversation("peer2")
	if err != nil || conv.Unread != 2 || conv.NextSeq != 7 {
		t.Fatalf("conversation after sealing: %+v, %v", conv, err)
	}
	if v, ok, err := db.GetSetting("theme"); err != nil || !ok || string(v) != "dark" {
		t.Fatalf("setting after sealing: %q %v %v", v, ok, err)
	}
	if s, err := db.Secrets(); err != nil || string(s.AccountSeed) != "seed" {
		t.Fatalf("secrets after sealing: %v", err)
	}
	st, err := db.Verify(context.Background(), func(d Damage) { t.Errorf("Verify after sealing: %v", d) })
	if err != nil || st.Entries < 2*len(msgs) {
		t.Fatalf("Verify after sealing: %+v, %v", st, err)
	}
	db.Close()
	bdb, s := rawBadger(t, dir)
	defer bdb.Close()
	if sealed, raw := sealedCount(t, bdb, s); raw != 0 || sealed < 2*len(msgs) {
		t.Fatalf("after sealing: %d values sealed, %d raw", sealed, raw)
	}
	err = bdb.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(keyMigrateCursor); !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("migration cursor left behind: %v", err)
		}
		it, err := txn.Get(keySchema)
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if n, err := decodeSchema(s, v); err != nil || n != currentSchema {
				return fmt.Errorf("schema %d, %v", n, err)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateSeal opens a schema-6 store of more entries than one batch
// holds and checks that every value is sealed and reads back unchanged.
func TestMigrateSeal(t *testing.T) {
	dir, msgs := sealStore(t)
	checkSealed(t, dir, msgs)
}

// TestMigrateSealInterrupted stops the sealing after two committed
// batches, as a crash would: some values are sealed, the rest raw, the
// schema still 6; the next Open finishes it.
func TestMigrateSealInterrupted(t *testing.T) {
	dir, msgs := sealStore(t)
	bdb, s := rawBadger(t, dir)
	crash := errors.New("crash")
	calls := 0
	hooks := map[uint64]migration{6: func(txn *badger.Txn) error {
		if calls++; calls == 3 {
			return crash
		}
		return migrateSeal(txn, s, nil)
	}}
	if err := checkSchema(bdb, 7, hooks, s, slog.New(slog.DiscardHandler)); !errors.Is(err, crash) {
		bdb.Close()
		t.Fatalf("interrupted migration: %v", err)
	}
	sealed, raw := sealedCount(t, bdb, s)
	var version uint64
	bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(keySchema)
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { version, err = decodeSchema(s, v); return err })
	})
	bdb.Close()
	if sealed < migrateBatchEntries || raw == 0 || version != 6 {
		t.Fatalf("after the crash: %d sealed, %d raw, schema %d; want both, and 6", sealed, raw, version)
	}
	checkSealed(t, dir, msgs)
}

// TestMigrateSealLeavesDamage: a value whose value log entry is damaged
// when the store is sealed is not sealed as if it were the value: it is
// reported damaged afterwards, and every other message reads back.
func TestMigrateSealLeavesDamage(t *testing.T) {
	dir, msgs := sealStore(t)
	vlog := storeFiles(t, dir, ".vlog")
	path := vlog[len(vlog)-1]
	_, entries := logEntries(t, path)
	e := entries[len(entries)/3]
	xorByte(t, path, int64(e.end-20), 0x08) // in the value
	db := openT(t, dir, nil)
	damaged := checkReads(t, db, msgs)
	if len(damaged) != 1 {
		t.Fatalf("%d messages damaged, want the one whose value log entry was hit", len(damaged))
	}
	named, _, _ := verifyDamage(t, func(report func(Damage)) (VerifyStats, error) { return db.Verify(context.Background(), report) })
	for id := range damaged {
		if !named[id] {
			t.Fatalf("Verify does not name damaged message %s", id)
		}
	}
}
