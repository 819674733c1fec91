package msg

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// msg's storage: conversations, messages, their index, the outbox, seen
// ids and sessions, kept in the keyspace the store gives msg in each
// transaction (store.Tx.Space(store.SpaceMsg)); the layouts are in
// store/doc.go ("Key layout") and the encodings in storecodec.go. Every
// operation of Data runs inside the caller's transaction, so whatever the
// caller writes in it (a message, its outbox entry, the ratchet state it
// advanced, the prekeys it used) commits together or not at all.

// KV is the keyspace msg keeps its data in, within one transaction: the
// store's Space (store.Tx.Space) in a node. Values are plain bytes; the
// keyspace seals and authenticates them.
type KV interface {
	// Get returns the value under k in a slice the caller owns;
	// store.ErrNotFound when there is none, a *store.CorruptError when
	// it is damaged.
	Get(k []byte) ([]byte, error)
	// Has reports whether a value is stored under k, without reading it.
	Has(k []byte) (bool, error)
	// Set writes v under k.
	Set(k, v []byte) error
	// Delete removes k; a missing key is not an error.
	Delete(k []byte) error
	// Scan calls fn for each key under prefix in key order (or reverse),
	// from start (nil: the first, or the last), loading the value lazily
	// with val; fn returns false to stop.
	Scan(prefix, start []byte, reverse bool, fn func(k []byte, val func() ([]byte, error)) (bool, error)) error
}

// Data is msg's stored data in one transaction. A Data is valid only as
// long as its transaction, and only on the transaction's goroutine.
// Errors: store.ErrNotFound for what is not there, errors wrapping
// store.ErrInvalid for malformed arguments, and a *store.CorruptError
// naming the entry for damaged data.
type Data struct {
	kv  KV
	log *slog.Logger // for the damaged entries the start-up scans pass over
}

// In returns msg's data in the store transaction tx.
func In(tx *store.Tx) *Data { return Over(tx.Space(store.SpaceMsg), nil) }

// Over returns msg's data in kv. log (nil: discard) gets the damaged
// entries the start-up scans (DueOutbox, Queued) pass over.
func Over(kv KV, log *slog.Logger) *Data {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Data{kv: kv, log: log}
}

// Message directions.
const (
	DirIn  = "in"
	DirOut = "out"
)

// Message is one message in a conversation with Peer.
type Message struct {
	ID        string // sender-chosen id, unique per peer
	Peer      string // the other account's id
	Direction string // DirIn or DirOut
	Seq       uint64 // sender's per-conversation sequence
	Body      []byte
	SentAt    time.Time // sender's clock
	At        time.Time // local time stored; orders the conversation
	State     string    // StateQueued, ... (kept in the message's index entry)
	// File is an attachment's reference (a files.Ref, which the node
	// reads; msg carries it without reading it), nil for a plain text.
	// Body is then its caption.
	File []byte
	// ReplyTo is the id of the message this one quotes, "" for none.
	ReplyTo string
	// Action, when set, makes this message a change to another one (a
	// reaction, an edit, a delete for everyone): it is folded into its
	// target and never shown (actions.go). Only the sending device stores
	// one (its outbox names it).
	Action *Action
	// Reactions, Edited and Deleted are what actions did to the message.
	Reactions []Reaction
	Edited    bool
	Deleted   bool
	// Expires is the conversation's disappearing-message timer when the
	// message was sent (0: it stays): it is deleted from this node at
	// At + Expires (timer.go).
	Expires time.Duration
	// TimerSet, on a message that changed the conversation's timer, is the
	// new timer (0: off). Its Body is empty.
	TimerSet *time.Duration
}

// MaxFileRef caps Message.File.
const MaxFileRef = 20 << 10

// Conversation is the per-peer summary the messaging layer keeps.
type Conversation struct {
	Peer    string
	NextSeq uint64 // our next outgoing Seq
	LastAt  time.Time
	Unread  int
	Request bool // a message request not yet accepted
	// Timer is the conversation's disappearing-message timer (0: off):
	// what this account sends expires after it, and both sides delete it.
	Timer time.Duration
	// Expiring counts the conversation's messages that expire, for the
	// sweep (timer.go).
	Expiring int
}

