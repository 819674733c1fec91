package msg

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/store"
)

// The stored encodings of Message, OutboxEntry and Conversation (binary
// since store schema 2; store/migrate_msg.go keeps the forms the store's
// migrations read and write, and the same goldens pin both): protobuf wire
// format, written and read by hand. Fields are
// written in ascending order, each at most once; zero values (empty bytes,
// 0, false, the zero time) are not written; varints are minimal. The
// decoders accept exactly that form and nothing else: a value has one byte
// form, so re-encoding what was read reproduces the stored bytes.
//
// Times are zigzag varints of unix nanoseconds (so 1678..2262 is the range
// a time may have); a zero time.Time is absent, and a time field is the one
// kind of field that is written when its varint is 0 (the unix epoch).
//
//	Message
//	field 1  id          bytes   ≤ maxIDLen
//	field 2  peer        bytes   ≤ maxIDLen
//	field 3  direction   varint  1 in, 2 out
//	field 4  seq         varint
//	field 5  body        bytes   ≤ maxBodySize
//	field 6  sent_at     varint  zigzag unix ns
//	field 7  at          varint  zigzag unix ns
//	field 8  state       bytes   ≤ maxStateLen, UTF-8; schema 2 only: since
//	                             schema 3 the state is in the msgid/ entry
//	                             (msgIndex) and a msg/ value has no field 8
//
//	OutboxEntry
//	field 1  id            bytes   ≤ maxIDLen
//	field 2  peer          bytes   ≤ maxIDLen
//	field 3  envelope      bytes   ≤ maxBodySize + 64 KiB
//	field 4  attempts      varint  zigzag
//	field 5  next_attempt  varint  zigzag unix ns
//	field 6  created_at    varint  zigzag unix ns
//	field 7  device        bytes   8, the DeviceID (absent: the zero device);
//	                               written since store schema 9, only for an
//	                               entry for one device, whose key names it
//	field 8  content       bytes   ≤ maxBodySize + 64 KiB: a sealed group carrier's
//	                               content, kept so that it can be sealed again for
//	                               the device that replaces this one (lanes.go)
//	field 9  file          bytes   ≤ maxBodySize + 64 KiB: a group carrier's attachment
//	                               reference (QueueGroupFile)
//
//	Conversation
//	field 1  peer      bytes   ≤ maxIDLen
//	field 2  next_seq  varint
//	field 3  last_at   varint  zigzag unix ns
//	field 4  unread    varint  zigzag
//	field 5  request   varint  1 (absent: false)

// maxBodySize caps Message.Body (and, with 64 KiB of headroom,
// OutboxEntry.Envelope). PutMessage and PutOutbox return store.ErrInvalid above it.
const maxBodySize = 1 << 20

const (
	maxStateLen    = 64
	maxEnvelopeLen = maxBodySize + 64<<10
)

// errCorrupt is wrapped by every decoding error; it wraps store.ErrCorrupt.
var errCorrupt error = &corruptCause{"malformed stored value"}

// checkNanos rejects a time wire.Encoder.Time cannot write.
func checkNanos(what string, t time.Time) error {
	if !wire.TimeFits(t) {
		return fmt.Errorf("%w: %s %v is out of range", store.ErrInvalid, what, t)
	}
	return nil
}

// newReader is the strict decoder of the canonical form described above:
// a stored value has one byte form, so no unknown field of any number is
// read past (docs/ARCHITECTURE.md, "Wire formats"; a new field takes a
// schema version and a migration). Byte slices it returns alias the input
// (the accessors decode values they own).
func newReader(b []byte) *wire.Decoder { return wire.NewDecoder(b, errCorrupt) }

// readInt reads a zigzag int32 field.
func readInt(d *wire.Decoder, num protowire.Number, lo int64) int {
	return int(d.Sint(num, lo, math.MaxInt32))
}

const (
	dirInCode  = 1
	dirOutCode = 2
	// queuedCode is the msgid/ kind of an outgoing message still in the
	// outbox (store schema 6): its index entry also names the devices it
	// is queued for (schema 9; the envelope, schemas 6 to 8).
	queuedCode = 3
)

