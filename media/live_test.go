//go:build unix

package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/callsign/callsign/internal/check"
)

// paceTolerance is how much earlier than its stream time a frame may come
// out (timer and clock granularity). Only lower bounds are asserted: a
// slow machine makes frames late, never early.
const paceTolerance = 5 * time.Millisecond

func mkfifo(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "live")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	return p
}

// fifoWriter is the producer: a goroutine that opens the FIFO for writing
// (once a reader has it open) and runs write on it. The test waits for it.
type fifoWriter struct {
	written atomic.Int64 // bytes whose Write has returned
	done    chan struct{}
	err     error // after done
}

func startWriter(t *testing.T, path string, write func(w *fifoWriter, f *os.File) error) *fifoWriter {
	return startWriterAfter(t, path, 0, write)
}

// startWriterAfter is startWriter with the writer opening the FIFO only
// after a delay.
func startWriterAfter(t *testing.T, path string, delay time.Duration, write func(w *fifoWriter, f *os.File) error) *fifoWriter {
	t.Helper()
	w := &fifoWriter{done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(w.done)
		if delay > 0 {
			<-time.After(delay)
		}
		// O_NONBLOCK: the open fails (ENXIO) instead of hanging while no
		// reader has the FIFO open; poll until one has.
		var f *os.File
		deadline := time.Now().Add(10 * time.Second)
		for {
			var err error
			if f, err = os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				break
			}
			if time.Now().After(deadline) {
				w.err = err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		defer f.Close()
		w.err = write(w, f)
	})
	t.Cleanup(wg.Wait)
	return w
}

// put writes b and counts it.
func (w *fifoWriter) put(f *os.File, b []byte) error {
	n, err := f.Write(b)
	w.written.Add(int64(n))
	return err
}

func allAtOnce(data []byte) func(*fifoWriter, *os.File) error {
	return func(w *fifoWriter, f *os.File) error {
		for len(data) > 0 { // in pieces, so the count follows the reader
			n := min(len(data), 4096)
			if err := w.put(f, data[:n]); err != nil {
				return err
			}
			data = data[n:]
		}
		return nil
	}
}

// streamChunks splits a stream into its header and one chunk per frame
// (per page for Ogg), each with its stream time.
func streamChunks(t *testing.T, data []byte) (header []byte, chunks [][]byte, at []time.Duration) {
	t.Helper()
	if bytes.HasPrefix(data, []byte("OggS")) {
		pages := oggRawPages(t, data)
		var d time.Duration
		for _, p := range pages[2:] {
			chunks = append(chunks, p)
			at = append(at, d)
			d += 20 * time.Millisecond // the tone: one 20 ms packet per page
		}
		return bytes.Join(pages[:2], nil), chunks, at
	}
	den, num := binary.LittleEndian.Uint32(data[16:]), binary.LittleEndian.Uint32(data[20:])
	for off := 32; off < len(data); {
		n := 12 + int(binary.LittleEndian.Uint32(data[off:]))
		pts := binary.LittleEndian.Uint64(data[off+4:])
		chunks = append(chunks, data[off:off+n])
		at = append(at, time.Duration(pts)*time.Second*time.Duration(num)/time.Duration(den))
		off += n
	}
	return data[:32], chunks, at
}

// inRealTime writes the header, then each frame at its stream time, as
// ffmpeg -re does.
func inRealTime(t *testing.T, data []byte) func(*fifoWriter, *os.File) error {
	header, chunks, at := streamChunks(t, data)
	return func(w *fifoWriter, f *os.File) error {
		if err := w.put(f, header); err != nil {
			return err
		}
		start := time.Now()
		timer := time.NewTimer(0)
		defer timer.Stop()
		for i, c := range chunks {
			<-timer.C
			if err := w.put(f, c); err != nil {
				return err
			}
			if i+1 < len(at) {
				timer.Reset(time.Until(start.Add(at[i+1])))
			}
		}
		return nil
	}
}

