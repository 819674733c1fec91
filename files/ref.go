package files

import (
	"errors"
	"fmt"
	"math"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/callsign/callsign/internal/wire"
)

// Limits of a Ref.
const (
	MaxNameLen  = 255
	MaxTypeLen  = 127
	MaxThumb    = 16 << 10 // a photo's thumbnail, JPEG
	MaxDuration = 24 * 60 * 60 * 1000
	// DefaultLimit is the largest file a node sends or fetches unless
	// configured otherwise (100 MiB).
	DefaultLimit = 100 << 20
	// MaxLimit is the largest limit a node may be configured with.
	MaxLimit = 4 << 30
)

// ErrMalformedRef: a file reference does not parse or breaks a limit.
var ErrMalformedRef = errors.New("malformed file reference")

// Ref names a file in a message: what a recipient needs to fetch it, check
// it and open it. It holds the file's key: it travels only inside an
// end-to-end encrypted message.
type Ref struct {
	Hash Hash
	Key  [KeySize]byte
	Size int64  // plaintext bytes
	Name string // the file's name as the sender gave it (no path)
	Type string // its media type, "application/octet-stream" when unknown
	// Thumb is a photo's thumbnail (JPEG, at most MaxThumb bytes), shown
	// before the photo arrives.
	Thumb []byte
	// DurationMS is a voice note's length in milliseconds (0 otherwise).
	DurationMS int64
}

// Marshal encodes the reference (FileRef).
func (r *Ref) Marshal() []byte {
	var e wire.Encoder
	e.Bytes(1, r.Hash[:])
	e.Bytes(2, r.Key[:])
	e.Uint(3, uint64(r.Size))
	e.String(4, r.Name)
	e.String(5, r.Type)
	e.Bytes(6, r.Thumb)
	e.Uint(7, uint64(r.DurationMS))
	return e.B
}

// UnmarshalRef decodes and checks a reference.
func UnmarshalRef(b []byte) (Ref, error) {
	var r Ref
	d := wire.NewDecoder(b, ErrMalformedRef)
	copy(r.Hash[:], d.Fixed(1, len(r.Hash)))
	copy(r.Key[:], d.Fixed(2, KeySize))
	r.Size = int64(d.Uint(3, MaxLimit))
	r.Name = d.String(4, 1, MaxNameLen)
	r.Type = d.String(5, 1, MaxTypeLen)
	r.Thumb = append([]byte(nil), d.Bytes(6, 1, MaxThumb)...)
	if len(r.Thumb) == 0 {
		r.Thumb = nil
	}
	r.DurationMS = int64(d.Uint(7, MaxDuration))
	if err := d.End(); err != nil {
		return Ref{}, err
	}
	if err := r.Check(); err != nil {
		return Ref{}, err
	}
	return r, nil
}

// Check reports whether the reference's name and type are ones a node
// shows and saves safely.
func (r *Ref) Check() error {
	if err := CheckName(r.Name); err != nil {
		return err
	}
	typ, sub, ok := strings.Cut(r.Type, "/")
	if _, _, err := mime.ParseMediaType(r.Type); err != nil || !ok || typ == "" || sub == "" || len(r.Type) > MaxTypeLen || strings.ContainsAny(r.Type, ";, ") {
		return fmt.Errorf("%w: media type %q", ErrMalformedRef, r.Type)
	}
	if r.Size < 0 || r.Size > MaxLimit || r.DurationMS < 0 || r.DurationMS > MaxDuration || len(r.Thumb) > MaxThumb {
		return fmt.Errorf("%w: size, duration or thumbnail out of bounds", ErrMalformedRef)
	}
	if r.Size > math.MaxInt64-SealedSize(0) {
		return fmt.Errorf("%w: size", ErrMalformedRef)
	}
	return nil
}

// CheckName reports whether name is a file name a node may save: 1 to
// MaxNameLen bytes of UTF-8, no path separator, no control character, not
// "." or "..", no leading or trailing space.
func CheckName(name string) error {
	switch {
	case name == "" || len(name) > MaxNameLen:
		return fmt.Errorf("%w: a file name of %d bytes (1 to %d)", ErrMalformedRef, len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: file name not UTF-8", ErrMalformedRef)
	case strings.ContainsAny(name, `/\`) || name == "." || name == "..":
		return fmt.Errorf("%w: file name %q is a path", ErrMalformedRef, name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: file name holds a control character", ErrMalformedRef)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: file name starts or ends with a space", ErrMalformedRef)
	}
	return nil
}
