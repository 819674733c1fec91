package media

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Kind is the kind of a media stream.
type Kind string

// The two kinds a call carries: Opus audio and VP8 video.
const (
	KindAudio Kind = "audio"
	KindVideo Kind = "video"
)

// Sample is one encoded frame: an Opus packet or a VP8 frame.
type Sample struct {
	// Data is the encoded frame. Receivers must not modify it.
	Data []byte
	// Duration is the frame's play time; it advances the RTP timestamp.
	Duration time.Duration
}

// Track is one encoded stream a call sends. A call reads each of its
// tracks from one goroutine.
type Track interface {
	// Kind says whether the track is Opus audio or VP8 video.
	Kind() Kind
	// ReadSample blocks until the next sample is due and returns it. It
	// returns ctx.Err() when ctx ends first; io.EOF ends the track.
	ReadSample(ctx context.Context) (Sample, error)
}

// Source supplies the media a call sends.
type Source interface {
	// Tracks returns fresh tracks for one call: at most one audio and one
	// video track. An error aborts NewCall before anything is sent.
	Tracks() ([]Track, error)
}

// Caps on media files, checked before a call starts.
const (
	maxClipFileSize = 64 << 20
	maxClipFrames   = 1 << 20
	maxFrameGap     = time.Second
)

// ErrBadClip is wrapped by every error about an unreadable or unsupported
// media file.
var ErrBadClip = errors.New("unreadable media file")

// Clip is an encoded media file held in memory, parsed and checked once,
// and played in a loop, paced by its own timestamps. A Clip is immutable
// and safe for concurrent use by any number of calls.
type Clip struct {
	kind   Kind
	frames []Sample
	total  time.Duration
}

// Kind reports whether the clip is Opus audio or VP8 video.
func (c *Clip) Kind() Kind { return c.kind }

// Frames reports how many frames one pass of the clip holds.
func (c *Clip) Frames() int { return len(c.frames) }

// Samples returns the clip's frames in order. The frames' data is shared
// with the clip: read it, never modify it.
func (c *Clip) Samples() []Sample { return slices.Clone(c.frames) }

// Duration reports the play time of one pass of the clip.
func (c *Clip) Duration() time.Duration { return c.total }

// Tracks returns one looping track that plays the clip in real time.
func (c *Clip) Tracks() ([]Track, error) { return []Track{&clipPlayer{clip: c}}, nil }

// Sources combines sources into one. Tracks fails if two of them supply
// the same kind.
func Sources(srcs ...Source) Source { return multiSource(srcs) }

type multiSource []Source

