package media

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/callsign/callsign/media/mediatest"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// vp8Packets packetizes the first frames of c as RTP.
func vp8Packets(c *Clip, frames int) []*rtp.Packet {
	p := rtp.NewPacketizer(outboundMTU, vp8PayloadType, 1, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewFixedSequencer(1), vp8ClockRate)
	var out []*rtp.Packet
	for _, f := range c.frames[:frames] {
		out = append(out, p.Packetize(f.Data, 6000)...)
	}
	return out
}

// TestRecorderReordersAndDropsBrokenFrames: packets arriving out of order
// are put back in order; a frame missing a packet is not written.
func TestRecorderReordersAndDropsBrokenFrames(t *testing.T) {
	// The 1 Mbit/s clip: every frame spans several packets.
	clip, err := OpenClip("testdata/bench-1mbps.ivf")
	if err != nil {
		t.Fatal(err)
	}
	pkts := vp8Packets(clip, 10)
	if len(pkts) < 20 {
		t.Fatalf("only %d packets for 10 frames; the test needs multi-packet frames", len(pkts))
	}
	// Swap neighbours everywhere after the first packet (the jitter buffer
	// starts at the first packet it sees), then drop one packet of the last frame
	// (not a key frame, so the frames after it still decode).
	shuffled := append([]*rtp.Packet(nil), pkts...)
	for i := 1; i+1 < len(shuffled); i += 2 {
		shuffled[i], shuffled[i+1] = shuffled[i+1], shuffled[i]
	}
	dropTS := uint32(0)
	for i := len(pkts) - 1; i > 0; i-- {
		if pkts[i].Timestamp == pkts[i-1].Timestamp {
			dropTS = pkts[i].Timestamp
			break
		}
	}
	path := filepath.Join(t.TempDir(), "v.ivf")
	r, err := NewRecorder("", path)
	if err != nil {
		t.Fatal(err)
	}
	dropped := false
	for _, p := range shuffled {
		if !dropped && p.Timestamp == dropTS && !p.Marker {
			dropped = true
			continue
		}
		if err := r.WriteRTP(KindVideo, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mediatest.IVFFrames(t, path); got != 9 {
		t.Errorf("recorded %d frames, want 9 (10 sent, one broken)", got)
	}
}

func FuzzRecorder(f *testing.F) {
	var seed []byte
	for _, p := range vp8Packets(Pattern(), 3) {
		b, _ := p.Marshal()
		seed = append(seed, byte(len(b)>>8), byte(len(b)))
		seed = append(seed, b...)
	}
	f.Add(seed)
	f.Add([]byte{0, 13, 0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xfc})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := newRecorderTo(io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		for len(data) >= 2 {
			n := int(data[0])<<8 | int(data[1])
			data = data[2:]
			if n > len(data) {
				break
			}
			var p rtp.Packet
			if err := p.Unmarshal(data[:n]); err == nil {
				kind := KindVideo
				if p.PayloadType == opusPayloadType {
					kind = KindAudio
				}
				_ = r.WriteRTP(kind, &p)
			}
			data = data[n:]
		}
		_ = r.Close()
	})
}

// ivfHeaderOf parses the fields of an IVF file header a player reads.
type ivfHeaderOf struct {
	width, height uint16
	den, num      uint32 // timebase num/den seconds; den/num frames per second
	frames        uint32
}

func readIVFHeader(t *testing.T, data []byte) ivfHeaderOf {
	t.Helper()
	if len(data) < 32 || string(data[:4]) != "DKIF" || string(data[8:12]) != "VP80" {
		t.Fatalf("not a VP8 IVF file: % x", data[:min(len(data), 32)])
	}
	return ivfHeaderOf{
		width: binary.LittleEndian.Uint16(data[12:]), height: binary.LittleEndian.Uint16(data[14:]),
		den: binary.LittleEndian.Uint32(data[16:]), num: binary.LittleEndian.Uint32(data[20:]),
		frames: binary.LittleEndian.Uint32(data[24:]),
	}
}

// ivfPTS returns the pts of every frame of an IVF file.
func ivfPTS(t *testing.T, data []byte) []uint64 {
	t.Helper()
	var pts []uint64
	for off := 32; off < len(data); {
		if len(data)-off < 12 {
			t.Fatalf("truncated frame header at %d", off)
		}
		pts = append(pts, binary.LittleEndian.Uint64(data[off+4:]))
		off += 12 + int(binary.LittleEndian.Uint32(data[off:]))
	}
	return pts
}

// TestRecorderIVFStatesFrameRate: the Pattern (15 fps), packetized as a
// call sends it, is recorded to a file whose header says 15 frames per
// second, 30 frames of 320x240, with pts counting frames; players and
// media's own parser see 2 s of video.
func TestRecorderIVFStatesFrameRate(t *testing.T) {
	clip := Pattern()
	path := filepath.Join(t.TempDir(), "v.ivf")
	r, err := NewRecorder("", path)
	if err != nil {
		t.Fatal(err)
	}
	pz := newPacketizer(KindVideo)
	for _, f := range clip.frames {
		for _, p := range pz.packetize(f) {
			if err := r.WriteRTP(KindVideo, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Before Close (a crash), the file already plays at the right speed.
	if data, err := os.ReadFile(path); err != nil {
		t.Fatal(err)
	} else if c, err := ParseIVF(data); err != nil {
		t.Errorf("recording before Close: %v", err)
	} else if d := c.Duration(); d < 1800*time.Millisecond || d > 2100*time.Millisecond {
		t.Errorf("recording before Close plays %v (%d frames), want about 2s", d, c.Frames())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := readIVFHeader(t, data)
	if h.num == 0 || h.den/h.num != 15 || h.den%h.num != 0 {
		t.Errorf("header timebase %d/%d: %v fps, want 15", h.num, h.den, float64(h.den)/float64(max(h.num, 1)))
	}
	if h.frames != 30 || h.width != 320 || h.height != 240 {
		t.Errorf("header: %d frames of %dx%d, want 30 of 320x240", h.frames, h.width, h.height)
	}
	for i, p := range ivfPTS(t, data) {
		if p*uint64(h.num) != uint64(i) {
			t.Errorf("frame %d: pts %d in %d/%d, want frame %d", i, p, h.num, h.den, i)
			break
		}
	}
	if got := mediatest.IVFFrames(t, path); got != 30 {
		t.Errorf("mediatest decoded %d frames, want 30", got)
	}
	c, err := ParseIVF(data)
	if err != nil {
		t.Fatal(err)
	}
	if c.Frames() != 30 || c.Duration() != clip.Duration() {
		t.Errorf("recording: %d frames, %v; want 30, %v", c.Frames(), c.Duration(), clip.Duration())
	}
}

// keyFrame is a fake VP8 key frame of 320x240.
var keyFrame = []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0xaa}

// recordTicks records fake frames at the given 90 kHz RTP timestamps to a
// file and returns its header and pts.
func recordTicks(t *testing.T, ts []uint32) (ivfHeaderOf, []uint64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "v.ivf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := newIVFRecorder(f)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range ts {
		frame := []byte{0x11, 0, 0, byte(i)} // inter frame
		if i == 0 {
			frame = keyFrame
		}
		if err := v.writeFrame(frame, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return readIVFHeader(t, data), ivfPTS(t, data)
}

func TestRecorderIVFFrameRates(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ticks := func(n int, at func(i int) float64) []uint32 {
		out := make([]uint32, n)
		for i := range out {
			out[i] = 0xffff0000 + uint32(at(i)) // wraps around
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		ts       []uint32
		den, num uint32
	}{
		{"15 fps", ticks(100, func(i int) float64 { return float64(i) * 6000 }), 15, 1},
		{"29.97 fps", ticks(300, func(i int) float64 { return float64(i) * 3003 }), 30000, 1001},
		{"30 fps with dropped frames", slices.DeleteFunc(ticks(300, func(i int) float64 { return float64(i) * 3000 }),
			func(x uint32) bool { return (x-0xffff0000)%(3000*7) == 0 && x != 0xffff0000 }), 30, 1},
		{"30 fps with capture jitter", ticks(300, func(i int) float64 { return float64(i)*3000 + rng.Float64()*800 - 400 }), 30, 1},
		{"12.5 fps", ticks(50, func(i int) float64 { return float64(i) * 7200 }), 25, 2},
		{"90 fps with most frames dropped", ticks(100, func(i int) float64 { return float64(i/2)*6000 + float64(i%2)*1000 }), 90, 1},
		{"variable frame rate", ticks(100, func(i int) float64 { return float64(i)*4000 + float64(rng.IntN(3000)) }), 90000, 1},
		{"one frame", ticks(1, func(int) float64 { return 0 }), 90000, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, pts := recordTicks(t, tc.ts)
			if h.den != tc.den || h.num != tc.num {
				t.Errorf("timebase %d/%d, want %d/%d", h.num, h.den, tc.num, tc.den)
			}
			if int(h.frames) != len(tc.ts) || len(pts) != len(tc.ts) || h.width != 320 || h.height != 240 {
				t.Errorf("%d frames in the header, %d in the file, %dx%d; want %d of 320x240", h.frames, len(pts), h.width, h.height, len(tc.ts))
			}
			// Every frame within half a frame (or a tick) of its time.
			for i, p := range pts {
				got := float64(p) * float64(h.num) / float64(h.den)
				want := float64(tc.ts[i]-tc.ts[0]) / 90000
				if tol := 0.5*float64(h.num)/float64(h.den) + 1e-9; math.Abs(got-want) > tol {
					t.Fatalf("frame %d at %.4fs, want %.4fs", i, got, want)
				}
				if i > 0 && p <= pts[i-1] {
					t.Fatalf("frame %d: pts %d after %d", i, p, pts[i-1])
				}
			}
		})
	}
}

// TestRecorderIVFToAWriter: a recording to a writer that can't be
// rewritten states the picture size and the 90 kHz timebase its pts use.
func TestRecorderIVFToAWriter(t *testing.T) {
	var buf bytes.Buffer
	r, err := newRecorderTo(io.Discard, &buf)
	if err != nil {
		t.Fatal(err)
	}
	pz := newPacketizer(KindVideo)
	for _, f := range Pattern().frames {
		for _, p := range pz.packetize(f) {
			if err := r.WriteRTP(KindVideo, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	h := readIVFHeader(t, buf.Bytes())
	if h.den != 90000 || h.num != 1 || h.width != 320 || h.height != 240 {
		t.Errorf("header %+v, want 320x240 at 1/90000", h)
	}
	c, err := ParseIVF(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if c.Frames() != 30 || c.Duration() < 1900*time.Millisecond || c.Duration() > 2100*time.Millisecond {
		t.Errorf("recording: %d frames, %v; want 30, 2s", c.Frames(), c.Duration())
	}
}
