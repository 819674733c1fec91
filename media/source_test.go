package media

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEmbeddedClips(t *testing.T) {
	tone := Tone()
	// 1 s of sine plus the encoder's 6.5 ms pre-skip: 51 packets of 20 ms.
	if tone.Kind() != KindAudio || tone.Frames() != 51 || tone.Duration() != 1020*time.Millisecond {
		t.Errorf("tone: %s, %d frames, %v; want audio, 51 frames of 20 ms", tone.Kind(), tone.Frames(), tone.Duration())
	}
	p := Pattern()
	if p.Kind() != KindVideo || p.Frames() != 30 || p.Duration() < 1900*time.Millisecond || p.Duration() > 2100*time.Millisecond {
		t.Errorf("pattern: %s, %d frames, %v; want video, 30 frames, 2s", p.Kind(), p.Frames(), p.Duration())
	}
}

// TestClipPacing: a clip plays in real time and loops.
func TestClipPacing(t *testing.T) {
	tracks, err := Tone().Tracks()
	if err != nil || len(tracks) != 1 {
		t.Fatalf("Tracks = %v, %v", tracks, err)
	}
	tr := tracks[0]
	ctx := context.Background()
	start := time.Now()
	const n = 60 // more than one pass of 51 frames
	var first []byte
	for i := range n {
		s, err := tr.ReadSample(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Duration != 20*time.Millisecond {
			t.Fatalf("frame %d lasts %v, want 20ms", i, s.Duration)
		}
		if i == 0 {
			first = s.Data
		}
		if i == 51 && &s.Data[0] != &first[0] {
			t.Error("frame 51 is not the first frame again: the clip does not loop")
		}
	}
	// 60 frames: the first is due at once, the last after 59 * 20 ms.
	if el := time.Since(start); el < 1100*time.Millisecond || el > 1600*time.Millisecond {
		t.Errorf("60 frames took %v, want about 1.18s", el)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tr.ReadSample(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadSample on a cancelled context = %v", err)
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpenClip(t *testing.T) {
	for _, name := range []string{"clips/tone.ogg", "clips/pattern.ivf", "testdata/bench-1mbps.ivf"} {
		if _, err := OpenClip(name); err != nil {
			t.Errorf("OpenClip(%s): %v", name, err)
		}
	}
	ivf := func(mut func([]byte) []byte) []byte {
		b := append([]byte(nil), patternIVF...)
		return mut(b)
	}
	bad := map[string][]byte{
		"garbage":         []byte("this is not media at all"),
		"empty":           nil,
		"truncated ogg":   toneOgg[:len(toneOgg)/2+3],
		"truncated ivf":   patternIVF[:len(patternIVF)-10],
		"ivf header only": patternIVF[:32],
		"huge ivf frame": ivf(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[32:], 0xfffffff0)
			return b
		}),
		"vp9 ivf": ivf(func(b []byte) []byte { copy(b[8:12], "VP90"); return b }),
		"zero timebase": ivf(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[16:], 0)
			return b
		}),
		"multi-packet ogg page": oggWithTwoPacketsPerPage(t),
	}
	for name, data := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := OpenClip(writeFile(t, "clip", data))
			t.Log(err)
			if !errors.Is(err, ErrBadClip) {
				t.Fatalf("OpenClip = %v, want ErrBadClip", err)
			}
		})
	}
	if _, err := OpenClip(filepath.Join(t.TempDir(), "missing.ogg")); !errors.Is(err, ErrBadClip) {
		t.Errorf("missing file: %v, want ErrBadClip", err)
	}
}

// oggWithTwoPacketsPerPage rewrites the tone's first audio page to claim
// twice the samples, as if it held two 20 ms packets.
func oggWithTwoPacketsPerPage(t *testing.T) []byte {
	b := append([]byte(nil), toneOgg...)
	// Pages: OpusHead, OpusTags, then audio. Find the third "OggS".
	n, off := 0, -1
	for i := 0; i+4 <= len(b); i++ {
		if string(b[i:i+4]) == "OggS" {
			n++
			if n == 3 {
				off = i
				break
			}
		}
	}
	if off < 0 {
		t.Fatal("tone.ogg has no audio page")
	}
	g := binary.LittleEndian.Uint64(b[off+6:])
	binary.LittleEndian.PutUint64(b[off+6:], g+960)
	// Fix the page checksum (CRC-32, polynomial 0x04c11db7, over the page
	// with the checksum field zeroed) so only the granule is wrong.
	segs := int(b[off+26])
	size := 27 + segs
	for _, l := range b[off+27 : off+27+segs] {
		size += int(l)
	}
	page := b[off : off+size]
	binary.LittleEndian.PutUint32(page[22:], 0)
	var crc uint32
	for _, x := range page {
		crc ^= uint32(x) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04c11db7
			} else {
				crc <<= 1
			}
		}
	}
	binary.LittleEndian.PutUint32(page[22:], crc)
	return b
}

// TestBadSourceFailsBeforeCall: a source that can't be read stops NewCall.
func TestBadSourceFailsBeforeCall(t *testing.T) {
	e := newEngine(t, Config{})
	if _, err := e.NewCall(CallConfig{ID: "x", Outgoing: true, Source: Sources(Tone(), Tone())}); err == nil {
		t.Error("a source with two audio tracks was accepted")
	}
	if _, err := NewRecorder(filepath.Join(t.TempDir(), "no", "such", "dir.ogg"), ""); err == nil {
		t.Error("a recorder in a missing directory was created")
	}
}

func FuzzParseIVF(f *testing.F) {
	f.Add(patternIVF[:4096])
	f.Add(patternIVF[:32])
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseIVF(b)
		if err != nil {
			if !errors.Is(err, ErrBadClip) {
				t.Fatalf("error does not wrap ErrBadClip: %v", err)
			}
			return
		}
		if c.Frames() == 0 {
			t.Fatal("parsed a clip with no frames")
		}
	})
}

func FuzzParseOgg(f *testing.F) {
	f.Add(toneOgg[:1024])
	f.Add(toneOgg)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseOgg(b)
		if err != nil {
			if !errors.Is(err, ErrBadClip) {
				t.Fatalf("error does not wrap ErrBadClip: %v", err)
			}
			return
		}
		if c.Frames() == 0 {
			t.Fatal("parsed a clip with no frames")
		}
	})
}
