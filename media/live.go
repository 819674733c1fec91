package media

// Live streams
//
// OpenSource is what the node calls for --audio PATH and --video PATH. A
// regular file is a clip (OpenClip): read whole, checked once, looped. A
// FIFO or a character device is a live stream, played once, as it arrives:
//
//	mkfifo /tmp/mic.ogg /tmp/cam.ivf
//	ffmpeg -re -i talk.wav -c:a libopus -page_duration 20000 -f ogg /tmp/mic.ogg
//	ffmpeg -re -i talk.mp4 -c:v libvpx -deadline realtime -f ivf /tmp/cam.ivf
//
// The stream's first bytes pick its kind: "OggS" is Ogg/Opus, "DKIF" is
// IVF/VP8. Ogg pages may hold several packets (ffmpeg's default pages hold
// up to a second: -page_duration 20000 lowers the latency). OpenSource opens the FIFO without waiting for a writer, then
// waits at most 10 s for the stream header (the OpusHead and OpusTags
// pages, or the 32-byte IVF header with FourCC VP80), so the kind is known
// before the call starts and a missing writer fails with an error instead
// of a hang.
//
// During the call the live track reads one frame at a time, straight from
// the stream: nothing is read ahead beyond the current frame (the current
// Ogg page for audio). Each frame is sent when it has arrived and is due by
// the stream's own clock (Opus packet durations and Ogg granule positions,
// IVF pts), so a producer faster than real time (ffmpeg without -re) is
// held back by the pipe, whose buffer is all that piles up; a producer
// slower than real time has its frames sent as they come; after a stall of
// more than a second the track resumes in real time instead of bursting.
// Gaps in the stream's timestamps are clamped to a second. The end of the
// stream ends the track (io.EOF); the call goes on without it.
//
// The stream is checked frame by frame with the caps of clips: Opus packets
// of at most 8 KiB with a valid TOC, 1 or 2 channels, one logical Ogg
// stream with correct page checksums and sequence numbers, no packet
// spanning pages, no granule position going backwards; VP8 frames of at
// most 4 MiB, the first a key frame, non-zero timebase, no pts going
// backwards. A bad frame ends the track with an error wrapping ErrBadClip.
//
// A live stream plays in one call: Tracks works once. Closing the source,
// or the end of the ReadSample context (the end of the call), releases the
// stream, so its writer gets EPIPE.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Caps and defaults of live streams.
const (
	// liveOpenTimeout bounds OpenSource's wait for a live stream's header.
	liveOpenTimeout = 10 * time.Second
	// maxOpusPacket is more than a 120 ms Opus packet at its top rate.
	maxOpusPacket = 8 << 10
	// maxVP8Frame is far more than a 1080p VP8 key frame.
	maxVP8Frame = 4 << 20
	// maxOggTagPages bounds the pages an OpusTags packet may span.
	maxOggTagPages = 16
	// minSampleDuration is the least a live sample advances the RTP clock,
	// so two frames never share a timestamp.
	minSampleDuration = time.Millisecond
	// defaultFrameInterval is a video frame's assumed length until the
	// stream shows its own.
	defaultFrameInterval = time.Second / 30
)

// errLivePlayed is returned by a second Live.Tracks.
var errLivePlayed = errors.New("media: a live stream plays in one call only")

// Input is a Source of one kind opened from a path by OpenSource.
type Input interface {
	Source
	// Kind is the kind of the input's one track.
	Kind() Kind
	// Close releases the file. A live stream is released as soon as its
	// call ends, but Close is still needed for a stream whose call never
	// started or never became active. Idempotent; safe to call while a
	// ReadSample is blocked, which then fails with ErrClosed.
	io.Closer
}

