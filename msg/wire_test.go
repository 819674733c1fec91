package msg

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
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

	goldenReceipt    = content{kind: contentReceipt, ids: []msgID{goldenID, goldenID}}
	goldenReceiptHex = "0802" + "2a10000102030405060708090a0b0c0d0e0f" + "2a10000102030405060708090a0b0c0d0e0f"
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
	} {
		if hex.EncodeToString(c.got) != c.want {
			t.Errorf("%s = %x, want %s", c.name, c.got, c.want)
		}
	}
	d, err := unmarshalDeliver(mustHex(goldenDeliverHex), 100)
	if err != nil || d.id != goldenID || d.kind != kindRatchet || string(d.ciphertext) != "ct" {
		t.Errorf("decode golden deliver = %+v, %v", d, err)
	}
	a, err := unmarshalAck(mustHex(goldenAckHex))
	if err != nil || a != goldenAck {
		t.Errorf("decode golden ack = %+v, %v", a, err)
	}
	c, err := unmarshalContent(mustHex(goldenTextHex), 10)
	if err != nil || c.seq != 7 || c.sentAt != goldenText.sentAt || string(c.body) != "hi" {
		t.Errorf("decode golden text = %+v, %v", c, err)
	}
	r, err := unmarshalContent(mustHex(goldenReceiptHex), 10)
	if err != nil || len(r.ids) != 2 || r.ids[1] != goldenID {
		t.Errorf("decode golden receipt = %+v, %v", r, err)
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
		if _, err := unmarshalDeliver(mustHex(c.hex), 100); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if _, err := unmarshalDeliver(mustHex(goldenDeliverHex), 1); err == nil {
		t.Error("ciphertext above the cap accepted")
	}
	if _, err := unmarshalAck(mustHex("0a10000102030405060708090a0b0c0d0e0f" + "1001" + "1a0161")); err == nil {
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
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := unmarshalDeliver(b, 1<<16)
		if err != nil {
			return
		}
		if !bytes.Equal(d.marshal(), b) {
			t.Fatalf("deliver %x re-encodes to %x", b, d.marshal())
		}
	})
}

func FuzzAck(f *testing.F) {
	f.Add(mustHex(goldenAckHex))
	f.Add(mustHex("0a10000102030405060708090a0b0c0d0e0f1001"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := unmarshalAck(b)
		if err != nil {
			return
		}
		if !bytes.Equal(a.marshal(), b) {
			t.Fatalf("ack %x re-encodes to %x", b, a.marshal())
		}
	})
}

func FuzzContent(f *testing.F) {
	f.Add(mustHex(goldenTextHex))
	f.Add(mustHex(goldenReceiptHex))
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
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := unmarshalPrekeyRequest(b); err == nil && !bytes.Equal(r.marshal(), b) {
			t.Fatalf("prekey request %x re-encodes differently", b)
		}
		if r, err := unmarshalPrekeyResponse(b); err == nil && !bytes.Equal(r.marshal(), b) {
			t.Fatalf("prekey response %x re-encodes differently", b)
		}
	})
}
