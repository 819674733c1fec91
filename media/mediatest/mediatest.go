// Package mediatest holds helpers for tests that check recorded calls:
// they decode a recording the way a player would and fail the test when it
// does not.
package mediatest

import (
	"errors"
	"io"
	"os"
	"testing"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Frames returns OggPackets of oggPath and IVFFrames of ivfPath.
func Frames(tb testing.TB, oggPath, ivfPath string) (audio, video int) {
	tb.Helper()
	return OggPackets(tb, oggPath), IVFFrames(tb, ivfPath)
}

// OggPackets decodes an Ogg/Opus recording page by page and returns the
// number of audio pages (one Opus packet each), the OpusHead and OpusTags
// pages not counted. The header must say 2 channels at 48 kHz.
func OggPackets(tb testing.TB, path string) int {
	tb.Helper()
	return OggPacketsCheck(tb, path, nil)
}

// OggPacketsCheck is OggPackets that also hands every audio packet to
// check (when not nil) and fails the test on its error.
func OggPacketsCheck(tb testing.TB, path string, check func(packet []byte) error) int {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, head, err := oggreader.NewWith(f)
	if err != nil {
		tb.Fatalf("recorded ogg %s: %v", path, err)
	}
	if head.Channels != 2 || head.SampleRate != 48000 {
		tb.Errorf("ogg header: %d channels at %d Hz, want 2 at 48000", head.Channels, head.SampleRate)
	}
	n := 0
	for {
		payload, page, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			tb.Fatalf("recorded ogg page %d: %v", n, err)
		}
		if ht, ok := page.HeaderType(payload); ok && (ht == oggreader.HeaderOpusTags || ht == oggreader.HeaderOpusID) {
			continue
		}
		if len(payload) == 0 {
			continue
		}
		if check != nil {
			if err := check(payload); err != nil {
				tb.Fatalf("recorded ogg page %d: %v", n, err)
			}
		}
		n++
	}
}

// IVFFrames decodes an IVF/VP8 recording frame by frame and returns the
// number of frames; the codec must be VP8 and the first frame a key frame.
func IVFFrames(tb testing.TB, path string) int {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, head, err := ivfreader.NewWith(f)
	if err != nil {
		tb.Fatalf("recorded ivf %s: %v", path, err)
	}
	if head.FourCC != "VP80" {
		tb.Errorf("ivf codec %q, want VP80", head.FourCC)
	}
	n := 0
	for {
		frame, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			tb.Fatalf("recorded ivf frame %d: %v", n, err)
		}
		if n == 0 && (len(frame) == 0 || frame[0]&1 != 0) {
			tb.Fatal("recording starts without a VP8 key frame")
		}
		n++
	}
}