// marshalMessage encodes m, which PutMessage has validated.
func marshalMessage(m *Message) ([]byte, error) {
	if len(m.Body) > maxBodySize {
		return nil, fmt.Errorf("%w: message body of %d bytes exceeds %d", store.ErrInvalid, len(m.Body), maxBodySize)
	}
	if len(m.File) > MaxFileRef {
		return nil, fmt.Errorf("%w: attachment reference of %d bytes exceeds %d", store.ErrInvalid, len(m.File), MaxFileRef)
	}
	if len(m.State) > maxStateLen || !utf8.ValidString(m.State) {
		return nil, fmt.Errorf("%w: message state %q", store.ErrInvalid, m.State)
	}
	if err := checkNanos("sent time", m.SentAt); err != nil {
		return nil, err
	}
	if err := checkNanos("message time", m.At); err != nil {
		return nil, err
	}
	var dir uint64
	switch m.Direction {
	case DirIn:
		dir = dirInCode
	case DirOut:
		dir = dirOutCode
	default:
		return nil, fmt.Errorf("%w: message direction %q", store.ErrInvalid, m.Direction)
	}
	e := wire.Encoder{B: make([]byte, 0, 48+len(m.ID)+len(m.Peer)+len(m.Body)+len(m.State))}
	e.String(1, m.ID)
	e.String(2, m.Peer)
	e.Uint(3, dir)
	e.Uint(4, m.Seq)
	e.Bytes(5, m.Body)
	e.Time(6, m.SentAt)
	e.Time(7, m.At)
	e.String(8, m.State)
	e.Bytes(9, m.File)
	e.String(10, m.ReplyTo)
	if a := m.Action; a != nil {
		e.Uint(11, uint64(a.Kind))
		e.String(12, a.Target)
		e.String(13, a.Emoji)
	}
	for _, r := range m.Reactions {
		code := byte(dirInCode)
		if r.Dir == DirOut {
			code = dirOutCode
		}
		e.Bytes(14, append([]byte{code}, r.Emoji...))
	}
	e.Bool(15, m.Edited)
	e.Bool(16, m.Deleted)
	e.Uint(17, uint64(m.Expires/time.Second))
	if m.TimerSet != nil {
		e.Varint(18, uint64(*m.TimerSet/time.Second))
	}
	return e.B, nil
}

// unmarshalMessage decodes a stored Message; Body aliases b.
func unmarshalMessage(b []byte) (Message, error) {
	var m Message
	d := newReader(b)
	m.ID = string(d.Bytes(1, 1, maxIDLen))
	m.Peer = string(d.Bytes(2, 1, maxIDLen))
	switch d.Uint(3, math.MaxUint64) {
	case 0:
	case dirInCode:
		m.Direction = DirIn
	case dirOutCode:
		m.Direction = DirOut
	default:
		d.Fail("unknown direction")
	}
	m.Seq = d.Uint(4, math.MaxUint64)
	m.Body = d.Bytes(5, 1, maxBodySize)
	m.SentAt = d.Time(6)
	m.At = d.Time(7)
	m.State = d.String(8, 1, maxStateLen)
	m.File = d.Bytes(9, 1, MaxFileRef)
	m.ReplyTo = d.String(10, 1, maxIDLen)
	if k := d.Uint(11, uint64(maxActionKind)); k != 0 {
		m.Action = &Action{Kind: ActionKind(k), Target: d.String(12, 1, maxIDLen), Emoji: d.String(13, 1, MaxEmoji)}
	}
	for _, b := range d.RepeatedBytes(14, 2, 2, 1+MaxEmoji) {
		if len(b) < 2 {
			break // RepeatedBytes failed the decoder on it
		}
		r := Reaction{Dir: DirIn, Emoji: string(b[1:])}
		switch b[0] {
		case dirInCode:
		case dirOutCode:
			r.Dir = DirOut
		default:
			d.Fail("a reaction's side %d", b[0])
		}
		m.Reactions = append(m.Reactions, r)
	}
	m.Edited = d.Bool(15)
	m.Deleted = d.Bool(16)
	m.Expires = time.Duration(d.Uint(17, uint64(MaxTimer/time.Second))) * time.Second
	if v, ok := d.Varint(18); ok {
		if v > uint64(MaxTimer/time.Second) {
			d.Fail("a timer of %d s", v)
		}
		t := time.Duration(v) * time.Second
		m.TimerSet = &t
	}
	if err := d.End(); err != nil {
		return Message{}, err
	}
	if m.ID == "" || m.Peer == "" || m.Direction == "" || m.At.IsZero() {
		return Message{}, fmt.Errorf("%w: message without id, peer, direction or time", errCorrupt)
	}
	return m, nil
}