// OutboxEntry is a control message's envelope (a read receipt, or a copy
// for a sibling) waiting for the recipient's ack. It is stored under
// out/<id>, or out/<id>\0<dev> when it is for one device.
type OutboxEntry struct {
	ID   string // message id
	Peer string
	// Dev is the one device of Peer the entry is for (a copy of a sent
	// message, for a sibling: Peer is this account); zero: whichever
	// device carries the account's control messages.
	Dev      identity.DeviceID
	Envelope []byte
	// Content is a sealed group carrier's content (0x03's, 0x05's: the
	// unsealed envelope without its tag), kept so that it can be sealed
	// again for a device that replaces Dev in its account's record.
	Content []byte
	// File is a group carrier's attachment reference (QueueGroupFile),
	// opaque to msg: Config.OnDeposited names it when a mailbox takes the
	// carrier.
	File        []byte
	Attempts    int
	NextAttempt time.Time
	CreatedAt   time.Time
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
	pfxQueue   = []byte("dq/") // queue.go
	pfxSession = []byte("sess/")
	sep        = []byte{0}
)

func be64(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())) }

// key joins parts into one key.
func key(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// maxIDLen caps every id-like key component (badger keys are at most 64 KiB).
const maxIDLen = 1024

// checkID rejects empty ids, overlong ones and ids containing the 0x00
// separator.
func checkID(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", store.ErrInvalid, what)
	case len(s) > maxIDLen:
		return fmt.Errorf("%w: %s longer than %d bytes", store.ErrInvalid, what, maxIDLen)
	case bytes.IndexByte([]byte(s), 0) >= 0:
		return fmt.Errorf("%w: %s contains a NUL byte", store.ErrInvalid, what)
	}
	return nil
}

// checkTime rejects times outside what a key can order (1970 to 2262).
func checkTime(what string, t time.Time) error {
	if t.IsZero() || t.UnixNano() < 0 || t.Year() >= 2262 {
		return fmt.Errorf("%w: %s %v is out of range", store.ErrInvalid, what, t)
	}
	return nil
}

// corruptCause is a reason a stored value is damaged; it wraps
// store.ErrCorrupt.
type corruptCause struct{ msg string }

func (c *corruptCause) Error() string { return c.msg }
func (c *corruptCause) Unwrap() error { return store.ErrCorrupt }

// passOver reports whether err is about damaged data, which the scans
// that run at start-up (the outbox, the queued messages) log and pass
// over, so that one damaged entry does not keep the node from starting.
func (d *Data) passOver(err error) bool {
	if !store.IsCorrupt(err) {
		return false
	}
	d.log.Warn("passing over a damaged entry", "err", err)
	return true
}

// decodeValue decodes a binary value read under k; a value that does not
// decode is a *store.CorruptError naming k.
func decodeValue[T any](k, b []byte, dec func([]byte) (T, error)) (T, error) {
	v, err := dec(b)
	if err != nil {
		return v, store.Corrupt(k, err)
	}
	return v, nil
}

// PutConversation stores or replaces the conversation with c.Peer.
func (d *Data) PutConversation(c Conversation) error {
	if err := checkID("peer", c.Peer); err != nil {
		return err
	}
	b, err := marshalConversation(&c)
	if err != nil {
		return err
	}
	return d.kv.Set(key(pfxConv, []byte(c.Peer)), b)
}

// Conversation returns the conversation with peer, or store.ErrNotFound.
func (d *Data) Conversation(peer string) (Conversation, error) {
	if err := checkID("peer", peer); err != nil {
		return Conversation{}, err
	}
	b, err := d.kv.Get(key(pfxConv, []byte(peer)))
	if err != nil {
		return Conversation{}, err
	}
	return decodeValue(key(pfxConv, []byte(peer)), b, unmarshalConversation)
}

// Conversations lists every conversation ordered by peer id.
func (d *Data) Conversations() ([]Conversation, error) {
	var out []Conversation
	err := d.kv.Scan(pfxConv, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		b, err := val()
		if err != nil {
			return false, err
		}
		c, err := decodeValue(k, b, unmarshalConversation)
		if err != nil {
			return false, err
		}
		out = append(out, c)
		return true, nil
	})
	return out, err
}

// DeleteConversation removes the conversation with peer and all its
// messages. A long conversation may not fit one transaction (store.ErrTxnTooBig);
// the package function DeleteConversation deletes in batches.
func (d *Data) DeleteConversation(peer string) error {
	if err := checkID("peer", peer); err != nil {
		return err
	}
	if _, err := d.deleteMessages(peer, -1); err != nil {
		return err
	}
	return d.kv.Delete(key(pfxConv, []byte(peer)))
}