// OpenSource opens what --audio or --video names and reads its header, so
// its kind is known before the call starts:
//
//   - a regular file is read whole and checked like OpenClip; it loops, and
//     any number of calls may play it (Close does nothing);
//   - a FIFO or a character device is a *Live stream of Ogg/Opus or
//     IVF/VP8, played once as it arrives, paced by its own timestamps.
//     OpenSource does not wait for a FIFO's writer to open it, but waits
//     at most 10 s for the stream's header.
//
// Every error about the file or the stream wraps ErrBadClip, among them
// "no data on FIFO within 10s". The caller opens an Input for each call,
// passes it as (part of) CallConfig.Source, and Closes it once the call has
// ended or failed to start.
func OpenSource(path string) (Input, error) {
	return openSource(path, liveOpenTimeout)
}

func openSource(path string, timeout time.Duration) (Input, error) {
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer. It does not matter for a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("media: open %s: %w: %w", path, ErrBadClip, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("media: open %s: %w: %w", path, ErrBadClip, err)
	}
	switch mode := st.Mode(); {
	case mode.IsRegular():
		defer f.Close()
		c, err := readClip(f, path)
		if err != nil {
			return nil, err
		}
		return clipInput{c}, nil
	case mode&os.ModeNamedPipe != 0:
		return openLive(f, path, "FIFO", timeout)
	case mode&os.ModeCharDevice != 0:
		return openLive(f, path, "device", timeout)
	default:
		_ = f.Close()
		return nil, fmt.Errorf("media: open %s: %w: not a regular file, FIFO or character device", path, ErrBadClip)
	}
}

// readClip is OpenClip on a file already open (so a path swapped for a FIFO
// between a stat and an open can't hang it).
func readClip(f *os.File, path string) (*Clip, error) {
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

// clipInput is a Clip as an Input.
type clipInput struct{ *Clip }

func (clipInput) Close() error { return nil }

// Live is a live Ogg/Opus or IVF/VP8 stream read from a FIFO or a
// character device, made by OpenSource. It plays in one call. Its methods
// are safe for concurrent use; its track is read by one goroutine.
type Live struct {
	path string
	f    *os.File
	p    liveParser

	played    atomic.Bool
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Kind reports whether the stream is Opus audio or VP8 video.
func (l *Live) Kind() Kind { return l.p.kind() }

// Tracks returns the stream's one track. It fails on every call after the
// first, and after Close.
func (l *Live) Tracks() ([]Track, error) {
	if l.closed.Load() {
		return nil, fmt.Errorf("media: live %s: %w", l.path, ErrClosed)
	}
	if !l.played.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("%w (%s)", errLivePlayed, l.path)
	}
	return []Track{&liveTrack{l: l, interval: l.p.interval()}}, nil
}

// Close releases the stream; a ReadSample blocked on it returns. It is
// idempotent.
func (l *Live) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		l.closeErr = l.f.Close()
	})
	return l.closeErr
}

// openLive waits for the header of the live stream f (at most timeout) and
// returns it ready to play. It takes f over.
func openLive(f *os.File, path, what string, timeout time.Duration) (_ *Live, err error) {
	r := &openReader{f: f}
	defer func() {
		r.release()
		if err != nil {
			_ = f.Close()
		}
	}()
	if err := f.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("media: %s: %w: can't wait for data on this %s: %w", path, ErrBadClip, what, err)
	}
	if what == "FIFO" {
		// A FIFO nobody has opened for writing reads as end of file at
		// once. Hold a write end ourselves until the first bytes arrive,
		// so the read waits for them; then the writer's close is the end
		// of the stream. A FIFO we may not write to is polled instead.
		w, err := openWriteEnd(path)
		if err == nil {
			rst, err1 := f.Stat()
			wst, err2 := w.Stat()
			if err1 != nil || err2 != nil || !os.SameFile(rst, wst) {
				_ = w.Close() // path names another file by now
				err = errors.New("replaced")
			}
		}
		if err == nil {
			r.keep = w
		} else {
			r.poll, r.deadline = true, time.Now().Add(timeout)
		}
	}
	p, err := newLiveParser(r)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded) && r.n == 0:
			return nil, fmt.Errorf("media: %s: %w: no data on %s within %v", path, ErrBadClip, what, timeout)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, fmt.Errorf("media: %s: %w: stream header incomplete within %v", path, ErrBadClip, timeout)
		case errors.Is(err, io.EOF) && r.n == 0:
			return nil, fmt.Errorf("media: %s: %w: no data on %s", path, ErrBadClip, what)
		case !errors.Is(err, ErrBadClip):
			return nil, fmt.Errorf("media: %s: %w: %w", path, ErrBadClip, err)
		}
		return nil, fmt.Errorf("%w (%s %s)", err, what, path)
	}
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("media: %s: %w", path, err)
	}
	return &Live{path: path, f: f, p: p}, nil
}

