package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A live stream as call media. The node opens media files by path on its
// own machine and takes a FIFO's path as a live stream, so for `--audio -`
// the CLI makes a FIFO in a private directory, hands the node its path and
// copies its standard input into it:
//
//	ffmpeg -re -i talk.mp3 -c:a libopus -f ogg - | callsign call alice --audio -
//
// The FIFO has one reader, the node, which opens it once for the call.

// fifoFeed copies a reader into a FIFO that it creates in a private
// directory (mode 0700). Start opens the FIFO for writing, which blocks
// until the reader opens it, then copies; at the end of the source the
// FIFO is closed and the directory removed, so the reader sees the end of
// the stream. Close stops the copy at any point and waits for it.
type fifoFeed struct {
	path string // absolute path of the FIFO
	dir  string
	src  io.Reader

	mu     sync.Mutex
	w      *os.File // the FIFO's write end, once open
	closed bool

	wg  sync.WaitGroup
	err error // the copy's error; read after wg.Wait
}

// newFIFOFeed makes a FIFO named name in a new private directory for src.
func newFIFOFeed(src io.Reader, name string) (*fifoFeed, error) {
	dir, err := os.MkdirTemp("", "callsign-stream-")
	if err != nil {
		return nil, fmt.Errorf("make a directory for the stream: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("make a directory for the stream: %w", err)
	}
	path := filepath.Join(dir, name)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("make a FIFO for the stream: %w", err)
	}
	if path, err = filepath.Abs(path); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &fifoFeed{path: path, dir: dir, src: src}, nil
}

// Start copies the source into the FIFO in the background.
func (f *fifoFeed) Start() { f.wg.Go(f.feed) }

func (f *fifoFeed) feed() {
	defer os.RemoveAll(f.dir)
	w, err := os.OpenFile(f.path, os.O_WRONLY, 0) // blocks until the reader opens it
	if err != nil {
		f.err = err
		return
	}
	defer w.Close()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.w = w
	f.mu.Unlock()
	f.err = copyStream(w, f.src)
	if errors.Is(f.err, syscall.EPIPE) {
		f.err = nil // the reader is done with the stream: the call ended
	}
}

// copyStream copies src into w until src ends. It reads and writes by hand
// rather than with io.Copy so that no splice or sendfile bypasses the
// deadlines Close sets.
func copyStream(w io.Writer, src io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Close stops the copy, closes the FIFO, removes its directory and waits
// for the goroutine Start began. It returns the copy's error, if any, and
// none for a copy Close cut short. It is idempotent.
func (f *fifoFeed) Close() error {
	f.mu.Lock()
	wasClosed := f.closed
	f.closed = true
	w := f.w
	f.mu.Unlock()
	if wasClosed {
		f.wg.Wait()
		return nil
	}
	if w != nil {
		w.Close() // ends a blocked write; the reader sees the end of the stream
	} else if r, err := os.OpenFile(f.path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
		// The feed may be blocked opening the FIFO, waiting for a reader
		// that will not come: be that reader until it has given up.
		defer r.Close()
	}
	if d, ok := f.src.(interface{ SetReadDeadline(time.Time) error }); ok {
		d.SetReadDeadline(time.Now()) // ends a blocked read of the source
	}
	f.wg.Wait()
	os.RemoveAll(f.dir)
	if errors.Is(f.err, os.ErrDeadlineExceeded) || errors.Is(f.err, os.ErrClosed) {
		return nil // Close cut the copy short
	}
	return f.err
}

// stdinStream returns a reader of the standard input in for a live stream,
// and a function that releases it. Reads of a pipe or FIFO go through a
// non-blocking duplicate of its descriptor, so that a read waiting for
// data ends when the call does; a terminal is refused, because what it
// types is not Ogg or IVF.
func stdinStream(in io.Reader) (io.Reader, func(), error) {
	f, ok := in.(*os.File)
	if !ok {
		return in, func() {}, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("standard input: %w", err)
	}
	if isTerminal(f) {
		return nil, nil, usageError{
			msg:  "standard input is a terminal, not a stream",
			hint: "pipe the stream in, for example: ffmpeg -re -i talk.mp3 -c:a libopus -f ogg - | callsign call NAME --audio -",
		}
	}
	if fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) == 0 {
		return f, func() {}, nil // a file or a device such as /dev/null: its reads do not wait
	}
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return nil, nil, fmt.Errorf("standard input: %w", err)
	}
	syscall.CloseOnExec(fd)
	// Non-blocking mode belongs to the open file, which the duplicate
	// shares with the standard input; release puts it back.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, nil, fmt.Errorf("standard input: %w", err)
	}
	d := os.NewFile(uintptr(fd), "standard input")
	return d, func() {
		d.Close()
		syscall.SetNonblock(int(f.Fd()), false)
	}, nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	_, err = unix.IoctlGetTermios(int(f.Fd()), ioctlReadTermios)
	return err == nil
}
