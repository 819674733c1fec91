package dht

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
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

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendRepeatedBytes(b []byte, num protowire.Number, vs [][]byte) []byte {
	for _, v := range vs {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendBytes(b, v)
	}
	return b
}

func (e *wireEnvelope) marshal() []byte {
	b := make([]byte, 0, len(e.Payload)+len(e.Signature)+8)
	b = appendBytesField(b, 1, e.Payload)
	return appendBytesField(b, 2, e.Signature)
}

func (w *wireIdentity) marshal() []byte {
	var b []byte
	b = appendVarintField(b, 1, kindIdentity)
	b = appendBytesField(b, 2, w.Account)
	b = appendVarintField(b, 3, w.Seq)
	b = appendVarintField(b, 4, w.Issued)
	b = appendVarintField(b, 5, w.Expires)
	b = appendRepeatedBytes(b, 6, w.Devices)
	b = appendBytesField(b, 7, w.Prekeys)
	b = appendRepeatedBytes(b, 8, w.Mailboxes)
	b = appendRepeatedBytes(b, 9, w.Relays)
	b = appendBytesField(b, 10, []byte(w.DisplayName))
	for _, h := range w.Handles {
		b = protowire.AppendTag(b, 11, protowire.BytesType)
		b = protowire.AppendString(b, h)
	}
	return appendRepeatedBytes(b, 12, w.Attestations)
}

func (w *wireHandle) marshal() []byte {
	var b []byte
	b = appendVarintField(b, 1, kindHandle)
	b = appendBytesField(b, 2, []byte(w.Name))
	b = appendBytesField(b, 3, w.Owner)
	b = appendVarintField(b, 4, w.Seq)
	b = appendVarintField(b, 5, w.ClaimedAt)
	b = appendVarintField(b, 6, w.Issued)
	b = appendVarintField(b, 7, w.Expires)
	return appendVarintField(b, 8, w.Nonce)
}

// --- strict decoding ---

// decoder walks one message. It enforces: minimal varints (tags, values and
// length prefixes), field numbers in ascending order, a singular field at
// most once, repeated fields contiguous, no unknown fields, zero-valued
// singular fields omitted, and every length within its cap.
type decoder struct {
	b    []byte
	last protowire.Number
	// repeated reports whether field num may occur more than once.
	repeated func(num protowire.Number) bool
	// kindFirst requires field 1 (the record kind) to open the message.
	kindFirst bool
}

// next returns the next field's number and wire type, or 0 at the end.
func (d *decoder) next() (protowire.Number, protowire.Type, error) {
	if len(d.b) == 0 {
		return 0, 0, nil
	}
	raw, n := protowire.ConsumeVarint(d.b)
	if n < 0 {
		return 0, 0, malformed("bad tag")
	}
	if n != protowire.SizeVarint(raw) {
		return 0, 0, malformed("non-minimal tag")
	}
	num, typ := protowire.DecodeTag(raw)
	if !num.IsValid() {
		return 0, 0, malformed("bad field number")
	}
	d.b = d.b[n:]
	switch {
	case d.last == 0 && d.kindFirst && num != 1:
		return 0, 0, malformed("payload does not start with its kind")
	case num < d.last:
		return 0, 0, malformed("field %d after field %d", num, d.last)
	case num == d.last && (d.repeated == nil || !d.repeated(num)):
		return 0, 0, malformed("duplicate field %d", num)
	}
	d.last = num
	return num, typ, nil
}

// varint reads a non-zero, minimally encoded varint value.
func (d *decoder) varint(num protowire.Number, typ protowire.Type) (uint64, error) {
	if typ != protowire.VarintType {
		return 0, malformed("field %d: wrong wire type %d", num, typ)
	}
	v, n := protowire.ConsumeVarint(d.b)
	if n < 0 {
		return 0, malformed("field %d: bad varint", num)
	}
	if n != protowire.SizeVarint(v) {
		return 0, malformed("field %d: non-minimal varint", num)
	}
	if v == 0 {
		return 0, malformed("field %d: explicit zero", num)
	}
	d.b = d.b[n:]
	return v, nil
}

// bytes reads a non-empty length-delimited value of at most max bytes. The
// result aliases the input.
func (d *decoder) bytes(num protowire.Number, typ protowire.Type, max int) ([]byte, error) {
	if typ != protowire.BytesType {
		return nil, malformed("field %d: wrong wire type %d", num, typ)
	}
	l, n := protowire.ConsumeVarint(d.b)
	if n < 0 {
		return nil, malformed("field %d: bad length", num)
	}
	if n != protowire.SizeVarint(l) {
		return nil, malformed("field %d: non-minimal length", num)
	}
	if l == 0 {
		return nil, malformed("field %d: empty", num)
	}
	if l > uint64(max) {
		return nil, malformed("field %d: %d bytes, limit %d", num, l, max)
	}
	if l > uint64(len(d.b)-n) {
		return nil, malformed("field %d: truncated", num)
	}
	v := d.b[n : n+int(l) : n+int(l)]
	d.b = d.b[n+int(l):]
	return v, nil
}

