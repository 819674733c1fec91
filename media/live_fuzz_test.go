package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// oggRawPages splits an Ogg stream into its pages, as bytes.
func oggRawPages(tb testing.TB, b []byte) [][]byte {
	tb.Helper()
	var pages [][]byte
	for len(b) > 0 {
		if len(b) < 27 || string(b[:4]) != "OggS" {
			tb.Fatalf("not an Ogg page at %d", len(pages))
		}
		n := 27 + int(b[26])
		for _, l := range b[27:n] {
			n += int(l)
		}
		pages = append(pages, b[:n])
		b = b[n:]
	}
	return pages
}

// oggPageBytes builds one Ogg page holding packets; spill makes the last
// packet (of 255 bytes or more) continue on the next page: the page holds
// its first 255*k bytes, its last lacing value is 255.
func oggPageBytes(flags byte, granule uint64, serial, seq uint32, packets [][]byte, spill bool) []byte {
	var lacing, payload []byte
	for i, p := range packets {
		n := len(p)
		for n >= 255 {
			lacing = append(lacing, 255)
			n -= 255
		}
		if spill && i == len(packets)-1 {
			payload = append(payload, p[:len(p)-n]...)
			break
		}
		lacing = append(lacing, byte(n))
		payload = append(payload, p...)
	}
	h := make([]byte, 27, 27+len(lacing)+len(payload))
	copy(h, "OggS")
	h[5] = flags
	binary.LittleEndian.PutUint64(h[6:], granule)
	binary.LittleEndian.PutUint32(h[14:], serial)
	binary.LittleEndian.PutUint32(h[18:], seq)
	h[26] = byte(len(lacing))
	page := append(append(h, lacing...), payload...)
	binary.LittleEndian.PutUint32(page[22:], oggCRC(0, page))
	return page
}

// toneOggPaged re-muxes the tone with perPage Opus packets per page, as
// ffmpeg writes Ogg without -page_duration (up to 1 s per page); change,
// when set, alters each audio page's packets and granule first.
func toneOggPaged(tb testing.TB, perPage int, change func(page int, pkts [][]byte, granule uint64) ([][]byte, uint64)) []byte {
	tb.Helper()
	raw := oggRawPages(tb, toneOgg)
	out := slices.Concat(raw[0], raw[1]) // OpusHead, OpusTags
	serial := binary.LittleEndian.Uint32(raw[0][14:])
	frames := Tone().frames
	var granule uint64
	seq := uint32(2)
	for i := 0; i < len(frames); i += perPage {
		var pkts [][]byte
		for _, f := range frames[i:min(i+perPage, len(frames))] {
			pkts = append(pkts, f.Data)
			granule += uint64(f.Duration * opusClockRate / time.Second)
		}
		g := granule
		if change != nil {
			pkts, g = change(i/perPage, pkts, g)
		}
		out = append(out, oggPageBytes(0, g, serial, seq, pkts, false)...)
		seq++
	}
	return out
}

// parseLive runs the live parser over b to the end, or to maxFrames.
func parseLive(r io.Reader, maxFrames int) (Kind, []liveFrame, error) {
	p, err := newLiveParser(r)
	if err != nil {
		return "", nil, err
	}
	var frames []liveFrame
	for len(frames) < maxFrames {
		fr, err := p.next()
		if err != nil {
			return p.kind(), frames, err
		}
		frames = append(frames, fr)
	}
	return p.kind(), frames, nil
}

// TestLiveParserClips: the embedded clips, and the tone with several
// packets per page, parse as a live stream to the same frames as the
// clips, with stream times that add up.
func TestLiveParserClips(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		clip *Clip
	}{
		{"tone", toneOgg, Tone()},
		{"tone, 10 packets per page", toneOggPaged(t, 10, nil), Tone()},
		{"tone, 50 packets per page", toneOggPaged(t, 50, nil), Tone()},
		{"pattern", patternIVF, Pattern()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, frames, err := parseLive(iotest.HalfReader(bytes.NewReader(tc.data)), 1000)
			if err != io.EOF {
				t.Fatalf("after %d frames: %v, want io.EOF", len(frames), err)
			}
			if kind != tc.clip.Kind() || len(frames) != tc.clip.Frames() {
				t.Fatalf("%s, %d frames; want %s, %d", kind, len(frames), tc.clip.Kind(), tc.clip.Frames())
			}
			var at time.Duration
			for i, fr := range frames {
				c := tc.clip.frames[i]
				if !bytes.Equal(fr.data, c.Data) {
					t.Fatalf("frame %d differs from the clip's", i)
				}
				if d := fr.at - at; d < -time.Microsecond || d > time.Microsecond {
					t.Fatalf("frame %d at %v, want %v", i, fr.at, at)
				}
				if tc.clip.kind == KindAudio && fr.dur != c.Duration {
					t.Fatalf("frame %d lasts %v, want %v", i, fr.dur, c.Duration)
				}
				at += c.Duration
			}
		})
	}
}

