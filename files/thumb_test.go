package files

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"
)

func TestThumbnail(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 1200, 800))
	for y := range 800 {
		for x := range 1200 {
			src.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	var p bytes.Buffer
	if err := png.Encode(&p, src); err != nil {
		t.Fatal(err)
	}
	th, err := Thumbnail(bytes.NewReader(p.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(th))
	if err != nil {
		t.Fatalf("the thumbnail is no JPEG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != ThumbSide || b.Dy() != ThumbSide*800/1200 || len(th) > MaxThumb {
		t.Errorf("a thumbnail of %v in %d bytes, want %dx%d in at most %d", b, len(th), ThumbSide, ThumbSide*800/1200, MaxThumb)
	}
	for name, r := range map[string]*bytes.Reader{
		"text":            bytes.NewReader([]byte(strings.Repeat("not an image ", 10))),
		"a truncated PNG": bytes.NewReader(p.Bytes()[:p.Len()/2]),
	} {
		if _, err := Thumbnail(r); !errors.Is(err, ErrNoThumbnail) {
			t.Errorf("%s: %v, want ErrNoThumbnail", name, err)
		}
	}
	// A header claiming a huge image is refused before decoding.
	huge := image.NewGray(image.Rect(0, 0, 1, 1))
	var hp bytes.Buffer
	png.Encode(&hp, huge)
	b := hp.Bytes()
	b[16], b[17], b[18], b[19] = 0, 0, 0x40, 0 // width 16384
	b[20], b[21], b[22], b[23] = 0, 0, 0x40, 0 // height 16384
	binary.BigEndian.PutUint32(b[29:33], crc32.ChecksumIEEE(b[12:29]))
	if _, err := Thumbnail(bytes.NewReader(b)); !errors.Is(err, ErrNoThumbnail) || !strings.Contains(err.Error(), "16384x16384") {
		t.Errorf("a 16384x16384 image: %v, want it refused by its size", err)
	}
}
