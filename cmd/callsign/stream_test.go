package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"golang.org/x/sys/unix"
)

// closeWithin runs feed.Close and fails the test if it does not return
// within 5 s.
func closeWithin(t *testing.T, feed *fifoFeed) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- feed.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s")
		return nil
	}
}

func gone(path string) func() bool {
	return func() bool { _, err := os.Lstat(path); return errors.Is(err, fs.ErrNotExist) }
}

// TestFIFOFeedCopies: what comes on the source reaches the FIFO's reader
// unchanged; at the source's end the reader sees the end of the stream and
// the private directory goes away.
func TestFIFOFeedCopies(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	feed, err := newFIFOFeed(pr, "audio.ogg")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(feed.path) || filepath.Base(feed.path) != "audio.ogg" {
		t.Errorf("FIFO path %q", feed.path)
	}
	fi, err := os.Lstat(feed.path)
	if err != nil || fi.Mode()&fs.ModeNamedPipe == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("FIFO %v %v", fi, err)
	}
	di, err := os.Stat(filepath.Dir(feed.path))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("directory %v %v", di, err)
	}
	feed.Start()

	want := make([]byte, 300<<10) // more than a pipe holds
	rand.Read(want)
	var wg sync.WaitGroup
	wg.Go(func() {
		pw.Write(want)
		pw.Close()
	})
	r, err := os.Open(feed.path) // as the node does; the feed is opening the other end
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	wg.Wait()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes (%v), want the %d written", len(got), err, len(want))
	}
	poll(t, 5*time.Second, "the stream's directory removed at the end of the source", gone(filepath.Dir(feed.path)))
	if err := closeWithin(t, feed); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestFIFOFeedCloseWithoutReader: a call that ends before the node opened
// the FIFO (declined, say) leaves nothing behind.
func TestFIFOFeedCloseWithoutReader(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	feed, err := newFIFOFeed(pr, "video.ivf")
	if err != nil {
		t.Fatal(err)
	}
	feed.Start() // blocks opening the FIFO: nobody reads it
	if err := closeWithin(t, feed); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !gone(filepath.Dir(feed.path))() {
		t.Fatal("the stream's directory is still there")
	}
	if err := closeWithin(t, feed); err != nil { // idempotent
		t.Fatalf("second Close: %v", err)
	}
}

