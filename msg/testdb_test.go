package msg

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// memDB opens an in-memory store for the test.
func memDB(t testing.TB) testDB {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return testDB{db}
}

// openDB opens (or creates) the store in the data directory dir.
func openDB(t testing.TB, dir string) testDB {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return testDB{db}
}

// testDB is a store with msg's data read and written as the store's own
// accessors once did it, each in a transaction of its own (tests only:
// msg itself runs its operations in the transactions it needs).
type testDB struct{ *store.DB }

func view[T any](db testDB, fn func(d *Data) (T, error)) (T, error) {
	var out T
	err := db.View(func(tx *store.Tx) error {
		var err error
		out, err = fn(In(tx))
		return err
	})
	return out, err
}

func update(db testDB, fn func(d *Data) error) error {
	return db.Update(func(tx *store.Tx) error { return fn(In(tx)) })
}

// PutConversation stores or replaces a conversation summary.
func (db testDB) PutConversation(c Conversation) error {
	return update(db, func(d *Data) error { return d.PutConversation(c) })
}

// Conversation returns the conversation with peer, or ErrNotFound.
func (db testDB) Conversation(peer string) (Conversation, error) {
	return view(db, func(d *Data) (Conversation, error) { return d.Conversation(peer) })
}

// Conversations lists every conversation ordered by peer id.
func (db testDB) Conversations() ([]Conversation, error) { return view(db, (*Data).Conversations) }

// DeleteConversation is DeleteConversation(db.DB, peer).
func (db testDB) DeleteConversation(peer string) error { return DeleteConversation(db.DB, peer) }

// PutMessage stores or replaces a message.
func (db testDB) PutMessage(m Message) error {
	return update(db, func(d *Data) error { return d.PutMessage(m) })
}

// AddMessage stores a message unless its id is taken; false when it is.
func (db testDB) AddMessage(m Message) (added bool, err error) {
	err = db.Update(func(tx *store.Tx) error {
		added, err = In(tx).AddMessage(m)
		return err
	})
	return added, err
}

// Message returns one message, or ErrNotFound.
func (db testDB) Message(peer, id string) (Message, error) {
	return view(db, func(d *Data) (Message, error) { return d.Message(peer, id) })
}

// SetMessageState changes one message's State.
func (db testDB) SetMessageState(peer, id, state string) error {
	return update(db, func(d *Data) error { return d.SetMessageState(peer, id, state) })
}

// DeleteMessage removes one message.
func (db testDB) DeleteMessage(peer, id string) error {
	return update(db, func(d *Data) error { return d.DeleteMessage(peer, id) })
}

// Messages returns one page of a conversation, oldest first, and the next cursor.
func (db testDB) Messages(peer string, p Page) (msgs []Message, next string, err error) {
	err = db.View(func(tx *store.Tx) error {
		msgs, next, err = In(tx).Messages(peer, p)
		return err
	})
	return msgs, next, err
}

// PutOutbox stores or replaces an outbox entry.
func (db testDB) PutOutbox(e OutboxEntry) error {
	return update(db, func(d *Data) error { return d.PutOutbox(e) })
}

// Outbox returns an outbox entry, or ErrNotFound.
func (db testDB) Outbox(id string) (OutboxEntry, error) {
	return view(db, func(d *Data) (OutboxEntry, error) { return d.Outbox(id) })
}

// DeleteOutbox removes an outbox entry.
func (db testDB) DeleteOutbox(id string) error {
	return update(db, func(d *Data) error { return d.DeleteOutbox(id) })
}

// DueOutbox lists up to limit entries due at now, earliest first.
func (db testDB) DueOutbox(now time.Time, limit int) ([]OutboxEntry, error) {
	return view(db, func(d *Data) ([]OutboxEntry, error) { return d.DueOutbox(now, limit) })
}

// NextOutboxDue returns the earliest NextAttempt, false when the outbox is empty.
func (db testDB) NextOutboxDue() (at time.Time, ok bool, err error) {
	err = db.View(func(tx *store.Tx) error {
		at, ok, err = In(tx).NextOutboxDue()
		return err
	})
	return at, ok, err
}

// MarkSeen records a message id from peer; true the first time.
func (db testDB) MarkSeen(peer, id string, at time.Time) (first bool, err error) {
	err = db.Update(func(tx *store.Tx) error {
		first, err = In(tx).MarkSeen(peer, id, at)
		return err
	})
	return first, err
}

// Seen reports whether a message id from peer was marked seen.
func (db testDB) Seen(peer, id string) (bool, error) {
	return view(db, func(d *Data) (bool, error) { return d.Seen(peer, id) })
}

// PruneSeen is PruneSeen(db.DB, cutoff).
func (db testDB) PruneSeen(cutoff time.Time) (int, error) { return PruneSeen(db.DB, cutoff) }

// Session returns the session state with peer's device dev, or ErrNotFound.
func (db testDB) Session(peer string, dev identity.DeviceID) ([]byte, error) {
	return view(db, func(d *Data) ([]byte, error) { return d.Session(peer, dev) })
}

// PutSession replaces the session state with peer's device dev.
func (db testDB) PutSession(peer string, dev identity.DeviceID, state []byte) error {
	return update(db, func(d *Data) error { return d.PutSession(peer, dev, state) })
}

// DeleteSession removes the session state with peer's device dev.
func (db testDB) DeleteSession(peer string, dev identity.DeviceID) error {
	return update(db, func(d *Data) error { return d.DeleteSession(peer, dev) })
}

// testDev is a device of a contact, for the session accessors.
var testDev = identity.DeviceID{1, 2, 3, 4, 5, 6, 7, 8}

// sessionKeys returns the keys of every session set with peer's devices.
func sessionKeys(t *testing.T, db *store.DB, peer string) []string {
	t.Helper()
	var ks []string
	err := db.View(func(tx *store.Tx) error {
		pfx := []byte("sess/" + peer + "\x00")
		return tx.Space(store.SpaceMsg).Scan(pfx, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
			if !bytes.HasPrefix(k, pfx) {
				return false, nil
			}
			ks = append(ks, string(k))
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}
