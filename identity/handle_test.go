package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeHandleAccepts(t *testing.T) {
	cases := []struct{ in, want string }{
		{"alice", "alice"},
		{"@Alice", "alice"},
		{"ALICE", "alice"},
		{"ａｌｉｃｅ", "alice"}, // fullwidth
		{"al.ice", "al.ice"},
		{"a_b-c", "a_b-c"},
		{"user123", "user123"},
		{"007", "007"},
		{"Ελληνικά", "ελληνικά"},
		{"Москва", "москва"},
		{"田中さん", "田中さん"},   // Han + Hiragana
		{"カタカナー", "カタカナー"}, // Katakana with the prolonged sound mark
		{"서울시", "서울시"},
		{"مرحبا", "مرحبا"},
		{"résumé", "résumé"},
		{"re\u0301sume\u0301", "résumé"}, // decomposed → NFC
		{"straße", "straße"},
		{strings.Repeat("a", MaxHandleLen), strings.Repeat("a", MaxHandleLen)},
		{"abc", "abc"},
	}
	for _, tc := range cases {
		got, err := NormalizeHandle(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeHandle(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		if again, err := NormalizeHandle(got); err != nil || again != got {
			t.Errorf("NormalizeHandle not idempotent on %q: %q, %v", got, again, err)
		}
	}
}

func TestNormalizeHandleRejects(t *testing.T) {
	cases := []struct{ in, reason string }{
		{"", "empty"},
		{"@", "empty"},
		{"al", "too short: at least 3 characters"},
		{"@al", "too short: at least 3 characters"},
		{strings.Repeat("a", MaxHandleLen+1), "too long: at most 32 characters"},
		{strings.Repeat("a", 10000), "too long: at most 32 characters"},
		{".abc", `cannot start with '.'`},
		{"-abc", `cannot start with '-'`},
		{"abc_", `cannot end with '_'`},
		{"ab..c", `'.' and '.' cannot be next to each other`},
		{"ab.-c", `'.' and '-' cannot be next to each other`},
		{"al~ce", `"~" is reserved for self-certifying handles`},
		{"alice~3zs7tbympd", `"~" is reserved for self-certifying handles`},
		{"alice～x", `"~" is reserved for self-certifying handles`}, // fullwidth tilde
		{"al ce", "no spaces allowed"},
		{"alice\u3000", "no spaces allowed"},
		{"al\u200dce", "invisible or control character (U+200D)"},
		{"al\u00adce", "invisible or control character (U+00AD)"},
		{"al\x00ce", "invisible or control character (U+0000)"},
		{"al\u202ece", "invisible or control character (U+202E)"},
		{"paypаl", "mixes scripts (Cyrillic and Latin): use one script"},
		{"αlice", "mixes scripts (Greek and Latin): use one script"},
		{"田中abc", "mixes scripts (Han and Latin): use one script"},
		{"abc١٢٣", "only digits 0-9 are allowed"},
		{"a😀b", `'😀' is not allowed`},
		{"@@alice", `'@' is not allowed`},
		{"a+b", `'+' is not allowed`},
		{"a/b", `'/' is not allowed`},
		{"\u0301abc", "cannot start with a combining mark"},
		{"ab\xffc", "not valid UTF-8"},
		{"abcمرحبا", "right-to-left"},
	}
	for _, tc := range cases {
		got, err := NormalizeHandle(tc.in)
		var he *HandleError
		if !errors.As(err, &he) || !errors.Is(err, ErrInvalidHandle) {
			t.Errorf("NormalizeHandle(%q) = %q, %v; want a *HandleError", tc.in, got, err)
			continue
		}
		if !strings.Contains(he.Reason, tc.reason) {
			t.Errorf("NormalizeHandle(%q): reason %q, want it to contain %q", tc.in, he.Reason, tc.reason)
		}
		if len(he.Input) > 80 {
			t.Errorf("NormalizeHandle(%q...): error echoes %d bytes of input", tc.in[:10], len(he.Input))
		}
	}
}

// TestHandleKeyLookalikes: names a user could mistake for each other share a key, so only one
// of them can be held.
func TestHandleKeyLookalikes(t *testing.T) {
	groups := [][]string{
		{"paypal", "paypa1", "PayPal", "pay.pal", "pay_pal", "pay-pal", "PayPaI", "pa.y.p.al"},
		{"microsoft", "rnicrosoft", "rn1crosoft", "micro-soft", "m1crosoft", "MICROSOFT"},
		{"windows", "vvindows", "wind0ws", "VVindows"},
		{"google", "g00gle", "go0gle", "goog1e"},
		{"resume", "résumé", "re\u0301sume"},
		{"strasse", "straße"},
		{"bios", "b1os", "bio5"},
	}
	for _, g := range groups {
		first, err := NormalizeHandle(g[0])
		if err != nil {
			t.Fatal(err)
		}
		want := HandleKey(first)
		for _, name := range g[1:] {
			n, err := NormalizeHandle(name)
			if err != nil {
				t.Errorf("%q: %v", name, err)
				continue
			}
			if got := HandleKey(n); got != want {
				t.Errorf("HandleKey(%q) = %q, want %q (same as %q)", n, got, want, g[0])
			}
		}
	}
	// Homoglyphs from other scripts fold onto Latin even inside names that NormalizeHandle
	// rejects as mixed-script (belt and braces) and in valid all-Cyrillic or all-Greek names.
	pairs := [][2]string{
		{"pаypal", "paypal"}, // Cyrillic а
		{"раураl", "paypal"}, // Cyrillic р а у р а, Latin l
		{"рорра", "poppa"},   // all Cyrillic, a valid handle
		{"сосо", "coco"},     // all Cyrillic
		{"οκο", "oko"},       // all Greek
		{"ехе", "exe"},       // all Cyrillic
		{"іоѕ", "ios"},       // all Cyrillic
		{"օո", "on"},         // Armenian, too short for a name but folds
	}
	for _, p := range pairs {
		if HandleKey(p[0]) != HandleKey(p[1]) {
			t.Errorf("HandleKey(%q) = %q, HandleKey(%q) = %q; want equal", p[0], HandleKey(p[0]), p[1], HandleKey(p[1]))
		}
	}
	for _, n := range []string{"рорра", "сосо", "οκο", "ехе"} {
		if _, err := NormalizeHandle(n); err != nil {
			t.Errorf("single-script lookalike %q rejected: %v", n, err)
		}
	}
}

// TestHandleKeyDistinct: different names a user would not confuse keep different keys.
func TestHandleKeyDistinct(t *testing.T) {
	names := []string{"alice", "alicia", "alice2", "bob", "bobby", "rob", "carol", "carl", "dave",
		"eve", "evelyn", "mallory", "trent", "peggy", "victor", "walter", "anna", "hanna", "sam",
		"tam", "modem", "model", "user7", "user8", "user9", "田中さん", "田中くん", "москва",
		"ελληνικά", "서울시", "서울역", "مرحبا", "ann", "anne", "a.b.c.d", "abcde"}
	seen := map[string]string{}
	for _, name := range names {
		n, err := NormalizeHandle(name)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		k := HandleKey(n)
		if k == "" {
			t.Fatalf("HandleKey(%q) is empty", n)
		}
		if other, ok := seen[k]; ok {
			t.Errorf("%q and %q collide on key %q", name, other, k)
		}
		seen[k] = name
	}
}

// TestHandleKeyGolden pins the key derivation: it names DHT records, so it must never change.
func TestHandleKeyGolden(t *testing.T) {
	cases := []struct{ norm, key string }{
		{"paypal", "paypal"},
		{"paypa1", "paypal"},
		{"alice", "allce"},
		{"alicia", "allcla"},
		{"rnicrosoft", "mlcrosoft"},
		{"vvindows", "wlndows"},
		{"pay.pal", "paypal"},
		{"résumé", "resume"},
		{"straße", "strasse"},
		{"москва", "mockba"},
		{"ελληνικά", "eλλnvlka"},
		{"田中さん", "田中さん"},
		{"서울시", "서울시"},
		{"مرحبا123", "مرحباl23"},
		{"a_b-c.d", "abcd"},
		{"0o1il5s", "oolllss"},
	}
	for _, tc := range cases {
		if got := HandleKey(tc.norm); got != tc.key {
			t.Errorf("HandleKey(%q) = %q (% x), want %q", tc.norm, got, got, tc.key)
		}
	}
}

func TestSelfCertHandle(t *testing.T) {
	a, b := seedKey(t, "alice").Public(), seedKey(t, "bob").Public()
	// Golden; cross-checked with an independent Python implementation.
	const aliceSC = "alice~3zs7tbympd"
	if got := SelfCertHandle("Alice", a); got != aliceSC {
		t.Fatalf("SelfCertHandle = %q, want %q", got, aliceSC)
	}
	if got := SelfCertHandle("@alice", a); got != aliceSC {
		t.Fatalf("SelfCertHandle(@alice) = %q, want %q", got, aliceSC)
	}
	if got := SelfCertHandle("", a); got != "user~khbunzepeh" {
		t.Fatalf("SelfCertHandle(invalid) = %q, want user~khbunzepeh", got)
	}
	if SelfCertHandle("alice", b) == aliceSC {
		t.Fatal("two keys share a self-certifying handle")
	}
	if !VerifySelfCert(aliceSC, a) || !VerifySelfCert("@Alice~3ZS7TBYMPD", a) || !IsSelfCert(aliceSC) {
		t.Fatal("alice's self-certifying handle does not verify")
	}
	for _, h := range []string{"alice~3zs7tbympe", "alicf~3zs7tbympd", "alice~3zs7tbymp", "alice"} {
		if VerifySelfCert(h, a) {
			t.Errorf("VerifySelfCert(%q, alice) = true", h)
		}
	}
	if VerifySelfCert(aliceSC, b) || VerifySelfCert(aliceSC, AccountPub{}) {
		t.Error("alice's self-certifying handle verified for another key")
	}
	name, suffix, err := ParseSelfCert("@ALICE~3ZS7TBYMPD")
	if err != nil || name != "alice" || suffix != "3zs7tbympd" {
		t.Fatalf("ParseSelfCert = %q, %q, %v", name, suffix, err)
	}
	bad := map[string]string{
		"alice":             `no "~"`,
		"alice~3zs7tbymp":   "must be 10 characters",
		"alice~3zs7tbymp1":  "must be 10 characters",
		"alice~~3zs7tbympd": "must be 10 characters",
		"al~3zs7tbympd":     "too short",
		"~3zs7tbympd":       "empty",
		"a b~3zs7tbympd":    "no spaces",
	}
	for in, reason := range bad {
		_, _, err := ParseSelfCert(in)
		var he *HandleError
		if !errors.As(err, &he) || !strings.Contains(he.Reason, reason) || !errors.Is(err, ErrInvalidHandle) {
			t.Errorf("ParseSelfCert(%q) = %v, want reason containing %q", in, err, reason)
		}
		if IsSelfCert(in) {
			t.Errorf("IsSelfCert(%q) = true", in)
		}
	}
}
