// Package mediatest holds helpers for tests that check recorded calls.
package mediatest

import (
	"io"
	"os"
	"testing"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Frames decodes a recorded call, page by page and frame by frame, and
// returns how many Opus pages the Ogg file and how many VP8 frames the IVF
// file hold. A file that does not decode fails the test.
func Frames(tb testing.TB, oggPath, ivfPath string) (audio, video int) {
	tb.Helper()
	f, err := os.Open(oggPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	or, _, err := oggreader.NewWith(f)
	if err != nil {
		tb.Fatalf("%s: %v", oggPath, err)
	}
	for {
		if _, _, err := or.ParseNextPage(); err != nil {
			if err != io.EOF {
				tb.Fatalf("%s: %v", oggPath, err)
			}
			break
		}
		audio++
	}
	g, err := os.Open(ivfPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer g.Close()
	ir, _, err := ivfreader.NewWith(g)
	if err != nil {
		tb.Fatalf("%s: %v", ivfPath, err)
	}
	for {
		if _, _, err := ir.ParseNextFrame(); err != nil {
			if err != io.EOF {
				tb.Fatalf("%s: %v", ivfPath, err)
			}
			break
		}
		video++
	}
	return audio, video
}