func marshalOutbox(e *OutboxEntry) ([]byte, error) {
	if len(e.Envelope) > maxEnvelopeLen || len(e.Content) > maxEnvelopeLen || len(e.File) > maxEnvelopeLen {
		return nil, fmt.Errorf("%w: outbox envelope of %d bytes (content %d, file %d) exceeds %d", store.ErrInvalid, len(e.Envelope), len(e.Content), len(e.File), maxEnvelopeLen)
	}
	if err := checkNanos("next attempt", e.NextAttempt); err != nil {
		return nil, err
	}
	if err := checkNanos("created time", e.CreatedAt); err != nil {
		return nil, err
	}
	if e.Attempts < 0 || e.Attempts > math.MaxInt32 {
		return nil, fmt.Errorf("%w: outbox attempts %d", store.ErrInvalid, e.Attempts)
	}
	w := wire.Encoder{B: make([]byte, 0, 56+len(e.ID)+len(e.Peer)+len(e.Envelope)+len(e.Content)+len(e.File))}
	w.String(1, e.ID)
	w.String(2, e.Peer)
	w.Bytes(3, e.Envelope)
	w.Sint(4, int64(e.Attempts))
	w.Time(5, e.NextAttempt)
	w.Time(6, e.CreatedAt)
	if !e.Dev.IsZero() {
		w.Bytes(7, e.Dev[:])
	}
	if len(e.Content) > 0 {
		w.Bytes(8, e.Content)
	}
	if len(e.File) > 0 {
		w.Bytes(9, e.File)
	}
	return w.B, nil
}

// unmarshalOutbox decodes a stored OutboxEntry; Envelope aliases b.
func unmarshalOutbox(b []byte) (OutboxEntry, error) {
	var e OutboxEntry
	d := newReader(b)
	e.ID = string(d.Bytes(1, 1, maxIDLen))
	e.Peer = string(d.Bytes(2, 1, maxIDLen))
	e.Envelope = d.Bytes(3, 1, maxEnvelopeLen)
	e.Attempts = readInt(d, 4, 1)
	e.NextAttempt = d.Time(5)
	e.CreatedAt = d.Time(6)
	if dev := d.OptFixed(7, identity.DeviceIDSize); dev != nil {
		e.Dev = identity.DeviceID(dev)
		if e.Dev.IsZero() {
			d.Fail("field 7: the zero device is written as no field")
		}
	}
	e.Content = d.Bytes(8, 1, maxEnvelopeLen)
	e.File = d.Bytes(9, 1, maxEnvelopeLen)
	if err := d.End(); err != nil {
		return OutboxEntry{}, err
	}
	if e.ID == "" || e.Peer == "" || e.NextAttempt.IsZero() {
		return OutboxEntry{}, fmt.Errorf("%w: outbox entry without id, peer or next attempt", errCorrupt)
	}
	return e, nil
}

// outboxDue reads only the id, device and next-attempt time of a stored
// OutboxEntry, without copying the envelope.
func outboxDue(b []byte) (dueEntry, error) {
	e, err := unmarshalOutbox(b)
	if err != nil {
		return dueEntry{}, err
	}
	return dueEntry{id: []byte(e.ID), dev: e.Dev, next: e.NextAttempt}, nil
}