// deleteMessages deletes up to max (-1: all) messages of peer and reports how many.
func (d *Data) deleteMessages(peer string, max int) (int, error) {
	prefix := key(pfxMsg, []byte(peer), sep)
	var keys [][]byte
	err := d.kv.Scan(prefix, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
		keys = append(keys, bytes.Clone(k))
		return max < 0 || len(keys) < max, nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := d.deleteIndexed(peer, string(k[len(prefix)+8:])); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// AddMessage stores m like PutMessage unless the conversation with m.Peer
// already has a message with m.ID, or has seen that id (IDSeen): then it
// writes nothing and returns false. It can never replace another message.
func (d *Data) AddMessage(m Message) (bool, error) {
	return d.putMessage(m, putAdd)
}

// PutMessage stores m, or replaces the message with the same Peer and ID
// (for example to change its State). A zero m.At is set to the current
// time; At orders the conversation.
func (d *Data) PutMessage(m Message) error {
	_, err := d.putMessage(m, putReplace)
	return err
}

// InsertMessage stores m without reading first: two writes and no read.
// It is for an id the caller knows is unused in m.Peer's conversation: one
// it has just drawn at random (128 bits), or one IDUse reported IDFree
// while the caller held off every other writer of the conversation until
// this transaction commits (msg holds the peer's lock across both). Given
// a used id it would leave the old message unreachable; AddMessage is the
// checking form.
func (d *Data) InsertMessage(m Message) error {
	_, err := d.putMessage(m, putInsert)
	return err
}

type putMode int

const (
	putReplace putMode = iota
	putAdd
	putInsert
)

func (d *Data) putMessage(m Message, mode putMode) (bool, error) {
	return d.putMessageQueued(m, mode, nil)
}

// putMessageQueued is putMessage for a message that, when targets is not
// empty, is an outgoing message in the outbox for those devices.
func (d *Data) putMessageQueued(m Message, mode putMode, targets []identity.DeviceID) (bool, error) {
	queued := len(targets) > 0
	if err := checkID("peer", m.Peer); err != nil {
		return false, err
	}
	if err := checkID("message id", m.ID); err != nil {
		return false, err
	}
	if m.Direction != DirIn && m.Direction != DirOut {
		return false, fmt.Errorf("%w: message direction %q", store.ErrInvalid, m.Direction)
	}
	if m.At.IsZero() {
		m.At = time.Now()
	}
	if err := checkTime("message time", m.At); err != nil {
		return false, err
	}
	idKey := key(pfxMsgID, []byte(m.Peer), sep, []byte(m.ID))
	msgKey := key(pfxMsg, []byte(m.Peer), sep, be64(m.At), []byte(m.ID))
	ix := msgIndex{at: m.At, dir: m.Direction, state: m.State, queued: queued, targets: targets}
	if queued && m.Direction != DirOut {
		return false, fmt.Errorf("%w: only an outgoing message can be queued", store.ErrInvalid)
	}
	body := m
	body.State = "" // the state lives in the index
	val, err := marshalMessage(&body)
	if err != nil {
		return false, err
	}
	if mode != putInsert {
		old, err := d.index(m.Peer, m.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return false, err
		case mode == putAdd:
			return false, nil
		case old.marker():
		default:
			if !bytes.Equal(old.key, msgKey) {
				if err := d.kv.Delete(old.key); err != nil {
					return false, err
				}
			}
			if old.queued && m.Direction == DirOut {
				// Replacing a queued message keeps it in the outbox.
				ix.queued, ix.targets = true, old.targets
			}
		}
	}
	index, err := ix.marshal()
	if err != nil {
		return false, err
	}
	if err := d.kv.Set(idKey, index); err != nil {
		return false, err
	}
	return true, d.kv.Set(msgKey, val)
}

// index reads and decodes the msgid/ entry of peer's message id, with the
// message's msg/ key, or returns store.ErrNotFound.
func (d *Data) index(peer, id string) (msgIndex, error) {
	idKey := key(pfxMsgID, []byte(peer), sep, []byte(id))
	v, err := d.kv.Get(idKey)
	if err != nil {
		return msgIndex{}, err
	}
	ix, err := unmarshalIndex(v)
	if err != nil {
		return msgIndex{}, store.Corrupt(idKey, err)
	}
	if !ix.marker() {
		ix.key = key(pfxMsg, []byte(peer), sep, be64(ix.at), []byte(id))
	}
	return ix, nil
}

// Message returns the message with this id from peer's conversation, or store.ErrNotFound.
func (d *Data) Message(peer, id string) (Message, error) {
	if err := checkID("peer", peer); err != nil {
		return Message{}, err
	}
	if err := checkID("message id", id); err != nil {
		return Message{}, err
	}
	ix, err := d.index(peer, id)
	if err != nil {
		return Message{}, err
	}
	if ix.marker() {
		return Message{}, store.ErrNotFound
	}
	b, err := d.kv.Get(ix.key)
	if errors.Is(err, store.ErrNotFound) {
		return Message{}, store.Corrupt(ix.key, &corruptCause{"the message is missing; its index entry remains"})
	}
	if err != nil {
		return Message{}, err
	}
	m, err := decodeValue(ix.key, b, unmarshalMessage)
	m.State = ix.state
	return m, err
}

// SetMessageState changes the State of one message; store.ErrNotFound if it is missing.
func (d *Data) SetMessageState(peer, id, state string) error {
	_, err := d.UpdateMessageState(peer, id, func(Message) (string, bool) { return state, true })
	return err
}

// UpdateMessageState reads the state of one message and, when decide
// returns true, sets it to the state decide returns. A message's state is
// kept apart from its body (in the id index), so this reads and writes a
// few bytes however long the message is: decide sees, and the result
// holds, the message's ID, Peer, Direction, At and State only (not Body,
// Seq or SentAt). store.ErrNotFound when there is no such message.
func (d *Data) UpdateMessageState(peer, id string, decide func(m Message) (state string, ok bool)) (Message, error) {
	if err := checkID("peer", peer); err != nil {
		return Message{}, err
	}
	if err := checkID("message id", id); err != nil {
		return Message{}, err
	}
	ix, err := d.index(peer, id)
	if err != nil {
		return Message{}, err
	}
	if ix.marker() {
		return Message{}, store.ErrNotFound
	}
	m := Message{ID: id, Peer: peer, Direction: ix.dir, State: ix.state, At: ix.at}
	state, ok := decide(m)
	if !ok || state == m.State {
		return m, nil
	}
	ix.state = state
	index, err := ix.marshal() // a queued message stays queued, for its devices
	if err != nil {
		return Message{}, err
	}
	m.State = state
	return m, d.kv.Set(key(pfxMsgID, []byte(peer), sep, []byte(id)), index)
}

// DeleteMessage removes one message; a missing one is not an error.
func (d *Data) DeleteMessage(peer, id string) error {
	if err := checkID("peer", peer); err != nil {
		return err
	}
	if err := checkID("message id", id); err != nil {
		return err
	}
	return d.deleteIndexed(peer, id)
}

// deleteIndexed deletes the message with this id. An incoming message's
// id stays behind as a seen-only marker, first seen when the message was
// stored, so a late retransmission is still recognised as a duplicate.
func (d *Data) deleteIndexed(peer, id string) error {
	idKey := key(pfxMsgID, []byte(peer), sep, []byte(id))
	ix, err := d.index(peer, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ix.marker()) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := d.kv.Delete(ix.key); err != nil {
		return err
	}
	for _, dev := range ix.targets {
		if err := d.kv.Delete(queueKey(peer, dev, id)); err != nil {
			return err
		}
	}
	if ix.dir == DirIn {
		return d.kv.Set(idKey, marshalSeen(ix.at))
	}
	return d.kv.Delete(idKey)
}

// Messages returns one page of peer's conversation, oldest first, and the
// cursor for the next page ("" when there is none).
func (d *Data) Messages(peer string, p Page) ([]Message, string, error) {
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
			return nil, "", fmt.Errorf("%w: malformed cursor", store.ErrInvalid)
		}
		start = key(prefix, c)
		skip = start
	}
	var out []Message
	var last []byte
	more := false
	err := d.kv.Scan(prefix, start, p.Newest, func(k []byte, val func() ([]byte, error)) (bool, error) {
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
		ix, err := d.index(peer, string(k[len(prefix)+8:]))
		if errors.Is(err, store.ErrNotFound) || (err == nil && (ix.marker() || !bytes.Equal(ix.key, k))) {
			err = store.Corrupt(bytes.Clone(k), &corruptCause{"the message's index entry is missing or points elsewhere"})
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
func (d *Data) PutOutbox(e OutboxEntry) error {
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
	return d.kv.Set(outKey(e.ID, e.Dev), val)
}

// outKey is out/<id>, or out/<id>\0<dev> for an entry for one device.
func outKey(id string, dev identity.DeviceID) []byte {
	if dev.IsZero() {
		return key(pfxOut, []byte(id))
	}
	return key(pfxOut, []byte(id), sep, dev[:])
}

// Outbox returns the outbox entry for a message id, or store.ErrNotFound.
func (d *Data) Outbox(id string) (OutboxEntry, error) {
	return d.DeviceOutbox(id, identity.DeviceID{})
}

// DeviceOutbox returns the outbox entry for a message id and one device
// (the zero device: the account's), or store.ErrNotFound.
func (d *Data) DeviceOutbox(id string, dev identity.DeviceID) (OutboxEntry, error) {
	if err := checkID("message id", id); err != nil {
		return OutboxEntry{}, err
	}
	k := outKey(id, dev)
	b, err := d.kv.Get(k)
	if err != nil {
		return OutboxEntry{}, err
	}
	return decodeValue(k, b, unmarshalOutbox)
}

// DeleteOutbox removes an entry (the message was acknowledged); a missing
// one is not an error.
func (d *Data) DeleteOutbox(id string) error {
	return d.DeleteDeviceOutbox(id, identity.DeviceID{})
}

// DeleteDeviceOutbox removes the entry for a message id and one device; a
// missing one is not an error.
func (d *Data) DeleteDeviceOutbox(id string, dev identity.DeviceID) error {
	if err := checkID("message id", id); err != nil {
		return err
	}
	return d.kv.Delete(outKey(id, dev))
}

// dueEntry is an outbox entry's id, device and next attempt, read without
// its envelope.
type dueEntry struct {
	id   []byte
	dev  identity.DeviceID
	next time.Time
}

// outboxSchedule reads the id and next attempt of every outbox entry,
// earliest first (ties by id). The outbox holds only what is not yet
// acknowledged, so it is read whole rather than kept indexed by time: an
// index cost every message two more writes and a read.
func (d *Data) outboxSchedule() ([]dueEntry, error) {
	var out []dueEntry
	err := d.kv.Scan(pfxOut, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		v, err := val()
		if err == nil {
			var due dueEntry
			if due, err = outboxDue(v); err == nil {
				out = append(out, due)
				return true, nil
			}
			err = store.Corrupt(k, err)
		}
		if d.passOver(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b dueEntry) int { return a.next.Compare(b.next) })
	return out, nil
}

// DueOutbox lists up to limit (0: 100) entries whose NextAttempt is not
// after now, earliest first. A damaged entry is logged and passed over
// (`callsign store verify` names it), so that it cannot keep the node from
// starting.
func (d *Data) DueOutbox(now time.Time, limit int) ([]OutboxEntry, error) {
	if limit <= 0 {
		limit = defaultPageLimit
	}
	sched, err := d.outboxSchedule()
	if err != nil {
		return nil, err
	}
	var out []OutboxEntry
	for _, due := range sched {
		if due.next.After(now) || len(out) == limit {
			break
		}
		e, err := d.DeviceOutbox(string(due.id), due.dev)
		if d.passOver(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("outbox entry %q: %w", due.id, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// NextOutboxDue returns the earliest NextAttempt in the outbox, and false
// when the outbox is empty, so a retry loop knows how long to sleep.
func (d *Data) NextOutboxDue() (time.Time, bool, error) {
	sched, err := d.outboxSchedule()
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
func (d *Data) IDUse(peer, id string) (IDUse, error) {
	if err := checkID("peer", peer); err != nil {
		return IDFree, err
	}
	if err := checkID("message id", id); err != nil {
		return IDFree, err
	}
	ix, err := d.index(peer, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
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
func (d *Data) MarkSeen(peer, id string, at time.Time) (bool, error) {
	seen, err := d.Seen(peer, id)
	if err != nil || seen {
		return false, err
	}
	return true, d.PutSeen(peer, id, at)
}

// PutSeen records message id from peer as seen at time at (zero: now)
// without reading it first: one write and no read, for a caller that has
// already checked IDUse and is the only writer of peer's conversation
// until its transaction commits (msg holds the peer's lock across both).
// MarkSeen is the read-and-write form. The record is a marker under the
// id's msgid/ key, so it must not be written over a stored message.
func (d *Data) PutSeen(peer, id string, at time.Time) error {
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
	return d.kv.Set(key(pfxMsgID, []byte(peer), sep, []byte(id)), marshalSeen(at))
}

// Seen reports whether message id from peer was seen: marked seen, or
// used by a message of the conversation.
func (d *Data) Seen(peer, id string) (bool, error) {
	u, err := d.IDUse(peer, id)
	return u != IDFree, err
}

// pruneSeen deletes up to max seen-only markers first seen before cutoff.
// Stored messages keep their index: they dedup for as long as they exist.
func (d *Data) pruneSeen(cutoff time.Time, max int) (int, bool, error) {
	var keys [][]byte
	more := false
	err := d.kv.Scan(pfxMsgID, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		v, err := val()
		if err != nil {
			return false, err
		}
		if len(v) == 0 || v[0] != indexMarker {
			return true, nil // a message's index
		}
		ix, err := unmarshalIndex(v)
		if err != nil {
			return false, store.Corrupt(bytes.Clone(k), err)
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
		if err := d.kv.Delete(k); err != nil {
			return 0, false, err
		}
	}
	return len(keys), more, nil
}

// sessionKey is sess/<peer>\0<dev>: the session set with one device of peer.
func sessionKey(peer string, dev identity.DeviceID) []byte {
	return key(pfxSession, []byte(peer), sep, dev[:])
}

// Session returns the opaque session state with peer's device dev, or
// store.ErrNotFound.
func (d *Data) Session(peer string, dev identity.DeviceID) ([]byte, error) {
	if err := checkSessionKey(peer, dev); err != nil {
		return nil, err
	}
	return d.kv.Get(sessionKey(peer, dev))
}

// PutSession replaces the session state with peer's device dev.
func (d *Data) PutSession(peer string, dev identity.DeviceID, state []byte) error {
	if err := checkSessionKey(peer, dev); err != nil {
		return err
	}
	return d.kv.Set(sessionKey(peer, dev), state)
}

// DeleteSession removes the session state with peer's device dev; a
// missing one is not an error.
func (d *Data) DeleteSession(peer string, dev identity.DeviceID) error {
	if err := checkSessionKey(peer, dev); err != nil {
		return err
	}
	return d.kv.Delete(sessionKey(peer, dev))
}

func checkSessionKey(peer string, dev identity.DeviceID) error {
	if err := checkID("peer", peer); err != nil {
		return err
	}
	if dev.IsZero() {
		return fmt.Errorf("%w: no device", store.ErrInvalid)
	}
	return nil
}

// DeleteConversation removes the conversation with peer and all its
// messages from db, in batches of 1000 messages (each batch atomic, the
// whole not).
func DeleteConversation(db *store.DB, peer string) error {
	for {
		n := 0
		err := db.Update(func(tx *store.Tx) error {
			var err error
			n, err = In(tx).deleteMessages(peer, 1000)
			return err
		})
		if err != nil {
			return err
		}
		if n < 1000 {
			break
		}
	}
	return db.Update(func(tx *store.Tx) error { return In(tx).DeleteConversation(peer) })
}

// PruneSeen forgets the seen ids of db first seen before cutoff, in
// batches of 1000, and returns how many it removed.
func PruneSeen(db *store.DB, cutoff time.Time) (int, error) {
	total := 0
	for {
		var n int
		var more bool
		err := db.Update(func(tx *store.Tx) error {
			var err error
			n, more, err = In(tx).pruneSeen(cutoff, 1000)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// data is msg's data in tx, with the service's logger.
func (s *Service) data(tx *store.Tx) *Data { return Over(tx.Space(store.SpaceMsg), s.log) }

// AcceptRequest turns the conversation with peer, a message request, into
// a conversation (Conversation.Request false) in tx; no conversation is
// not an error. contacts.Book.Accept runs it with the contact it accepts.
func AcceptRequest(tx *store.Tx, peer string) error {
	d := In(tx)
	c, err := d.Conversation(peer)
	if errors.Is(err, store.ErrNotFound) || err == nil && !c.Request {
		return nil
	}
	if err != nil {
		return err
	}
	c.Request = false
	return d.PutConversation(c)
}
