package identity

import (
	"regexp"
	"testing"
)

func TestSafetyNumber(t *testing.T) {
	a, b, c := seedKey(t, "alice").Public(), seedKey(t, "bob").Public(), seedKey(t, "carol").Public()
	// Golden; cross-checked with an independent Python implementation.
	const want = "09018 98637 64216 00737 65313 44821 64253 16386 92957 05281 34466 22866"
	if got := SafetyNumber(a, b); got != want {
		t.Fatalf("SafetyNumber(alice, bob) = %q, want %q", got, want)
	}
	if got := SafetyNumber(b, a); got != want {
		t.Fatalf("SafetyNumber is not symmetric: %q", got)
	}
	format := regexp.MustCompile(`^[0-9]{5}( [0-9]{5}){11}$`)
	if !format.MatchString(want) {
		t.Fatal("bad format")
	}
	ac, bc := SafetyNumber(a, c), SafetyNumber(b, c)
	if ac == want || bc == want || ac == bc {
		t.Fatal("different key pairs share a safety number")
	}
	if !format.MatchString(ac) {
		t.Fatalf("bad format: %q", ac)
	}
}