func openLiveTrack(t *testing.T, path string) (Input, Track) {
	t.Helper()
	in, err := openSource(path, 10*time.Second)
	if err != nil {
		t.Fatalf("openSource: %v", err)
	}
	t.Cleanup(func() { _ = in.Close() })
	if _, ok := in.(*Live); !ok {
		t.Fatalf("openSource on a FIFO returned a %T, want *Live", in)
	}
	tracks, err := in.Tracks()
	if err != nil || len(tracks) != 1 {
		t.Fatalf("Tracks = %v, %v", tracks, err)
	}
	return in, tracks[0]
}

// playOut reads a live track to its end, noting when each frame came out.
func playOut(t *testing.T, tr Track, each func(i int, s Sample)) (samples []Sample, times []time.Time) {
	t.Helper()
	for {
		s, err := tr.ReadSample(context.Background())
		if err == io.EOF {
			return samples, times
		}
		if err != nil {
			t.Fatalf("ReadSample after %d frames: %v", len(samples), err)
		}
		samples = append(samples, s)
		times = append(times, time.Now())
		if each != nil {
			each(len(samples)-1, s)
		}
		if len(samples) > 10000 {
			t.Fatal("no end")
		}
	}
}

// checkPlayed: the track played the clip's frames in order, each no
// earlier than its stream time, and its Durations add up to the clip's.
func checkPlayed(t *testing.T, clip *Clip, samples []Sample, times []time.Time) {
	t.Helper()
	if len(samples) != clip.Frames() {
		t.Fatalf("%d frames played, want the clip's %d", len(samples), clip.Frames())
	}
	var at, total time.Duration
	for i, s := range samples {
		if !bytes.Equal(s.Data, clip.frames[i].Data) {
			t.Fatalf("frame %d is not the clip's frame %d", i, i)
		}
		if el := times[i].Sub(times[0]); el < at-paceTolerance {
			t.Errorf("frame %d came out %v after the first, before its time %v", i, el, at)
		}
		if s.Duration < minSampleDuration {
			t.Errorf("frame %d lasts %v", i, s.Duration)
		}
		at += clip.frames[i].Duration
		total += s.Duration
	}
	if d := total - clip.Duration(); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("Durations add up to %v, want %v", total, clip.Duration())
	}
}

// TestLiveFasterThanRealTime: a writer that writes the whole stream at
// once (ffmpeg without -re) is paced by the stream's timestamps; the end
// of the stream ends the track.
func TestLiveFasterThanRealTime(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		clip *Clip
	}{{"tone", toneOgg, Tone()}, {"pattern", patternIVF, Pattern()}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := mkfifo(t)
			w := startWriter(t, path, allAtOnce(tc.data))
			in, tr := openLiveTrack(t, path)
			if in.Kind() != tc.clip.Kind() || tr.Kind() != tc.clip.Kind() {
				t.Errorf("kind %s, track %s; want %s", in.Kind(), tr.Kind(), tc.clip.Kind())
			}
			samples, times := playOut(t, tr, nil)
			checkPlayed(t, tc.clip, samples, times)
			<-w.done
			if w.err != nil {
				t.Errorf("writer: %v", w.err)
			}
			if _, err := tr.ReadSample(context.Background()); err != io.EOF {
				t.Errorf("ReadSample after the end = %v, want io.EOF", err)
			}
		})
	}
}

// TestLiveReadAhead: a writer far ahead of real time is held back by the
// pipe: the track reads no more than the frame it plays.
func TestLiveReadAhead(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("pipe size from F_GETPIPE_SZ")
	}
	data, err := os.ReadFile("testdata/bench-1mbps.ivf") // 244 KB, 2 s
	if err != nil {
		t.Fatal(err)
	}
	clip, err := ParseIVF(data)
	if err != nil {
		t.Fatal(err)
	}
	path := mkfifo(t)
	w := startWriter(t, path, allAtOnce(data))
	in, tr := openLiveTrack(t, path)
	const fGetPipeSz = 1032
	pipeSize, _, errno := syscall.Syscall(syscall.SYS_FCNTL, in.(*Live).f.Fd(), fGetPipeSz, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if int(pipeSize) >= len(data)/2 {
		t.Skipf("pipe of %d bytes holds too much of the clip", pipeSize)
	}
	consumed := int64(32)
	ahead := int64(0)
	samples, times := playOut(t, tr, func(i int, s Sample) {
		consumed += 12 + int64(len(s.Data))
		ahead = max(ahead, w.written.Load()-consumed)
	})
	checkPlayed(t, clip, samples, times)
	if ahead > int64(pipeSize) {
		t.Errorf("the writer got %d bytes ahead of the frame playing; the pipe holds %d", ahead, pipeSize)
	}
	t.Logf("writer at most %d bytes ahead, pipe %d", ahead, pipeSize)
}

