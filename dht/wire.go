package dht

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
)

// Wire layer: the exact protobuf encodings of records.proto, written and read
// by hand so that every record has exactly one byte form. These types carry
// bytes and integers only; records.go converts them to and from the domain
// types (toWire / fromWire).

// Record kinds, the first field of every payload.
const (
	kindIdentity   uint64 = 1 // IdentityPayload: one prekey bundle for all devices
	kindHandle     uint64 = 2
	kindIdentityV2 uint64 = 3 // IdentityPayloadV2: a bundle per device, revoked devices

	// kindNewest is the highest kind this node reads: a payload of a
	// higher kind was signed by a newer callsign, and is refused with an
	// error that wraps wire.ErrNewerVersion.
	kindNewest = kindIdentityV2
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
	maxDevices        = MaxDevices
	maxDeviceLen      = 1024 // kind 1's device certificate
	maxPrekeysLen     = 4 << 10
	maxDeviceEntryLen = 2048 // kind 3's DeviceEntry
	maxBundleLen      = 1600 // kind 3's bundle of one device
	maxRevoked        = 32
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

// errDeviceEntry names a DeviceEntry in the errors of its decoder, which
// the payload's decoder wraps in ErrMalformed.
var errDeviceEntry = errors.New("device entry")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// wireEnvelope is records.proto's Envelope.
type wireEnvelope struct {
	Payload   []byte // field 1
	Signature []byte // field 2
}

// wireIdentity is records.proto's IdentityPayload (kind 1) or
// IdentityPayloadV2 (kind 3): the two differ in fields 6 and 7 only.
type wireIdentity struct {
	Kind         uint64            // 1: kindIdentity or kindIdentityV2
	Account      []byte            // 2
	Seq          uint64            // 3
	Issued       uint64            // 4, unix milliseconds
	Expires      uint64            // 5, unix milliseconds
	Devices      [][]byte          // 6, kind 1: DeviceCert encodings
	Entries      []wireDeviceEntry // 6, kind 3
	Prekeys      []byte            // 7, kind 1
	Revoked      [][]byte          // 7, kind 3: DeviceIDs
	Mailboxes    [][]byte          // 8
	Relays       [][]byte          // 9
	DisplayName  string            // 10
	Handles      []string          // 11
	Attestations [][]byte          // 12
}

// wireDeviceEntry is records.proto's DeviceEntry, one device of a kind-3
// identity payload.
type wireDeviceEntry struct {
	Cert   []byte // 1, a DeviceCert encoding
	Bundle []byte // 2, opaque
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
	e.Uint(1, w.Kind)
	e.Bytes(2, w.Account)
	e.Uint(3, w.Seq)
	e.Uint(4, w.Issued)
	e.Uint(5, w.Expires)
	appendRepeated(&e, 6, w.Devices)
	for _, de := range w.Entries {
		appendRepeated(&e, 6, [][]byte{de.marshal()})
	}
	e.Bytes(7, w.Prekeys)
	appendRepeated(&e, 7, w.Revoked)
	appendRepeated(&e, 8, w.Mailboxes)
	appendRepeated(&e, 9, w.Relays)
	e.String(10, w.DisplayName)
	for _, h := range w.Handles {
		appendRepeated(&e, 11, [][]byte{[]byte(h)})
	}
	appendRepeated(&e, 12, w.Attestations)
	return e.B
}

func (de *wireDeviceEntry) marshal() []byte {
	var e wire.Encoder
	e.Bytes(1, de.Cert)
	e.Bytes(2, de.Bundle)
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

// newerKind is the refusal of a kind above kindNewest, after ErrMalformed
// and wire.ErrNewerVersion, so a caller can tell "update callsign" from
// garbage.
const newerKind = "%w: record kind %d, this callsign reads up to %d"

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
	if k > kindNewest {
		return 0, malformed(newerKind, wire.ErrNewerVersion, k, kindNewest)
	}
	return k, nil
}

// kind reads field 1 of a payload, which must be one of want.
func kind(d *wire.Decoder, what string, want ...uint64) uint64 {
	k := d.Uint(1, 1<<32)
	switch {
	case d.Err() != nil:
		return 0
	case k > kindNewest:
		d.Fail(what+": "+newerKind, wire.ErrNewerVersion, k, kindNewest)
		return 0
	case !slices.Contains(want, k):
		d.Fail("%s: kind %d", what, k)
		return 0
	}
	return k
}

func unmarshalIdentity(b []byte) (*wireIdentity, error) {
	d := newDecoder(b)
	var w wireIdentity
	w.Kind = kind(d, "identity", kindIdentity, kindIdentityV2)
	w.Account = d.Bytes(2, 1, maxKeyLen)
	w.Seq = d.Uint(3, 1<<64-1)
	w.Issued = d.Uint(4, 1<<64-1)
	w.Expires = d.Uint(5, 1<<64-1)
	if w.Kind == kindIdentityV2 {
		for _, b := range d.RepeatedBytes(6, maxDevices, 1, maxDeviceEntryLen) {
			w.Entries = append(w.Entries, unmarshalDeviceEntry(d, b))
		}
		w.Revoked = d.RepeatedBytes(7, maxRevoked, identity.DeviceIDSize, identity.DeviceIDSize)
	} else {
		w.Devices = d.RepeatedBytes(6, maxDevices, 1, maxDeviceLen)
		w.Prekeys = d.Bytes(7, 1, maxPrekeysLen)
	}
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

// unmarshalDeviceEntry decodes field 6 of a kind-3 identity payload, b,
// failing d (the payload's decoder) if it is not one DeviceEntry with both
// fields.
func unmarshalDeviceEntry(d *wire.Decoder, b []byte) wireDeviceEntry {
	ed := wire.NewDecoder(b, errDeviceEntry)
	de := wireDeviceEntry{Cert: ed.Bytes(1, 1, identity.MaxDeviceCertSize), Bundle: ed.Bytes(2, 1, maxBundleLen)}
	if err := ed.End(); err != nil {
		d.Fail("field 6: %v", err)
	} else if de.Cert == nil || de.Bundle == nil {
		d.Fail("field 6: %v without a certificate or a bundle", errDeviceEntry)
	}
	return de
}

func unmarshalHandle(b []byte) (*wireHandle, error) {
	d := newDecoder(b)
	var w wireHandle
	kind(d, "handle", kindHandle)
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
