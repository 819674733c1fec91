// Package wire is the one protobuf wire-format codec of callsign: every
// package that reads protobuf bytes from the network or the disk reads them
// with a Decoder from here, and writes them with an Encoder. It imports
// protowire only.
//
// # The compatibility rule (docs/ARCHITECTURE.md, "Wire formats")
//
// Field numbers 1 to 15 (one-byte tags) are a message's core; numbers from
// AdditionsFrom (16) up are its additions. Two decoding modes enforce what
// may change how:
//
//   - NewDecoder is strict, for signed records and stored values: fields in
//     ascending order, each once unless repeated (and then contiguous),
//     minimal varints and tags, no explicit zero or empty values, every
//     length within its bounds, and no unknown field at all. Every accepted
//     message has exactly one byte form, so a signature or a stored checksum
//     means one thing. Such a schema changes only with a new version (a
//     version field, a record kind, a schema migration).
//   - NewFrameDecoder is for frames between peers: everything NewDecoder
//     checks for the fields the caller asks for, but a field numbered 16 or
//     up that the caller does not ask for is skipped (well formed, in
//     ascending order, repeatable, at most a cap of bytes in all), so a
//     newer peer's frame reaches an older peer as the parts it knows. An
//     unknown core field (1..15) is still refused: a change an older peer
//     must not ignore takes a core number or a new version, never an
//     addition.
//
// A frame's version is its stream protocol's id (/callsign/msg/1.1.0), or,
// for a frame nested in another (a call signal inside an E2E message), a
// version field read with Decoder.Version: absent means 1.
package wire

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrNewerVersion is wrapped (beside the caller's malformed error) by
// Decoder.Version's refusal of a version newer than the reader's, so a
// caller can tell "update callsign" from garbage.
var ErrNewerVersion = errors.New("sent by a newer version")

// AdditionsFrom is the first field number of the additions range: a frame
// decoder skips an unknown field numbered AdditionsFrom or higher and
// refuses an unknown field below it.
const AdditionsFrom protowire.Number = 16

// Encoder appends protobuf wire format in the canonical form Decoder
// accepts. Write fields in ascending order.
type Encoder struct{ B []byte }

// Bytes appends a length-delimited field; an empty v is omitted.
func (e *Encoder) Bytes(num protowire.Number, v []byte) {
	if len(v) == 0 {
		return
	}
	e.B = protowire.AppendTag(e.B, num, protowire.BytesType)
	e.B = protowire.AppendBytes(e.B, v)
}

// String appends a length-delimited field; an empty v is omitted.
func (e *Encoder) String(num protowire.Number, v string) {
	if v == "" {
		return
	}
	e.B = protowire.AppendTag(e.B, num, protowire.BytesType)
	e.B = protowire.AppendString(e.B, v)
}

// Uint appends a varint field; zero is omitted.
func (e *Encoder) Uint(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	e.Varint(num, v)
}

// Varint appends a varint field even when v is zero, for the rare field
// whose zero is a value (a time at the unix epoch); Decoder.Varint reads it.
func (e *Encoder) Varint(num protowire.Number, v uint64) {
	e.B = protowire.AppendTag(e.B, num, protowire.VarintType)
	e.B = protowire.AppendVarint(e.B, v)
}

// Sint appends a zigzag varint field (sint64); zero is omitted.
func (e *Encoder) Sint(num protowire.Number, v int64) {
	e.Uint(num, protowire.EncodeZigZag(v))
}

// Bool appends a boolean as the varint 1; false is omitted.
func (e *Encoder) Bool(num protowire.Number, v bool) {
	if v {
		e.Uint(num, 1)
	}
}

// Double appends a fixed64 field holding v's IEEE 754 bits; +0 (all bits
// zero) is omitted. -0 and every NaN payload are kept as they are, so a
// value reads back bit for bit.
func (e *Encoder) Double(num protowire.Number, v float64) {
	bits := math.Float64bits(v)
	if bits == 0 {
		return
	}
	e.B = protowire.AppendTag(e.B, num, protowire.Fixed64Type)
	e.B = protowire.AppendFixed64(e.B, bits)
}

// Version appends a version field: omitted at 1, the version a reader
// assumes when it is absent (see Decoder.Version).
func (e *Encoder) Version(num protowire.Number, v uint64) {
	if v > 1 {
		e.Uint(num, v)
	}
}

// Time appends t as a zigzag varint of unix nanoseconds (sint64); the zero
// time.Time is omitted, and a time at the unix epoch is written as an
// explicit 0 (Decoder.Time reads both). t must satisfy TimeFits.
func (e *Encoder) Time(num protowire.Number, t time.Time) {
	if !t.IsZero() {
		e.Varint(num, protowire.EncodeZigZag(t.UnixNano()))
	}
}

// TimeFits reports whether Encoder.Time can write t: the zero time, or a
// time an int64 of unix nanoseconds holds (1678 to 2262).
func TimeFits(t time.Time) bool {
	return t.IsZero() || !t.Before(time.Unix(0, math.MinInt64)) && !t.After(time.Unix(0, math.MaxInt64))
}

// Raw appends fields already encoded, such as the additions a frame
// decoder skipped (Decoder.Skipped), so a frame re-encodes to its bytes.
func (e *Encoder) Raw(b []byte) { e.B = append(e.B, b...) }

// Decoder is a strict protobuf reader. The caller asks for the fields of a
// message in ascending order; an unknown, duplicate or out-of-order field, a
// non-minimal varint or tag, an explicit zero value, a wrong wire type or a
// length out of bounds is an error. A frame decoder (NewFrameDecoder) skips
// unknown fields of the additions range instead. The first error sticks;
// End reports it. Returned byte slices alias the input, capped so appending
// to them can't write into it.
type Decoder struct {
	b         []byte
	err       error
	malformed error

	frame      bool             // skip unknown additions
	maxSkipped int              // bytes of skipped additions allowed in all
	lastKnown  protowire.Number // the last field the caller read
	lastSkip   protowire.Number // the last field skipped
	skipped    []byte           // the skipped fields, in order, as sent
}

// NewDecoder reads b strictly (a signed record, a stored value): no field
// the caller does not ask for is accepted. Every error it reports wraps
// malformed.
func NewDecoder(b []byte, malformed error) *Decoder {
	return &Decoder{b: b, malformed: malformed}
}

// NewFrameDecoder reads a frame between peers: strict about the fields the
// caller asks for, it skips fields numbered AdditionsFrom or higher that
// the caller does not ask for — a newer peer's additions — up to
// maxSkipped bytes of them in all. Unknown fields below AdditionsFrom are
// refused as by NewDecoder. Every error wraps malformed.
func NewFrameDecoder(b []byte, malformed error, maxSkipped int) *Decoder {
	return &Decoder{b: b, malformed: malformed, frame: true, maxSkipped: maxSkipped}
}

// Err is the first error so far.
func (d *Decoder) Err() error { return d.err }

// Fail records an error (the first one sticks).
func (d *Decoder) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{d.malformed}, args...)...)
	}
}