// TestLiveRealTime: a writer that writes in real time (ffmpeg -re) has its
// frames played in order, as they come, and the track ends with it.
func TestLiveRealTime(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		clip *Clip
	}{{"tone", toneOgg, Tone()}, {"pattern", patternIVF, Pattern()}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := mkfifo(t)
			w := startWriter(t, path, inRealTime(t, tc.data))
			_, tr := openLiveTrack(t, path)
			samples, times := playOut(t, tr, nil)
			checkPlayed(t, tc.clip, samples, times)
			<-w.done
			if w.err != nil {
				t.Errorf("writer: %v", w.err)
			}
		})
	}
}

// TestLiveStall: after the writer stalls for more than a second, the
// frames that were due meanwhile are played in real time from when they
// come, not in a burst.
func TestLiveStall(t *testing.T) {
	header, chunks, _ := streamChunks(t, toneOgg)
	const first = 20
	resume := make(chan struct{})
	path := mkfifo(t)
	w := startWriter(t, path, func(w *fifoWriter, f *os.File) error {
		if err := w.put(f, bytes.Join(append([][]byte{header}, chunks[:first]...), nil)); err != nil {
			return err
		}
		<-resume
		stall := time.NewTimer(1300 * time.Millisecond)
		<-stall.C
		return w.put(f, bytes.Join(chunks[first:], nil))
	})
	_, tr := openLiveTrack(t, path)
	samples, times := playOut(t, tr, func(i int, s Sample) {
		if i == first-1 {
			close(resume)
		}
	})
	if len(samples) != len(chunks) {
		t.Fatalf("%d frames, want %d", len(samples), len(chunks))
	}
	if gap := times[first].Sub(times[first-1]); gap < time.Second {
		t.Fatalf("frame %d came %v after frame %d; the writer stalled 1.3s", first, gap, first-1)
	}
	for i := first + 1; i < len(samples); i++ {
		want := time.Duration(i-first) * 20 * time.Millisecond
		if el := times[i].Sub(times[first]); el < want-paceTolerance {
			t.Fatalf("frame %d came %v after the stall, before its time %v: a burst", i, el, want)
		}
	}
	<-w.done
}

// probeCtx tells when its Err is first called.
type probeCtx struct {
	context.Context
	once    sync.Once
	checked chan struct{}
}

func (c *probeCtx) Err() error {
	c.once.Do(func() { close(c.checked) })
	return c.Context.Err()
}

// TestLiveCancel: the end of the context, or Close, ends a ReadSample
// waiting for a frame that does not come, and releases the stream: its
// writer gets EPIPE.
func TestLiveCancel(t *testing.T) {
	header, _, _ := streamChunks(t, patternIVF)
	for _, how := range []string{"context", "close"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			path := mkfifo(t)
			released := make(chan struct{})
			var releaseOnce sync.Once
			release := func() { releaseOnce.Do(func() { close(released) }) }
			defer release() // also when the test fails
			w := startWriter(t, path, func(w *fifoWriter, f *os.File) error {
				if err := w.put(f, header); err != nil {
					return err
				}
				<-released
				// Poll until the reader's end is gone.
				deadline := time.Now().Add(10 * time.Second)
				for time.Now().Before(deadline) {
					if _, err := f.Write([]byte{0}); err != nil {
						return err
					}
					time.Sleep(5 * time.Millisecond)
				}
				return nil
			})
			in, tr := openLiveTrack(t, path)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			probe := &probeCtx{Context: ctx, checked: make(chan struct{})}
			errc := make(chan error, 1)
			go func() {
				_, err := tr.ReadSample(probe)
				errc <- err
			}()
			// Once ReadSample has checked its context, it is (or is about
			// to be) blocked reading a frame that does not come: end it.
			<-probe.checked
			if how == "context" {
				cancel()
			} else if err := in.Close(); err != nil {
				t.Fatal(err)
			}
			var err error
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Fatal("ReadSample still blocked 10s after the end of its context")
			}
			if how == "context" && !errors.Is(err, context.Canceled) || how == "close" && !errors.Is(err, ErrClosed) {
				t.Errorf("ReadSample = %v", err)
			}
			release()
			<-w.done
			if !errors.Is(w.err, syscall.EPIPE) {
				t.Errorf("writer after the reader's end: %v, want EPIPE (the stream released)", w.err)
			}
		})
	}
}

