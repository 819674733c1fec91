package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/internal/wire"
)

// The forms of messaging's values (msg's keyspace, Tx.Space) that the
// migrations up to schema 6 read and write, frozen as they were then.
// msg owns these values and their codecs (msg/storecodec.go, which
// specifies them); the copies here are history, so that msg's codecs can
// change with a later schema without changing what these migrations do.
// Schema 6 is still msg's form: msg's golden tests pin the same bytes.
//
//	Message (msg/, binary since schema 2; field 8, the state, schema 2 only)
//	field 1 id, 2 peer (bytes), 3 direction (1 in, 2 out), 4 seq,
//	5 body (bytes), 6 sent_at, 7 at (zigzag unix ns), 8 state (bytes)
//
//	OutboxEntry (out/)
//	field 1 id, 2 peer, 3 envelope (bytes), 4 attempts (zigzag),
//	5 next_attempt, 6 created_at (zigzag unix ns)
//
//	Conversation (conv/)
//	field 1 peer (bytes), 2 next_seq, 3 last_at (zigzag unix ns),
//	4 unread (zigzag), 5 request (1)
//
//	msgid/ entry, schema 5 (kinds 0, 1, 2) and 6 (kind 3): kind byte,
//	8-byte big-endian unix ns, then the state (kinds 1, 2), or a uvarint
//	state length, the state and the envelope (kind 3)

// The message fields' limits and codes, as schemas 2 to 6 had them.
const (
	dirInV2        = "in"
	dirOutV2       = "out"
	dirInCode      = 1
	dirOutCode     = 2
	queuedCode     = 3
	maxStateLen    = 64
	maxBodyLen     = 1 << 20
	maxEnvelopeLen = maxBodyLen + 64<<10
)

// messageV2 is a message as schema 1 kept it (JSON) and schema 2 (binary,
// with its state).
type messageV2 struct {
	ID        string    `json:"id"`
	Peer      string    `json:"peer"`
	Direction string    `json:"direction"`
	Seq       uint64    `json:"seq"`
	Body      []byte    `json:"body"`
	SentAt    time.Time `json:"sent_at"`
	At        time.Time `json:"at"`
	State     string    `json:"state,omitempty"`
}

// conversationV2 is a conversation summary of schemas 1 (JSON) and 2.
type conversationV2 struct {
	Peer    string    `json:"peer"`
	NextSeq uint64    `json:"next_seq"`
	LastAt  time.Time `json:"last_at"`
	Unread  int       `json:"unread"`
	Request bool      `json:"request,omitempty"`
}