func marshalConversation(c *Conversation) ([]byte, error) {
	if err := checkNanos("last message time", c.LastAt); err != nil {
		return nil, err
	}
	if c.Unread > math.MaxInt32 || c.Unread < math.MinInt32 {
		return nil, fmt.Errorf("%w: unread count %d", store.ErrInvalid, c.Unread)
	}
	e := wire.Encoder{B: make([]byte, 0, 32+len(c.Peer))}
	e.String(1, c.Peer)
	e.Uint(2, c.NextSeq)
	e.Time(3, c.LastAt)
	e.Sint(4, int64(c.Unread))
	e.Bool(5, c.Request)
	e.Uint(6, uint64(c.Timer/time.Second))
	e.Uint(7, uint64(max(c.Expiring, 0)))
	return e.B, nil
}

func unmarshalConversation(b []byte) (Conversation, error) {
	var c Conversation
	d := newReader(b)
	c.Peer = string(d.Bytes(1, 1, maxIDLen))
	c.NextSeq = d.Uint(2, math.MaxUint64)
	c.LastAt = d.Time(3)
	c.Unread = readInt(d, 4, math.MinInt32)
	c.Request = d.Bool(5)
	c.Timer = time.Duration(d.Uint(6, uint64(MaxTimer/time.Second))) * time.Second
	c.Expiring = int(d.Uint(7, math.MaxInt32))
	if err := d.End(); err != nil {
		return Conversation{}, err
	}
	if c.Peer == "" {
		return Conversation{}, fmt.Errorf("%w: conversation without peer", errCorrupt)
	}
	return c, nil
}

// msgIndex is the value under msgid/<peer>0x00<id>: where the message is
// and the part of it that changes (its state), so a state change writes a
// few bytes instead of the whole message; or, for an id seen with no
// message to show for it (a control frame, or an incoming message since
// deleted), a seen-only marker, so one read of msgid/ tells a fresh id
// from a duplicate. Since schema 5:
//
//	byte     kind: 0 seen-only marker, 1 incoming message, 2 outgoing message
//	uint64   big-endian unix nanoseconds, ≥ 0: the message's time, which with
//	         the peer and id in the msgid/ key gives its msg/ key; for a
//	         marker, when the id was first seen
//	bytes    messages only: the state, UTF-8, the rest of the value
//	         (≤ maxStateLen)
//
// An outgoing message not yet acknowledged has kind 3 and names the
// devices of the peer it is queued for, each with its copy under dq/ (since
// schema 9; schemas 6 to 8 held the one envelope here instead):
//
//	byte     3
//	uint64   big-endian unix nanoseconds, ≥ 0: the message's time
//	uvarint  length of the state (minimal, ≤ maxStateLen)
//	bytes    the state, UTF-8
//	bytes    the target devices, the rest of the value: 8 bytes each, at
//	         most maxTargets (a zero device: the peer's device was not
//	         known when the message was queued)
//
// (Schemas 3 and 4 held the whole msg/ key instead of its time: ~100 bytes
// more in every index write; store/migrate.go reads that form.)
type msgIndex struct {
	at      time.Time // the message's time; a marker's first-seen time
	dir     string    // DirIn, DirOut, or "" for a seen-only marker
	state   string
	queued  bool                // an outgoing message in the outbox
	targets []identity.DeviceID // when queued: the devices it is queued for
	key     []byte              // the message's msg/ key, set by Data.index
}

// marker reports whether ix records a seen id with no message behind it.
func (ix msgIndex) marker() bool { return ix.dir == "" }

const indexMarker = 0

// marshalSeen encodes the seen-only marker for an id first seen at at.
func marshalSeen(at time.Time) []byte {
	return binary.BigEndian.AppendUint64([]byte{indexMarker}, uint64(at.UnixNano()))
}

func marshalIndex(at time.Time, dir, state string) ([]byte, error) {
	if len(state) > maxStateLen || !utf8.ValidString(state) {
		return nil, fmt.Errorf("%w: message state %q", store.ErrInvalid, state)
	}
	if err := checkTime("message time", at); err != nil {
		return nil, err
	}
	var d byte
	switch dir {
	case DirIn:
		d = dirInCode
	case DirOut:
		d = dirOutCode
	default:
		return nil, fmt.Errorf("%w: message direction %q", store.ErrInvalid, dir)
	}
	b := make([]byte, 0, 9+len(state))
	b = binary.BigEndian.AppendUint64(append(b, d), uint64(at.UnixNano()))
	return append(b, state...), nil
}