func (m multiSource) Tracks() ([]Track, error) {
	var out []Track
	seen := map[Kind]bool{}
	for _, s := range m {
		if s == nil {
			continue
		}
		ts, err := s.Tracks()
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if seen[t.Kind()] {
				return nil, fmt.Errorf("media: two %s tracks in one source", t.Kind())
			}
			seen[t.Kind()] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// clipPlayer plays a Clip in a loop, one frame per ReadSample, each frame
// due one frame duration after the previous one. When the remote asks for
// a key frame (a browser that joined mid-stream), a video clip goes back to
// its latest key frame.
type clipPlayer struct {
	clip     *Clip
	i        int
	next     time.Time
	timer    *time.Timer
	keyframe atomic.Bool // a key frame was asked for
}

// onRTCP notes the remote's keyframe requests (see rtcpTrack).
func (p *clipPlayer) onRTCP(pkts []rtcp.Packet) {
	if p.clip.kind != KindVideo {
		return
	}
	for _, pkt := range pkts {
		switch pkt.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			p.keyframe.Store(true)
		}
	}
}

// isKeyframe reports whether a VP8 frame is a key frame (RFC 6386 9.1:
// the low bit of the first byte is 0).
func isKeyframe(frame []byte) bool { return len(frame) > 0 && frame[0]&1 == 0 }

func (p *clipPlayer) Kind() Kind { return p.clip.kind }

func (p *clipPlayer) ReadSample(ctx context.Context) (Sample, error) {
	if err := ctx.Err(); err != nil {
		return Sample{}, err
	}
	now := time.Now()
	if p.next.IsZero() {
		p.next = now
	}
	if wait := p.next.Sub(now); wait > 0 {
		if p.timer == nil {
			p.timer = time.NewTimer(wait)
		} else {
			p.timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			p.timer.Stop()
			return Sample{}, ctx.Err()
		case <-p.timer.C:
		}
	} else if -wait > maxFrameGap {
		// The reader stalled: resume in real time rather than burst.
		p.next = now
	}
	if p.keyframe.Swap(false) {
		// Back to the latest key frame at or before the next frame; the
		// RTP timestamps still advance by each frame's duration.
		for k := p.i; k >= 0; k-- {
			if isKeyframe(p.clip.frames[k].Data) {
				p.i = k
				break
			}
		}
	}
	f := p.clip.frames[p.i]
	p.i = (p.i + 1) % len(p.clip.frames)
	p.next = p.next.Add(f.Duration)
	return f, nil
}

// OpenClip reads an Ogg/Opus (".ogg", ".opus") or IVF/VP8 (".ivf") file,
// chosen by its contents. It fails with an error wrapping ErrBadClip when
// the file is unreadable, larger than 64 MiB, or not Opus or VP8.
func OpenClip(path string) (*Clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("media: open clip: %w: %w", ErrBadClip, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxClipFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("media: read clip %s: %w: %w", path, ErrBadClip, err)
	}
	var c *Clip
	switch {
	case bytes.HasPrefix(data, []byte("OggS")):
		c, err = ParseOgg(data)
	case bytes.HasPrefix(data, []byte("DKIF")):
		c, err = ParseIVF(data)
	default:
		err = fmt.Errorf("media: %w: not an Ogg or IVF file", ErrBadClip)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return c, nil
}

// ParseOgg parses an Ogg/Opus file with one Opus packet per page (what
// ffmpeg writes with -page_duration 20000), pacing each packet by the
// page's granule position.
func ParseOgg(data []byte) (*Clip, error) {
	if len(data) > maxClipFileSize {
		return nil, fmt.Errorf("media: ogg: %w: larger than %d bytes", ErrBadClip, maxClipFileSize)
	}
	r, head, err := oggreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("media: ogg: %w: %w", ErrBadClip, err)
	}
	if head.Channels != 1 && head.Channels != 2 {
		return nil, fmt.Errorf("media: ogg: %w: %d channels, want 1 or 2", ErrBadClip, head.Channels)
	}
	c := &Clip{kind: KindAudio}
	var last uint64
	for {
		payload, page, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("media: ogg page %d: %w: %w", len(c.frames), ErrBadClip, err)
		}
		if len(payload) == 0 {
			continue
		}
		if t, ok := page.HeaderType(payload); ok && (t == oggreader.HeaderOpusTags || t == oggreader.HeaderOpusID) {
			continue
		}
		if page.GranulePosition == ^uint64(0) || page.GranulePosition < last {
			return nil, fmt.Errorf("media: ogg page %d: %w: packets spanning pages are not supported", len(c.frames), ErrBadClip)
		}
		samples, err := opusSamples(payload)
		if err != nil {
			return nil, fmt.Errorf("media: ogg page %d: %w: %w", len(c.frames), ErrBadClip, err)
		}
		diff := page.GranulePosition - last
		last = page.GranulePosition
		if diff > uint64(samples) {
			return nil, fmt.Errorf("media: ogg page %d: %w: page holds more than one Opus packet (re-encode with ffmpeg -page_duration 20000)", len(c.frames), ErrBadClip)
		}
		// The last page may be trimmed below the packet's length; pace by
		// the packet so the loop keeps its rhythm.
		if err := c.add(payload, time.Duration(samples)*time.Second/opusClockRate); err != nil {
			return nil, err
		}
	}
	if len(c.frames) == 0 {
		return nil, fmt.Errorf("media: ogg: %w: no audio packets", ErrBadClip)
	}
	return c, nil
}

// opusSamples returns the number of 48 kHz samples in one Opus packet, from
// its TOC byte (RFC 6716 section 3.1).
func opusSamples(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, errors.New("empty Opus packet")
	}
	toc := p[0]
	cfg := toc >> 3
	var frame int // samples per frame at 48 kHz
	switch {
	case cfg < 12: // SILK: 10, 20, 40, 60 ms
		frame = []int{480, 960, 1920, 2880}[cfg%4]
	case cfg < 16: // Hybrid: 10, 20 ms
		frame = []int{480, 960}[cfg%2]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = []int{120, 240, 480, 960}[cfg%4]
	}
	var n int
	switch toc & 3 {
	case 0:
		n = 1
	case 1, 2:
		n = 2
	default:
		if len(p) < 2 {
			return 0, errors.New("truncated Opus packet")
		}
		n = int(p[1] & 0x3f)
	}
	total := n * frame
	if n == 0 || total > 5760 { // at most 120 ms per packet
		return 0, fmt.Errorf("invalid Opus packet of %d frames", n)
	}
	return total, nil
}