// TestFIFOFeedCloseWhileWaiting: the call ends while the source has
// nothing to say; Close ends the wait, the reader sees the end of the
// stream.
func TestFIFOFeedCloseWhileWaiting(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	feed, err := newFIFOFeed(pr, "audio.ogg")
	if err != nil {
		t.Fatal(err)
	}
	feed.Start()
	r, err := os.Open(feed.path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pw.Write([]byte("OggS"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "OggS" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if err := closeWithin(t, feed); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after Close the reader got %d bytes, %v; want the end of the stream", n, err)
	}
	if !gone(filepath.Dir(feed.path))() {
		t.Fatal("the stream's directory is still there")
	}
}

// TestFIFOFeedReaderGone: when the node closes the FIFO (the call ended)
// the feed stops without an error.
func TestFIFOFeedReaderGone(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	feed, err := newFIFOFeed(pr, "audio.ogg")
	if err != nil {
		t.Fatal(err)
	}
	feed.Start()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer pw.Close() // ends the writer below once the feed stops reading
	wg.Go(func() {
		chunk := make([]byte, 4096)
		for {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
	})
	r, err := os.Open(feed.path)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(r, make([]byte, 10000))
	r.Close()
	poll(t, 5*time.Second, "the feed to stop", gone(filepath.Dir(feed.path)))
	if err := closeWithin(t, feed); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestCallStreamsStdin: `call NAME --audio -` hands the node a FIFO's
// path and copies standard input into it.
func TestCallStreamsStdin(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	f := callNode()
	got := make(chan string, 1)
	f.onDial = func(req api.CallRequest) {
		go func() { // the node opens the FIFO and reads it for the call
			r, err := os.Open(req.Audio)
			if err != nil {
				got <- "open: " + err.Error()
				return
			}
			defer r.Close()
			b, err := io.ReadAll(r)
			if err != nil {
				got <- "read: " + err.Error()
				return
			}
			got <- string(b)
		}()
	}
	dir := f.start(t)
	b := startCLI(t, pr, "call", "bob", "--audio", "-", "--video", "pattern", "--data", dir)
	f.waitSubscribed(t)
	waitOutput(t, b.err, "calling bob\n")
	pw.Write([]byte("OggS stream from ffmpeg"))
	pw.Close()
	select {
	case s := <-got:
		if s != "OggS stream from ffmpeg" {
			t.Fatalf("the node read %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the node read nothing within 10s")
	}
	f.state("active", "")
	f.state("ended", "remote-hangup")
	if code := b.wait(t); code != exitOK {
		t.Fatalf("exit %d: %s", code, b.err)
	}
	f.mu.Lock()
	req := f.dialed[0]
	f.mu.Unlock()
	if !filepath.IsAbs(req.Audio) || req.Video != "pattern" || !gone(filepath.Dir(req.Audio))() {
		t.Errorf("dialed %+v; the FIFO's directory must be gone after the call", req)
	}
	if strings.Contains(b.err.String(), "warning") {
		t.Errorf("stderr: %s", b.err)
	}
}

// TestAnswerStreamsStdin: `answer --audio -` hands the node a FIFO too,
// and stays until the call ends; Ctrl-C hangs up.
func TestAnswerStreamsStdin(t *testing.T) {
	f := callNode()
	f.calls["c1"] = api.Call{ID: "c1", Peer: "csa1bob", Direction: "in", State: "ringing"}
	f.log = []api.Call{f.calls["c1"]}
	got := make(chan string, 1)
	f.onAction = func(id, action string) {
		switch action {
		case "answer":
			f.mu.Lock()
			path := f.answered[0].Video
			f.mu.Unlock()
			go func() {
				b, err := os.ReadFile(path)
				if err != nil {
					got <- err.Error()
					return
				}
				got <- string(b)
			}()
		case "hangup":
			f.state("ended", "hangup")
		}
	}
	dir := f.start(t)
	b := startCLI(t, strings.NewReader("IVF... from a file"), "answer", "--video", "-", "--data", dir)
	f.waitSubscribed(t)
	select {
	case s := <-got:
		if s != "IVF... from a file" {
			t.Fatalf("the node read %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the node read nothing within 10s")
	}
	waitOutput(t, b.out, "answered c1 (bob)\n")
	f.state("active", "")
	waitOutput(t, b.err, "connected (direct)\n")
	if code := b.stop(t); code != exitOK {
		t.Fatalf("exit %d: %s", code, b.err)
	}
	if !strings.HasSuffix(b.err.String(), "ended: hangup\n") {
		t.Errorf("stderr: %s", b.err)
	}
	f.mu.Lock()
	req := f.answered[0]
	f.mu.Unlock()
	if !strings.HasSuffix(req.Video, "/video.ivf") || req.Audio != "" || !gone(filepath.Dir(req.Video))() {
		t.Errorf("answered with %+v; the FIFO's directory must be gone after the call", req)
	}
}

// TestCallEndsWhileStdinIdle: standard input as a shell gives it, a
// blocking pipe, with nothing to read when the call ends: the CLI still
// exits, removes the FIFO and leaves the pipe blocking as it found it.
func TestCallEndsWhileStdinIdle(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	stdin := os.NewFile(uintptr(p[0]), "stdin") // blocking: not in Go's poller
	defer stdin.Close()
	pw := os.NewFile(uintptr(p[1]), "stdin writer")
	defer pw.Close()
	f := callNode()
	opened := make(chan *os.File, 1)
	f.onDial = func(req api.CallRequest) {
		go func() {
			r, err := os.Open(req.Audio)
			if err != nil {
				t.Error(err)
			}
			opened <- r
		}()
	}
	dir := f.start(t)
	b := startCLI(t, stdin, "call", "bob", "--audio", "-", "--data", dir)
	f.waitSubscribed(t)
	waitOutput(t, b.err, "calling bob\n")
	var r *os.File
	select {
	case r = <-opened:
		if r == nil {
			t.FailNow()
		}
		defer r.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not open the FIFO within 10s")
	}
	pw.Write([]byte("OggS"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	f.state("ended", "remote-hangup")
	if code := b.wait(t); code != exitOK {
		t.Fatalf("exit %d: %s", code, b.err)
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("the node read %d bytes, %v after the call; want the end of the stream", n, err)
	}
	fl, err := unix.FcntlInt(uintptr(p[0]), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Fatalf("standard input left non-blocking (flags %#x, %v)", fl, err)
	}
}