// openWriteEnd opens the write end of the FIFO at path without waiting;
// tests replace it.
var openWriteEnd = func(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
}

// openReader reads a live stream. Until data comes it holds the FIFO's
// write end keep, or, without one (poll), takes an end of file for "no
// writer yet" and tries again until deadline.
type openReader struct {
	f        *os.File
	keep     *os.File
	poll     bool
	deadline time.Time
	n        int64 // bytes read
	timer    *time.Timer
}

func (r *openReader) Read(b []byte) (int, error) {
	for {
		n, err := r.f.Read(b)
		r.n += int64(n)
		if n > 0 {
			r.release()
		}
		if !r.poll || r.n > 0 || n > 0 || err != io.EOF {
			return n, err
		}
		wait := time.Until(r.deadline)
		if wait <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		wait = min(wait, 20*time.Millisecond)
		if r.timer == nil {
			r.timer = time.NewTimer(wait)
		} else {
			r.timer.Reset(wait)
		}
		<-r.timer.C
	}
}

func (r *openReader) release() {
	if r.keep != nil {
		_ = r.keep.Close()
		r.keep = nil
	}
}

// liveTrack plays a Live stream: one frame per ReadSample, when it has
// arrived and is due.
type liveTrack struct {
	l   *Live
	err error // sticky: the track is over

	n        int           // frames returned
	base     time.Time     // wall time at which stream time baseAt is due
	baseAt   time.Duration // stream time
	prevAt   time.Duration // stream time of the previous frame
	interval time.Duration // video: the last frame interval seen
	rtpAt    time.Duration // where the RTP clock is: the sum of the Durations returned
	timer    *time.Timer
}

func (t *liveTrack) Kind() Kind { return t.l.p.kind() }

// ReadSample returns the next frame once it has arrived and is due. When
// ctx ends, or the stream ends or breaks, the stream is released and the
// track is over: this and every later ReadSample fail (io.EOF at the
// stream's end, ctx's error, or an error wrapping ErrBadClip).
func (t *liveTrack) ReadSample(ctx context.Context) (Sample, error) {
	if t.err != nil {
		return Sample{}, t.err
	}
	if err := ctx.Err(); err != nil {
		return Sample{}, t.fail(err)
	}
	// A read blocked on the stream ends when the file is closed.
	stop := context.AfterFunc(ctx, func() { _ = t.l.Close() })
	defer stop()
	fr, err := t.l.p.next()
	if err != nil {
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case errors.Is(err, io.EOF):
			err = io.EOF
		case t.l.closed.Load() && errors.Is(err, os.ErrClosed):
			err = fmt.Errorf("media: live %s: %w", t.l.path, ErrClosed)
		default:
			err = fmt.Errorf("%w (live %s)", err, t.l.path)
		}
		return Sample{}, t.fail(err)
	}
	if wait := time.Until(t.due(fr.at, time.Now())); wait > 0 {
		if t.timer == nil {
			t.timer = time.NewTimer(wait)
		} else {
			t.timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			t.timer.Stop()
			return Sample{}, t.fail(ctx.Err())
		case <-t.timer.C:
		}
	}
	return Sample{Data: fr.data, Duration: t.duration(fr)}, nil
}

func (t *liveTrack) fail(err error) error {
	t.err = err
	_ = t.l.Close()
	return err
}

