// Package wire is the strict protobuf wire-format codec the E2E and
// messaging formats are written in: an Encoder that writes the one
// canonical form (fields in ascending order, zero values omitted) and a
// Decoder that accepts nothing else, so that every accepted message has
// exactly one byte form. It imports protowire only.
package wire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

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

// Uint appends a varint field; zero is omitted.
func (e *Encoder) Uint(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	e.B = protowire.AppendTag(e.B, num, protowire.VarintType)
	e.B = protowire.AppendVarint(e.B, v)
}

// Bool appends a boolean as the varint 1; false is omitted.
func (e *Encoder) Bool(num protowire.Number, v bool) {
	if v {
		e.Uint(num, 1)
	}
}

// Decoder is a strict protobuf reader. The caller asks for the fields of a
// message in ascending order; an unknown, duplicate or out-of-order field, a
// non-minimal varint or tag, an explicit zero value, a wrong wire type or a
// length out of bounds is an error. The first error sticks; End reports it.
// Returned byte slices alias the input, capped so appending to them can't
// write into it.
type Decoder struct {
	b         []byte
	err       error
	malformed error
}

// NewDecoder reads b; every error it reports wraps malformed.
func NewDecoder(b []byte, malformed error) *Decoder {
	return &Decoder{b: b, malformed: malformed}
}

// Err is the first error so far.
func (d *Decoder) Err() error { return d.err }

// Fail records an error (the first one sticks).
func (d *Decoder) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{d.malformed}, args...)...)
	}
}

// next reports whether the next field is num with wire type typ, consuming
// its tag. A field numbered below num is a duplicate, out of order or
// unknown.
func (d *Decoder) next(num protowire.Number, typ protowire.Type) bool {
	if d.err != nil || len(d.b) == 0 {
		return false
	}
	n, t, l := protowire.ConsumeTag(d.b)
	if l < 0 {
		d.Fail("bad tag: %v", protowire.ParseError(l))
		return false
	}
	if l != protowire.SizeTag(n) {
		d.Fail("non-minimal tag")
		return false
	}
	if n < num {
		d.Fail("field %d unknown, repeated or out of order", n)
		return false
	}
	if n > num {
		return false
	}
	if t != typ {
		d.Fail("field %d: wire type %d, want %d", n, t, typ)
		return false
	}
	d.b = d.b[l:]
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

// Uint reads an optional varint field of at most limit; absent yields 0.
func (d *Decoder) Uint(num protowire.Number, limit uint64) uint64 {
	if !d.next(num, protowire.VarintType) {
		return 0
	}
	v, l := protowire.ConsumeVarint(d.b)
	if l < 0 {
		d.Fail("field %d: bad varint: %v", num, protowire.ParseError(l))
		return 0
	}
	if l != protowire.SizeVarint(v) {
		d.Fail("field %d: non-minimal varint", num)
		return 0
	}
	if v == 0 {
		d.Fail("field %d: explicit zero", num)
		return 0
	}
	if v > limit {
		d.Fail("field %d: %d exceeds %d", num, v, limit)
		return 0
	}
	d.b = d.b[l:]
	return v
}

// Bool reads an optional boolean (the varint 1); absent yields false.
func (d *Decoder) Bool(num protowire.Number) bool { return d.Uint(num, 1) == 1 }

// More reports whether another occurrence of the repeated field num
// follows (without consuming it).
func (d *Decoder) More(num protowire.Number) bool {
	if d.err != nil || len(d.b) == 0 {
		return false
	}
	n, _, l := protowire.ConsumeTag(d.b)
	return l > 0 && n == num
}

// End reports the first error, or an error if bytes remain.
func (d *Decoder) End() error {
	if d.err == nil && len(d.b) != 0 {
		n, _, _ := protowire.ConsumeTag(d.b)
		d.Fail("field %d unknown, repeated or out of order", n)
	}
	return d.err
}
