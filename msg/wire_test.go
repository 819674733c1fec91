package msg

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
)

// Golden encodings: changing one is a wire-format break.
var (
	goldenID = msgID{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f}

	goldenDeliver    = deliverFrame{id: goldenID, sender: bytes.Repeat([]byte{0xaa}, 32), cert: []byte{0x01, 0x02, 0x03}, kind: kindRatchet, ciphertext: []byte("ct")}
	goldenDeliverHex = "0a10000102030405060708090a0b0c0d0e0f" +
		"1220" + strings.Repeat("aa", 32) +
		"1a03010203" + "2002" + "2a026374"

	goldenAck    = ackFrame{id: goldenID, status: statusRefused, reason: "session: replayed message"}
	goldenAckHex = "0a10000102030405060708090a0b0c0d0e0f" + "1003" + "1a19" + hex.EncodeToString([]byte("session: replayed message"))

	goldenText    = content{kind: contentText, seq: 7, sentAt: 1_700_000_000_000_000_000, body: []byte("hi")}
	goldenTextHex = "0801" + "1007" + "188080a8b1e39fe7cb17" + "22026869"

	// A copy for a sibling of a text sent to the account whose id's 20
	// bytes are 0x11 each.
	goldenCopy    = content{kind: contentCopy, seq: 7, sentAt: 1_700_000_000_000_000_000, body: []byte("hi"), to: bytes.Repeat([]byte{0x11}, 20)}
	goldenCopyHex = "0804" + "1007" + "188080a8b1e39fe7cb17" + "22026869" + "3214" + strings.Repeat("11", 20)

	// A sibling's read of one message of the same account's conversation.
	goldenRead    = content{kind: contentRead, ids: []msgID{goldenID}, to: bytes.Repeat([]byte{0x11}, 20)}
	goldenReadHex = "0805" + "2a10000102030405060708090a0b0c0d0e0f" + "3214" + strings.Repeat("11", 20)

	// A text naming the two devices it went to (addition 16).
	goldenTextDevices    = content{kind: contentText, seq: 7, sentAt: 1_700_000_000_000_000_000, body: []byte("hi"), devices: []identity.DeviceID{{1, 1, 1, 1, 1, 1, 1, 1}, {2, 2, 2, 2, 2, 2, 2, 2}}}
	goldenTextDevicesHex = goldenTextHex + "8201" + "10" + strings.Repeat("01", 8) + strings.Repeat("02", 8)

	// A sibling's relay of a text from the account whose id's 20 bytes
	// are 0x11 each.
	goldenRelay    = content{kind: contentRelay, seq: 7, sentAt: 1_700_000_000_000_000_000, body: []byte("hi"), to: bytes.Repeat([]byte{0x11}, 20)}
	goldenRelayHex = "0807" + "1007" + "188080a8b1e39fe7cb17" + "22026869" + "3214" + strings.Repeat("11", 20)

	goldenReceipt    = content{kind: contentReceipt, ids: []msgID{goldenID, goldenID}}
	goldenReceiptHex = "0802" + "2a10000102030405060708090a0b0c0d0e0f" + "2a10000102030405060708090a0b0c0d0e0f"

	// 1.1.0 additions: a stamp on a Deliver, the stamp status on an Ack.
	goldenStamp           = []byte{1, 2, 3, 4, 5, 6, 7, 8}
	goldenStampDeliverHex = goldenDeliverHex + "8201080102030405060708"
	goldenStampAck        = ackFrame{id: goldenID, status: statusStamp, stampBits: 8}
	goldenStampAckHex     = "0a10000102030405060708090a0b0c0d0e0f" + "1004" + "8001" + "08"
)

