package p2p

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

var frameGolden = []struct {
	payload string // hex
	frame   string // hex
}{
	{"", "00"},
	{"61", "0161"},
	{strings.Repeat("ab", 127), "7f" + strings.Repeat("ab", 127)},
	{strings.Repeat("cd", 128), "8001" + strings.Repeat("cd", 128)},
	{strings.Repeat("ef", 300), "ac02" + strings.Repeat("ef", 300)},
}

func TestFrameGolden(t *testing.T) {
	for _, g := range frameGolden {
		p, _ := hex.DecodeString(g.payload)
		var buf bytes.Buffer
		if err := WriteFrame(&buf, p); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(buf.Bytes()); got != g.frame {
			t.Errorf("frame(%d bytes) = %.20s..., want %.20s...", len(p), got, g.frame)
		}
		// Into a bufio.Writer (written without a copy): the same bytes,
		// also when the frame is larger than the buffer.
		var bbuf bytes.Buffer
		bw := bufio.NewWriterSize(&bbuf, 16)
		if err := WriteFrame(bw, p); err != nil || bw.Flush() != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bbuf.Bytes(), buf.Bytes()) {
			t.Errorf("buffered frame(%d bytes) = %x, want %s", len(p), bbuf.Bytes(), g.frame)
		}
		// Both reader kinds: a plain io.Reader and an io.ByteReader.
		for _, r := range []io.Reader{onlyReader{bytes.NewReader(buf.Bytes())}, bufio.NewReader(bytes.NewReader(buf.Bytes()))} {
			got, err := ReadFrame(r, 1000)
			if err != nil || !bytes.Equal(got, p) {
				t.Errorf("ReadFrame(%s) = %x, %v", g.frame, got, err)
			}
			if _, err := ReadFrame(r, 1000); err != io.EOF {
				t.Errorf("after the last frame: %v, want io.EOF", err)
			}
		}
	}
}

type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestReadFrameRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		max  int
		want error
	}{
		{"over max", "0b" + strings.Repeat("00", 11), 10, ErrFrameTooLarge},
		{"non-minimal zero", "8000", 10, ErrBadVarint},
		{"non-minimal one", "8100", 10, ErrBadVarint},
		{"non-minimal long", "818000", 1 << 20, ErrBadVarint},
		{"ten-byte varint", "ffffffffffffffffff01", 1 << 30, ErrBadVarint},
		{"nine-byte over max", "ffffffffffffffff7f", 1 << 30, ErrFrameTooLarge},
		{"truncated length", "80", 10, io.ErrUnexpectedEOF},
		{"truncated payload", "05616263", 10, io.ErrUnexpectedEOF},
		{"negative max", "00", -1, ErrFrameTooLarge},
	} {
		in, _ := hex.DecodeString(tc.in)
		_, err := ReadFrame(bytes.NewReader(in), tc.max)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: ReadFrame(%s) = %v, want %v", tc.name, tc.in, err, tc.want)
		}
	}
}

// hugeClaim is a reader that announces a 1 GiB frame and then would serve
// zeros forever; a reader that allocates before checking would show it.
type hugeClaim struct{ prefix []byte }

func (h *hugeClaim) Read(p []byte) (int, error) {
	if len(h.prefix) > 0 {
		n := copy(p, h.prefix)
		h.prefix = h.prefix[n:]
		return n, nil
	}
	clear(p)
	return len(p), nil
}

func TestOversizeRejectedBeforeAllocation(t *testing.T) {
	var prefix []byte
	n := uint64(1 << 30)
	for n >= 0x80 {
		prefix = append(prefix, byte(n)|0x80)
		n >>= 7
	}
	prefix = append(prefix, byte(n))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := ReadFrame(&hugeClaim{prefix: prefix}, 64<<10)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("ReadFrame = %v, want ErrFrameTooLarge", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("ReadFrame allocated %d bytes for a refused 1 GiB frame", d)
	}
}

func FuzzReadFrame(f *testing.F) {
	for _, g := range frameGolden {
		b, _ := hex.DecodeString(g.frame)
		f.Add(b, 1000)
	}
	f.Add([]byte{0x80, 0x00}, 10)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 1<<20)
	f.Add([]byte{0x03, 'a', 'b'}, 10)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		max = max % (1 << 20)
		if max < 0 {
			max = -max
		}
		r := bytes.NewReader(in)
		b, err := ReadFrame(r, max)
		if err != nil {
			return
		}
		if len(b) > max {
			t.Fatalf("frame of %d bytes above max %d", len(b), max)
		}
		// Exactly one encoding per frame: re-encoding gives the bytes consumed.
		consumed := in[:len(in)-r.Len()]
		if re := AppendFrame(nil, b); !bytes.Equal(re, consumed) {
			t.Fatalf("re-encoded %x, consumed %x", re, consumed)
		}
	})
}
