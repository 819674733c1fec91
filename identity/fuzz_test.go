package identity

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzUnmarshalDeviceCert(f *testing.F) {
	f.Add(unhex(f, goldenCert))
	c := testCert(f)
	f.Add(c.Marshal()[:40])
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x20})
	f.Add(append(c.Marshal(), 0x88, 0x01, 0x05)) // an addition: refused
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := UnmarshalDeviceCert(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedCert) {
				t.Fatalf("error %v does not wrap ErrMalformedCert", err)
			}
			return
		}
		// One byte form per certificate: re-encoding gives the input back.
		if enc := c.Marshal(); !bytes.Equal(enc, b) {
			t.Fatalf("round trip changed the encoding:\n in %x\nout %x", b, enc)
		}
		// Verify never panics on decoded input and fails only for the documented reasons.
		if err := c.Verify(c.Created); err != nil && !errors.Is(err, ErrCertSignature) {
			t.Fatalf("Verify of a decoded certificate: %v", err)
		}
	})
}

func FuzzNormalizeHandle(f *testing.F) {
	for _, s := range []string{"alice", "@Alice", "ａｌｉｃｅ", "pay.pal", "pаypal", "田中さん", "مرحبا123",
		"résumé", "re\u0301sume\u0301", "al~ce", "al\u200dce", "ab..c", "straße", "Ελληνικά", "\u0301abc", "rnicrosoft"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeHandle(s)
		if err != nil {
			var he *HandleError
			if !errors.As(err, &he) || !errors.Is(err, ErrInvalidHandle) || he.Reason == "" {
				t.Fatalf("NormalizeHandle(%q): error %v is not a *HandleError with a reason", s, err)
			}
			return
		}
		if again, err := NormalizeHandle(n); err != nil || again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, n, again, err)
		}
		if c := utf8.RuneCountInString(n); c < MinHandleLen || c > MaxHandleLen || strings.ContainsAny(n, "~@ /") {
			t.Fatalf("NormalizeHandle(%q) = %q breaks the rules", s, n)
		}
		if HandleKey(n) == "" {
			t.Fatalf("HandleKey(%q) is empty", n)
		}
		if HandleKey(n) != HandleKey(n) {
			t.Fatal("HandleKey is not deterministic")
		}
		sc := SelfCertHandle(n, seedKey(t, "alice").Public())
		if name, _, err := ParseSelfCert(sc); err != nil || name != n {
			t.Fatalf("self-certifying handle %q of %q: %q, %v", sc, n, name, err)
		}
	})
}

func FuzzParseAccountID(f *testing.F) {
	f.Add(aliceID)
	f.Add(bobID)
	f.Add(strings.ToUpper(aliceID))
	f.Add("csa1")
	f.Add(aliceID[:41] + "a")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseAccountID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidAccountID) {
				t.Fatalf("error %v does not wrap ErrInvalidAccountID", err)
			}
			return
		}
		if len(id) != AccountIDLen || id.String() != strings.ToLower(id.String()) {
			t.Fatalf("ParseAccountID(%q) = %q: not canonical", s, id)
		}
		if again, err := ParseAccountID(string(id)); err != nil || again != id {
			t.Fatalf("canonical form does not reparse: %q, %v", again, err)
		}
	})
}

func FuzzParseSelfCert(f *testing.F) {
	f.Add("alice~3zs7tbympd")
	f.Add("@ALICE~3ZS7TBYMPD")
	f.Add("user~khbunzepeh")
	f.Add("~")
	f.Fuzz(func(t *testing.T, s string) {
		name, suffix, err := ParseSelfCert(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidHandle) {
				t.Fatalf("error %v does not wrap ErrInvalidHandle", err)
			}
			return
		}
		if n, err := NormalizeHandle(name); err != nil || n != name || len(suffix) != SelfCertSuffixLen {
			t.Fatalf("ParseSelfCert(%q) = %q, %q", s, name, suffix)
		}
		VerifySelfCert(s, seedKey(t, "alice").Public())
	})
}
