package mailbox

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// later is what a newer member or mailbox might add: field 17 (a varint)
// and field 19 (bytes), in the additions range.
var later = []byte{0x88, 0x01, 0x05, 0x9a, 0x01, 0x03, 'a', 'b', 'c'}

// TestAdditionsSkipped: a newer peer's request or response, with fields
// this version does not know in the additions range, is read as the parts
// it knows (and re-encodes to its bytes); an unknown core field is still
// refused.
func TestAdditionsSkipped(t *testing.T) {
	req := request{op: opDrain, max: 7}
	b := append(req.marshal(), later...)
	r, err := unmarshalRequest(b)
	if err != nil || r.op != opDrain || r.max != 7 || !bytes.Equal(r.marshal(), b) {
		t.Fatalf("drain with additions = %+v, %v", r, err)
	}
	if _, err := unmarshalRequest(append(req.marshal(), 0x60, 0x01)); err == nil { // field 12
		t.Error("request with an unknown core field accepted")
	}
	resp := response{status: StatusOK, entries: []Entry{{Seq: 1, Data: []byte("x")}}, waiting: 2}
	b = append(resp.marshal(), later...)
	p, err := unmarshalResponse(b)
	if err != nil || p.status != StatusOK || len(p.entries) != 1 || p.waiting != 2 || !bytes.Equal(p.marshal(), b) {
		t.Fatalf("response with additions = %+v, %v", p, err)
	}
	if _, err := unmarshalResponse(append(resp.marshal(), 0x50, 0x01)); err == nil { // field 10
		t.Error("response with an unknown core field accepted")
	}
	over := append(req.marshal(), 0x9a, 0x01, 0x81, 0x08)
	if _, err := unmarshalRequest(append(over, make([]byte, 1025)...)); err == nil {
		t.Error("more than 1 KiB of additions accepted")
	}
	// The drain entry is strict.
	entry, _ := hex.DecodeString("0801120178" + "880105")
	strict := append([]byte{0x08, 0x01, 0x22, byte(len(entry))}, entry...)
	if _, err := unmarshalResponse(strict); err == nil {
		t.Error("an entry with an unknown field accepted")
	}
}
