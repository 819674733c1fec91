package dht

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/internal/wire"
)

// Wire layer: the exact protobuf encodings of records.proto, written and read
// by hand so that every record has exactly one byte form. These types carry
// bytes and integers only; records.go converts them to and from the domain
// types (toWire / fromWire).

// Record kinds, the first field of every payload.
const (
	kindIdentity uint64 = 1
	kindHandle   uint64 = 2
)

// Size caps. Every repeated field and every length has one; decoders refuse
// anything larger before allocating for it.
const (
	// MaxIdentityRecordSize is the largest encoded identity record envelope.
	MaxIdentityRecordSize = 16 << 10
	// MaxHandleRecordSize is the largest encoded handle record envelope.
	MaxHandleRecordSize = 1 << 10

	maxSigLen         = 128
	maxKeyLen         = 64
	maxDevices        = 8
	maxDeviceLen      = 1024
	maxPrekeysLen     = 4 << 10
	maxPeerAddrs      = 8
	maxAddrLen        = 512
	maxDisplayNameLen = 64
	maxHandles        = 16
	maxHandleLen      = 128
	maxAttestations   = 8
	maxAttestationLen = 512
)

// ErrMalformed is wrapped by every decoding error: the bytes are not the one
// canonical encoding of a record.
var ErrMalformed = errors.New("malformed record")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// wireEnvelope is records.proto's Envelope.
type wireEnvelope struct {
	Payload   []byte // field 1
	Signature []byte // field 2
}

// wireIdentity is records.proto's IdentityPayload (kind = 1).
type wireIdentity struct {
	Account      []byte   // 2
	Seq          uint64   // 3
	Issued       uint64   // 4, unix milliseconds
	Expires      uint64   // 5, unix milliseconds
	Devices      [][]byte // 6
	Prekeys      []byte   // 7
	Mailboxes    [][]byte // 8
	Relays       [][]byte // 9
	DisplayName  string   // 10
	Handles      []string // 11
	Attestations [][]byte // 12
}

// wireHandle is records.proto's HandlePayload (kind = 2).
type wireHandle struct {
	Name      string // 2
	Owner     []byte // 3
	Seq       uint64 // 4
	ClaimedAt uint64 // 5, unix milliseconds
	Issued    uint64 // 6, unix milliseconds
	Expires   uint64 // 7, unix milliseconds
	Nonce     uint64 // 8
}

// --- encoding ---

// appendRepeated writes every element of a repeated bytes field, empty ones
// too (the decoder refuses those: a caller's bug shows, it is not dropped).
func appendRepeated(e *wire.Encoder, num protowire.Number, vs [][]byte) {
	for _, v := range vs {
		e.B = protowire.AppendTag(e.B, num, protowire.BytesType)
		e.B = protowire.AppendBytes(e.B, v)
	}
}

func (e *wireEnvelope) marshal() []byte {
	w := wire.Encoder{B: make([]byte, 0, len(e.Payload)+len(e.Signature)+8)}
	w.Bytes(1, e.Payload)
	w.Bytes(2, e.Signature)
	return w.B
}

func (w *wireIdentity) marshal() []byte {
	var e wire.Encoder
	e.Uint(1, kindIdentity)
	e.Bytes(2, w.Account)
	e.Uint(3, w.Seq)
	e.Uint(4, w.Issued)
	e.Uint(5, w.Expires)
	appendRepeated(&e, 6, w.Devices)
	e.Bytes(7, w.Prekeys)
	appendRepeated(&e, 8, w.Mailboxes)
	appendRepeated(&e, 9, w.Relays)
	e.String(10, w.DisplayName)
	for _, h := range w.Handles {
		appendRepeated(&e, 11, [][]byte{[]byte(h)})
	}
	appendRepeated(&e, 12, w.Attestations)
	return e.B
}

func (w *wireHandle) marshal() []byte {
	var e wire.Encoder
	e.Uint(1, kindHandle)
	e.String(2, w.Name)
	e.Bytes(3, w.Owner)
	e.Uint(4, w.Seq)
	e.Uint(5, w.ClaimedAt)
	e.Uint(6, w.Issued)
	e.Uint(7, w.Expires)
	e.Uint(8, w.Nonce)
	return e.B
}

