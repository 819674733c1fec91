package files

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"

	_ "image/gif" // the formats Thumbnail reads
	_ "image/png"

	"golang.org/x/image/draw"
)

// Thumbnails: a photo's message carries a small JPEG of it (Ref.Thumb),
// shown while the photo itself is fetched. The web app makes its own in
// the browser; for a photo sent another way (the CLI), the sending node
// makes one here from the file it sealed.

const (
	// ThumbSide is a thumbnail's longer side, in pixels.
	ThumbSide = 160
	// maxThumbPixels bounds the images Thumbnail decodes (40 megapixels,
	// 160 MB as RGBA).
	maxThumbPixels = 40 << 20
)

// ErrNoThumbnail: the file is no image Thumbnail reads, or too large to
// decode.
var ErrNoThumbnail = errors.New("no thumbnail")

// CanThumbnail reports whether Thumbnail reads images of media type typ.
func CanThumbnail(typ string) bool {
	return typ == "image/jpeg" || typ == "image/png" || typ == "image/gif"
}

// Thumbnail reads a JPEG, PNG or GIF image and returns a JPEG of it whose
// longer side is at most ThumbSide pixels, in at most MaxThumb bytes.
func Thumbnail(r io.Reader) ([]byte, error) {
	var head bytes.Buffer
	cfg, _, err := image.DecodeConfig(io.TeeReader(r, &head))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoThumbnail, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxThumbPixels {
		return nil, fmt.Errorf("%w: an image of %dx%d", ErrNoThumbnail, cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(io.MultiReader(&head, r))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoThumbnail, err)
	}
	w, h := cfg.Width, cfg.Height
	if w >= h && w > ThumbSide {
		w, h = ThumbSide, max(1, h*ThumbSide/w)
	} else if h > w && h > ThumbSide {
		w, h = max(1, w*ThumbSide/h), ThumbSide
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.ApproxBiLinear.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
	for q := 70; q >= 20; q -= 10 {
		var out bytes.Buffer
		if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: q}); err != nil {
			return nil, err
		}
		if out.Len() <= MaxThumb {
			return out.Bytes(), nil
		}
	}
	return nil, fmt.Errorf("%w: no JPEG of it fits %d bytes", ErrNoThumbnail, MaxThumb)
}
