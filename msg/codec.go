package msg

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// errMalformed is wrapped by every decoding error of this package.
var errMalformed = errors.New("malformed frame")

// encoder appends protobuf wire format in the one canonical form the
// decoder accepts: fields in ascending order, zero values omitted.
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

// decoder is a strict protobuf reader. The caller asks for fields in
// ascending order; an unknown, duplicate or out-of-order field, a
// non-minimal varint or tag, an explicit zero value, a wrong wire type or a
// length out of bounds is an error. The first error sticks and end reports
// it. Returned byte slices alias the input.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{errMalformed}, args...)...)
	}
}

// next reports whether the next field is num with wire type typ, consuming
// its tag. A field numbered below num is a duplicate, out of order or
// unknown.
func (d *decoder) next(num protowire.Number, typ protowire.Type) bool {
	if d.err != nil || len(d.b) == 0 {
		return false
	}
	n, t, l := protowire.ConsumeTag(d.b)
	if l < 0 {
		d.fail("bad tag: %v", protowire.ParseError(l))
		return false
	}
	if l != protowire.SizeTag(n) {
		d.fail("non-minimal tag")
		return false
	}
	if n < num {
		d.fail("field %d unknown, repeated or out of order", n)
		return false
	}
	if n > num {
		return false
	}
	if t != typ {
		d.fail("field %d: wire type %d, want %d", n, t, typ)
		return false
	}
	d.b = d.b[l:]
	return true
}

// bytes reads an optional length-delimited field of minLen..maxLen bytes
// (minLen at least 1); absent yields nil.
func (d *decoder) bytes(num protowire.Number, minLen, maxLen int) []byte {
	if !d.next(num, protowire.BytesType) {
		return nil
	}
	n, l := protowire.ConsumeVarint(d.b)
	if l < 0 {
		d.fail("field %d: bad length: %v", num, protowire.ParseError(l))
		return nil
	}
	if l != protowire.SizeVarint(n) {
		d.fail("field %d: non-minimal length", num)
		return nil
	}
	if n < uint64(max(minLen, 1)) || n > uint64(maxLen) {
		d.fail("field %d: %d bytes, want %d..%d", num, n, max(minLen, 1), maxLen)
		return nil
	}
	if uint64(len(d.b)-l) < n {
		d.fail("field %d: truncated", num)
		return nil
	}
	v := d.b[l : l+int(n) : l+int(n)]
	d.b = d.b[l+int(n):]
	return v
}

// fixed reads a required field of exactly n bytes.
func (d *decoder) fixed(num protowire.Number, n int) []byte {
	v := d.bytes(num, n, n)
	if v == nil {
		d.fail("field %d missing", num)
	}
	return v
}

// uint reads an optional varint field of at most limit; absent yields 0.
func (d *decoder) uint(num protowire.Number, limit uint64) uint64 {
	if !d.next(num, protowire.VarintType) {
		return 0
	}
	v, l := protowire.ConsumeVarint(d.b)
	if l < 0 {
		d.fail("field %d: bad varint: %v", num, protowire.ParseError(l))
		return 0
	}
	if l != protowire.SizeVarint(v) {
		d.fail("field %d: non-minimal varint", num)
		return 0
	}
	if v == 0 {
		d.fail("field %d: explicit zero", num)
		return 0
	}
	if v > limit {
		d.fail("field %d: %d exceeds %d", num, v, limit)
		return 0
	}
	d.b = d.b[l:]
	return v
}

// more reports whether another occurrence of the repeated field num follows
// (without consuming it).
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
		n, _, _ := protowire.ConsumeTag(d.b)
		d.fail("field %d unknown, repeated or out of order", n)
	}
	return d.err
}