// outboxV2 is an outbox entry of schemas 1 (JSON) and 2.
type outboxV2 struct {
	ID          string    `json:"id"`
	Peer        string    `json:"peer"`
	Envelope    []byte    `json:"envelope"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	CreatedAt   time.Time `json:"created_at"`
}

func dirCode(dir string) (uint64, error) {
	switch dir {
	case dirInV2:
		return dirInCode, nil
	case dirOutV2:
		return dirOutCode, nil
	}
	return 0, fmt.Errorf("%w: message direction %q", ErrInvalid, dir)
}

func checkState(state string) error {
	if len(state) > maxStateLen || !utf8.ValidString(state) {
		return fmt.Errorf("%w: message state %q", ErrInvalid, state)
	}
	return nil
}

func (m *messageV2) marshal() ([]byte, error) {
	if len(m.Body) > maxBodyLen {
		return nil, fmt.Errorf("%w: message body of %d bytes exceeds %d", ErrInvalid, len(m.Body), maxBodyLen)
	}
	if err := checkState(m.State); err != nil {
		return nil, err
	}
	if err := checkNanos("sent time", m.SentAt); err != nil {
		return nil, err
	}
	if err := checkNanos("message time", m.At); err != nil {
		return nil, err
	}
	dir, err := dirCode(m.Direction)
	if err != nil {
		return nil, err
	}
	var e wire.Encoder
	e.String(1, m.ID)
	e.String(2, m.Peer)
	e.Uint(3, dir)
	e.Uint(4, m.Seq)
	e.Bytes(5, m.Body)
	e.Time(6, m.SentAt)
	e.Time(7, m.At)
	e.String(8, m.State)
	return e.B, nil
}

func unmarshalMessageV2(b []byte) (messageV2, error) {
	var m messageV2
	d := newReader(b)
	m.ID = string(d.Bytes(1, 1, maxIDLen))
	m.Peer = string(d.Bytes(2, 1, maxIDLen))
	switch d.Uint(3, math.MaxUint64) {
	case 0:
	case dirInCode:
		m.Direction = dirInV2
	case dirOutCode:
		m.Direction = dirOutV2
	default:
		d.Fail("unknown direction")
	}
	m.Seq = d.Uint(4, math.MaxUint64)
	m.Body = d.Bytes(5, 1, maxBodyLen)
	m.SentAt = d.Time(6)
	m.At = d.Time(7)
	m.State = d.String(8, 1, maxStateLen)
	if err := d.End(); err != nil {
		return messageV2{}, err
	}
	if m.ID == "" || m.Peer == "" || m.Direction == "" || m.At.IsZero() {
		return messageV2{}, fmt.Errorf("%w: message without id, peer, direction or time", errCorrupt)
	}
	return m, nil
}

func (c *conversationV2) marshal() ([]byte, error) {
	if err := checkNanos("last message time", c.LastAt); err != nil {
		return nil, err
	}
	if c.Unread > math.MaxInt32 || c.Unread < math.MinInt32 {
		return nil, fmt.Errorf("%w: unread count %d", ErrInvalid, c.Unread)
	}
	var e wire.Encoder
	e.String(1, c.Peer)
	e.Uint(2, c.NextSeq)
	e.Time(3, c.LastAt)
	e.Sint(4, int64(c.Unread))
	e.Bool(5, c.Request)
	return e.B, nil
}

func (o *outboxV2) marshal() ([]byte, error) {
	if len(o.Envelope) > maxEnvelopeLen {
		return nil, fmt.Errorf("%w: outbox envelope of %d bytes exceeds %d", ErrInvalid, len(o.Envelope), maxEnvelopeLen)
	}
	if err := checkNanos("next attempt", o.NextAttempt); err != nil {
		return nil, err
	}
	if err := checkNanos("created time", o.CreatedAt); err != nil {
		return nil, err
	}
	if o.Attempts < 0 || o.Attempts > math.MaxInt32 {
		return nil, fmt.Errorf("%w: outbox attempts %d", ErrInvalid, o.Attempts)
	}
	var e wire.Encoder
	e.String(1, o.ID)
	e.String(2, o.Peer)
	e.Bytes(3, o.Envelope)
	e.Sint(4, int64(o.Attempts))
	e.Time(5, o.NextAttempt)
	e.Time(6, o.CreatedAt)
	return e.B, nil
}

func unmarshalOutboxV2(b []byte) (outboxV2, error) {
	var o outboxV2
	d := newReader(b)
	o.ID = string(d.Bytes(1, 1, maxIDLen))
	o.Peer = string(d.Bytes(2, 1, maxIDLen))
	o.Envelope = d.Bytes(3, 1, maxEnvelopeLen)
	o.Attempts = int(d.Sint(4, 1, math.MaxInt32))
	o.NextAttempt = d.Time(5)
	o.CreatedAt = d.Time(6)
	if err := d.End(); err != nil {
		return outboxV2{}, err
	}
	if o.ID == "" || o.Peer == "" || o.NextAttempt.IsZero() {
		return outboxV2{}, fmt.Errorf("%w: outbox entry without id, peer or next attempt", errCorrupt)
	}
	return o, nil
}

// marshalIndexV5 encodes a message's msgid/ entry of schema 5 (kinds 1, 2).
func marshalIndexV5(at time.Time, dir, state string) ([]byte, error) {
	if err := checkState(state); err != nil {
		return nil, err
	}
	if err := checkTime("message time", at); err != nil {
		return nil, err
	}
	d, err := dirCode(dir)
	if err != nil {
		return nil, err
	}
	b := binary.BigEndian.AppendUint64([]byte{byte(d)}, uint64(at.UnixNano()))
	return append(b, state...), nil
}

// marshalQueuedV6 encodes a queued message's msgid/ entry of schema 6 (kind 3).
func marshalQueuedV6(at time.Time, state string, env []byte) ([]byte, error) {
	if err := checkState(state); err != nil {
		return nil, err
	}
	if len(env) > maxEnvelopeLen {
		return nil, fmt.Errorf("%w: outbox envelope of %d bytes exceeds %d", ErrInvalid, len(env), maxEnvelopeLen)
	}
	if err := checkTime("message time", at); err != nil {
		return nil, err
	}
	b := binary.BigEndian.AppendUint64([]byte{queuedCode}, uint64(at.UnixNano()))
	b = protowire.AppendVarint(b, uint64(len(state)))
	b = append(b, state...)
	return append(b, env...), nil
}

// indexV6 is a msgid/ entry of schema 5 or 6, decoded.
type indexV6 struct {
	at     time.Time
	dir    string // "" for a seen-only marker
	state  string
	queued bool
}

func unmarshalIndexV6(b []byte) (indexV6, error) {
	if len(b) < 9 || int64(binary.BigEndian.Uint64(b[1:9])) < 0 {
		return indexV6{}, fmt.Errorf("%w: message index: malformed", errCorrupt)
	}
	ix := indexV6{at: time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9])))}
	if ix.at.Year() >= 2262 {
		return indexV6{}, fmt.Errorf("%w: message index: time out of range", errCorrupt)
	}
	state := b[9:]
	switch b[0] {
	case 0:
		if len(b) != 9 {
			return indexV6{}, fmt.Errorf("%w: message index: malformed seen marker", errCorrupt)
		}
		return ix, nil
	case dirInCode:
		ix.dir = dirInV2
	case dirOutCode:
		ix.dir = dirOutV2
	case queuedCode:
		ix.dir, ix.queued = dirOutV2, true
		n, l := protowire.ConsumeVarint(b[9:])
		if l < 0 || protowire.SizeVarint(n) != l || n > maxStateLen || n > uint64(len(b)-9-l) {
			return indexV6{}, fmt.Errorf("%w: message index: bad state length", errCorrupt)
		}
		state = b[9+l : 9+l+int(n)]
		if len(b[9+l+int(n):]) > maxEnvelopeLen {
			return indexV6{}, fmt.Errorf("%w: message index: bad state or envelope", errCorrupt)
		}
	default:
		return indexV6{}, fmt.Errorf("%w: message index: unknown kind", errCorrupt)
	}
	if len(state) > maxStateLen || !utf8.Valid(state) {
		return indexV6{}, fmt.Errorf("%w: message index: bad state", errCorrupt)
	}
	ix.state = string(state)
	return ix, nil
}