// TestLiveParserRejects: hostile or unsupported streams fail with a
// precise error wrapping ErrBadClip, at the header or at the bad frame.
func TestLiveParserRejects(t *testing.T) {
	raw := oggRawPages(t, toneOgg)
	serial := binary.LittleEndian.Uint32(raw[0][14:])
	withHead := func(mod func(p []byte)) []byte {
		head := slices.Clone(raw[0])
		mod(head[28:]) // the OpusHead packet (one lacing value)
		binary.LittleEndian.PutUint32(head[22:], 0)
		binary.LittleEndian.PutUint32(head[22:], oggCRC(0, head))
		return slices.Concat(head, raw[1], raw[2])
	}
	ivf := func(mod func(b []byte)) []byte {
		b := slices.Clone(patternIVF)
		mod(b)
		return b
	}
	frame1 := 32 + 12 + int(binary.LittleEndian.Uint32(patternIVF[32:])) // second frame's header
	for _, tc := range []struct {
		name, data, want string
	}{
		{"not a stream", "RIFF....WAVEfmt ", "not an Ogg or IVF stream"},
		{"empty", "", "EOF"},
		{"three channels", string(withHead(func(p []byte) { p[9] = 3 })), "3 channels"},
		{"Opus mapping version 1.0", string(withHead(func(p []byte) { p[8] = 0x10 })), "mapping version"},
		{"not Opus", string(withHead(func(p []byte) { p[7] = 'X' })), "not an OpusHead"},
		{"bad checksum", string(slices.Concat(raw[0], raw[1], raw[2][:30], []byte{raw[2][30] ^ 1}, raw[2][31:])), "checksum mismatch"},
		{"packet spanning pages", string(slices.Concat(raw[0], raw[1],
			oggPageBytes(0, 960, serial, 2, [][]byte{Tone().frames[0].Data, append([]byte{0xfc}, make([]byte, 300)...)}, true))), "spanning pages"},
		{"granule going backwards", string(toneOggPaged(t, 1, func(i int, p [][]byte, g uint64) ([][]byte, uint64) {
			if i == 5 {
				g = 0
			}
			return p, g
		})), "goes backwards"},
		{"second logical stream", string(slices.Concat(raw[0], raw[1], oggPageBytes(0, 960, serial+1, 2, [][]byte{Tone().frames[0].Data}, false))), "second logical stream"},
		{"page sequence gap", string(slices.Concat(raw[0], raw[1], oggPageBytes(0, 960, serial, 7, [][]byte{Tone().frames[0].Data}, false))), "sequence jumps"},
		{"huge Opus packet", string(slices.Concat(raw[0], raw[1], oggPageBytes(0, 960, serial, 2, [][]byte{append([]byte{0xfc}, make([]byte, 9000)...)}, false))), "Opus packet of 9001 bytes"},
		{"bad Opus TOC", string(slices.Concat(raw[0], raw[1], oggPageBytes(0, 960, serial, 2, [][]byte{{0x03, 0x00}}, false))), "invalid Opus packet"},
		{"truncated page", string(toneOgg[:len(toneOgg)-3]), "ends inside"},
		{"VP9", string(ivf(func(b []byte) { copy(b[8:], "VP90") })), `codec "VP90"`},
		{"zero timebase", string(ivf(func(b []byte) { binary.LittleEndian.PutUint32(b[20:], 0) })), "zero timebase"},
		{"header size", string(ivf(func(b []byte) { b[6] = 64 })), "header size 64"},
		{"pts going backwards", string(ivf(func(b []byte) {
			binary.LittleEndian.PutUint64(b[32+4:], 5)
		})), "timestamps go backwards"},
		{"empty frame", string(ivf(func(b []byte) { binary.LittleEndian.PutUint32(b[frame1:], 0) })), "frame of 0 bytes"},
		{"huge frame", string(ivf(func(b []byte) { binary.LittleEndian.PutUint32(b[frame1:], 5<<20) })), "frame of 5242880 bytes"},
		{"first frame not a key frame", string(ivf(func(b []byte) { b[44] |= 1 })), "not a VP8 key frame"},
		{"truncated frame", string(patternIVF[:len(patternIVF)-10]), "ends inside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, frames, err := parseLive(strings.NewReader(tc.data), 1000)
			if err == nil || err == io.EOF || !errors.Is(err, ErrBadClip) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("after %d frames: %v; want an ErrBadClip saying %q", len(frames), err, tc.want)
			}
		})
	}
}