// ParseIVF parses an IVF file holding VP8, pacing each frame by the
// difference of its timestamp to the next one.
func ParseIVF(data []byte) (*Clip, error) {
	if len(data) > maxClipFileSize {
		return nil, fmt.Errorf("media: ivf: %w: larger than %d bytes", ErrBadClip, maxClipFileSize)
	}
	// Walk the frame headers first: ivfreader allocates whatever size a
	// frame header claims, so sizes are checked against the data in hand.
	const fileHeader, frameHeader = 32, 12
	if len(data) < fileHeader {
		return nil, fmt.Errorf("media: ivf: %w: short file header", ErrBadClip)
	}
	var pts []uint64
	for off := fileHeader; off < len(data); {
		if len(data)-off < frameHeader {
			return nil, fmt.Errorf("media: ivf frame %d: %w: truncated frame header", len(pts), ErrBadClip)
		}
		size := int(binary.LittleEndian.Uint32(data[off:]))
		if size == 0 || size > len(data)-off-frameHeader {
			return nil, fmt.Errorf("media: ivf frame %d: %w: bad frame size %d", len(pts), ErrBadClip, size)
		}
		pts = append(pts, binary.LittleEndian.Uint64(data[off+4:]))
		off += frameHeader + size
		if len(pts) > maxClipFrames {
			return nil, fmt.Errorf("media: ivf: %w: more than %d frames", ErrBadClip, maxClipFrames)
		}
	}
	r, head, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("media: ivf: %w: %w", ErrBadClip, err)
	}
	if head.FourCC != "VP80" {
		return nil, fmt.Errorf("media: ivf: %w: codec %q, want VP80", ErrBadClip, head.FourCC)
	}
	// IVF time of a frame in seconds: pts * numerator / denominator.
	num, den := uint64(head.TimebaseNumerator), uint64(head.TimebaseDenominator)
	if num == 0 || den == 0 {
		return nil, fmt.Errorf("media: ivf: %w: zero timebase", ErrBadClip)
	}
	if len(pts) == 0 {
		return nil, fmt.Errorf("media: ivf: %w: no frames", ErrBadClip)
	}
	c := &Clip{kind: KindVideo}
	var prev time.Duration = -1
	for i := range pts {
		frame, _, err := r.ParseNextFrame()
		if err != nil {
			return nil, fmt.Errorf("media: ivf frame %d: %w: %w", i, ErrBadClip, err)
		}
		var d time.Duration
		switch {
		case i+1 < len(pts):
			if pts[i+1] < pts[i] {
				return nil, fmt.Errorf("media: ivf frame %d: %w: timestamps go backwards", i+1, ErrBadClip)
			}
			d = ptsDuration(pts[i+1]-pts[i], num, den)
		case prev >= 0:
			d = prev // the last frame lasts as long as the one before
		default:
			d = time.Second / 30
		}
		if d > maxFrameGap {
			return nil, fmt.Errorf("media: ivf frame %d: %w: %v gap to the next frame", i, ErrBadClip, d)
		}
		prev = d
		if i == 0 && len(frame) > 0 && frame[0]&1 != 0 {
			return nil, fmt.Errorf("media: ivf: %w: first frame is not a VP8 key frame", ErrBadClip)
		}
		if err := c.add(frame, d); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func ptsDuration(ticks, num, den uint64) time.Duration {
	if ticks > uint64(maxFrameGap)/uint64(time.Second)*den/num+1 {
		return maxFrameGap + 1
	}
	return time.Duration(ticks * num * uint64(time.Second) / den)
}

func (c *Clip) add(data []byte, d time.Duration) error {
	if len(c.frames) >= maxClipFrames {
		return fmt.Errorf("media: %w: more than %d frames", ErrBadClip, maxClipFrames)
	}
	c.frames = append(c.frames, Sample{Data: data, Duration: d})
	c.total += d
	return nil
}

// The synthetic clips, encoded once with ffmpeg (see clips/README.md).
var (
	//go:embed clips/tone.ogg
	toneOgg []byte
	//go:embed clips/pattern.ivf
	patternIVF []byte

	tone    = sync.OnceValue(func() *Clip { return mustClip(ParseOgg(toneOgg)) })
	pattern = sync.OnceValue(func() *Clip { return mustClip(ParseIVF(patternIVF)) })
)

func mustClip(c *Clip, err error) *Clip {
	if err != nil {
		panic("bug: embedded clip: " + err.Error())
	}
	return c
}

// Tone returns the synthetic test tone: 1 s of a 440 Hz sine, Opus stereo in
// 20 ms frames, played in a loop.
func Tone() *Clip { return tone() }

// Pattern returns the synthetic test pattern: 2 s of ffmpeg's 320x240
// testsrc at 15 frames per second, VP8 at about 150 kbit/s, played in a loop.
func Pattern() *Clip { return pattern() }
