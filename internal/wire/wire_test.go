package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
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

// frameRead reads an older peer's view of a frame: fields 1 (varint), 2
// (bytes) and 16 (varint, a known addition).
func frameRead(d *Decoder) (uint64, []byte, uint64) {
	return d.Uint(1, 100), d.Bytes(2, 1, 4), d.Uint(16, 100)
}

// reencode writes what frameRead read, and the skipped additions.
func reencode(d *Decoder, n uint64, s []byte, k uint64) []byte {
	var e Encoder
	e.Uint(1, n)
	e.Bytes(2, s)
	e.Uint(16, k)
	e.Raw(d.Skipped())
	return e.B
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFrameAdditions: a frame decoder reads a newer peer's frame as the
// fields it knows, skipping additions (16 and up) it does not know, and
// keeps them so the frame re-encodes to its bytes; the strict decoder
// refuses the same bytes.
func TestFrameAdditions(t *testing.T) {
	for name, in := range map[string]string{
		"unknown addition":              "0807 120161 8801 05",
		"unknown bytes addition":        "0807 120161 9a01 03616263",
		"known then unknown additions":  "0807 120161 8001 09 8801 05 9a01 03616263",
		"repeated unknown addition":     "0807 8801 05 8801 06",
		"fixed-width unknown additions": "0807 a501 01020304 a901 0102030405060708",
		"only additions":                "8801 05",
	} {
		b := unhex(t, in)
		d := NewFrameDecoder(b, errBad, 64)
		n, s, k := frameRead(d)
		if err := d.End(); err != nil {
			t.Errorf("%s: frame decoder refused it: %v", name, err)
			continue
		}
		if e := reencode(d, n, s, k); !bytes.Equal(e, b) {
			t.Errorf("%s: read as %d %q %d + %x, which re-encodes as %x", name, n, s, k, d.Skipped(), e)
		}
		strict := NewDecoder(b, errBad)
		frameRead(strict)
		if err := strict.End(); !errors.Is(err, errBad) {
			t.Errorf("%s: the strict decoder accepted an unknown field (%v)", name, err)
		}
	}
	// The parts an older peer knows.
	d := NewFrameDecoder(unhex(t, "0807 120161 8001 09 8801 05"), errBad, 64)
	if n, s, k := frameRead(d); d.End() != nil || n != 7 || string(s) != "a" || k != 9 {
		t.Errorf("read %d %q %d: %v", n, s, k, d.Err())
	}
}

// TestFrameStrict: a frame decoder skips nothing but unknown additions,
// and those only well formed and in order.
func TestFrameStrict(t *testing.T) {
	for name, in := range map[string]string{
		"unknown core field":           "0807 1801",
		"unknown core field last":      "0807 8801 05 7801",
		"duplicate known addition":     "0807 8001 09 8001 09",
		"known addition after unknown": "0807 8801 05 8001 09",
		"core field after addition":    "8801 05 0807",
		"additions out of order":       "0807 9001 05 8801 05",
		"truncated addition":           "0807 9a01 0361",
		"non-minimal addition tag":     "0807 888100 05",
		"bad addition varint":          "0807 8801 ff",
		"group addition":               "0807 8b01 8c01",
		"additions over the cap":       "0807 9a01 41" + strings.Repeat("00", 65),
		"explicit zero":                "0800 8801 05",
		"known addition over limit":    "8001 65",
	} {
		d := NewFrameDecoder(unhex(t, in), errBad, 64)
		frameRead(d)
		if err := d.End(); !errors.Is(err, errBad) {
			t.Errorf("%s (%s): accepted (%v)", name, in, err)
		}
	}
}

func TestVersion(t *testing.T) {
	for in, want := range map[string]uint64{"": 1, "7802": 2, "7803": 3} {
		d := NewFrameDecoder(unhex(t, in), errBad, 0)
		if v := d.Version(15, 3); d.End() != nil || v != want {
			t.Errorf("%q: version %d, %v; want %d", in, v, d.Err(), want)
		}
	}
	for _, in := range []string{"7800", "7801", "7804"} {
		d := NewFrameDecoder(unhex(t, in), errBad, 0)
		d.Version(15, 3)
		err := d.End()
		if !errors.Is(err, errBad) {
			t.Errorf("%s: accepted", in)
		}
		if newer := in == "7804"; errors.Is(err, ErrNewerVersion) != newer {
			t.Errorf("%s: %v; want ErrNewerVersion only for a newer version", in, err)
		}
	}
	var e Encoder
	e.Version(15, 1)
	if len(e.B) != 0 {
		t.Errorf("version 1 written out: %x", e.B)
	}
}

func TestVarintSintString(t *testing.T) {
	var e Encoder
	e.Varint(1, 0)
	e.Sint(2, -3)
	e.String(3, "é")
	d := NewDecoder(e.B, errBad)
	v, ok := d.Varint(1)
	s, str := d.Sint(2, -10, 10), d.String(3, 1, 8)
	if err := d.End(); err != nil || !ok || v != 0 || s != -3 || str != "é" {
		t.Fatalf("read %d %v %d %q: %v", v, ok, s, str, err)
	}
	for name, in := range map[string]string{
		"sint out of range": "1015",
		"sint zero":         "1000",
		"not UTF-8":         "1a01ff",
	} {
		d := NewDecoder(unhex(t, in), errBad)
		d.Varint(1)
		d.Sint(2, -10, 10)
		d.String(3, 1, 8)
		if err := d.End(); !errors.Is(err, errBad) {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzFrameDecoder(f *testing.F) {
	f.Add([]byte{0x08, 0x07, 0x12, 0x01, 'a', 0x80, 0x01, 0x09, 0x88, 0x01, 0x05})
	f.Add([]byte{0x08, 0x07, 0x9a, 0x01, 0x03, 'a', 'b', 'c', 0x9a, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewFrameDecoder(b, errBad, 256)
		n, s, k := frameRead(d)
		if d.End() != nil {
			return
		}
		if len(d.Skipped()) > 256 {
			t.Fatalf("skipped %d bytes, cap 256", len(d.Skipped()))
		}
		if e := reencode(d, n, s, k); !bytes.Equal(e, b) {
			t.Fatalf("%x read as %d %q %d + %x re-encodes as %x", b, n, s, k, d.Skipped(), e)
		}
	})
}

func TestRepeatedBytes(t *testing.T) {
	var e Encoder
	for range 3 {
		e.Bytes(5, []byte("ab"))
	}
	d := NewDecoder(e.B, errBad)
	if got := d.RepeatedBytes(5, 3, 1, 2); d.End() != nil || len(got) != 3 || string(got[2]) != "ab" {
		t.Fatalf("read %q: %v", got, d.Err())
	}
	for name, read := range map[string]func(d *Decoder){
		"over the limit": func(d *Decoder) { d.RepeatedBytes(5, 2, 1, 2) },
		"too long":       func(d *Decoder) { d.RepeatedBytes(5, 3, 1, 1) },
	} {
		d := NewDecoder(e.B, errBad)
		read(d)
		if err := d.End(); !errors.Is(err, errBad) {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDouble(t *testing.T) {
	var e Encoder
	e.Double(1, 0) // omitted
	e.Double(2, 0.25)
	e.Double(3, math.Copysign(0, -1))
	if got := hex.EncodeToString(e.B); got != "11000000000000d03f190000000000000080" {
		t.Fatalf("encoding %s", got)
	}
	d := NewDecoder(e.B, errBad)
	a, b, c := d.Double(1), d.Double(2), d.Double(3)
	if err := d.End(); err != nil || a != 0 || b != 0.25 || !math.Signbit(c) {
		t.Fatalf("decoded %v %v %v: %v", a, b, c, err)
	}
	for name, in := range map[string]string{
		"explicit zero": "110000000000000000",
		"truncated":     "11000000000000d0",
		"wrong type":    "1001",
	} {
		b, _ := hex.DecodeString(in)
		d := NewDecoder(b, errBad)
		d.Double(2)
		if err := d.End(); !errors.Is(err, errBad) {
			t.Errorf("%s: %v, want an error", name, err)
		}
	}
}

func TestTime(t *testing.T) {
	at := time.Unix(0, -3) // before the epoch: zigzag 5
	var e Encoder
	e.Time(1, time.Time{}) // omitted
	e.Time(2, time.Unix(0, 0))
	e.Time(3, at)
	if got := hex.EncodeToString(e.B); got != "10001805" {
		t.Fatalf("encoding %s, want 10001805", got)
	}
	d := NewDecoder(e.B, errBad)
	zero, epoch, got := d.Time(1), d.Time(2), d.Time(3)
	if err := d.End(); err != nil || !zero.IsZero() || !epoch.Equal(time.Unix(0, 0)) || !got.Equal(at) {
		t.Fatalf("decoded %v %v %v: %v", zero, epoch, got, err)
	}
	if _, err := decodeTime("1880"); err == nil { // non-minimal varint
		t.Fatal("a non-minimal time decoded")
	}
	for tm, fits := range map[time.Time]bool{
		{}: true, time.Unix(0, math.MaxInt64): true, time.Unix(0, math.MinInt64): true,
		time.Unix(0, math.MaxInt64).Add(1): false, time.Unix(0, math.MinInt64).Add(-1): false,
	} {
		if TimeFits(tm) != fits {
			t.Errorf("TimeFits(%v) = %v, want %v", tm, !fits, fits)
		}
	}
}

func decodeTime(h string) (time.Time, error) {
	b, _ := hex.DecodeString(h)
	d := NewDecoder(b, errBad)
	tm := d.Time(1)
	return tm, d.End()
}