// due returns when the frame at stream time at is due. The first frame is
// due at once; a frame more than maxFrameGap late (the writer or the call
// stalled) restarts the clock, so the frames after it play in real time
// again instead of in a burst.
func (t *liveTrack) due(at time.Duration, now time.Time) time.Time {
	if t.n == 0 {
		t.base, t.baseAt = now, at
	}
	due := t.base.Add(at - t.baseAt)
	if now.Sub(due) > maxFrameGap {
		t.base, t.baseAt = now, at
		due = now
	}
	return due
}

// duration returns the Sample.Duration of frame fr: how far the RTP clock
// moves before the next frame. An Opus packet knows its length. A video
// frame's length is only known when the next frame comes, so it is guessed
// from the last interval; the next frame's Duration makes up for a wrong
// guess, so the RTP clock does not drift from the stream's.
func (t *liveTrack) duration(fr liveFrame) time.Duration {
	if t.n == 0 {
		t.rtpAt = fr.at
	} else if iv := fr.at - t.prevAt; iv > 0 {
		t.interval = iv
	}
	t.n++
	t.prevAt = fr.at
	end := fr.at + fr.dur
	if fr.dur == 0 {
		end = fr.at + t.interval
	}
	d := min(max(end-t.rtpAt, minSampleDuration), 2*maxFrameGap)
	t.rtpAt += d
	return d
}

// liveFrame is one frame of a live stream.
type liveFrame struct {
	data []byte
	at   time.Duration // stream time since the first frame, gaps clamped
	dur  time.Duration // its own length if the format says (Opus), else 0
}

// liveParser reads a live stream frame by frame.
type liveParser interface {
	kind() Kind
	// next returns the next frame; io.EOF (unwrapped) at a clean end.
	next() (liveFrame, error)
	// interval is the assumed length of a frame whose length the format
	// does not say, until the stream shows it.
	interval() time.Duration
}

// newLiveParser reads the stream header from r and returns a parser of
// the frames that follow. It reads nothing beyond the header.
func newLiveParser(r io.Reader) (liveParser, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fmt.Errorf("media: live: %w: %w", ErrBadClip, err)
	}
	var p liveParser
	var err error
	switch string(magic[:]) {
	case "OggS":
		p, err = newOggLive(r)
	case "DKIF":
		p, err = newIVFLive(r)
	default:
		return nil, fmt.Errorf("media: live: %w: not an Ogg or IVF stream", ErrBadClip)
	}
	if err == io.EOF {
		return nil, fmt.Errorf("media: live: %w: the stream ends inside its header", ErrBadClip)
	}
	return p, err
}

// readN reads exactly n bytes from r, growing the buffer as they arrive, so
// a size in a header can't make it reserve much more than was sent.
func readN(r io.Reader, n int) ([]byte, error) {
	const chunk = 64 << 10
	buf := make([]byte, 0, min(n, chunk))
	for len(buf) < n {
		k := min(n-len(buf), max(chunk, len(buf)))
		buf = slices.Grow(buf, k)
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+k])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// boundaryErr describes a failed read at a frame or page boundary:
// nothing at all read is the clean end of the stream.
func boundaryErr(err error, what string) error {
	if err == io.EOF {
		return io.EOF
	}
	return readErr(err, what)
}

// readErr describes a failed read of what: a stream cut short wraps
// ErrBadClip; other errors (a closed file, a deadline) are wrapped as they
// are.
func readErr(err error, what string) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("media: live %s: %w: the stream ends inside it", what, ErrBadClip)
	}
	return fmt.Errorf("media: live %s: %w", what, err)
}

// Ogg page layout (RFC 3533): "OggS", version, flags, granule position
// (8), serial (4), sequence (4), CRC (4), segment count, then the segment
// table (lacing values) and the payload.
const (
	oggHeaderLen     = 27
	oggFlagContinued = 0x01
	oggFlagBOS       = 0x02
	oggFlagEOS       = 0x04
)

var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func oggCRC(crc uint32, b []byte) uint32 {
	for _, x := range b {
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^x]
	}
	return crc
}