// Skipped returns the additions a frame decoder skipped so far, as they
// were sent (a copy). A frame that keeps them and writes them
// back with Encoder.Raw after its own fields re-encodes to the same bytes.
func (d *Decoder) Skipped() []byte { return d.skipped[:len(d.skipped):len(d.skipped)] }

// peek returns the number and wire type of the next field the caller may
// read, skipping (in a frame decoder) unknown additions numbered below
// upTo; ok is false at the end of the input or on an error.
func (d *Decoder) peek(upTo protowire.Number) (protowire.Number, protowire.Type, int, bool) {
	for d.err == nil && len(d.b) > 0 {
		n, t, l := protowire.ConsumeTag(d.b)
		if l < 0 {
			d.Fail("bad tag: %v", protowire.ParseError(l))
			return 0, 0, 0, false
		}
		if l != protowire.SizeTag(n) {
			d.Fail("non-minimal tag")
			return 0, 0, 0, false
		}
		if n >= upTo || !d.skippable(n) {
			return n, t, l, true
		}
		d.skip(n, t, l)
	}
	return 0, 0, 0, false
}

// skippable reports whether field n, which the caller did not ask for, is
// an addition this decoder skips: a frame decoder's, numbered in the
// additions range above every field read, and not below one skipped.
func (d *Decoder) skippable(n protowire.Number) bool {
	return d.frame && n >= AdditionsFrom && n > d.lastKnown && n >= d.lastSkip
}

