package store

import (
	"time"

	"github.com/callsign/callsign/identity"
)

// Many of the store's tests (integrity, sealing, migrations, reopening)
// use messaging's data as their data: that is what a node's store holds
// most of. msg owns it now and imports store, so these tests reach msg
// through msgIn, which msg_test.go (package store_test, which may import
// msg) binds before any test runs. The types below are the store's old
// message types, field for field (the JSON tags are schema 1's form,
// which the migration tests write), converted to msg's at that seam.

// Message directions.
const (
	DirIn  = dirInV2
	DirOut = dirOutV2
)

type (
	// The frozen forms (migrate_msg.go) have the old types' fields and
	// their JSON tags.
	Message      = messageV2
	Conversation = conversationV2
	OutboxEntry  = outboxV2

	Page struct {
		Cursor string
		Limit  int
		Newest bool
	}
	QueuedMessage struct {
		Peer string
		Dev  identity.DeviceID
		ID   string
		At   time.Time
	}
	IDUse int
)

// What a conversation holds under an id, numbered as msg.IDUse.
const (
	IDFree IDUse = iota
	IDSeen
	IDOurs
)

// MsgData is msg.Data (msg.In(tx)) in the types above.
type MsgData interface {
	PutMessage(Message) error
	InsertQueued(Message, []byte) error
	Message(peer, id string) (Message, error)
	Messages(peer string, p Page) ([]Message, string, error)
	SetMessageState(peer, id, state string) error
	IDUse(peer, id string) (IDUse, error)
	QueuedEnvelope(peer, id string) ([]byte, error)
	Queued() ([]QueuedMessage, error)
	PutOutbox(OutboxEntry) error
	DueOutbox(now time.Time, limit int) ([]OutboxEntry, error)
	PutConversation(Conversation) error
	Conversation(peer string) (Conversation, error)
	Conversations() ([]Conversation, error)
}

var (
	// msgIn is msg.In, bound by msg_test.go.
	msgIn func(tx *Tx) MsgData
	// testChecks is what the node gives Verify: msg.Check for msg's keyspace.
	testChecks map[string]Check
)

// SetMsgHooks binds msgIn and testChecks; msg_test.go calls it from init.
func SetMsgHooks(in func(tx *Tx) MsgData, checks map[string]Check) { msgIn, testChecks = in, checks }

func (tx *Tx) PutMessage(m Message) error               { return msgIn(tx).PutMessage(m) }
func (tx *Tx) InsertQueued(m Message, env []byte) error { return msgIn(tx).InsertQueued(m, env) }
func (tx *Tx) Message(peer, id string) (Message, error) { return msgIn(tx).Message(peer, id) }
func (tx *Tx) IDUse(peer, id string) (IDUse, error)     { return msgIn(tx).IDUse(peer, id) }
func (tx *Tx) QueuedEnvelope(peer, id string) ([]byte, error) {
	return msgIn(tx).QueuedEnvelope(peer, id)
}
func (tx *Tx) Queued() ([]QueuedMessage, error) { return msgIn(tx).Queued() }
func (tx *Tx) DueOutbox(now time.Time, limit int) ([]OutboxEntry, error) {
	return msgIn(tx).DueOutbox(now, limit)
}

func (db *DB) PutMessage(m Message) error {
	return db.Update(func(tx *Tx) error { return tx.PutMessage(m) })
}

func (db *DB) Message(peer, id string) (Message, error) {
	return view(db, func(tx *Tx) (Message, error) { return tx.Message(peer, id) })
}

func (db *DB) Messages(peer string, p Page) (ms []Message, next string, err error) {
	err = db.View(func(tx *Tx) error { ms, next, err = msgIn(tx).Messages(peer, p); return err })
	return ms, next, err
}

func (db *DB) SetMessageState(peer, id, state string) error {
	return db.Update(func(tx *Tx) error { return msgIn(tx).SetMessageState(peer, id, state) })
}

func (db *DB) PutOutbox(e OutboxEntry) error {
	return db.Update(func(tx *Tx) error { return msgIn(tx).PutOutbox(e) })
}

func (db *DB) DueOutbox(now time.Time, limit int) ([]OutboxEntry, error) {
	return view(db, func(tx *Tx) ([]OutboxEntry, error) { return tx.DueOutbox(now, limit) })
}

func (db *DB) PutConversation(c Conversation) error {
	return db.Update(func(tx *Tx) error { return msgIn(tx).PutConversation(c) })
}

func (db *DB) Conversation(peer string) (Conversation, error) {
	return view(db, func(tx *Tx) (Conversation, error) { return msgIn(tx).Conversation(peer) })
}

func (db *DB) Conversations() ([]Conversation, error) {
	return view(db, func(tx *Tx) ([]Conversation, error) { return msgIn(tx).Conversations() })
}
