package textcode

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var errBad = errors.New("bad code")

// TestTextCode: a payload comes back from its text in any case and with
// surrounding spaces; a typo, a cut-off copy, a dangling character or
// another kind of code is refused with a reason, wrapping the caller's error.
func TestTextCode(t *testing.T) {
	f := Format{Prefix: "callsign:test/", Label: "callsign/v1/test", What: "a test code", MaxLen: 64}
	payload := []byte{0x08, 0x01, 0x12, 0x03, 'a', 'b', 'c'}
	s := f.Encode(payload)
	if s != "callsign:test/baarea3bmjrumztqhu" {
		t.Fatalf("Encode = %s", s)
	}
	for _, in := range []string{s, strings.ToUpper(s), " " + s + "\n"} {
		if got, err := f.Decode(in, errBad); err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("Decode(%q) = %x, %v", in, got, err)
		}
	}
	typo := s[:len(s)-3] + "a" + s[len(s)-2:]
	for name, in := range map[string]string{
		"typo": typo, "cut off": s[:len(s)-2], "dangling character": s + "a", "other prefix": "callsign:join/" + s[len(f.Prefix):],
		"too long": s + strings.Repeat("a", 64), "not ASCII": s + "é", "too short": f.Prefix + "aaaa",
	} {
		if _, err := f.Decode(in, errBad); !errors.Is(err, errBad) {
			t.Errorf("%s: %v, want errBad", name, err)
		}
	}
}