// skip consumes the unknown addition n whose tag is l bytes.
func (d *Decoder) skip(n protowire.Number, t protowire.Type, l int) {
	if t == protowire.StartGroupType || t == protowire.EndGroupType {
		d.Fail("addition %d: group wire type", n)
		return
	}
	m := protowire.ConsumeFieldValue(n, t, d.b[l:])
	if m < 0 {
		d.Fail("addition %d: %v", n, protowire.ParseError(m))
		return
	}
	if len(d.skipped)+l+m > d.maxSkipped {
		d.Fail("more than %d bytes of additions", d.maxSkipped)
		return
	}
	d.skipped = append(d.skipped, d.b[:l+m]...)
	d.lastSkip = n
	d.b = d.b[l+m:]
}

// next reports whether the next field is num with wire type typ, consuming
// its tag. A field numbered below num is a duplicate, out of order or
// unknown (unless a frame decoder skips it).
func (d *Decoder) next(num protowire.Number, typ protowire.Type) bool {
	n, t, l, ok := d.peek(num)
	if !ok {
		return false
	}
	if n < num {
		d.Fail("field %d unknown, repeated or out of order", n)
		return false
	}
	if n > num {
		return false
	}
	if num < d.lastSkip {
		d.Fail("field %d after field %d", num, d.lastSkip)
		return false
	}
	if t != typ {
		d.Fail("field %d: wire type %d, want %d", n, t, typ)
		return false
	}
	d.b = d.b[l:]
	d.lastKnown = num
	return true
}

// Bytes reads an optional length-delimited field of minLen..maxLen bytes
// (minLen at least 1); absent yields nil.
func (d *Decoder) Bytes(num protowire.Number, minLen, maxLen int) []byte {
	if !d.next(num, protowire.BytesType) {
		return nil
	}
	n, l := protowire.ConsumeVarint(d.b)
	if l < 0 {
		d.Fail("field %d: bad length: %v", num, protowire.ParseError(l))
		return nil
	}
	if l != protowire.SizeVarint(n) {
		d.Fail("field %d: non-minimal length", num)
		return nil
	}
	if n < uint64(max(minLen, 1)) || n > uint64(maxLen) {
		d.Fail("field %d: %d bytes, want %d..%d", num, n, max(minLen, 1), maxLen)
		return nil
	}
	if uint64(len(d.b)-l) < n {
		d.Fail("field %d: truncated", num)
		return nil
	}
	v := d.b[l : l+int(n) : l+int(n)]
	d.b = d.b[l+int(n):]
	return v
}

// String reads an optional UTF-8 field of minLen..maxLen bytes; absent
// yields "".
func (d *Decoder) String(num protowire.Number, minLen, maxLen int) string {
	v := d.Bytes(num, minLen, maxLen)
	if v != nil && !utf8.Valid(v) {
		d.Fail("field %d: not UTF-8", num)
		return ""
	}
	return string(v)
}

// Fixed reads a required field of exactly n bytes.
func (d *Decoder) Fixed(num protowire.Number, n int) []byte {
	v := d.Bytes(num, n, n)
	if v == nil {
		d.Fail("field %d missing", num)
	}
	return v
}

// OptFixed reads an optional field of exactly n bytes.
func (d *Decoder) OptFixed(num protowire.Number, n int) []byte { return d.Bytes(num, n, n) }

// Varint reads an optional varint field that may hold an explicit zero (a
// field Encoder.Varint writes); ok reports whether it was present.
func (d *Decoder) Varint(num protowire.Number) (v uint64, ok bool) {
	if !d.next(num, protowire.VarintType) {
		return 0, false
	}
	v, l := protowire.ConsumeVarint(d.b)
	if l < 0 {
		d.Fail("field %d: bad varint: %v", num, protowire.ParseError(l))
		return 0, false
	}
	if l != protowire.SizeVarint(v) {
		d.Fail("field %d: non-minimal varint", num)
		return 0, false
	}
	d.b = d.b[l:]
	return v, true
}

