package media

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
)

// Sink receives the media a call receives.
type Sink interface {
	// WriteRTP is called for every RTP packet of the remote track of the
	// given kind, from one goroutine per kind. The packet is not retained
	// by the caller after WriteRTP returns. An error stops delivery of that
	// kind to the sink; the call goes on.
	WriteRTP(kind Kind, p *rtp.Packet) error
	// Close is called once, after the last WriteRTP, when the call ends.
	Close() error
}

// Recorder is a Sink that records incoming audio to an Ogg/Opus file and
// incoming video to an IVF/VP8 file. Video is reassembled into whole
// frames with a jitter buffer, so reordered packets are put back in order
// and a frame with a lost packet is dropped rather than written corrupt;
// the video file starts at the first key frame. On Close the IVF header
// states the video's frame rate, measured from the frames' RTP timestamps,
// and its frame count and picture size (see ivfRecorder).
type Recorder struct {
	audio *oggwriter.OggWriter
	video *ivfRecorder
	vsb   *samplebuilder.SampleBuilder

	closeOnce sync.Once
	closeErr  error
}

// maxLateVideoPackets is how many packets the video jitter buffer holds
// before it gives up on a missing one.
const maxLateVideoPackets = 256

// NewRecorder creates the recording files now, so a bad path fails before
// the call starts. An empty path leaves that kind unrecorded.
func NewRecorder(audioPath, videoPath string) (*Recorder, error) {
	r := &Recorder{}
	if audioPath != "" {
		w, err := oggwriter.New(audioPath, opusClockRate, opusChannels)
		if err != nil {
			return nil, fmt.Errorf("media: create audio recording: %w", err)
		}
		r.audio = w
	}
	if videoPath != "" {
		f, err := os.Create(videoPath)
		if err == nil {
			var v *ivfRecorder
			if v, err = newIVFRecorder(f); err == nil {
				r.setVideo(v)
				return r, nil
			}
			_ = f.Close()
		}
		if r.audio != nil {
			_ = r.audio.Close()
		}
		return nil, fmt.Errorf("media: create video recording: %w", err)
	}
	return r, nil
}

// newRecorderTo records to writers (tests and fuzzing). A video writer
// that is an *os.File gets its header rewritten on Close, as NewRecorder's.
func newRecorderTo(audio, video io.Writer) (*Recorder, error) {
	a, err := oggwriter.NewWith(audio, opusClockRate, opusChannels)
	if err != nil {
		return nil, err
	}
	v, err := newIVFRecorder(video)
	if err != nil {
		return nil, err
	}
	r := &Recorder{audio: a}
	r.setVideo(v)
	return r, nil
}

func (r *Recorder) setVideo(v *ivfRecorder) {
	r.video = v
	r.vsb = samplebuilder.New(maxLateVideoPackets, &codecs.VP8Packet{}, vp8ClockRate)
}

// WriteRTP records p. It implements Sink.
func (r *Recorder) WriteRTP(kind Kind, p *rtp.Packet) error {
	switch kind {
	case KindAudio:
		if r.audio == nil {
			return nil
		}
		return r.audio.WriteRTP(p)
	case KindVideo:
		if r.video == nil {
			return nil
		}
		r.vsb.Push(p.Clone())
		return r.drainVideo()
	}
	return nil
}

func (r *Recorder) drainVideo() error {
	for s := r.vsb.Pop(); s != nil; s = r.vsb.Pop() {
		if err := r.video.writeFrame(s.Data, s.PacketTimestamp); err != nil {
			return err
		}
	}
	return nil
}

