package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAccountID(t *testing.T) {
	for _, in := range []string{aliceID, strings.ToUpper(aliceID), "  " + aliceID + "\n", "CSA1eygnzl22ex7ffcqqoffhzxhqwup657xuftlb23"} {
		id, err := ParseAccountID(in)
		if err != nil {
			t.Fatalf("ParseAccountID(%q): %v", in, err)
		}
		if id != aliceID || id.String() != aliceID {
			t.Fatalf("ParseAccountID(%q) = %q, want %q", in, id, aliceID)
		}
	}
	bad := map[string]string{
		"": "must start with",
		"csb1eygnzl22ex7ffcqqoffhzxhqwup657xuftlb23": "must start with",
		aliceID[:41]:  "41 characters, want 42",
		aliceID + "a": "43 characters, want 42",
		"csa1eygnzl22ex7ffcqqoffhzxhqwup657xuftlb2" + "1": "not allowed",
		"csa1eygnzl22ex7ffcqqoffhzxhqwup657xuftlb2é":      "not allowed",
		"csa1eygnzl22ex7ffcqqoffhzxhqwup657xuftlb24":      "checksum mismatch",
		strings.Repeat("x", 1000):                         "too long",
	}
	for in, want := range bad {
		_, err := ParseAccountID(in)
		if !errors.Is(err, ErrInvalidAccountID) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAccountID(%q) = %v, want ErrInvalidAccountID mentioning %q", in, err, want)
		}
	}
}

// TestAccountIDTypos checks the property users rely on: every single-character typo and
// every swap of two adjacent characters in the data and checksum is caught.
func TestAccountIDTypos(t *testing.T) {
	for _, id := range []string{aliceID, bobID} {
		for i := len(accountIDPrefix); i < len(id); i++ {
			for _, c := range base32Alphabet {
				if byte(c) == id[i] {
					continue
				}
				typo := id[:i] + string(c) + id[i+1:]
				if _, err := ParseAccountID(typo); err == nil {
					t.Fatalf("typo %q of %q accepted", typo, id)
				}
			}
			if i+1 < len(id) && id[i] != id[i+1] {
				swap := id[:i] + string(id[i+1]) + string(id[i]) + id[i+2:]
				if _, err := ParseAccountID(swap); err == nil {
					t.Fatalf("transposition %q of %q accepted", swap, id)
				}
			}
		}
	}
}

func TestAccountIDMatches(t *testing.T) {
	a, b := seedKey(t, "alice").Public(), seedKey(t, "bob").Public()
	if !AccountID(aliceID).Matches(a) || !AccountID(strings.ToUpper(aliceID)).Matches(a) {
		t.Error("alice's id does not match alice's key")
	}
	if AccountID(aliceID).Matches(b) {
		t.Error("alice's id matches bob's key")
	}
	if AccountID("").Matches(AccountPub{}) {
		t.Error("empty id matches the zero key")
	}
	// Distinct keys give distinct, well-formed ids.
	seen := map[AccountID]bool{}
	for i := range 100 {
		id := seedKey(t, string(rune('a'+i))).Public().ID()
		if len(id) != AccountIDLen || seen[id] {
			t.Fatalf("id %q: bad length or duplicate", id)
		}
		if _, err := ParseAccountID(string(id)); err != nil {
			t.Fatalf("own id %q does not parse: %v", id, err)
		}
		seen[id] = true
	}
}

func TestAccountIDHash(t *testing.T) {
	id := seedKey(t, "alice").Public().ID()
	h := id.Hash()
	if len(h) != AccountIDHashSize {
		t.Fatalf("Hash() = %d bytes, want %d", len(h), AccountIDHashSize)
	}
	back, err := AccountIDFromHash(h)
	if err != nil || back != id {
		t.Fatalf("AccountIDFromHash(Hash()) = %q, %v; want %q", back, err, id)
	}
	if up := AccountID(strings.ToUpper(string(id))).Hash(); string(up) != string(h) {
		t.Error("an id in capitals has another binary form")
	}
	if bob := seedKey(t, "bob").Public().ID().Hash(); string(bob) == string(h) {
		t.Error("two accounts share a binary form")
	}
	typo := []byte(id)
	typo[10] ^= 1
	if AccountID(typo).Hash() != nil || AccountID("").Hash() != nil {
		t.Error("an invalid id has a binary form")
	}
	if _, err := AccountIDFromHash(h[1:]); !errors.Is(err, ErrInvalidAccountID) {
		t.Errorf("AccountIDFromHash of 19 bytes: %v, want ErrInvalidAccountID", err)
	}
}
