package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
)

// currentSchema is the key layout version this code reads and writes:
//
//	1  values under conv/, msg/ and out/ are JSON
//	2  they are binary (msg/storecodec.go; migrate_msg.go keeps the form)
//	3  a message's state is in its msgid/ index entry, not in its value
//	4  seen ids are markers under msgid/, not entries under seen/
//	5  a msgid/ entry holds the message's time, not its whole msg/ key
//	6  a queued text message's outbox envelope is in its msgid/ entry (kind
//	   3), with qstart/<peer>; out/ holds control messages only
//	7  every value, meta/schema included, is sealed (seal.go): authenticated
//	   under the value key with its key bound; meta/migrate-cursor, which
//	   exists only during a migration, stays raw
//	8  no value is JSON: claims, listen ports, contacts, the call log and
//	   mailbox members have binary encodings (valuecodec.go), and the call
//	   settings move from the JSON setting set/calls to conf/call-settings
//	9  per device of a contact: its e2e sessions (sess/<peer>\0<dev>
//	   instead of sess/<peer>) and a queued message's copy (dq/<peer>\0<dev>
//	   \0<id>, with the envelope, which the msgid/ entry no longer holds:
//	   it names the devices); qstart/ goes (migrate_devices.go)
const currentSchema uint64 = 9

// sealedSchema is the first schema whose values are sealed.
const sealedSchema uint64 = 7

var keySchema = []byte("meta/schema")

// migration moves the store from version v to v+1 inside one transaction.
// A hook with more to do than one transaction can hold returns errMigrateMore
// after a batch: checkSchema commits that batch without bumping the
// version and calls the hook again in a new transaction. Such a hook must
// therefore be idempotent over batches (and over a crash between them).
type migration func(txn *badger.Txn) error

// errMigrateMore is returned by a migration hook that committed a part of
// its work and wants to be called again.
var errMigrateMore = errors.New("migration continues in another transaction")

// migrationsFor maps a version v to the hook that upgrades v to v+1, the
// hooks that write sealed values using s (and leaving the values under
// damaged unsealed: checkFiles found them damaged). Version 0 is a store with no
// schema key; it is empty by construction, so there is nothing to migrate
// and the current version is written. Add hooks here when the layout
// changes and bump currentSchema. Hooks from 7 on read and write sealed
// values (migrateEach hands them the raw bytes).
func migrationsFor(s *sealer, damaged [][]byte) map[uint64]migration {
	return map[uint64]migration{
		1: migrateBinaryValues,
		2: migrateStateToIndex,
		3: migrateSeenToIndex,
		4: migrateIndexTime,
		5: migrateOutboxToIndex,
		6: func(txn *badger.Txn) error { return migrateSeal(txn, s, damaged) },
		7: func(txn *badger.Txn) error { return migrateJSONValues(txn, s) },
		8: func(txn *badger.Txn) error { return migratePerDevice(txn, s) },
	}
}

// encodeSchema is the stored form of version v: an unsigned varint,
// sealed from sealedSchema on (s may be nil below it).
func encodeSchema(s *sealer, v uint64) []byte {
	b := binary.AppendUvarint(nil, v)
	if v >= sealedSchema {
		b = s.seal(keySchema, b)
	}
	return b
}

// decodeSchema reads the stored version. A sealed value must open and
// hold sealedSchema or later; a raw one must be below it.
func decodeSchema(s *sealer, v []byte) (uint64, error) {
	sealed := len(v) >= sealOverhead
	if sealed {
		if s == nil {
			return 0, errors.New("bug: a sealed schema version read without a sealer")
		}
		var err error
		if v, err = s.open(nil, keySchema, v); err != nil {
			return 0, corrupt(keySchema, err)
		}
	}
	n, k := binary.Uvarint(v)
	if k <= 0 || k != len(v) {
		return 0, corrupt(keySchema, &corruptCause{fmt.Sprintf("malformed schema version %x", v)})
	}
	if sealed != (n >= sealedSchema) {
		return 0, corrupt(keySchema, &corruptCause{fmt.Sprintf("schema version %d stored sealed=%v", n, sealed)})
	}
	return n, nil
}

// checkSchema reads the stored version, refuses a newer one, and runs the
// hooks from the stored version up to want, writing each new version in the
// same transaction as its hook. s seals the version from sealedSchema on.
func checkSchema(bdb *badger.DB, want uint64, hooks map[uint64]migration, s *sealer, log *slog.Logger) error {
	var have uint64
	found, empty := false, true
	err := bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(keySchema)
		if errors.Is(err, badger.ErrKeyNotFound) {
			o := badger.DefaultIteratorOptions
			o.PrefetchValues = false
			all := txn.NewIterator(o)
			defer all.Close()
			all.Rewind()
			empty = !all.Valid()
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			have, err = decodeSchema(s, v)
			found = err == nil
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	if have > want {
		return fmt.Errorf("%w: store schema %d, this build knows up to %d\nhint: run a newer callsign", ErrSchemaTooNew, have, want)
	}
	if !found {
		if !empty {
			// Version 0 is an empty store; one with data has lost its
			// version (a damaged table), and guessing could run the
			// wrong migrations over it.
			return corrupt(keySchema, &corruptCause{"the schema version is missing from a store that holds data"})
		}
		// A fresh store starts at the current version.
		return bdb.Update(func(txn *badger.Txn) error {
			return txn.Set(keySchema, encodeSchema(s, want))
		})
	}
	for v := have; v < want; v++ {
		hook, ok := hooks[v]
		if !ok {
			return fmt.Errorf("schema version %d: no migration to %d", v, v+1)
		}
		batches := 0
		for {
			more := false
			err := bdb.Update(func(txn *badger.Txn) error {
				err := hook(txn)
				if errors.Is(err, errMigrateMore) {
					more = true
					return nil
				}
				if err != nil {
					return err
				}
				return txn.Set(keySchema, encodeSchema(s, v+1))
			})
			if err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
			if !more {
				break
			}
			if batches++; batches%100 == 0 {
				log.Info("store schema migration in progress", "from", v, "to", v+1, "batches", batches)
			}
		}
		log.Info("store schema migrated", "from", v, "to", v+1)
	}
	return nil
}