// maxTargets caps the devices one queued message names (an identity
// record lists at most 8).
const maxTargets = 8

// marshalQueued encodes the index entry of an outgoing message in the
// outbox, with the devices it is queued for.
func marshalQueued(at time.Time, state string, targets []identity.DeviceID) ([]byte, error) {
	if len(state) > maxStateLen || !utf8.ValidString(state) {
		return nil, fmt.Errorf("%w: message state %q", store.ErrInvalid, state)
	}
	if len(targets) == 0 || len(targets) > maxTargets {
		return nil, fmt.Errorf("%w: a queued message for %d devices", store.ErrInvalid, len(targets))
	}
	if err := checkTime("message time", at); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 10+len(state)+len(targets)*identity.DeviceIDSize)
	b = binary.BigEndian.AppendUint64(append(b, queuedCode), uint64(at.UnixNano()))
	b = protowire.AppendVarint(b, uint64(len(state)))
	b = append(b, state...)
	for _, t := range targets {
		b = append(b, t[:]...)
	}
	return b, nil
}

// marshal re-encodes ix in its kind's form.
func (ix msgIndex) marshal() ([]byte, error) {
	switch {
	case ix.marker():
		return marshalSeen(ix.at), nil
	case ix.queued:
		return marshalQueued(ix.at, ix.state, ix.targets)
	}
	return marshalIndex(ix.at, ix.dir, ix.state)
}

// unmarshalIndex decodes a msgid/ value: a message's index or a seen-only
// marker. key is left for the caller, who knows the peer and id.
func unmarshalIndex(b []byte) (msgIndex, error) {
	if len(b) < 9 || int64(binary.BigEndian.Uint64(b[1:9])) < 0 {
		return msgIndex{}, fmt.Errorf("%w: message index: malformed", errCorrupt)
	}
	ix := msgIndex{at: time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9])))}
	if ix.at.Year() >= 2262 { // what checkTime lets the encoders write
		return msgIndex{}, fmt.Errorf("%w: message index: time out of range", errCorrupt)
	}
	switch b[0] {
	case indexMarker:
		if len(b) != 9 {
			return msgIndex{}, fmt.Errorf("%w: message index: malformed seen marker", errCorrupt)
		}
		return ix, nil
	case dirInCode:
		ix.dir = DirIn
	case dirOutCode:
		ix.dir = DirOut
	case queuedCode:
		ix.dir, ix.queued = DirOut, true
		n, l := protowire.ConsumeVarint(b[9:])
		if l < 0 || protowire.SizeVarint(n) != l || n > maxStateLen || n > uint64(len(b)-9-l) {
			return msgIndex{}, fmt.Errorf("%w: message index: bad state length", errCorrupt)
		}
		state, rest := b[9+l:9+l+int(n)], b[9+l+int(n):]
		if !utf8.Valid(state) || len(rest) == 0 || len(rest)%identity.DeviceIDSize != 0 || len(rest) > maxTargets*identity.DeviceIDSize {
			return msgIndex{}, fmt.Errorf("%w: message index: bad state or target devices", errCorrupt)
		}
		ix.state = string(state)
		ix.targets = make([]identity.DeviceID, len(rest)/identity.DeviceIDSize)
		for i := range ix.targets {
			copy(ix.targets[i][:], rest[i*identity.DeviceIDSize:])
		}
		return ix, nil
	default:
		return msgIndex{}, fmt.Errorf("%w: message index: unknown kind", errCorrupt)
	}
	state := b[9:]
	if len(state) > maxStateLen || !utf8.Valid(state) {
		return msgIndex{}, fmt.Errorf("%w: message index: bad state", errCorrupt)
	}
	ix.state = string(state)
	return ix, nil
}
