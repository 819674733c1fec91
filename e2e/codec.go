package e2e

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// encoder appends protobuf wire format in the canonical form the decoder
// accepts: fields in ascending order, zero values omitted.
type encoder struct{ b []byte }

func (e *encoder) bytes(num protowire.Number, v []byte) {
	if len(v) == 0 {
		return
	}
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	e.b = protowire.AppendBytes(e.b, v)
}

func (e *encoder) uint(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	e.b = protowire.AppendTag(e.b, num, protowire.VarintType)
	e.b = protowire.AppendVarint(e.b, v)
}

func (e *encoder) bool(num protowire.Number, v bool) {
	if v {
		e.uint(num, 1)
	}
}

// decoder is a strict reader of protobuf wire format. The caller asks for the
// fields of a message in ascending order; anything else (an unknown field, a
// duplicate, fields out of order, a non-canonical varint or tag, an explicit
// zero value, a wrong wire type, a length outside its bounds) is an error, so
// an accepted encoding has exactly one byte form. The first error is sticky
// and reported by end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

// next reports whether the next field is number num, consuming its tag. A
// field with a smaller number is unknown, duplicated or out of order.
func (d *decoder) next(num protowire.Number, want protowire.Type) bool {
	if d.err != nil || len(d.b) == 0 {
		return false
	}
	n, typ, l := protowire.ConsumeTag(d.b)
	if l < 0 || l != protowire.SizeTag(n) {
		d.fail("bad field tag")
		return false
	}
	if n > num {
		return false
	}
	if n < num {
		d.fail("unexpected field %d", n)
		return false
	}
	if typ != want {
		d.fail("field %d has wire type %d", n, typ)
		return false
	}
	d.b = d.b[l:]
	return true
}

// bytes reads an optional length-delimited field; absent yields nil. A present
// field must hold between minLen and maxLen bytes (minLen at least 1).
func (d *decoder) bytes(num protowire.Number, minLen, maxLen int) []byte {
	if !d.next(num, protowire.BytesType) {
		return nil
	}
	v, l := protowire.ConsumeBytes(d.b)
	if l < 0 || l != protowire.SizeBytes(len(v)) {
		d.fail("field %d: bad length", num)
		return nil
	}
	if len(v) < max(minLen, 1) || len(v) > maxLen {
		d.fail("field %d: %d bytes, want %d..%d", num, len(v), max(minLen, 1), maxLen)
		return nil
	}
	d.b = d.b[l:]
	return v
}

// fixed reads a required field of exactly n bytes.
func (d *decoder) fixed(num protowire.Number, n int) []byte {
	v := d.bytes(num, n, n)
	if v == nil {
		d.fail("field %d: missing", num)
	}
	return v
}

// optFixed reads an optional field of exactly n bytes.
func (d *decoder) optFixed(num protowire.Number, n int) []byte {
	return d.bytes(num, n, n)
}

// uint reads an optional varint field no larger than limit; absent yields 0.
func (d *decoder) uint(num protowire.Number, limit uint64) uint64 {
	if !d.next(num, protowire.VarintType) {
		return 0
	}
	v, l := protowire.ConsumeVarint(d.b)
	if l < 0 || l != protowire.SizeVarint(v) {
		d.fail("field %d: bad varint", num)
		return 0
	}
	if v == 0 || v > limit {
		d.fail("field %d: value %d out of range", num, v)
		return 0
	}
	d.b = d.b[l:]
	return v
}

func (d *decoder) bool(num protowire.Number) bool {
	return d.uint(num, 1) == 1
}

// more reports whether another occurrence of the repeated field num follows.
func (d *decoder) more(num protowire.Number) bool {
	if d.err != nil || len(d.b) == 0 {
		return false
	}
	n, _, l := protowire.ConsumeTag(d.b)
	return l > 0 && n == num
}

// end reports the first error, or an error if bytes remain.
func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("unexpected trailing field")
	}
	return d.err
}