// TestLiveOpen: opening a FIFO waits for its header, at most the deadline,
// and fails clearly.
func TestLiveOpen(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name  string
		write func(w *fifoWriter, f *os.File) error // nil: no writer
		want  string
	}{
		{"no writer", nil, "no data on FIFO within 300ms"},
		{"silent writer", func(*fifoWriter, *os.File) error {
			<-time.After(2 * timeout)
			return nil
		}, "no data on FIFO within 300ms"},
		{"half a header", func(w *fifoWriter, f *os.File) error {
			if err := w.put(f, toneOgg[:40]); err != nil {
				return err
			}
			<-time.After(2 * timeout)
			return nil
		}, "stream header incomplete within 300ms"},
		{"not a stream", func(w *fifoWriter, f *os.File) error {
			return w.put(f, []byte("RIFF....WAVEfmt "))
		}, "not an Ogg or IVF stream"},
		{"writer gone after the header", func(w *fifoWriter, f *os.File) error {
			return w.put(f, patternIVF[:32])
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := mkfifo(t)
			var w *fifoWriter
			if tc.write != nil {
				w = startWriter(t, path, tc.write)
			}
			start := time.Now()
			in, err := openSource(path, timeout)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer in.Close()
				tr, _ := in.Tracks()
				if _, err := tr[0].ReadSample(context.Background()); err != io.EOF {
					t.Errorf("a stream of a header only: ReadSample = %v, want io.EOF", err)
				}
				return
			}
			if err == nil {
				in.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, ErrBadClip) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("openSource = %v, want an ErrBadClip saying %q", err, tc.want)
			}
			if strings.Contains(tc.want, "within") && time.Since(start) < timeout {
				t.Errorf("gave up after %v, before the %v deadline", time.Since(start), timeout)
			}
			if w != nil {
				<-w.done
			}
		})
	}
}

// TestLiveOpenWithoutWriteEnd: a FIFO we may not write to (so can't
// hold open for writing ourselves) still waits for a late writer, and
// still gives up at the deadline.
func TestLiveOpenWithoutWriteEnd(t *testing.T) {
	orig := openWriteEnd
	t.Cleanup(func() { openWriteEnd = orig })
	openWriteEnd = func(path string) (*os.File, error) {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.EACCES}
	}

	path := mkfifo(t)
	start := time.Now()
	if _, err := openSource(path, 300*time.Millisecond); !errors.Is(err, ErrBadClip) || !strings.Contains(err.Error(), "no data on FIFO within 300ms") {
		t.Errorf("no writer: %v", err)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("gave up after %v, before the deadline", el)
	}

	path = mkfifo(t)
	w := startWriterAfter(t, path, 200*time.Millisecond, allAtOnce(toneOgg))
	_, tr := openLiveTrack(t, path)
	samples, times := playOut(t, tr, nil)
	checkPlayed(t, Tone(), samples, times)
	<-w.done
}

