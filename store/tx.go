package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// maxConflictRetries bounds how often Update reruns a closure whose
// transaction lost a conflict with a concurrent one; the pause before try
// i is random, up to conflictPause(i): 100 µs doubling to 50 ms, about a
// second in all. A machine busy enough to preempt a transaction between
// its reads and its commit again and again (several writers of one key on
// two loaded cores) used to exhaust 16 tries within a few milliseconds.
const maxConflictRetries = 32

// conflictPause is the longest pause before try i (i ≥ 1) of Update.
func conflictPause(i int) time.Duration {
	return min(100*time.Microsecond<<min(i-1, 10), 50*time.Millisecond)
}

// Tx is one badger transaction with the store's typed accessors. A Tx is
// valid only inside the closure passed to DB.Update or DB.View and must not
// be used from another goroutine. Accessors that write return an error in a
// View.
type Tx struct {
	txn *badger.Txn
	s   *sealer      // seals every value written, opens every value read (seal.go)
	log *slog.Logger // for the damaged entries a scan passes over
}

// Update runs fn in a read-write transaction and commits it if fn returns
// nil; if fn returns an error nothing it wrote is kept. When the commit
// conflicts with a concurrent transaction, fn runs again after a short
// random pause (up to 16 tries, then the error wraps badger.ErrConflict), so
// fn must not have side effects outside tx, and must not call DB methods
// (use the Tx). Returns ErrTxnTooBig when the
// transaction exceeds badger's size limit, ErrClosed after Close.
func (db *DB) Update(fn func(tx *Tx) error) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	var err error
	for i := range maxConflictRetries {
		if i > 0 {
			time.Sleep(time.Duration(rand.Int64N(int64(conflictPause(i)))))
		}
		err = db.bdb.Update(func(txn *badger.Txn) error { return fn(&Tx{txn: txn, s: db.seal, log: db.log}) })
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	return db.mapErr(err)
}

// View runs fn in a read-only transaction that sees one consistent snapshot.
func (db *DB) View(fn func(tx *Tx) error) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	return db.mapErr(db.bdb.View(func(txn *badger.Txn) error { return fn(&Tx{txn: txn, s: db.seal, log: db.log}) }))
}

func (db *DB) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrTxnTooBig):
		return fmt.Errorf("%w: %w", ErrTxnTooBig, err)
	case errors.Is(err, badger.ErrDBClosed):
		return ErrClosed
	}
	return err
}

// key joins parts into one key.
func key(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// checkID rejects empty ids and ids containing the 0x00 separator.
func checkID(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	if len(s) > maxIDLen {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, what, maxIDLen)
	}
	if bytes.IndexByte([]byte(s), 0) >= 0 {
		return fmt.Errorf("%w: %s contains a NUL byte", ErrInvalid, what)
	}
	return nil
}

// checkTime rejects times outside what a key can order (1970 to 2262).
func checkTime(what string, t time.Time) error {
	if t.IsZero() || t.UnixNano() < 0 || t.Year() >= 2262 {
		return fmt.Errorf("%w: %s %v is out of range", ErrInvalid, what, t)
	}
	return nil
}

// be64 is t as 8 big-endian bytes of unix nanoseconds, the form of a time
// in a key (it orders as the time does from 1970 on).
func be64(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())) }

// maxIDLen caps every id-like key component (badger keys are at most 64 KiB).
const maxIDLen = 1024

// getRaw returns the value under k, authenticated, in a new slice; or
// ErrNotFound, or a *CorruptError.
func (tx *Tx) getRaw(k []byte) ([]byte, error) {
	it, err := tx.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return tx.value(it)
}

// value reads item's value and opens it (seal.go) into a new slice. A
// value badger cannot read back, or that fails authentication, is a
// *CorruptError naming the entry.
func (tx *Tx) value(item *badger.Item) ([]byte, error) {
	var out []byte
	err := item.Value(func(b []byte) error {
		var err error
		out, err = tx.s.open(nil, item.Key(), b)
		return err
	})
	if err != nil {
		return nil, corrupt(item.KeyCopy(nil), err)
	}
	return out, nil
}

// passOver reports whether err is about damaged data, which the scans
// that run at start-up (the outbox, the queued messages) log and pass
// over, so that one damaged entry does not keep the node from starting.
func (tx *Tx) passOver(err error) bool {
	if !IsCorrupt(err) {
		return false
	}
	tx.log.Warn("passing over a damaged entry", "err", err)
	return true
}

// peek calls fn with the value under k, valid only during the call, or
// returns ErrNotFound.
func (tx *Tx) peek(k []byte, fn func(v []byte) error) error {
	b, err := tx.getRaw(k)
	if err != nil {
		return err
	}
	return fn(b)
}

// decodeValue decodes a binary value read under k; a value that does not
// decode is a *CorruptError naming k.
func decodeValue[T any](k, b []byte, dec func([]byte) (T, error)) (T, error) {
	v, err := dec(b)
	if err != nil {
		return v, corrupt(bytes.Clone(k), err)
	}
	return v, nil
}

// scanValues decodes every binary value under prefix in key order.
func scanValues[T any](tx *Tx, prefix []byte, dec func([]byte) (T, error)) ([]T, error) {
	var out []T
	err := tx.scan(prefix, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		b, err := val()
		if err != nil {
			return false, err
		}
		v, err := decodeValue(k, b, dec)
		if err != nil {
			return false, err
		}
		out = append(out, v)
		return true, nil
	})
	return out, err
}

func (tx *Tx) has(k []byte) (bool, error) {
	_, err := tx.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// setRaw seals v under k and writes it.
func (tx *Tx) setRaw(k, v []byte) error {
	return tx.txn.Set(k, tx.s.seal(k, v))
}

func (tx *Tx) del(k []byte) error {
	return tx.txn.Delete(k)
}

// getValue reads and decodes the binary value under k: ErrNotFound, or a
// *CorruptError naming k when it does not decode.
func getValue[T any](tx *Tx, k []byte, dec func([]byte) (T, error)) (T, error) {
	b, err := tx.getRaw(k)
	if err != nil {
		var zero T
		return zero, err
	}
	return decodeValue(k, b, dec)
}

// setValue encodes v and writes it, sealed, under k.
func setValue[T any](tx *Tx, k []byte, v *T, enc func(*T) ([]byte, error)) error {
	b, err := enc(v)
	if err != nil {
		return err
	}
	return tx.setRaw(k, b)
}

// scan calls fn for each key under prefix in key order (or reverse), from
// start (nil: the first key, or the last one in reverse), with the value
// loaded lazily by val. fn returns false to stop. A reverse scan from nil
// assumes no key under prefix continues with a 0xff byte; the layouts that
// scan in reverse (msg/) start with a big-endian time below 2^63.
func (tx *Tx) scan(prefix, start []byte, reverse bool, fn func(k []byte, val func() ([]byte, error)) (bool, error)) error {
	o := badger.DefaultIteratorOptions
	o.Prefix = prefix
	o.Reverse = reverse
	o.PrefetchValues = false
	it := tx.txn.NewIterator(o)
	defer it.Close()
	if start == nil {
		start = prefix
		if reverse {
			start = append(bytes.Clone(prefix), 0xff)
		}
	}
	for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		more, err := fn(item.Key(), func() ([]byte, error) { return tx.value(item) })
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
	return nil
}

// view and update run a typed accessor as its own transaction.
func view[T any](db *DB, fn func(tx *Tx) (T, error)) (T, error) {
	var out T
	err := db.View(func(tx *Tx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	return out, err
}