// Close flushes the buffered video frames and finishes both files. It is
// idempotent.
func (r *Recorder) Close() error {
	r.closeOnce.Do(func() {
		var errs []error
		if r.audio != nil {
			errs = append(errs, r.audio.Close())
		}
		if r.video != nil {
			r.vsb.Flush()
			errs = append(errs, r.drainVideo(), r.video.close())
		}
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}

// IVF layout: a 32-byte file header ("DKIF", version 0, header size 32,
// FourCC, width, height, timebase denominator and numerator, frame count,
// unused), then per frame a 12-byte header (size, pts) and the frame. A
// frame's time is pts * numerator / denominator seconds; libvpx and ffmpeg
// write the timebase 1/frame rate, and vpxdec reads the header's
// denominator/numerator as the frame rate.
const (
	ivfHeaderLen      = 32
	ivfFrameHeaderLen = 12
	// maxIVFIntervals bounds the frame intervals a recording keeps to
	// measure its frame rate: 4 bytes each, 19 hours at 30 fps. A longer
	// recording keeps the 90 kHz timebase.
	maxIVFIntervals = 1 << 21
)

// ivfRewriter is a video recording's writer that ivfRecorder can rewrite
// in place on close (an *os.File).
type ivfRewriter interface {
	io.Writer
	io.ReaderAt
	io.WriterAt
}

// ivfRecorder writes whole VP8 frames to an IVF file, from the first key
// frame on.
//
// While recording, a frame's pts is its RTP timestamp: 90 kHz ticks since
// the first frame, under a header with the timebase 1/90000, so a file cut
// short by a crash still plays at the right speed. On close, when the
// writer can be rewritten in place (an *os.File), the header gets the
// frame count, the picture size of the first key frame, and as timebase 1
// over the frame rate measured from the RTP timestamps (1/15 for 15 fps,
// 1001/30000 for 29.97 fps), with every pts rewritten to count frames in
// it; so players that read the header as a frame rate and players that
// read it as a timebase agree, and every frame keeps its time to within
// half a frame. A stream whose frames do not fit one frame rate (two
// frames would share a pts) keeps the 90 kHz timebase. A writer that can't
// be rewritten gets the header at the first frame, with the picture size,
// the timebase 1/90000 and a frame count of 0 (unknown).
type ivfRecorder struct {
	w  io.Writer
	rw ivfRewriter // w, when it can be rewritten in place

	headerOut     bool // the header has been written
	width, height uint16
	frames        int
	lastTS        uint32   // RTP timestamp of the last frame
	ticks         uint64   // pts of the last frame
	intervals     []uint32 // ticks between consecutive frames
	size          int64    // bytes written
	err           error    // sticky write error
}

func newIVFRecorder(w io.Writer) (*ivfRecorder, error) {
	v := &ivfRecorder{w: w}
	if rw, ok := w.(ivfRewriter); ok {
		v.rw = rw
		// The file is valid, if empty, from the start.
		if err := v.write(ivfHeader(0, 0, vp8ClockRate, 1, 0)); err != nil {
			return nil, err
		}
		v.headerOut = true
	}
	return v, nil
}

func ivfHeader(width, height uint16, den, num, frames uint32) []byte {
	h := make([]byte, ivfHeaderLen)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[6:], ivfHeaderLen)
	copy(h[8:], "VP80")
	binary.LittleEndian.PutUint16(h[12:], width)
	binary.LittleEndian.PutUint16(h[14:], height)
	binary.LittleEndian.PutUint32(h[16:], den)
	binary.LittleEndian.PutUint32(h[20:], num)
	binary.LittleEndian.PutUint32(h[24:], frames)
	return h
}

func (v *ivfRecorder) write(b []byte) error {
	if v.err != nil {
		return v.err
	}
	n, err := v.w.Write(b)
	v.size += int64(n)
	v.err = err
	return err
}

// vp8Size returns the picture size a VP8 key frame states (RFC 6386 9.1),
// or zeros.
func vp8Size(frame []byte) (width, height uint16) {
	if len(frame) < 10 || frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
		return 0, 0
	}
	return binary.LittleEndian.Uint16(frame[6:]) & 0x3fff, binary.LittleEndian.Uint16(frame[8:]) & 0x3fff
}

// writeFrame writes one whole frame with RTP timestamp ts. Frames before
// the first key frame are dropped: they can't be decoded.
func (v *ivfRecorder) writeFrame(frame []byte, ts uint32) error {
	if v.err != nil {
		return v.err
	}
	if len(frame) == 0 {
		return nil
	}
	if v.frames == 0 {
		if frame[0]&1 != 0 {
			return nil // not a key frame
		}
		v.width, v.height = vp8Size(frame)
		h := ivfHeader(v.width, v.height, vp8ClockRate, 1, 0)
		var err error
		if v.rw != nil {
			_, err = v.rw.WriteAt(h, 0)
		} else {
			err = v.write(h)
		}
		if err != nil {
			v.err = err
			return err
		}
		v.headerOut = true
	} else {
		// A timestamp going backwards (or 2^31 ticks on) is garbage:
		// keep the pts increasing.
		d := int32(ts - v.lastTS)
		if d <= 0 {
			d = 1
		}
		v.ticks += uint64(d)
		if len(v.intervals) < maxIVFIntervals {
			v.intervals = append(v.intervals, uint32(d))
		}
	}
	v.lastTS = ts
	var h [ivfFrameHeaderLen]byte
	binary.LittleEndian.PutUint32(h[:], uint32(len(frame)))
	binary.LittleEndian.PutUint64(h[4:], v.ticks)
	if err := v.write(h[:]); err != nil {
		return err
	}
	if err := v.write(frame); err != nil {
		return err
	}
	v.frames++
	return nil
}

// close finishes the file (see ivfRecorder) and closes the writer if it
// is an io.Closer.
func (v *ivfRecorder) close() error {
	err := v.finish()
	if c, ok := v.w.(io.Closer); ok {
		err = errors.Join(err, c.Close())
	}
	return err
}