type oggPage struct {
	flags   byte
	granule uint64
	lacing  []byte
	payload []byte
}

// oggLive parses a live Ogg/Opus stream. Pages may hold several packets;
// a packet may not span pages.
type oggLive struct {
	r       io.Reader
	hdr     [oggHeaderLen]byte
	lacing  [255]byte
	serial  uint32
	seq     uint32
	pages   int
	eos     bool
	started bool   // an audio page has been read
	granule uint64 // of the last audio page
	pos     int64  // stream time of the next packet, in 48 kHz samples

	queue []liveFrame // packets of the current page not yet returned
}

func newOggLive(r io.Reader) (*oggLive, error) {
	o := &oggLive{r: r}
	copy(o.hdr[:], "OggS")
	pg, err := o.readPage(true)
	if err != nil {
		return nil, err
	}
	if pg.flags&oggFlagBOS == 0 || len(pg.lacing) == 0 || pg.lacing[len(pg.lacing)-1] == 255 || !bytes.HasPrefix(pg.payload, []byte("OpusHead")) {
		return nil, fmt.Errorf("media: live ogg: %w: the first page is not an OpusHead (not Opus?)", ErrBadClip)
	}
	head, err := oggreader.ParseOpusHead(pg.payload)
	if err != nil {
		return nil, fmt.Errorf("media: live ogg: %w: OpusHead: %w", ErrBadClip, err)
	}
	if head.Version>>4 != 0 {
		return nil, fmt.Errorf("media: live ogg: %w: Opus mapping version %d", ErrBadClip, head.Version)
	}
	if head.Channels != 1 && head.Channels != 2 {
		return nil, fmt.Errorf("media: live ogg: %w: %d channels, want 1 or 2", ErrBadClip, head.Channels)
	}
	// OpusTags: one packet, on one or more pages of its own.
	for i := 0; ; i++ {
		pg, err := o.readPage(false)
		if err != nil {
			return nil, err
		}
		if i == 0 && !bytes.HasPrefix(pg.payload, []byte("OpusTags")) {
			return nil, fmt.Errorf("media: live ogg: %w: the second page is not OpusTags", ErrBadClip)
		}
		if i > 0 && pg.flags&oggFlagContinued == 0 {
			return nil, fmt.Errorf("media: live ogg: %w: OpusTags cut short", ErrBadClip)
		}
		if len(pg.lacing) > 0 && pg.lacing[len(pg.lacing)-1] != 255 {
			break // the packet ends on this page
		}
		if i+1 >= maxOggTagPages {
			return nil, fmt.Errorf("media: live ogg: %w: OpusTags longer than %d pages", ErrBadClip, maxOggTagPages)
		}
	}
	return o, nil
}

func (o *oggLive) kind() Kind              { return KindAudio }
func (o *oggLive) interval() time.Duration { return 0 }