// TestOpenSource: a regular file is a looping clip any number of calls
// play; a live stream plays once; other files are refused.
func TestOpenSource(t *testing.T) {
	in, err := OpenSource(writeFile(t, "tone.ogg", toneOgg))
	if err != nil {
		t.Fatal(err)
	}
	if in.Kind() != KindAudio {
		t.Errorf("kind %s", in.Kind())
	}
	for range 2 {
		if tr, err := in.Tracks(); err != nil || len(tr) != 1 {
			t.Errorf("a clip's Tracks = %v, %v", tr, err)
		}
	}
	if err := in.Close(); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing"), writeFile(t, "x.ogg", []byte("OggS nonsense"))} {
		if in, err := OpenSource(bad); !errors.Is(err, ErrBadClip) {
			t.Errorf("OpenSource(%s) = %v, %v; want ErrBadClip", bad, in, err)
		}
	}
	if runtime.GOOS == "linux" {
		// A character device the poller can't wait on.
		if in, err := OpenSource("/dev/null"); !errors.Is(err, ErrBadClip) {
			t.Errorf("OpenSource(/dev/null) = %v, %v; want ErrBadClip", in, err)
		}
	}

	path := mkfifo(t)
	startWriter(t, path, allAtOnce(toneOgg[:1000]))
	live, _ := openLiveTrack(t, path)
	if _, err := live.Tracks(); !errors.Is(err, errLivePlayed) {
		t.Errorf("second Tracks = %v, want errLivePlayed", err)
	}
	if err := live.Close(); err != nil {
		t.Error(err)
	}
	if err := live.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// audioSink keeps a copy of every audio packet a call receives.
type audioSink struct {
	mu   sync.Mutex
	pkts []rtp.Packet
}

func (s *audioSink) WriteRTP(k Kind, p *rtp.Packet) error {
	if k == KindAudio {
		s.mu.Lock()
		s.pkts = append(s.pkts, *p.Clone())
		s.mu.Unlock()
	}
	return nil
}

func (s *audioSink) Close() error { return nil }

func (s *audioSink) packets() []rtp.Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rtp.Packet(nil), s.pkts...)
}

// TestLiveCall: a live Opus stream on a FIFO, the caller's source, reaches
// the callee packet for packet, in order, with RTP timestamps 20 ms apart.
func TestLiveCall(t *testing.T) {
	path := mkfifo(t)
	w := startWriter(t, path, allAtOnce(toneOgg))
	in, err := openSource(path, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	eA := newEngine(t, Config{})
	eB := newEngine(t, Config{})
	sink := &audioSink{}
	caller := newCall(t, eA, CallConfig{ID: "live-1", Outgoing: true, Source: in})
	callee := newCall(t, eB, CallConfig{ID: "live-1", Sink: sink})
	wA, wB := watch(t, caller), watch(t, callee)
	connect(t, caller, callee, nil)
	wA.wait(t, Connected, 10*time.Second)
	wB.wait(t, Connected, 10*time.Second)
	frames := Tone().frames
	check.Until(t, 10*time.Second, "the whole stream sent", func() bool {
		return caller.Stats().PacketsSent >= uint64(len(frames))
	})
	<-w.done
	// Loopback loses nothing, but the callee may still be finishing
	// DTLS when the first packets arrive: allow for a few lost at the
	// start.
	check.Until(t, 10*time.Second, "the stream received", func() bool {
		p := sink.packets()
		return len(p) > 0 && bytes.Equal(p[len(p)-1].Payload, frames[len(frames)-1].Data)
	})
	pkts := sink.packets()
	if len(pkts) < len(frames)-10 {
		t.Errorf("callee received %d of %d packets", len(pkts), len(frames))
	}
	// The last packet is the last frame: number the others back from it.
	last := pkts[len(pkts)-1].Timestamp
	for i, p := range pkts {
		if i > 0 && int32(p.Timestamp-pkts[i-1].Timestamp) <= 0 {
			t.Fatalf("packet %d out of order", i)
		}
		back := int(last-p.Timestamp) / 960
		if int(last-p.Timestamp)%960 != 0 || back >= len(frames) {
			t.Fatalf("packet with timestamp %d, %d before the last: not on the 20 ms grid", p.Timestamp, last-p.Timestamp)
		}
		if i := len(frames) - 1 - back; !bytes.Equal(p.Payload, frames[i].Data) {
			t.Fatalf("packet at frame %d's timestamp is not frame %d", i, i)
		}
	}
	if sent := caller.Stats().PacketsSent; sent != uint64(len(frames)) {
		t.Errorf("caller sent %d packets for a stream of %d frames", sent, len(frames))
	}
}