func TestGoldenEncodings(t *testing.T) {
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"deliver", goldenDeliver.marshal(), goldenDeliverHex},
		{"ack", goldenAck.marshal(), goldenAckHex},
		{"text", goldenText.marshal(), goldenTextHex},
		{"receipt", goldenReceipt.marshal(), goldenReceiptHex},
		{"copy", goldenCopy.marshal(), goldenCopyHex},
		{"read", goldenRead.marshal(), goldenReadHex},
		{"text naming its devices", goldenTextDevices.marshal(), goldenTextDevicesHex},
		{"relay", goldenRelay.marshal(), goldenRelayHex},
		{"stamped deliver", withStamp(goldenDeliver.marshal(), goldenStamp), goldenStampDeliverHex},
		{"stamp ack", goldenStampAck.marshal(), goldenStampAckHex},
	} {
		if hex.EncodeToString(c.got) != c.want {
			t.Errorf("%s = %x, want %s", c.name, c.got, c.want)
		}
	}
	for _, v := range []version{v10, v11} {
		d, err := unmarshalDeliver(mustHex(goldenDeliverHex), 100, v)
		if err != nil || d.id != goldenID || d.kind != kindRatchet || string(d.ciphertext) != "ct" || d.stamp != nil {
			t.Errorf("decode golden deliver (version %d) = %+v, %v", v, d, err)
		}
		a, err := unmarshalAck(mustHex(goldenAckHex), v)
		if err != nil || a.id != goldenAck.id || a.status != goldenAck.status || a.reason != goldenAck.reason {
			t.Errorf("decode golden ack (version %d) = %+v, %v", v, a, err)
		}
	}
	d, err := unmarshalDeliver(mustHex(goldenStampDeliverHex), 100, v11)
	if err != nil || !bytes.Equal(d.stamp, goldenStamp) || string(d.ciphertext) != "ct" {
		t.Errorf("decode stamped deliver = %+v, %v", d, err)
	}
	a, err := unmarshalAck(mustHex(goldenStampAckHex), v11)
	if err != nil || a.status != statusStamp || a.stampBits != 8 {
		t.Errorf("decode stamp ack = %+v, %v", a, err)
	}
	// 1.0.0 knows no additions.
	if _, err := unmarshalDeliver(mustHex(goldenStampDeliverHex), 100, v10); err == nil {
		t.Error("1.0.0 deliver with a stamp accepted")
	}
	if _, err := unmarshalAck(mustHex(goldenStampAckHex), v10); err == nil {
		t.Error("1.0.0 ack with the stamp status accepted")
	}
}