func (d *decoder) text(num protowire.Number, typ protowire.Type, max int) (string, error) {
	v, err := d.bytes(num, typ, max)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(v) {
		return "", malformed("field %d: invalid UTF-8", num)
	}
	return string(v), nil
}

// appendCapped appends v to list unless list already holds max entries.
func appendCapped[T any](list []T, v T, num protowire.Number, max int) ([]T, error) {
	if len(list) >= max {
		return nil, malformed("field %d: more than %d entries", num, max)
	}
	return append(list, v), nil
}

func unmarshalEnvelope(b []byte, maxSize int) (*wireEnvelope, error) {
	if len(b) > maxSize {
		return nil, malformed("envelope: %d bytes, limit %d", len(b), maxSize)
	}
	d := decoder{b: b}
	var e wireEnvelope
	for {
		num, typ, err := d.next()
		if err != nil {
			return nil, err
		}
		switch num {
		case 0:
			if e.Payload == nil || e.Signature == nil {
				return nil, malformed("envelope: missing payload or signature")
			}
			return &e, nil
		case 1:
			e.Payload, err = d.bytes(num, typ, maxSize)
		case 2:
			e.Signature, err = d.bytes(num, typ, maxSigLen)
		default:
			return nil, malformed("envelope: unknown field %d", num)
		}
		if err != nil {
			return nil, err
		}
	}
}

// payloadKind returns the kind tag that opens every payload.
func payloadKind(b []byte) (uint64, error) {
	d := decoder{b: b, kindFirst: true}
	num, typ, err := d.next()
	if err != nil {
		return 0, err
	}
	if num == 0 {
		return 0, malformed("empty payload")
	}
	return d.varint(num, typ)
}

func identityRepeated(num protowire.Number) bool {
	switch num {
	case 6, 8, 9, 11, 12:
		return true
	}
	return false
}

func unmarshalIdentity(b []byte) (*wireIdentity, error) {
	d := decoder{b: b, repeated: identityRepeated, kindFirst: true}
	var w wireIdentity
	for {
		num, typ, err := d.next()
		if err != nil {
			return nil, err
		}
		var v []byte
		switch num {
		case 0:
			if d.last == 0 {
				return nil, malformed("identity: empty payload")
			}
			return &w, nil
		case 1:
			var k uint64
			if k, err = d.varint(num, typ); err == nil && k != kindIdentity {
				err = malformed("identity: kind %d", k)
			}
		case 2:
			w.Account, err = d.bytes(num, typ, maxKeyLen)
		case 3:
			w.Seq, err = d.varint(num, typ)
		case 4:
			w.Issued, err = d.varint(num, typ)
		case 5:
			w.Expires, err = d.varint(num, typ)
		case 6:
			if v, err = d.bytes(num, typ, maxDeviceLen); err == nil {
				w.Devices, err = appendCapped(w.Devices, v, num, maxDevices)
			}
		case 7:
			w.Prekeys, err = d.bytes(num, typ, maxPrekeysLen)
		case 8:
			if v, err = d.bytes(num, typ, maxAddrLen); err == nil {
				w.Mailboxes, err = appendCapped(w.Mailboxes, v, num, maxPeerAddrs)
			}
		case 9:
			if v, err = d.bytes(num, typ, maxAddrLen); err == nil {
				w.Relays, err = appendCapped(w.Relays, v, num, maxPeerAddrs)
			}
		case 10:
			w.DisplayName, err = d.text(num, typ, maxDisplayNameLen)
		case 11:
			var s string
			if s, err = d.text(num, typ, maxHandleLen); err == nil {
				w.Handles, err = appendCapped(w.Handles, s, num, maxHandles)
			}
		case 12:
			if v, err = d.bytes(num, typ, maxAttestationLen); err == nil {
				w.Attestations, err = appendCapped(w.Attestations, v, num, maxAttestations)
			}
		default:
			err = malformed("identity: unknown field %d", num)
		}
		if err != nil {
			return nil, err
		}
	}
}

func unmarshalHandle(b []byte) (*wireHandle, error) {
	d := decoder{b: b, kindFirst: true}
	var w wireHandle
	for {
		num, typ, err := d.next()
		if err != nil {
			return nil, err
		}
		switch num {
		case 0:
			if d.last == 0 {
				return nil, malformed("handle: empty payload")
			}
			return &w, nil
		case 1:
			var k uint64
			if k, err = d.varint(num, typ); err == nil && k != kindHandle {
				err = malformed("handle: kind %d", k)
			}
		case 2:
			w.Name, err = d.text(num, typ, maxHandleLen)
		case 3:
			w.Owner, err = d.bytes(num, typ, maxKeyLen)
		case 4:
			w.Seq, err = d.varint(num, typ)
		case 5:
			w.ClaimedAt, err = d.varint(num, typ)
		case 6:
			w.Issued, err = d.varint(num, typ)
		case 7:
			w.Expires, err = d.varint(num, typ)
		case 8:
			w.Nonce, err = d.varint(num, typ)
		default:
			err = malformed("handle: unknown field %d", num)
		}
		if err != nil {
			return nil, err
		}
	}
}