// TestLiveParserGaps: a jump in the stream's timestamps is clamped to a
// second.
func TestLiveParserGaps(t *testing.T) {
	ivf := slices.Clone(patternIVF)
	// From the 11th frame on, every pts 10 minutes later.
	off := 32
	for i := 0; off < len(ivf); i++ {
		if i >= 10 {
			pts := binary.LittleEndian.Uint64(ivf[off+4:])
			binary.LittleEndian.PutUint64(ivf[off+4:], pts+15*600)
		}
		off += 12 + int(binary.LittleEndian.Uint32(ivf[off:]))
	}
	_, frames, err := parseLive(bytes.NewReader(ivf), 100)
	if err != io.EOF || len(frames) != 30 {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
	if gap := frames[10].at - frames[9].at; gap != maxFrameGap {
		t.Errorf("a 10 minute gap became %v, want %v", gap, maxFrameGap)
	}

	ogg := toneOggPaged(t, 1, func(i int, p [][]byte, g uint64) ([][]byte, uint64) {
		if i >= 10 {
			g += 600 * opusClockRate
		}
		return p, g
	})
	_, frames, err = parseLive(bytes.NewReader(ogg), 100)
	if err != io.EOF || len(frames) != 51 {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
	if gap := frames[10].at - frames[9].at; gap != maxFrameGap+20*time.Millisecond {
		t.Errorf("a 10 minute gap became %v, want %v", gap, maxFrameGap+20*time.Millisecond)
	}
}

// TestLiveParserAllocation: a frame header claiming 4 MiB that never
// comes does not make the parser allocate 4 MiB.
func TestLiveParserAllocation(t *testing.T) {
	b := slices.Clone(patternIVF[:32+12+100])
	binary.LittleEndian.PutUint32(b[32:], maxVP8Frame)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := parseLive(bytes.NewReader(b), 10)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrBadClip) {
		t.Errorf("truncated frame: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("parsing 144 bytes allocated %d bytes", n)
	}
}

func FuzzLiveParser(f *testing.F) {
	f.Add(toneOgg)
	f.Add(toneOgg[:600])
	f.Add(toneOggPaged(f, 7, nil))
	f.Add(patternIVF[:8192])
	f.Add(patternIVF[:32])
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, frames, err := parseLive(bytes.NewReader(b), 10000)
		if err == nil {
			t.Fatal("10000 frames from a fuzz input")
		}
		if err != io.EOF && !errors.Is(err, ErrBadClip) {
			t.Fatalf("error neither io.EOF nor ErrBadClip: %v", err)
		}
		var prev liveFrame
		for i, fr := range frames {
			limit := maxOpusPacket
			if kind == KindVideo {
				limit = maxVP8Frame
			}
			if len(fr.data) == 0 || len(fr.data) > limit {
				t.Fatalf("frame %d of %d bytes", i, len(fr.data))
			}
			if i > 0 && (fr.at < prev.at || fr.at-prev.at > prev.dur+maxFrameGap) {
				t.Fatalf("frame %d at %v after %v (lasting %v)", i, fr.at, prev.at, prev.dur)
			}
			if fr.dur < 0 || fr.dur > 120*time.Millisecond {
				t.Fatalf("frame %d lasts %v", i, fr.dur)
			}
			prev = fr
		}
		// Read in odd pieces, the stream parses the same.
		_, again, err2 := parseLive(iotest.OneByteReader(bytes.NewReader(b)), 10000)
		if (err == io.EOF) != (err2 == io.EOF) || len(again) != len(frames) {
			t.Fatalf("byte by byte: %d frames, %v; at once: %d frames, %v", len(again), err2, len(frames), err)
		}
		for i := range frames {
			if !bytes.Equal(frames[i].data, again[i].data) || frames[i].at != again[i].at || frames[i].dur != again[i].dur {
				t.Fatalf("frame %d differs read byte by byte", i)
			}
		}
	})
}
