package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Binary value encodings (schema 2) of Message, OutboxEntry and
// Conversation: protobuf wire format, written and read by hand. Fields are
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
//	field 5  body        bytes   ≤ MaxBodySize
//	field 6  sent_at     varint  zigzag unix ns
//	field 7  at          varint  zigzag unix ns
//	field 8  state       bytes   ≤ maxStateLen, UTF-8; schema 2 only: since
//	                             schema 3 the state is in the msgid/ entry
//	                             (msgIndex) and a msg/ value has no field 8
//
//	OutboxEntry
//	field 1  id            bytes   ≤ maxIDLen
//	field 2  peer          bytes   ≤ maxIDLen
//	field 3  envelope      bytes   ≤ MaxBodySize + 64 KiB
//	field 4  attempts      varint  zigzag
//	field 5  next_attempt  varint  zigzag unix ns
//	field 6  created_at    varint  zigzag unix ns
//
//	Conversation
//	field 1  peer      bytes   ≤ maxIDLen
//	field 2  next_seq  varint
//	field 3  last_at   varint  zigzag unix ns
//	field 4  unread    varint  zigzag
//	field 5  request   varint  1 (absent: false)

// MaxBodySize caps Message.Body (and, with 64 KiB of headroom,
// OutboxEntry.Envelope). PutMessage and PutOutbox return ErrInvalid above it.
const MaxBodySize = 1 << 20

const (
	maxStateLen    = 64
	maxEnvelopeLen = MaxBodySize + 64<<10
)

// errCorrupt is wrapped by every decoding error; it wraps ErrCorrupt.
var errCorrupt error = &corruptCause{"malformed stored value"}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// checkNanos rejects a non-zero t outside the range an int64 of unix
// nanoseconds can hold.
func checkNanos(what string, t time.Time) error {
	if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
		return fmt.Errorf("%w: %s %v is out of range", ErrInvalid, what, t)
	}
	return nil
}

// appendTime writes a non-zero t (checked by checkNanos) as unix nanoseconds.
func appendTime(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeZigZag(t.UnixNano()))
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendString(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func appendUvarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendSvarint(b []byte, num protowire.Number, v int64) []byte {
	return appendUvarint(b, num, protowire.EncodeZigZag(v))
}

// reader is a strict decoder of the canonical form described above.
type reader struct {
	b    []byte
	last protowire.Number
	err  error
}

// next returns the next field's number and type, or ok=false at the end or
// on an error (r.err).
func (r *reader) next() (protowire.Number, protowire.Type, bool) {
	if r.err != nil || len(r.b) == 0 {
		return 0, 0, false
	}
	num, typ, n := protowire.ConsumeTag(r.b)
	if n < 0 {
		r.fail("bad tag")
		return 0, 0, false
	}
	if protowire.SizeTag(num) != n {
		r.fail("non-minimal tag")
		return 0, 0, false
	}
	if num <= r.last {
		r.fail(fmt.Sprintf("field %d out of order or repeated", num))
		return 0, 0, false
	}
	r.last = num
	r.b = r.b[n:]
	return num, typ, true
}

func (r *reader) fail(why string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errCorrupt, why)
	}
}

func (r *reader) uvarint(typ protowire.Type) uint64 {
	v := r.uvarint0(typ)
	if r.err == nil && v == 0 {
		r.fail(fmt.Sprintf("field %d: zero value encoded", r.last))
	}
	return v
}