// readPage reads and checks one page. magicRead: the first page, whose
// "OggS" newLiveParser has read.
func (o *oggLive) readPage(magicRead bool) (oggPage, error) {
	h := o.hdr[:]
	if magicRead {
		h = o.hdr[4:]
	}
	if _, err := io.ReadFull(o.r, h); err != nil {
		return oggPage{}, boundaryErr(err, fmt.Sprintf("ogg page %d", o.pages))
	}
	if string(o.hdr[:4]) != "OggS" {
		return oggPage{}, fmt.Errorf("media: live ogg page %d: %w: no page capture pattern", o.pages, ErrBadClip)
	}
	if o.hdr[4] != 0 || o.hdr[5]&^(oggFlagContinued|oggFlagBOS|oggFlagEOS) != 0 {
		return oggPage{}, fmt.Errorf("media: live ogg page %d: %w: unknown version or flags", o.pages, ErrBadClip)
	}
	serial := binary.LittleEndian.Uint32(o.hdr[14:])
	seq := binary.LittleEndian.Uint32(o.hdr[18:])
	switch {
	case o.pages == 0:
		o.serial = serial
	case serial != o.serial:
		return oggPage{}, fmt.Errorf("media: live ogg page %d: %w: a second logical stream (multiplexed or chained Ogg is not supported)", o.pages, ErrBadClip)
	case seq != o.seq+1:
		return oggPage{}, fmt.Errorf("media: live ogg page %d: %w: page sequence jumps from %d to %d", o.pages, ErrBadClip, o.seq, seq)
	}
	lacing := o.lacing[:o.hdr[26]]
	if _, err := io.ReadFull(o.r, lacing); err != nil {
		return oggPage{}, readErr(err, fmt.Sprintf("ogg page %d", o.pages))
	}
	size := 0
	for _, l := range lacing {
		size += int(l)
	}
	payload, err := readN(o.r, size) // at most 255*255 bytes
	if err != nil {
		return oggPage{}, readErr(err, fmt.Sprintf("ogg page %d", o.pages))
	}
	want := binary.LittleEndian.Uint32(o.hdr[22:])
	var zero [4]byte
	crc := oggCRC(0, o.hdr[:22])
	crc = oggCRC(crc, zero[:])
	crc = oggCRC(crc, o.hdr[26:])
	crc = oggCRC(crc, lacing)
	crc = oggCRC(crc, payload)
	if crc != want {
		return oggPage{}, fmt.Errorf("media: live ogg page %d: %w: checksum mismatch", o.pages, ErrBadClip)
	}
	o.seq = seq
	o.pages++
	return oggPage{flags: o.hdr[5], granule: binary.LittleEndian.Uint64(o.hdr[6:]), lacing: lacing, payload: payload}, nil
}

func (o *oggLive) next() (liveFrame, error) {
	for len(o.queue) == 0 {
		if err := o.nextPage(); err != nil {
			return liveFrame{}, err
		}
	}
	fr := o.queue[0]
	o.queue[0] = liveFrame{}
	o.queue = o.queue[1:]
	return fr, nil
}

// nextPage reads the next audio page into the queue.
func (o *oggLive) nextPage() error {
	pg, err := o.readPage(false)
	if err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return err
	}
	n := o.pages - 1
	if o.eos {
		return fmt.Errorf("media: live ogg page %d: %w: a page after the end of the stream", n, ErrBadClip)
	}
	o.eos = pg.flags&oggFlagEOS != 0
	if pg.flags&oggFlagContinued != 0 || (len(pg.lacing) > 0 && pg.lacing[len(pg.lacing)-1] == 255) {
		return fmt.Errorf("media: live ogg page %d: %w: packets spanning pages are not supported", n, ErrBadClip)
	}
	if len(pg.lacing) == 0 {
		return nil // no packet on this page
	}
	if pg.granule == ^uint64(0) {
		return fmt.Errorf("media: live ogg page %d: %w: no granule position on a page that ends packets", n, ErrBadClip)
	}
	// Split the page into packets and measure them.
	type packet struct {
		data    []byte
		samples int
	}
	var pkts []packet
	var total uint64
	start, size := 0, 0
	for _, l := range pg.lacing {
		size += int(l)
		if l == 255 {
			continue
		}
		data := pg.payload[start : start+size : start+size]
		start += size
		size = 0
		if len(data) == 0 {
			continue // nothing to send
		}
		if len(data) > maxOpusPacket {
			return fmt.Errorf("media: live ogg page %d: %w: Opus packet of %d bytes, at most %d", n, ErrBadClip, len(data), maxOpusPacket)
		}
		samples, err := opusSamples(data)
		if err != nil {
			return fmt.Errorf("media: live ogg page %d: %w: %w", n, ErrBadClip, err)
		}
		pkts = append(pkts, packet{data, samples})
		total += uint64(samples)
	}
	// The granule position is the stream time at the end of the page's
	// last packet. More than the packets hold is a gap in the stream: the
	// packets start that much later (at most a second). Less is the end
	// of the stream trimmed, or the start on the first page: nothing to do.
	if o.started {
		if pg.granule < o.granule {
			return fmt.Errorf("media: live ogg page %d: %w: granule position goes backwards", n, ErrBadClip)
		}
		if d := pg.granule - o.granule; d > total {
			o.pos += int64(min(d-total, opusClockRate*uint64(maxFrameGap/time.Second)))
		}
	}
	o.started = true
	o.granule = pg.granule
	for _, p := range pkts {
		o.queue = append(o.queue, liveFrame{data: p.data, at: samplesDuration(o.pos), dur: samplesDuration(int64(p.samples))})
		o.pos += int64(p.samples)
	}
	return nil
}

