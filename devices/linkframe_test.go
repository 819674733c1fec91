package devices

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/callsign/callsign/internal/wire"
)

func testFrames() []linkFrame {
	k32, k16 := bytes.Repeat([]byte{0xab}, 32), bytes.Repeat([]byte{0xcd}, 16)
	return []linkFrame{
		{typ: frameHello, a: k32, b: k32},
		{typ: frameOffer, a: k32},
		{typ: frameReveal, a: k32, b: k16},
		{typ: frameConfirm, a: k32},
		{typ: frameAccount, a: bytes.Repeat([]byte{1}, 17)},
		{typ: frameLinked, a: []byte("cert")},
		{typ: frameHistory, a: bytes.Repeat([]byte{2}, 17)},
		{typ: frameDone},
		{typ: frameDone, n: 3},
		{typ: frameRefusal, n: uint64(RefusedSpent)},
		{typ: frameRefusal, n: uint64(RefusedLinked), text: "cert not by the account"},
	}
}

// TestLinkFrames pins the frames' form and reads each back; a frame of a
// newer peer (additions) reads, an unknown core field or type does not.
func TestLinkFrames(t *testing.T) {
	want := []string{"0801", "0802", "0803", "0804", "0805", "0806", "0807", "0808", "08081003", "08091001", "080910051a17"}
	for i, f := range testFrames() {
		b := f.marshal()
		if got := hex.EncodeToString(b); len(got) < len(want[i]) || got[:len(want[i])] != want[i] {
			t.Errorf("%v = %s, want it to start %s", f.typ, got, want[i])
		}
		g, err := unmarshalLinkFrame(b)
		if err != nil || !bytes.Equal(g.marshal(), b) {
			t.Errorf("%v: read back %+v, %v", f.typ, g, err)
		}
		var e wire.Encoder
		e.Bytes(20, []byte("newer"))
		f.extra = e.B
		if g, err := unmarshalLinkFrame(f.marshal()); err != nil || !bytes.Equal(g.marshal(), f.marshal()) {
			t.Errorf("%v with additions: %v", f.typ, err)
		}
		var core wire.Encoder
		core.Bytes(9, []byte("x"))
		f.extra = core.B
		if _, err := unmarshalLinkFrame(f.marshal()); !errors.Is(err, ErrLinkFrame) {
			t.Errorf("%v with an unknown core field: %v", f.typ, err)
		}
	}
	short := []linkFrame{
		{typ: frameHello, a: make([]byte, 31), b: make([]byte, 32)},
		{typ: frameReveal, a: make([]byte, 32), b: make([]byte, 15)},
		{typ: frameReveal, a: make([]byte, 32)},
		{typ: frameConfirm, a: make([]byte, 33)},
		{typ: frameAccount, a: make([]byte, sealOverhead)},
	}
	for _, f := range short {
		if _, err := unmarshalLinkFrame(f.marshal()); !errors.Is(err, ErrLinkFrame) {
			t.Errorf("%v with a field of a wrong length read: %v", f.typ, err)
		}
	}
	for _, b := range [][]byte{nil, {0x08, 0x0a}, {0x08, 0x01, 0x12, 0x01, 0x00}, {0x08, 0x05}, {0x08, 0x09}} {
		if _, err := unmarshalLinkFrame(b); !errors.Is(err, ErrLinkFrame) {
			t.Errorf("%x read: %v", b, err)
		}
	}
}

// FuzzLinkFrames: no frame panics the decoder of any step; an accepted
// frame re-encodes to exactly its bytes (one form), within its type's cap.
func FuzzLinkFrames(f *testing.F) {
	for _, fr := range testFrames() {
		f.Add(fr.marshal())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := unmarshalLinkFrame(b)
		if err != nil {
			return
		}
		if !bytes.Equal(fr.marshal(), b) {
			t.Fatalf("%x reads as %+v, which re-encodes to %x", b, fr, fr.marshal())
		}
		if max := map[bool]int{true: MaxLinkHistoryFrame, false: MaxLinkFrame}[fr.typ == frameHistory]; len(b)-len(fr.extra) > max {
			t.Fatalf("accepted a %v of %d bytes, cap %d", fr.typ, len(b), max)
		}
	})
}