// uvarint0 is uvarint that accepts an encoded 0.
func (r *reader) uvarint0(typ protowire.Type) uint64 {
	if typ != protowire.VarintType {
		r.fail(fmt.Sprintf("field %d: want a varint", r.last))
		return 0
	}
	v, n := protowire.ConsumeVarint(r.b)
	switch {
	case n < 0:
		r.fail(fmt.Sprintf("field %d: bad varint", r.last))
		return 0
	case protowire.SizeVarint(v) != n:
		r.fail(fmt.Sprintf("field %d: non-minimal varint", r.last))
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) svarint(typ protowire.Type) int64 {
	return protowire.DecodeZigZag(r.uvarint(typ))
}

func (r *reader) time(typ protowire.Type) time.Time {
	n := protowire.DecodeZigZag(r.uvarint0(typ))
	if r.err != nil {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// bytes returns the next bytes field, aliasing the input (the accessors
// decode values they own), capped at max.
func (r *reader) bytes(typ protowire.Type, max int) []byte {
	if typ != protowire.BytesType {
		r.fail(fmt.Sprintf("field %d: want bytes", r.last))
		return nil
	}
	v, n := protowire.ConsumeBytes(r.b)
	switch {
	case n < 0:
		r.fail(fmt.Sprintf("field %d: truncated", r.last))
		return nil
	case len(v) == 0:
		r.fail(fmt.Sprintf("field %d: empty value encoded", r.last))
		return nil
	case len(v) > max:
		r.fail(fmt.Sprintf("field %d: %d bytes exceeds %d", r.last, len(v), max))
		return nil
	case n != protowire.SizeBytes(len(v)):
		r.fail(fmt.Sprintf("field %d: non-minimal length", r.last))
		return nil
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str(typ protowire.Type, max int) string {
	v := r.bytes(typ, max)
	if r.err == nil && !utf8.Valid(v) {
		r.fail(fmt.Sprintf("field %d: not UTF-8", r.last))
	}
	return string(v)
}

func (r *reader) unknown() {
	r.fail(fmt.Sprintf("unknown field %d", r.last))
}

func (r *reader) int(typ protowire.Type) int {
	v := r.svarint(typ)
	if v > math.MaxInt32 || v < math.MinInt32 {
		r.fail(fmt.Sprintf("field %d: %d out of range", r.last, v))
		return 0
	}
	return int(v)
}

const (
	dirInCode  = 1
	dirOutCode = 2
	// queuedCode is the msgid/ kind of an outgoing message still in the
	// outbox (schema 6): its index entry also holds the outbox envelope.
	queuedCode = 3
)

// marshalMessage encodes m, which PutMessage has validated.
func marshalMessage(m *Message) ([]byte, error) {
	if len(m.Body) > MaxBodySize {
		return nil, fmt.Errorf("%w: message body of %d bytes exceeds %d", ErrInvalid, len(m.Body), MaxBodySize)
	}
	if len(m.State) > maxStateLen || !utf8.ValidString(m.State) {
		return nil, fmt.Errorf("%w: message state %q", ErrInvalid, m.State)
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
		return nil, fmt.Errorf("%w: message direction %q", ErrInvalid, m.Direction)
	}
	b := make([]byte, 0, 48+len(m.ID)+len(m.Peer)+len(m.Body)+len(m.State))
	b = appendString(b, 1, m.ID)
	b = appendString(b, 2, m.Peer)
	b = appendUvarint(b, 3, dir)
	b = appendUvarint(b, 4, m.Seq)
	b = appendBytes(b, 5, m.Body)
	b = appendTime(b, 6, m.SentAt)
	b = appendTime(b, 7, m.At)
	b = appendString(b, 8, m.State)
	return b, nil
}

// unmarshalMessage decodes a stored Message; Body aliases b.
func unmarshalMessage(b []byte) (Message, error) {
	var m Message
	r := reader{b: b}
	for {
		num, typ, ok := r.next()
		if !ok {
			break
		}
		switch num {
		case 1:
			m.ID = string(r.bytes(typ, maxIDLen))
		case 2:
			m.Peer = string(r.bytes(typ, maxIDLen))
		case 3:
			switch r.uvarint(typ) {
			case dirInCode:
				m.Direction = DirIn
			case dirOutCode:
				m.Direction = DirOut
			default:
				r.fail("unknown direction")
			}
		case 4:
			m.Seq = r.uvarint(typ)
		case 5:
			m.Body = r.bytes(typ, MaxBodySize)
		case 6:
			m.SentAt = r.time(typ)
		case 7:
			m.At = r.time(typ)
		case 8:
			m.State = r.str(typ, maxStateLen)
		default:
			r.unknown()
		}
	}
	if r.err == nil && (m.ID == "" || m.Peer == "" || m.Direction == "" || m.At.IsZero()) {
		r.fail("message without id, peer, direction or time")
	}
	if r.err != nil {
		return Message{}, r.err
	}
	return m, nil
}

func marshalOutbox(e *OutboxEntry) ([]byte, error) {
	if len(e.Envelope) > maxEnvelopeLen {
		return nil, fmt.Errorf("%w: outbox envelope of %d bytes exceeds %d", ErrInvalid, len(e.Envelope), maxEnvelopeLen)
	}
	if err := checkNanos("next attempt", e.NextAttempt); err != nil {
		return nil, err
	}
	if err := checkNanos("created time", e.CreatedAt); err != nil {
		return nil, err
	}
	if e.Attempts < 0 || e.Attempts > math.MaxInt32 {
		return nil, fmt.Errorf("%w: outbox attempts %d", ErrInvalid, e.Attempts)
	}
	b := make([]byte, 0, 40+len(e.ID)+len(e.Peer)+len(e.Envelope))
	b = appendString(b, 1, e.ID)
	b = appendString(b, 2, e.Peer)
	b = appendBytes(b, 3, e.Envelope)
	b = appendSvarint(b, 4, int64(e.Attempts))
	b = appendTime(b, 5, e.NextAttempt)
	b = appendTime(b, 6, e.CreatedAt)
	return b, nil
}

// unmarshalOutbox decodes a stored OutboxEntry; Envelope aliases b.
func unmarshalOutbox(b []byte) (OutboxEntry, error) {
	var e OutboxEntry
	r := reader{b: b}
	for {
		num, typ, ok := r.next()
		if !ok {
			break
		}
		switch num {
		case 1:
			e.ID = string(r.bytes(typ, maxIDLen))
		case 2:
			e.Peer = string(r.bytes(typ, maxIDLen))
		case 3:
			e.Envelope = r.bytes(typ, maxEnvelopeLen)
		case 4:
			e.Attempts = r.int(typ)
			if e.Attempts < 0 {
				r.fail("negative attempts")
			}
		case 5:
			e.NextAttempt = r.time(typ)
		case 6:
			e.CreatedAt = r.time(typ)
		default:
			r.unknown()
		}
	}
	if r.err == nil && (e.ID == "" || e.Peer == "" || e.NextAttempt.IsZero()) {
		r.fail("outbox entry without id, peer or next attempt")
	}
	if r.err != nil {
		return OutboxEntry{}, r.err
	}
	return e, nil
}

// outboxDue reads only the id and next-attempt time of a stored
// OutboxEntry, without copying the envelope.
func outboxDue(b []byte) (id []byte, next time.Time, err error) {
	r := reader{b: b}
	for {
		num, typ, ok := r.next()
		if !ok {
			break
		}
		switch num {
		case 1:
			id = r.bytes(typ, maxIDLen)
		case 2:
			r.bytes(typ, maxIDLen)
		case 3:
			r.bytes(typ, maxEnvelopeLen)
		case 4:
			r.int(typ)
		case 5:
			next = r.time(typ)
		case 6:
			r.time(typ)
		default:
			r.unknown()
		}
	}
	if r.err == nil && (len(id) == 0 || next.IsZero()) {
		r.fail("outbox entry without id or next attempt")
	}
	return id, next, r.err
}

func marshalConversation(c *Conversation) ([]byte, error) {
	if err := checkNanos("last message time", c.LastAt); err != nil {
		return nil, err
	}
	if c.Unread > math.MaxInt32 || c.Unread < math.MinInt32 {
		return nil, fmt.Errorf("%w: unread count %d", ErrInvalid, c.Unread)
	}
	b := make([]byte, 0, 32+len(c.Peer))
	b = appendString(b, 1, c.Peer)
	b = appendUvarint(b, 2, c.NextSeq)
	b = appendTime(b, 3, c.LastAt)
	b = appendSvarint(b, 4, int64(c.Unread))
	if c.Request {
		b = appendUvarint(b, 5, 1)
	}
	return b, nil
}

func unmarshalConversation(b []byte) (Conversation, error) {
	var c Conversation
	r := reader{b: b}
	for {
		num, typ, ok := r.next()
		if !ok {
			break
		}
		switch num {
		case 1:
			c.Peer = string(r.bytes(typ, maxIDLen))
		case 2:
			c.NextSeq = r.uvarint(typ)
		case 3:
			c.LastAt = r.time(typ)
		case 4:
			c.Unread = r.int(typ)
		case 5:
			if r.uvarint(typ) != 1 {
				r.fail("request flag is not 1")
			}
			c.Request = true
		default:
			r.unknown()
		}
	}
	if r.err == nil && c.Peer == "" {
		r.fail("conversation without peer")
	}
	if r.err != nil {
		return Conversation{}, r.err
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
// Since schema 6 an outgoing message not yet acknowledged has kind 3 and
// carries its outbox envelope, so queuing it and its acknowledgement each
// write this one entry instead of an outbox entry as well:
//
//	byte     3
//	uint64   big-endian unix nanoseconds, ≥ 0: the message's time
//	uvarint  length of the state (minimal, ≤ maxStateLen)
//	bytes    the state, UTF-8
//	bytes    the envelope, the rest of the value (≤ maxEnvelopeLen; empty:
//	         not sealed yet)
//
// (Schemas 3 and 4 held the whole msg/ key instead of its time: ~100 bytes
// more in every index write; migrate.go reads that form.)
type msgIndex struct {
	at       time.Time // the message's time; a marker's first-seen time
	dir      string    // DirIn, DirOut, or "" for a seen-only marker
	state    string
	queued   bool   // an outgoing message in the outbox
	env      []byte // its envelope when queued
	envKnown bool   // env was read (a queued index can be rewritten)
	key      []byte // the message's msg/ key, set by Tx.index
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
		return nil, fmt.Errorf("%w: message state %q", ErrInvalid, state)
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
		return nil, fmt.Errorf("%w: message direction %q", ErrInvalid, dir)
	}
	b := make([]byte, 0, 9+len(state))
	b = binary.BigEndian.AppendUint64(append(b, d), uint64(at.UnixNano()))
	return append(b, state...), nil
}

// marshalQueued encodes the index entry of an outgoing message in the
// outbox, with its envelope.
func marshalQueued(at time.Time, state string, env []byte) ([]byte, error) {
	if len(state) > maxStateLen || !utf8.ValidString(state) {
		return nil, fmt.Errorf("%w: message state %q", ErrInvalid, state)
	}
	if len(env) > maxEnvelopeLen {
		return nil, fmt.Errorf("%w: outbox envelope of %d bytes exceeds %d", ErrInvalid, len(env), maxEnvelopeLen)
	}
	if err := checkTime("message time", at); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 10+len(state)+len(env))
	b = binary.BigEndian.AppendUint64(append(b, queuedCode), uint64(at.UnixNano()))
	b = protowire.AppendVarint(b, uint64(len(state)))
	b = append(b, state...)
	return append(b, env...), nil
}

// marshal re-encodes ix in its kind's form.
func (ix msgIndex) marshal() ([]byte, error) {
	switch {
	case ix.marker():
		return marshalSeen(ix.at), nil
	case ix.queued:
		if !ix.envKnown {
			return nil, errors.New("bug: rewriting a queued message's index without its envelope")
		}
		return marshalQueued(ix.at, ix.state, ix.env)
	}
	return marshalIndex(ix.at, ix.dir, ix.state)
}

// unmarshalIndex decodes a msgid/ value: a message's index or a seen-only
// marker; env aliases b. key is left for the caller, who knows the peer
// and id.
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
		state, env := b[9+l:9+l+int(n)], b[9+l+int(n):]
		if !utf8.Valid(state) || len(env) > maxEnvelopeLen {
			return msgIndex{}, fmt.Errorf("%w: message index: bad state or envelope", errCorrupt)
		}
		ix.state, ix.env, ix.envKnown = string(state), env, true
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