// --- strict decoding ---

// Records are signed, so they are decoded strictly (internal/wire's
// NewDecoder, docs/ARCHITECTURE.md "Wire formats"): minimal varints (tags,
// values and length prefixes), field numbers in ascending order, a singular
// field at most once, repeated fields contiguous, no unknown field of any
// number, zero-valued singular fields omitted, and every length within its
// cap. A new field takes a new record kind.

// newDecoder is a strict decoder whose errors wrap ErrMalformed.
func newDecoder(b []byte) *wire.Decoder { return wire.NewDecoder(b, ErrMalformed) }

// text checks that v is UTF-8.
func text(d *wire.Decoder, num protowire.Number, v []byte) string {
	if !utf8.Valid(v) {
		d.Fail("field %d: invalid UTF-8", num)
	}
	return string(v)
}

func unmarshalEnvelope(b []byte, maxSize int) (*wireEnvelope, error) {
	if len(b) > maxSize {
		return nil, malformed("envelope: %d bytes, limit %d", len(b), maxSize)
	}
	d := newDecoder(b)
	e := wireEnvelope{Payload: d.Bytes(1, 1, maxSize), Signature: d.Bytes(2, 1, maxSigLen)}
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	if e.Payload == nil || e.Signature == nil {
		return nil, malformed("envelope: missing payload or signature")
	}
	return &e, nil
}

// payloadKind returns the kind tag that opens every payload.
func payloadKind(b []byte) (uint64, error) {
	d := newDecoder(b)
	k := d.Uint(1, 1<<32)
	if err := d.Err(); err != nil {
		return 0, err
	}
	if k == 0 {
		return 0, malformed("payload does not start with its kind")
	}
	return k, nil
}

// kind reads field 1 of a payload, which must be want.
func kind(d *wire.Decoder, want uint64, what string) {
	if k := d.Uint(1, 1<<32); d.Err() == nil && k != want {
		d.Fail("%s: kind %d", what, k)
	}
}

func unmarshalIdentity(b []byte) (*wireIdentity, error) {
	d := newDecoder(b)
	var w wireIdentity
	kind(d, kindIdentity, "identity")
	w.Account = d.Bytes(2, 1, maxKeyLen)
	w.Seq = d.Uint(3, 1<<64-1)
	w.Issued = d.Uint(4, 1<<64-1)
	w.Expires = d.Uint(5, 1<<64-1)
	w.Devices = d.RepeatedBytes(6, maxDevices, 1, maxDeviceLen)
	w.Prekeys = d.Bytes(7, 1, maxPrekeysLen)
	w.Mailboxes = d.RepeatedBytes(8, maxPeerAddrs, 1, maxAddrLen)
	w.Relays = d.RepeatedBytes(9, maxPeerAddrs, 1, maxAddrLen)
	if v := d.Bytes(10, 1, maxDisplayNameLen); v != nil {
		w.DisplayName = text(d, 10, v)
	}
	for _, h := range d.RepeatedBytes(11, maxHandles, 1, maxHandleLen) {
		w.Handles = append(w.Handles, text(d, 11, h))
	}
	w.Attestations = d.RepeatedBytes(12, maxAttestations, 1, maxAttestationLen)
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return &w, nil
}

func unmarshalHandle(b []byte) (*wireHandle, error) {
	d := newDecoder(b)
	var w wireHandle
	kind(d, kindHandle, "handle")
	if v := d.Bytes(2, 1, maxHandleLen); v != nil {
		w.Name = text(d, 2, v)
	}
	w.Owner = d.Bytes(3, 1, maxKeyLen)
	w.Seq = d.Uint(4, 1<<64-1)
	w.ClaimedAt = d.Uint(5, 1<<64-1)
	w.Issued = d.Uint(6, 1<<64-1)
	w.Expires = d.Uint(7, 1<<64-1)
	w.Nonce = d.Uint(8, 1<<64-1)
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("handle: %w", err)
	}
	return &w, nil
}
