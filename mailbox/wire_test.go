package mailbox

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/callsign/callsign/internal/wire"
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

// TestPerDevice: the register response's addition 16 (per_device) has one
// byte form, reads back, is skipped by a member that does not know it (it
// reads the fields it knows, as an older one does), and a value other than
// 1 is refused.
func TestPerDevice(t *testing.T) {
	r := response{status: StatusOK, waiting: 2, perDevice: true}
	b := r.marshal()
	if got := hex.EncodeToString(b); got != "08012802800101" {
		t.Fatalf("register response %s", got)
	}
	p, err := unmarshalResponse(b)
	if err != nil || !p.perDevice || p.waiting != 2 || !p.held().PerDevice {
		t.Fatalf("read back %+v, %v", p, err)
	}
	old := wire.NewFrameDecoder(b, errMalformed, maxAdditions)
	st, waiting := old.Uint(1, uint64(maxStatus)), old.Uint(5, 1<<40)
	if err := old.End(); err != nil || st != 1 || waiting != 2 || hex.EncodeToString(old.Skipped()) != "800101" {
		t.Fatalf("an older member reads %d, %d, %v, skipping %x", st, waiting, err, old.Skipped())
	}
	if p, err := unmarshalResponse(b[:4]); err != nil || p.perDevice {
		t.Fatalf("an older mailbox's answer: %+v, %v; want no per_device", p, err)
	}
	if _, err := unmarshalResponse(append(b[:4], 0x80, 0x01, 0x02)); err == nil {
		t.Error("per_device 2 accepted")
	}
}
