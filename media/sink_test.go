package media

import (
	"github.com/callsign/callsign/media/mediatest"
	"io"
	"path/filepath"
	"testing"

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
