package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

var errBad = errors.New("bad")

func TestRoundTrip(t *testing.T) {
	var e Encoder
	e.Uint(1, 7)
	e.Bytes(2, []byte("hi"))
	e.Bytes(3, nil) // omitted
	e.Bool(4, true)
	e.Bytes(5, []byte{1})
	e.Bytes(5, []byte{2})
	if got := hex.EncodeToString(e.B); got != "08071202686920012a01012a0102" {
		t.Fatalf("encoding %s", got)
	}
	d := NewDecoder(e.B, errBad)
	n, s := d.Uint(1, 10), d.Bytes(2, 1, 8)
	if d.Bytes(3, 1, 8) != nil {
		t.Fatal("absent field read")
	}
	b := d.Bool(4)
	var rep [][]byte
	for d.More(5) {
		rep = append(rep, d.Fixed(5, 1))
	}
	if err := d.End(); err != nil || n != 7 || string(s) != "hi" || !b || len(rep) != 2 || rep[1][0] != 2 {
		t.Fatalf("decoded %d %q %v %v: %v", n, s, b, rep, err)
	}
	if cap(s) != len(s) {
		t.Fatal("a returned slice can be appended into the input")
	}
}

// TestStrict: every non-canonical or hostile encoding is refused with the
// caller's sentinel.
func TestStrict(t *testing.T) {
	read := func(d *Decoder) { d.Uint(1, 100); d.Bytes(2, 1, 4) }
	for name, in := range map[string]string{
		"explicit zero":        "0800",
		"non-minimal varint":   "088000",
		"non-minimal tag":      "880007",
		"over the limit":       "0865",
		"duplicate":            "08070807",
		"out of order":         "12016108 07",
		"unknown field":        "1801",
		"wrong wire type":      "0a0161",
		"too long":             "120561616161 61",
		"truncated":            "120361",
		"non-minimal length":   "12800161",
		"trailing field after": "0807120161 2001",
	} {
		b, err := hex.DecodeString(string(bytes.ReplaceAll([]byte(in), []byte(" "), nil)))
		if err != nil {
			t.Fatal(err)
		}
		d := NewDecoder(b, errBad)
		read(d)
		if err := d.End(); !errors.Is(err, errBad) {
			t.Errorf("%s (%s): accepted (%v)", name, in, err)
		}
	}
}

func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0x08, 0x07, 0x12, 0x02, 'h', 'i'})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(b, errBad)
		n, s := d.Uint(1, 1<<20), d.Bytes(2, 1, 64)
		if d.End() != nil {
			return
		}
		var e Encoder
		e.Uint(1, n)
		e.Bytes(2, s)
		if !bytes.Equal(e.B, b) {
			t.Fatalf("accepted a second encoding: %x re-encodes as %x", b, e.B)
		}
	})
}