// samplesDuration converts 48 kHz samples to time without overflow.
func samplesDuration(n int64) time.Duration {
	return time.Duration(n/opusClockRate)*time.Second + time.Duration(n%opusClockRate)*time.Second/opusClockRate
}

// ivfLive parses a live IVF/VP8 stream.
type ivfLive struct {
	r        io.Reader
	num, den uint64
	frames   int
	prevPTS  uint64
	at       time.Duration
}

func newIVFLive(r io.Reader) (*ivfLive, error) {
	var h [32]byte
	if _, err := io.ReadFull(r, h[4:]); err != nil {
		return nil, readErr(err, "ivf header")
	}
	if v, n := binary.LittleEndian.Uint16(h[4:]), binary.LittleEndian.Uint16(h[6:]); v != 0 || n != 32 {
		return nil, fmt.Errorf("media: live ivf: %w: version %d, header size %d; want 0 and 32", ErrBadClip, v, n)
	}
	if fourcc := string(h[8:12]); fourcc != "VP80" {
		return nil, fmt.Errorf("media: live ivf: %w: codec %q, want VP80", ErrBadClip, fourcc)
	}
	// IVF time of a frame in seconds: pts * numerator / denominator.
	v := &ivfLive{r: r, den: uint64(binary.LittleEndian.Uint32(h[16:])), num: uint64(binary.LittleEndian.Uint32(h[20:]))}
	if v.num == 0 || v.den == 0 {
		return nil, fmt.Errorf("media: live ivf: %w: zero timebase", ErrBadClip)
	}
	return v, nil
}

func (v *ivfLive) kind() Kind { return KindVideo }

// interval: ffmpeg and libvpx write the timebase 1/frame rate.
func (v *ivfLive) interval() time.Duration {
	if d := ptsDuration(1, v.num, v.den); d >= 5*time.Millisecond && d <= maxFrameGap {
		return d
	}
	return defaultFrameInterval
}

func (v *ivfLive) next() (liveFrame, error) {
	var h [12]byte
	if _, err := io.ReadFull(v.r, h[:]); err != nil {
		return liveFrame{}, boundaryErr(err, fmt.Sprintf("ivf frame %d", v.frames))
	}
	size := binary.LittleEndian.Uint32(h[:])
	pts := binary.LittleEndian.Uint64(h[4:])
	if size == 0 || size > maxVP8Frame {
		return liveFrame{}, fmt.Errorf("media: live ivf frame %d: %w: frame of %d bytes, want 1 to %d", v.frames, ErrBadClip, size, maxVP8Frame)
	}
	if v.frames > 0 {
		if pts < v.prevPTS {
			return liveFrame{}, fmt.Errorf("media: live ivf frame %d: %w: timestamps go backwards", v.frames, ErrBadClip)
		}
		v.at += min(ptsDuration(pts-v.prevPTS, v.num, v.den), maxFrameGap)
	}
	data, err := readN(v.r, int(size))
	if err != nil {
		return liveFrame{}, readErr(err, fmt.Sprintf("ivf frame %d", v.frames))
	}
	if v.frames == 0 && data[0]&1 != 0 {
		return liveFrame{}, fmt.Errorf("media: live ivf: %w: first frame is not a VP8 key frame", ErrBadClip)
	}
	v.prevPTS = pts
	v.frames++
	return liveFrame{data: data, at: v.at}, nil
}
