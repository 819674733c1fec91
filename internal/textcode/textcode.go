// Package textcode is the text form of the codes a person copies from one
// screen to another (a community's invite, a device link code): a prefix,
// then lowercase base32 (RFC 4648, no padding) of a payload followed by the
// first 4 bytes of SHA-256(label || payload). The checksum catches a typo or
// a cut-off copy before a single field of the payload is read. The payload
// is the caller's (a frame in internal/wire's form).
package textcode

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// CheckLen is the length of the checksum in bytes.
const CheckLen = 4

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Format is one kind of code.
type Format struct {
	Prefix string // "callsign:join/"
	Label  string // the checksum's label, "callsign/v1/invite"
	What   string // what a person calls it, with its article: "an invite"
	MaxLen int    // characters of the whole text
}

// Encode returns the text of payload. It does not check MaxLen: callers
// that drop parts of the payload until it fits compare the length.
func (f Format) Encode(payload []byte) string {
	return f.Prefix + strings.ToLower(b32.EncodeToString(append(bytes.Clone(payload), f.checksum(payload)...)))
}

func (f Format) checksum(payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte(f.Label))
	h.Write(payload)
	return h.Sum(nil)[:CheckLen]
}

// Decode returns the payload of the code s: surrounding white space and the
// letters' case do not matter. It checks the length, that the text is plain
// ASCII, the prefix, the base32 (only the canonical form of a payload) and
// the checksum; each error wraps invalid and says what to check.
func (f Format) Decode(s string, invalid error) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) > f.MaxLen {
		return nil, fmt.Errorf("%w: %d characters, %s has at most %d", invalid, len(s), f.What, f.MaxLen)
	}
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return nil, fmt.Errorf("%w: character %d is not plain ASCII (check for a typo)", invalid, i+1)
		}
	}
	if len(s) < len(f.Prefix) || !strings.EqualFold(s[:len(f.Prefix)], f.Prefix) {
		return nil, fmt.Errorf("%w: it does not start with %q", invalid, f.Prefix)
	}
	body := strings.ToUpper(s[len(f.Prefix):])
	raw, err := b32.DecodeString(body)
	if err == nil && b32.EncodeToString(raw) != body {
		// The decoder ignores a dangling character and stray low bits:
		// only the canonical form is a code.
		err = errors.New("not canonical")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not base32 after %q (check for a typo or a cut-off copy)", invalid, f.Prefix)
	}
	if len(raw) <= CheckLen {
		return nil, fmt.Errorf("%w: too short (check for a cut-off copy)", invalid)
	}
	payload, sum := raw[:len(raw)-CheckLen], raw[len(raw)-CheckLen:]
	if !bytes.Equal(sum, f.checksum(payload)) {
		return nil, fmt.Errorf("%w: checksum mismatch (check for a typo or a cut-off copy)", invalid)
	}
	return payload, nil
}
