package store

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Message directions.
const (
	DirIn  = "in"
	DirOut = "out"
)

// Message is one message in a conversation with Peer.
type Message struct {
	ID        string    `json:"id"`        // sender-chosen id, unique per peer
	Peer      string    `json:"peer"`      // the other account's id
	Direction string    `json:"direction"` // DirIn or DirOut
	Seq       uint64    `json:"seq"`       // sender's per-conversation sequence
	Body      []byte    `json:"body"`
	SentAt    time.Time `json:"sent_at"` // sender's clock
	At        time.Time `json:"at"`      // local time stored; orders the conversation
	State     string    `json:"state,omitempty"`
}

// Conversation is the per-peer summary the messaging layer keeps.
type Conversation struct {
	Peer    string    `json:"peer"`
	NextSeq uint64    `json:"next_seq"` // our next outgoing Seq
	LastAt  time.Time `json:"last_at"`
	Unread  int       `json:"unread"`
	Request bool      `json:"request,omitempty"` // a message request not yet accepted
}

// OutboxEntry is a sealed envelope waiting for the recipient's ack.
type OutboxEntry struct {
	ID          string    `json:"id"` // message id
	Peer        string    `json:"peer"`
	Envelope    []byte    `json:"envelope"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	CreatedAt   time.Time `json:"created_at"`
}

// Page selects a page of messages. The zero Page is the oldest 100.
type Page struct {
	// Cursor continues after the last page; "" starts at the oldest (or, with
	// Newest, the newest) message.
	Cursor string
	// Limit caps the page; 0 means 100, at most 1000.
	Limit int
	// Newest pages backwards from the newest message. Each page is still
	// returned oldest first.
	Newest bool
}

const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
)

var (
	pfxConv    = []byte("conv/")
	pfxMsg     = []byte("msg/")
	pfxMsgID   = []byte("msgid/")
	pfxOut     = []byte("out/")
	pfxOutDue  = []byte("outdue/") // schema 1 only: the outbox index by time
	pfxSeen    = []byte("seen/")   // schema ≤ 3 only: seen ids are msgid/ markers since 4
	pfxSession = []byte("sess/")
	sep        = []byte{0}
)

func be64(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())) }

// checkTime rejects times outside what a key can order (1970 to 2262).
func checkTime(what string, t time.Time) error {
	if t.IsZero() || t.UnixNano() < 0 || t.Year() >= 2262 {
		return fmt.Errorf("%w: %s %v is out of range", ErrInvalid, what, t)
	}
	return nil
}

// PutConversation stores or replaces the conversation with c.Peer.
func (tx *Tx) PutConversation(c Conversation) error {
	if err := checkID("peer", c.Peer); err != nil {
		return err
	}
	b, err := marshalConversation(&c)
	if err != nil {
		return err
	}
	return tx.setRaw(key(pfxConv, []byte(c.Peer)), b)
}

// Conversation returns the conversation with peer, or ErrNotFound.
func (tx *Tx) Conversation(peer string) (Conversation, error) {
	if err := checkID("peer", peer); err != nil {
		return Conversation{}, err
	}
	b, err := tx.getRaw(key(pfxConv, []byte(peer)))
	if err != nil {
		return Conversation{}, err
	}
	return decodeValue(key(pfxConv, []byte(peer)), b, unmarshalConversation)
}

// Conversations lists every conversation ordered by peer id.
func (tx *Tx) Conversations() ([]Conversation, error) {
	return scanValues(tx, pfxConv, unmarshalConversation)
}

// DeleteConversation removes the conversation with peer and all its
// messages. A long conversation may not fit one transaction (ErrTxnTooBig);
// DB.DeleteConversation deletes in batches.
func (tx *Tx) DeleteConversation(peer string) error {
	if err := checkID("peer", peer); err != nil {
		return err
	}
	if _, err := tx.deleteMessages(peer, -1); err != nil {
		return err
	}
	return tx.del(key(pfxConv, []byte(peer)))
}

// deleteMessages deletes up to max (-1: all) messages of peer and reports how many.
func (tx *Tx) deleteMessages(peer string, max int) (int, error) {
	prefix := key(pfxMsg, []byte(peer), sep)
	var keys [][]byte
	err := tx.scan(prefix, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
		keys = append(keys, bytes.Clone(k))
		return max < 0 || len(keys) < max, nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := tx.deleteIndexed(peer, string(k[len(prefix)+8:])); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// AddMessage stores m like PutMessage unless the conversation with m.Peer
// already has a message with m.ID, or has seen that id (IDSeen): then it
// writes nothing and returns false. It can never replace another message.
func (tx *Tx) AddMessage(m Message) (bool, error) {
	return tx.putMessage(m, putAdd)
}

// PutMessage stores m, or replaces the message with the same Peer and ID
// (for example to change its State). A zero m.At is set to the current
// time; At orders the conversation.
func (tx *Tx) PutMessage(m Message) error {
	_, err := tx.putMessage(m, putReplace)
	return err
}

// InsertMessage stores m without reading first: two writes and no read.
// It is for an id the caller knows is unused in m.Peer's conversation: one
// it has just drawn at random (128 bits), or one IDUse reported IDFree
// while the caller held off every other writer of the conversation until
// this transaction commits (msg holds the peer's lock across both). Given
// a used id it would leave the old message unreachable; AddMessage is the
// checking form.
func (tx *Tx) InsertMessage(m Message) error {
	_, err := tx.putMessage(m, putInsert)
	return err
}

type putMode int

const (
	putReplace putMode = iota
	putAdd
	putInsert
)

func (tx *Tx) putMessage(m Message, mode putMode) (bool, error) {
	return tx.putMessageQueued(m, mode, false, nil)
}

// putMessageQueued is putMessage for a message that, when queued, is an
// outgoing message in the outbox with envelope env.
func (tx *Tx) putMessageQueued(m Message, mode putMode, queued bool, env []byte) (bool, error) {
	if err := checkID("peer", m.Peer); err != nil {
		return false, err
	}
	if err := checkID("message id", m.ID); err != nil {
		return false, err
	}
	if m.Direction != DirIn && m.Direction != DirOut {
		return false, fmt.Errorf("%w: message direction %q", ErrInvalid, m.Direction)
	}
	if m.At.IsZero() {
		m.At = time.Now()
	}
	if err := checkTime("message time", m.At); err != nil {
		return false, err
	}
	idKey := key(pfxMsgID, []byte(m.Peer), sep, []byte(m.ID))
	msgKey := key(pfxMsg, []byte(m.Peer), sep, be64(m.At), []byte(m.ID))
	ix := msgIndex{at: m.At, dir: m.Direction, state: m.State, queued: queued, env: env, envKnown: true}
	if queued && m.Direction != DirOut {
		return false, fmt.Errorf("%w: only an outgoing message can be queued", ErrInvalid)
	}
	body := m
	body.State = "" // the state lives in the index
	val, err := marshalMessage(&body)
	if err != nil {
		return false, err
	}
	if mode != putInsert {
		old, err := tx.indexWithEnv(m.Peer, m.ID)
		switch {
		case err == ErrNotFound:
		case err != nil:
			return false, err
		case mode == putAdd:
			return false, nil
		case old.marker():
		default:
			if !bytes.Equal(old.key, msgKey) {
				if err := tx.del(old.key); err != nil {
					return false, err
				}
			}
			if old.queued && m.Direction == DirOut {
				// Replacing a queued message keeps it in the outbox.
				ix.queued, ix.env = true, old.env
			}
		}
	}
	index, err := ix.marshal()
	if err != nil {
		return false, err
	}
	if err := tx.setRaw(idKey, index); err != nil {
		return false, err
	}
	return true, tx.setRaw(msgKey, val)
}

// index reads and decodes the msgid/ entry of peer's message id, with the
// message's msg/ key, or returns ErrNotFound. A queued message's envelope
// is left out (indexWithEnv has it).
func (tx *Tx) index(peer, id string) (msgIndex, error) {
	return tx.readIndex(peer, id, false)
}

// indexWithEnv is index with a queued message's envelope, for rewriting it.
func (tx *Tx) indexWithEnv(peer, id string) (msgIndex, error) {
	return tx.readIndex(peer, id, true)
}

func (tx *Tx) readIndex(peer, id string, withEnv bool) (msgIndex, error) {
	idKey := key(pfxMsgID, []byte(peer), sep, []byte(id))
	var ix msgIndex
	err := tx.peek(idKey, func(v []byte) error {
		var err error
		ix, err = unmarshalIndex(v)
		if err != nil {
			return corrupt(idKey, err)
		}
		if withEnv {
			ix.env = bytes.Clone(ix.env)
		} else {
			ix.env, ix.envKnown = nil, false
		}
		return nil
	})
	if err == nil && !ix.marker() {
		ix.key = key(pfxMsg, []byte(peer), sep, be64(ix.at), []byte(id))
	}
	return ix, err
}

// Message returns the message with this id from peer's conversation, or ErrNotFound.
func (tx *Tx) Message(peer, id string) (Message, error) {
	if err := checkID("peer", peer); err != nil {
		return Message{}, err
	}
	if err := checkID("message id", id); err != nil {
		return Message{}, err
	}
	ix, err := tx.index(peer, id)
	if err != nil {
		return Message{}, err
	}
	if ix.marker() {
		return Message{}, ErrNotFound
	}
	b, err := tx.getRaw(ix.key)
	if err == ErrNotFound {
		return Message{}, corrupt(ix.key, &corruptCause{"the message is missing; its index entry remains"})
	}
	if err != nil {
		return Message{}, err
	}
	m, err := decodeValue(ix.key, b, unmarshalMessage)
	m.State = ix.state
	return m, err
}

// SetMessageState changes the State of one message; ErrNotFound if it is missing.
func (tx *Tx) SetMessageState(peer, id, state string) error {
	_, err := tx.UpdateMessageState(peer, id, func(Message) (string, bool) { return state, true })
	return err
}

// UpdateMessageState reads the state of one message and, when decide
// returns true, sets it to the state decide returns. A message's state is
// kept apart from its body (in the id index), so this reads and writes a
// few bytes however long the message is: decide sees, and the result
// holds, the message's ID, Peer, Direction, At and State only (not Body,
// Seq or SentAt). ErrNotFound when there is no such message.
func (tx *Tx) UpdateMessageState(peer, id string, decide func(m Message) (state string, ok bool)) (Message, error) {
	if err := checkID("peer", peer); err != nil {
		return Message{}, err
	}
	if err := checkID("message id", id); err != nil {
		return Message{}, err
	}
	ix, err := tx.indexWithEnv(peer, id)
	if err != nil {
		return Message{}, err
	}
	if ix.marker() {
		return Message{}, ErrNotFound
	}
	m := Message{ID: id, Peer: peer, Direction: ix.dir, State: ix.state, At: ix.at}
	state, ok := decide(m)
	if !ok || state == m.State {
		return m, nil
	}
	ix.state = state
	index, err := ix.marshal() // a queued message stays queued, with its envelope
	if err != nil {
		return Message{}, err
	}
	m.State = state
	return m, tx.setRaw(key(pfxMsgID, []byte(peer), sep, []byte(id)), index)
}

// DeleteMessage removes one message; a missing one is not an error.
func (tx *Tx) DeleteMessage(peer, id string) error {
	if err := checkID("peer", peer); err != nil {
		return err
	}
	if err := checkID("message id", id); err != nil {
		return err
	}
	return tx.deleteIndexed(peer, id)
}

// deleteIndexed deletes the message with this id. An incoming message's
// id stays behind as a seen-only marker, first seen when the message was
// stored, so a late retransmission is still recognised as a duplicate.
func (tx *Tx) deleteIndexed(peer, id string) error {
	idKey := key(pfxMsgID, []byte(peer), sep, []byte(id))
	ix, err := tx.index(peer, id)
	if err == ErrNotFound || (err == nil && ix.marker()) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := tx.del(ix.key); err != nil {
		return err
	}
	if ix.dir == DirIn {
		return tx.setRaw(idKey, marshalSeen(ix.at))
	}
	return tx.del(idKey)
}

// Messages returns one page of peer's conversation, oldest first, and the
// cursor for the next page ("" when there is none).
func (tx *Tx) Messages(peer string, p Page) ([]Message, string, error) {
	if err := checkID("peer", peer); err != nil {
		return nil, "", err
	}
	limit := p.Limit
	if limit <= 0 {
		limit = defaultPageLimit
	}
	limit = min(limit, maxPageLimit)
	prefix := key(pfxMsg, []byte(peer), sep)
	var start []byte
	var skip []byte // the cursor key itself, excluded
	if p.Cursor != "" {
		c, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		if err != nil || len(c) < 9 {
			return nil, "", fmt.Errorf("%w: malformed cursor", ErrInvalid)
		}
		start = key(prefix, c)
		skip = start
	}
	var out []Message
	var last []byte
	more := false
	err := tx.scan(prefix, start, p.Newest, func(k []byte, val func() ([]byte, error)) (bool, error) {
		if skip != nil && bytes.Equal(k, skip) {
			return true, nil
		}
		if len(out) == limit {
			more = true
			return false, nil
		}
		b, err := val()
		if err != nil {
			return false, err
		}
		m, err := decodeValue(k, b, unmarshalMessage)
		if err != nil {
			return false, err
		}
		ix, err := tx.index(peer, string(k[len(prefix)+8:]))
		if err == ErrNotFound || (err == nil && (ix.marker() || !bytes.Equal(ix.key, k))) {
			err = corrupt(bytes.Clone(k), &corruptCause{"the message's index entry is missing or points elsewhere"})
		}
		if err != nil {
			return false, err
		}
		m.State = ix.state
		out = append(out, m)
		last = bytes.Clone(k[len(prefix):])
		return true, nil
	})
	if err != nil {
		return nil, "", err
	}
	if p.Newest {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	next := ""
	if more {
		next = base64.RawURLEncoding.EncodeToString(last)
	}
	return out, next, nil
}

// PutOutbox stores or replaces an outbox entry.
func (tx *Tx) PutOutbox(e OutboxEntry) error {
	if err := checkID("message id", e.ID); err != nil {
		return err
	}
	if err := checkID("peer", e.Peer); err != nil {
		return err
	}
	if err := checkTime("next attempt", e.NextAttempt); err != nil {
		return err
	}
	val, err := marshalOutbox(&e)
	if err != nil {
		return err
	}
	return tx.setRaw(key(pfxOut, []byte(e.ID)), val)
}

// Outbox returns the outbox entry for a message id, or ErrNotFound.
func (tx *Tx) Outbox(id string) (OutboxEntry, error) {
	if err := checkID("message id", id); err != nil {
		return OutboxEntry{}, err
	}
	k := key(pfxOut, []byte(id))
	b, err := tx.getRaw(k)
	if err != nil {
		return OutboxEntry{}, err
	}
	return decodeValue(k, b, unmarshalOutbox)
}

// DeleteOutbox removes an entry (the message was acknowledged); a missing
// one is not an error.
func (tx *Tx) DeleteOutbox(id string) error {
	if err := checkID("message id", id); err != nil {
		return err
	}
	return tx.del(key(pfxOut, []byte(id)))
}

// dueEntry is an outbox entry's id and next attempt, read without its envelope.
type dueEntry struct {
	id   []byte
	next time.Time
}

// outboxSchedule reads the id and next attempt of every outbox entry,
// earliest first (ties by id). The outbox holds only what is not yet
// acknowledged, so it is read whole rather than kept indexed by time: an
// index cost every message two more writes and a read.
func (tx *Tx) outboxSchedule() ([]dueEntry, error) {
	var out []dueEntry
	o := badger.DefaultIteratorOptions
	o.Prefix = pfxOut
	o.PrefetchValues = false
	it := tx.txn.NewIterator(o)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		v, err := tx.value(item)
		if err == nil {
			var id []byte
			var next time.Time
			if id, next, err = outboxDue(v); err == nil {
				out = append(out, dueEntry{id: id, next: next})
				continue
			}
			err = corrupt(item.KeyCopy(nil), err)
		}
		if !tx.passOver(err) {
			return nil, err
		}
	}
	slices.SortStableFunc(out, func(a, b dueEntry) int { return a.next.Compare(b.next) })
	return out, nil
}

// DueOutbox lists up to limit (0: 100) entries whose NextAttempt is not
// after now, earliest first. A damaged entry is logged and passed over
// (`callsign store verify` names it), so that it cannot keep the node from
// starting.
func (tx *Tx) DueOutbox(now time.Time, limit int) ([]OutboxEntry, error) {
	if limit <= 0 {
		limit = defaultPageLimit
	}
	sched, err := tx.outboxSchedule()
	if err != nil {
		return nil, err
	}
	var out []OutboxEntry
	for _, d := range sched {
		if d.next.After(now) || len(out) == limit {
			break
		}
		e, err := tx.Outbox(string(d.id))
		if tx.passOver(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("outbox entry %q: %w", d.id, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// NextOutboxDue returns the earliest NextAttempt in the outbox, and false
// when the outbox is empty, so a retry loop knows how long to sleep.
func (tx *Tx) NextOutboxDue() (time.Time, bool, error) {
	sched, err := tx.outboxSchedule()
	if err != nil || len(sched) == 0 {
		return time.Time{}, false, err
	}
	return sched[0].next, true, nil
}

// IDUse says what a conversation already holds under a message id.
type IDUse int

const (
	// IDFree: the id is unused and was never seen.
	IDFree IDUse = iota
	// IDSeen: an incoming message has it, or it was seen without a
	// message to keep (a control message, or a message since deleted).
	IDSeen
	// IDOurs: one of our outgoing messages has it.
	IDOurs
)

// IDUse reports what peer's conversation holds under message id, with one
// read: how the messaging layer tells a fresh message from a duplicate.
func (tx *Tx) IDUse(peer, id string) (IDUse, error) {
	if err := checkID("peer", peer); err != nil {
		return IDFree, err
	}
	if err := checkID("message id", id); err != nil {
		return IDFree, err
	}
	ix, err := tx.index(peer, id)
	switch {
	case err == ErrNotFound:
		return IDFree, nil
	case err != nil:
		return IDFree, err
	case ix.dir == DirOut:
		return IDOurs, nil
	}
	return IDSeen, nil
}

// MarkSeen records that message id from peer arrived at time at (zero: now). It returns
// true the first time and false for a duplicate (or an id a message of the
// conversation has), which the caller drops. Ids are scoped per peer, so
// one peer cannot suppress another's message.
func (tx *Tx) MarkSeen(peer, id string, at time.Time) (bool, error) {
	seen, err := tx.Seen(peer, id)
	if err != nil || seen {
		return false, err
	}
	return true, tx.PutSeen(peer, id, at)
}

// PutSeen records message id from peer as seen at time at (zero: now)
// without reading it first: one write and no read, for a caller that has
// already checked IDUse and is the only writer of peer's conversation
// until its transaction commits (msg holds the peer's lock across both).
// MarkSeen is the read-and-write form. The record is a marker under the
// id's msgid/ key, so it must not be written over a stored message.
func (tx *Tx) PutSeen(peer, id string, at time.Time) error {
	if err := checkID("peer", peer); err != nil {
		return err
	}
	if err := checkID("message id", id); err != nil {
		return err
	}
	if at.IsZero() {
		at = time.Now()
	}
	if err := checkTime("seen time", at); err != nil {
		return err
	}
	return tx.setRaw(key(pfxMsgID, []byte(peer), sep, []byte(id)), marshalSeen(at))
}

// Seen reports whether message id from peer was seen: marked seen, or
// used by a message of the conversation.
func (tx *Tx) Seen(peer, id string) (bool, error) {
	u, err := tx.IDUse(peer, id)
	return u != IDFree, err
}

// pruneSeen deletes up to max seen-only markers first seen before cutoff.
// Stored messages keep their index: they dedup for as long as they exist.
func (tx *Tx) pruneSeen(cutoff time.Time, max int) (int, bool, error) {
	var keys [][]byte
	more := false
	err := tx.scan(pfxMsgID, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		v, err := val()
		if err != nil {
			return false, err
		}
		if len(v) == 0 || v[0] != indexMarker {
			return true, nil // a message's index
		}
		ix, err := unmarshalIndex(v)
		if err != nil {
			return false, corrupt(bytes.Clone(k), err)
		}
		if !ix.at.Before(cutoff) {
			return true, nil
		}
		if len(keys) == max {
			more = true
			return false, nil
		}
		keys = append(keys, bytes.Clone(k))
		return true, nil
	})
	if err != nil {
		return 0, false, err
	}
	for _, k := range keys {
		if err := tx.del(k); err != nil {
			return 0, false, err
		}
	}
	return len(keys), more, nil
}

// Session returns the opaque session state for peer, or ErrNotFound.
func (tx *Tx) Session(peer string) ([]byte, error) {
	if err := checkID("peer", peer); err != nil {
		return nil, err
	}
	return tx.getRaw(key(pfxSession, []byte(peer)))
}

// PutSession replaces the session state for peer.
func (tx *Tx) PutSession(peer string, state []byte) error {
	if err := checkID("peer", peer); err != nil {
		return err
	}
	return tx.setRaw(key(pfxSession, []byte(peer)), state)
}

// DeleteSession removes the session state for peer; a missing one is not an error.
func (tx *Tx) DeleteSession(peer string) error {
	if err := checkID("peer", peer); err != nil {
		return err
	}
	return tx.del(key(pfxSession, []byte(peer)))
}