func (v *ivfRecorder) finish() error {
	if v.err != nil {
		return v.err
	}
	if v.rw == nil {
		if !v.headerOut {
			return v.write(ivfHeader(0, 0, vp8ClockRate, 1, 0))
		}
		return nil
	}
	den, num := uint32(vp8ClockRate), uint32(1)
	if rate, scale, ok := v.frameRate(); ok {
		if err := v.rewritePTS(rate, scale); err != nil {
			return fmt.Errorf("media: rewrite video recording: %w", err)
		}
		den, num = rate, scale
	}
	frames := uint32(min(uint64(v.frames), math.MaxUint32))
	if _, err := v.rw.WriteAt(ivfHeader(v.width, v.height, den, num, frames), 0); err != nil {
		return fmt.Errorf("media: rewrite video recording header: %w", err)
	}
	return nil
}

// gridPTS is the pts, in frames of the rate rate/scale, of a time of
// ticks 90 kHz ticks: the nearest frame.
func gridPTS(ticks uint64, rate, scale uint32) uint64 {
	return uint64(math.Round(float64(ticks) * float64(rate) / (float64(vp8ClockRate) * float64(scale))))
}

// frameRate measures the recording's frame rate as rate/scale frames per
// second. The candidates, in order: the rate of the median interval
// between frames (robust to dropped frames) snapped to a whole number or
// to an NTSC rate (n*1000/1001) when within 1%, then that rate to a
// thousandth, then the mean rate from the first frame to the last. The
// first whose frame grid gives every frame a pts of its own wins; ok is
// false when none does, or the recording is too short or too long to
// tell.
func (v *ivfRecorder) frameRate() (rate, scale uint32, ok bool) {
	if v.frames < 2 || len(v.intervals) != v.frames-1 {
		return 0, 0, false
	}
	sorted := slices.Clone(v.intervals)
	slices.Sort(sorted)
	median := float64(sorted[len(sorted)/2])
	fps := vp8ClockRate / median
	mean := float64(v.frames-1) * vp8ClockRate / float64(v.ticks)

	type cand struct {
		rate, scale uint32
		off         float64 // relative distance from fps
	}
	var cands []cand
	if r := math.Round(fps); r >= 1 {
		cands = append(cands, cand{uint32(r), 1, math.Abs(fps-r) / fps})
	}
	if r := math.Round(fps * 1.001); r >= 1 {
		cands = append(cands, cand{uint32(r) * 1000, 1001, math.Abs(fps-r/1.001) / fps})
	}
	cands = slices.DeleteFunc(cands, func(c cand) bool { return c.off > 0.01 })
	slices.SortStableFunc(cands, func(a, b cand) int { return cmpFloat(a.off, b.off) })
	for _, f := range []float64{fps, mean} {
		if r := math.Round(f * 1000); r >= 1 && r <= math.MaxUint32 {
			g := gcd(uint64(r), 1000)
			cands = append(cands, cand{uint32(uint64(r) / g), uint32(1000 / g), 0})
		}
	}
	for _, c := range cands {
		if v.fitsGrid(c.rate, c.scale) {
			return c.rate, c.scale, true
		}
	}
	return 0, 0, false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// fitsGrid reports whether every frame gets a pts of its own on the grid
// of rate/scale frames per second.
func (v *ivfRecorder) fitsGrid(rate, scale uint32) bool {
	var ticks, prev uint64
	for _, d := range v.intervals {
		ticks += uint64(d)
		p := gridPTS(ticks, rate, scale)
		if p <= prev {
			return false
		}
		prev = p
	}
	return true
}

// rewritePTS rewrites every frame's pts, from 90 kHz ticks to frames of
// rate/scale per second.
func (v *ivfRecorder) rewritePTS(rate, scale uint32) error {
	br := bufio.NewReaderSize(io.NewSectionReader(v.rw, ivfHeaderLen, v.size-ivfHeaderLen), 256<<10)
	off := int64(ivfHeaderLen)
	var ticks uint64
	var h [ivfFrameHeaderLen]byte
	for i := range v.frames {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return err
		}
		if i > 0 {
			ticks += uint64(v.intervals[i-1])
		}
		if pts := binary.LittleEndian.Uint64(h[4:]); pts != ticks {
			return fmt.Errorf("frame %d has pts %d, want %d", i, pts, ticks)
		}
		binary.LittleEndian.PutUint64(h[4:], gridPTS(ticks, rate, scale))
		if _, err := v.rw.WriteAt(h[4:], off+4); err != nil {
			return err
		}
		size := int64(binary.LittleEndian.Uint32(h[:]))
		if _, err := br.Discard(int(size)); err != nil {
			return err
		}
		off += ivfFrameHeaderLen + size
	}
	return nil
}