// TestAdditionsSkipped: 1.1.0 frames carry fields a later version adds
// (numbered 17 and up here) past an older peer, which skips them.
func TestAdditionsSkipped(t *testing.T) {
	later := "8801" + "05" + "9a01" + "03616263" // field 17 varint 5, field 19 bytes "abc"
	d, err := unmarshalDeliver(mustHex(goldenStampDeliverHex+later), 100, v11)
	if err != nil || !bytes.Equal(d.stamp, goldenStamp) || string(d.ciphertext) != "ct" {
		t.Fatalf("deliver with later additions = %+v, %v", d, err)
	}
	if hex.EncodeToString(d.marshal()) != goldenStampDeliverHex+later {
		t.Errorf("deliver with later additions re-encodes to %x", d.marshal())
	}
	if d, err := unmarshalDeliver(mustHex(goldenDeliverHex+later), 100, v11); err != nil || d.stamp != nil {
		t.Errorf("deliver with later additions and no stamp = %+v, %v", d, err)
	}
	a, err := unmarshalAck(mustHex(goldenAckHex+later), v11)
	if err != nil || a.status != statusRefused || a.reason != goldenAck.reason {
		t.Errorf("ack with later additions = %+v, %v", a, err)
	}
	// A repeated addition: the older peer can't know whether the field is
	// repeated, so it skips every occurrence.
	if d, err := unmarshalDeliver(mustHex(goldenDeliverHex+"880105"+"880106"), 100, v11); err != nil || !bytes.Equal(d.marshal(), mustHex(goldenDeliverHex+"880105"+"880106")) {
		t.Errorf("deliver with a repeated addition = %+v, %v", d, err)
	}
	for _, c := range []struct{ name, hex string }{
		{"additions out of order", goldenDeliverHex + "9a0103616263" + "880105"},
		{"addition between core fields", strings.Replace(goldenDeliverHex, "2002", "8801052002", 1)},
		{"unknown core field", goldenDeliverHex + "3001"},
		{"repeated stamp", goldenStampDeliverHex + "8201080102030405060708"},
		{"short stamp", goldenDeliverHex + "82010401020304"},
		{"truncated addition", goldenDeliverHex + "9a010361"},
		{"non-minimal addition tag", goldenDeliverHex + "88810005"},
		{"core field after an addition", goldenStampDeliverHex + "2a026374"},
		{"additions over the cap", goldenDeliverHex + "9a01" + "8104" + strings.Repeat("00", 513)},
	} {
		if _, err := unmarshalDeliver(mustHex(c.hex), 1000, v11); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if _, err := unmarshalAck(mustHex("0a10000102030405060708090a0b0c0d0e0f"+"1004"), v11); err == nil {
		t.Error("stamp ack without stamp_bits accepted")
	}
	if _, err := unmarshalAck(mustHex(goldenAckHex+"8001"+"08"), v11); err == nil {
		t.Error("stamp_bits on a refusal accepted")
	}
	c, err := unmarshalContent(mustHex(goldenTextHex), 10)
	if err != nil || c.seq != 7 || c.sentAt != goldenText.sentAt || string(c.body) != "hi" {
		t.Errorf("decode golden text = %+v, %v", c, err)
	}
	r, err := unmarshalContent(mustHex(goldenReceiptHex), 10)
	if err != nil || len(r.ids) != 2 || r.ids[1] != goldenID {
		t.Errorf("decode golden receipt = %+v, %v", r, err)
	}
	// Content: additions skipped and kept; an unknown core field, a newer
	// version or too many additions refused.
	c, err = unmarshalContent(mustHex(goldenTextHex+laterContentAdditions), 10)
	if err != nil || string(c.body) != "hi" || hex.EncodeToString(c.marshal()) != goldenTextHex+laterContentAdditions {
		t.Errorf("text with later additions = %+v, %v", c, err)
	}
	if c, err := unmarshalContent(mustHex(goldenTextHex+"7802"), 10); !errors.Is(err, wire.ErrNewerVersion) {
		t.Errorf("text of version 2 = %+v, %v", c, err)
	}
	for name, h := range map[string]string{
		"unknown core field":     goldenTextHex + "3001",
		"version 1 written out":  goldenTextHex + "7801",
		"additions over the cap": goldenTextHex + "f201" + "8108" + strings.Repeat("00", 1025),
	} {
		if _, err := unmarshalContent(mustHex(h), 10); err == nil {
			t.Errorf("content with %s accepted", name)
		}
	}
}

func TestDecodersRejectNonCanonical(t *testing.T) {
	for _, c := range []struct {
		name string
		hex  string
	}{
		{"deliver without ciphertext", "0a10000102030405060708090a0b0c0d0e0f1220" + strings.Repeat("aa", 32) + "1a030102032002"},
		{"deliver with unknown field", goldenDeliverHex + "3001"},
		{"deliver with duplicate kind", strings.Replace(goldenDeliverHex, "2002", "20022002", 1)},
		{"deliver with kind 4", strings.Replace(goldenDeliverHex, "2002", "2004", 1)},
		{"deliver with explicit zero kind", strings.Replace(goldenDeliverHex, "2002", "2000", 1)},
		{"deliver with non-minimal kind", strings.Replace(goldenDeliverHex, "2002", "208200", 1)},
		{"deliver with short id", "0a0f000102030405060708090a0b0c0d0e" + goldenDeliverHex[36:]},
		{"deliver out of order", goldenDeliverHex[36:] + goldenDeliverHex[:36]},
	} {
		for _, v := range []version{v10, v11} {
			if _, err := unmarshalDeliver(mustHex(c.hex), 100, v); err == nil {
				t.Errorf("%s (version %d): accepted", c.name, v)
			}
		}
	}
	if _, err := unmarshalDeliver(mustHex(goldenDeliverHex), 1, v11); err == nil {
		t.Error("ciphertext above the cap accepted")
	}
	if _, err := unmarshalAck(mustHex("0a10000102030405060708090a0b0c0d0e0f"+"1001"+"1a0161"), v11); err == nil {
		t.Error("ack with a reason on a success accepted")
	}
	if _, err := unmarshalContent(mustHex("0802"), 10); err == nil {
		t.Error("receipt without ids accepted")
	}
	if _, err := unmarshalContent(mustHex(goldenTextHex), 1); err == nil {
		t.Error("text above the cap accepted")
	}
	if _, err := unmarshalContent(mustHex("0801"+goldenReceiptHex[4:]), 10); err == nil {
		t.Error("text with receipt ids accepted")
	}
	for name, h := range map[string]string{
		"text with a recipient":         "0801" + goldenCopyHex[4:],
		"copy without a recipient":      "0804" + goldenTextHex[4:],
		"copy with a short recipient":   "0804" + goldenTextHex[4:] + "3213" + strings.Repeat("11", 19),
		"copy with receipt ids":         goldenCopyHex[:len(goldenCopyHex)-44] + "2a10000102030405060708090a0b0c0d0e0f" + goldenCopyHex[len(goldenCopyHex)-44:],
		"receipt with a recipient":      goldenReceiptHex + "3214" + strings.Repeat("11", 20),
		"read with text fields":         "0805" + goldenCopyHex[4:],
		"read without its conversation": "0805" + goldenReceiptHex[4:],
		"read without ids":              "0805" + "3214" + strings.Repeat("11", 20),
		"kind 6":                        "0806" + goldenReadHex[4:],
	} {
		if _, err := unmarshalContent(mustHex(h), 10); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// TestContentDevices: a text's devices (addition 16) decode to what was
// sent; on anything but a text, in a length that is not whole devices, or
// naming more than 8, they are malformed; a relay needs its sender; a
// build that does not know addition 16 reads the text and skips them.
func TestContentDevices(t *testing.T) {
	c, err := unmarshalContent(mustHex(goldenTextDevicesHex), 100)
	if err != nil || !slices.Equal(c.devices, goldenTextDevices.devices) || string(c.body) != "hi" {
		t.Fatalf("text with devices: %+v %v", c, err)
	}
	if r, err := unmarshalContent(mustHex(goldenRelayHex), 100); err != nil || r.kind != contentRelay || string(r.body) != "hi" {
		t.Fatalf("relay: %+v %v", r, err)
	}
	for name, h := range map[string]string{
		"devices on a receipt":       goldenReceiptHex + "8201" + "08" + strings.Repeat("01", 8),
		"devices on a relay":         goldenRelayHex + "8201" + "08" + strings.Repeat("01", 8),
		"half a device":              goldenTextHex + "8201" + "04" + strings.Repeat("01", 4),
		"twelve bytes":               goldenTextHex + "8201" + "0c" + strings.Repeat("01", 12),
		"nine devices":               goldenTextHex + "8201" + "48" + strings.Repeat("01", 72),
		"a relay without its sender": "0807" + "1007" + "22026869",
	} {
		if _, err := unmarshalContent(mustHex(h), 100); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want malformed", name, err)
		}
	}
	// What a build without addition 16 reads: the text, skipping it.
	d := wire.NewFrameDecoder(mustHex(goldenTextDevicesHex), errMalformed, maxContentAdditions)
	kind, seq, _, body := d.Uint(1, contentRead), d.Uint(2, math.MaxInt64), d.Uint(3, math.MaxInt64), d.Bytes(4, 1, 100)
	d.Version(fieldVersion, contentVersion)
	if err := d.End(); err != nil || kind != contentText || seq != 7 || string(body) != "hi" || len(d.Skipped()) == 0 {
		t.Fatalf("an older build reads kind %d seq %d %q (%v), skipping %x", kind, seq, body, err, d.Skipped())
	}
}

// TestLargestTextNamesNoDevices: the largest text leaves its devices out
// rather than not fit one message; a smaller one names them.
func TestLargestTextNamesNoDevices(t *testing.T) {
	s := &Service{}
	ps := &peerState{acct: &acctState{view: []identity.DeviceID{{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}}}}
	for _, n := range []int{10, DefaultMaxMessage} {
		m := &Message{Seq: math.MaxInt64, SentAt: time.Unix(0, math.MaxInt64), Body: make([]byte, n)}
		pt := s.textPlain(ps, m)
		c, err := unmarshalContent(pt, DefaultMaxMessage)
		if err != nil || len(pt) > e2e.MaxPlaintext || (len(c.devices) == 8) != (n == 10) {
			t.Fatalf("a text of %d bytes: %d bytes of plaintext naming %d devices, %v", n, len(pt), len(c.devices), err)
		}
	}
}

// TestCopyFitsOneMessage: a copy of the largest text, with every field at
// its largest, fits in one e2e message, as the text does.
func TestCopyFitsOneMessage(t *testing.T) {
	c := content{kind: contentCopy, seq: math.MaxInt64, sentAt: math.MaxInt64, body: make([]byte, DefaultMaxMessage), to: make([]byte, 20)}
	if n := len(c.marshal()); n > e2e.MaxPlaintext {
		t.Fatalf("the largest copy is %d bytes, over e2e.MaxPlaintext (%d)", n, e2e.MaxPlaintext)
	}
	got, err := unmarshalContent(c.marshal(), DefaultMaxMessage)
	if err != nil || len(got.body) != DefaultMaxMessage {
		t.Fatalf("the largest copy does not decode: %v", err)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// The fuzzers check that no input panics or allocates beyond its size, and
// that whatever decodes re-encodes to the same bytes (one byte form).

func FuzzDeliver(f *testing.F) {
	f.Add(mustHex(goldenDeliverHex))
	f.Add(mustHex(goldenStampDeliverHex))
	f.Add(mustHex(goldenStampDeliverHex + "880105"))
	f.Add(mustHex(goldenDeliverHex + laterDeliverAdditions))
	f.Add(mustHex(goldenDeliverHex + "880105" + "880106"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []version{v10, v11} {
			d, err := unmarshalDeliver(b, 1<<16, v)
			if err != nil {
				continue
			}
			if !bytes.Equal(d.marshal(), b) {
				t.Fatalf("deliver %x (version %d) re-encodes to %x", b, v, d.marshal())
			}
		}
	})
}

func FuzzAck(f *testing.F) {
	f.Add(mustHex(goldenAckHex))
	f.Add(mustHex(goldenStampAckHex))
	f.Add(mustHex(goldenAckHex + laterDeliverAdditions))
	f.Add(mustHex("0a10000102030405060708090a0b0c0d0e0f1001"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []version{v10, v11} {
			a, err := unmarshalAck(b, v)
			if err != nil {
				continue
			}
			if !bytes.Equal(a.marshal(), b) {
				t.Fatalf("ack %x (version %d) re-encodes to %x", b, v, a.marshal())
			}
		}
	})
}

func FuzzContent(f *testing.F) {
	f.Add(mustHex(goldenTextHex))
	f.Add(mustHex(goldenReceiptHex))
	f.Add(mustHex(goldenCopyHex))
	f.Add(mustHex(goldenReadHex))
	f.Add(mustHex(goldenTextHex + laterContentAdditions))
	f.Add(mustHex(goldenTextHex + "7802"))
	f.Add(mustHex(goldenTextDevicesHex))
	f.Add(mustHex(goldenTextDevicesHex + laterContentAdditions))
	f.Add(mustHex(goldenRelayHex))
	quoted := newMsgID()
	act, _ := (&Action{Kind: ActionReact, Target: quoted.String(), Emoji: "👍"}).marshal()
	f.Add((&content{kind: contentText, seq: 3, sentAt: 9, body: []byte("answer"), replyTo: quoted[:]}).marshal())
	f.Add((&content{kind: contentText, seq: 4, sentAt: 9, body: []byte("reacted"), action: act}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := unmarshalContent(b, 1<<16)
		if err != nil {
			return
		}
		if !bytes.Equal(c.marshal(), b) {
			t.Fatalf("content %x re-encodes to %x", b, c.marshal())
		}
	})
}

func FuzzPrekey(f *testing.F) {
	f.Add(append([]byte{0x0a, 0x20}, bytes.Repeat([]byte{1}, 32)...))
	f.Add([]byte{0x0a, 0x03, 1, 2, 3})
	f.Add(append(append([]byte{0x0a, 0x20}, bytes.Repeat([]byte{1}, 32)...), mustHex(laterDeliverAdditions)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := unmarshalPrekeyRequest(b); err == nil && !bytes.Equal(r.marshal(), b) {
			t.Fatalf("prekey request %x re-encodes differently", b)
		}
		if r, err := unmarshalPrekeyResponse(b); err == nil && !bytes.Equal(r.marshal(), b) {
			t.Fatalf("prekey response %x re-encodes differently", b)
		}
	})
}