// nonZero reads an optional varint field that is never written as 0;
// absent yields 0.
func (d *Decoder) nonZero(num protowire.Number) uint64 {
	v, ok := d.Varint(num)
	if ok && v == 0 {
		d.Fail("field %d: explicit zero", num)
	}
	return v
}

// Uint reads an optional varint field of at most limit; absent yields 0.
func (d *Decoder) Uint(num protowire.Number, limit uint64) uint64 {
	v := d.nonZero(num)
	if v > limit {
		d.Fail("field %d: %d exceeds %d", num, v, limit)
		return 0
	}
	return v
}

// Sint reads an optional zigzag varint field (sint64) in lo..hi; absent
// yields 0.
func (d *Decoder) Sint(num protowire.Number, lo, hi int64) int64 {
	v := d.nonZero(num)
	if v == 0 {
		return 0
	}
	s := protowire.DecodeZigZag(v)
	if s < lo || s > hi {
		d.Fail("field %d: %d out of %d..%d", num, s, lo, hi)
		return 0
	}
	return s
}

// Time reads an optional time written by Encoder.Time; absent yields the
// zero time.Time.
func (d *Decoder) Time(num protowire.Number) time.Time {
	v, ok := d.Varint(num)
	if !ok {
		return time.Time{}
	}
	return time.Unix(0, protowire.DecodeZigZag(v))
}

// Bool reads an optional boolean (the varint 1); absent yields false.
func (d *Decoder) Bool(num protowire.Number) bool { return d.Uint(num, 1) == 1 }

// Double reads an optional fixed64 field written by Encoder.Double;
// absent yields +0, and an explicit +0 is an error (it is never written).
func (d *Decoder) Double(num protowire.Number) float64 {
	if !d.next(num, protowire.Fixed64Type) {
		return 0
	}
	bits, l := protowire.ConsumeFixed64(d.b)
	if l < 0 {
		d.Fail("field %d: bad fixed64: %v", num, protowire.ParseError(l))
		return 0
	}
	d.b = d.b[l:]
	if bits == 0 {
		d.Fail("field %d: explicit zero", num)
		return 0
	}
	return math.Float64frombits(bits)
}

// Version reads a frame's version field: absent means 1, and a present one
// is 2 or more (Encoder.Version omits 1). A version above newest fails
// with an error that also wraps ErrNewerVersion.
func (d *Decoder) Version(num protowire.Number, newest uint64) uint64 {
	v, ok := d.Varint(num)
	switch {
	case !ok:
		return 1
	case v < 2:
		d.Fail("field %d: version %d written out", num, v)
		return 0
	case v > newest:
		if d.err == nil {
			d.err = fmt.Errorf("%w: %w: version %d, this callsign reads up to %d", d.malformed, ErrNewerVersion, v, newest)
		}
		return 0
	}
	return v
}

// RepeatedBytes reads the repeated field num: at most limit occurrences
// (one more is an error), each of minLen..maxLen bytes.
func (d *Decoder) RepeatedBytes(num protowire.Number, limit, minLen, maxLen int) [][]byte {
	var out [][]byte
	for d.More(num) && d.Err() == nil {
		if len(out) == limit {
			d.Fail("field %d: more than %d occurrences", num, limit)
			break
		}
		out = append(out, d.Bytes(num, minLen, maxLen))
	}
	return out
}

// More reports whether another occurrence of the repeated field num
// follows (without consuming it).
func (d *Decoder) More(num protowire.Number) bool {
	n, _, _, ok := d.peek(num)
	return ok && n == num
}

// End reports the first error, or an error if bytes remain that are not
// additions a frame decoder skips.
func (d *Decoder) End() error {
	if n, _, _, ok := d.peek(protowire.MaxValidNumber + 1); ok {
		d.Fail("field %d unknown, repeated or out of order", n)
	}
	return d.err
}
