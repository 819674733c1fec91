package identity

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/bidirule"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// Handle length limits, in runes after normalisation.
const (
	MinHandleLen = 3
	MaxHandleLen = 32
)

// maxHandleInput caps the bytes NormalizeHandle looks at, so hostile input costs little.
const maxHandleInput = 4*MaxHandleLen + 16

// SelfCertSuffixLen is the length of a self-certifying handle's suffix in base32 characters
// (50 bits).
const SelfCertSuffixLen = 10

// ErrInvalidHandle is matched (errors.Is) by every *HandleError.
var ErrInvalidHandle = errors.New("invalid handle")

// HandleError says why a handle was rejected. Reason is short and user-facing, for example
// `too short: at least 3 characters`; Input is the input as given, cut to 64 bytes.
// errors.Is(err, ErrInvalidHandle) holds.
type HandleError struct{ Input, Reason string }

func (e *HandleError) Error() string { return fmt.Sprintf("invalid handle %q: %s", e.Input, e.Reason) }

// Is makes errors.Is(err, ErrInvalidHandle) true.
func (e *HandleError) Is(target error) bool { return target == ErrInvalidHandle }

func handleErr(input, format string, args ...any) error {
	if len(input) > 64 {
		cut := 64
		for cut > 0 && !utf8.RuneStart(input[cut]) {
			cut--
		}
		input = input[:cut] + "…"
	}
	return &HandleError{Input: input, Reason: fmt.Sprintf(format, args...)}
}

func isSep(r rune) bool { return r == '.' || r == '_' || r == '-' }

// NormalizeHandle returns the canonical form of the global handle s, or a *HandleError that
// says why s can't be a handle. Rules, in order:
//
//   - one leading "@" is dropped;
//   - PRECIS UsernameCaseMapped (RFC 8265: width folding, lowercase, NFC, bidi rule);
//   - 3 to 32 runes;
//   - only letters (with their combining marks), digits 0-9 and the separators ".", "_", "-";
//     a separator is never first, last, or next to another separator;
//   - the letters come from one script, except the combinations a language writes together:
//     Han with Hiragana and Katakana (Japanese), Han with Hangul (Korean), Han with Bopomofo;
//   - "~" is reserved for self-certifying handles; spaces, control and invisible characters
//     are refused.
//
// NormalizeHandle is idempotent: NormalizeHandle of its output returns the output unchanged.
func NormalizeHandle(s string) (string, error) {
	input := s
	if len(s) > maxHandleInput {
		return "", handleErr(input, "too long: at most %d characters", MaxHandleLen)
	}
	s = strings.TrimPrefix(s, "@")
	if s == "" {
		return "", handleErr(input, "empty")
	}
	if !utf8.ValidString(s) {
		return "", handleErr(input, "not valid UTF-8")
	}
	if err := precheckRunes(input, s); err != nil {
		return "", err
	}
	out, err := precis.UsernameCaseMapped.String(s)
	if err != nil {
		return "", precisErr(input, s, err)
	}
	if err := checkHandleRunes(input, out); err != nil {
		return "", err
	}
	return out, nil
}

// precheckRunes gives clear reasons for common mistakes before PRECIS gives a generic one.
func precheckRunes(input, s string) error {
	for _, r := range s {
		switch {
		case r == '~' || r == '～':
			return handleErr(input, `"~" is reserved for self-certifying handles`)
		case unicode.IsSpace(r):
			return handleErr(input, "no spaces allowed")
		case unicode.IsNumber(r) && (r < '0' || r > '9') && (r < '０' || r > '９'):
			return handleErr(input, "only digits 0-9 are allowed, not %q", r)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zs, r):
			return handleErr(input, "contains an invisible or control character (U+%04X)", r)
		}
	}
	return nil
}

func precisErr(input, s string, err error) error {
	allowed := precis.UsernameCaseMapped.Allowed()
	for _, r := range s {
		if allowed.Contains(r) {
			continue
		}
		if _, e := precis.UsernameCaseMapped.String(string(r)); e != nil {
			return handleErr(input, "%q is not allowed", r)
		}
	}
	if r, _ := utf8.DecodeRuneInString(s); unicode.In(r, unicode.Mn, unicode.Mc, unicode.Me) {
		return handleErr(input, "cannot start with a combining mark")
	}
	if errors.Is(err, bidirule.ErrInvalid) {
		return handleErr(input, "mixes right-to-left and left-to-right text in a way that can't be displayed unambiguously")
	}
	return handleErr(input, "not allowed as a username (%v)", err)
}

// checkHandleRunes applies our rules to PRECIS output.
func checkHandleRunes(input, s string) error {
	n := utf8.RuneCountInString(s)
	if n < MinHandleLen {
		return handleErr(input, "too short: at least %d characters", MinHandleLen)
	}
	if n > MaxHandleLen {
		return handleErr(input, "too long: at most %d characters", MaxHandleLen)
	}
	var scripts []string
	prev := rune(-1)
	i := 0
	for _, r := range s {
		switch {
		case r == '~':
			return handleErr(input, `"~" is reserved for self-certifying handles`)
		case isSep(r):
			if i == 0 {
				return handleErr(input, "cannot start with %q", r)
			}
			if i == n-1 {
				return handleErr(input, "cannot end with %q", r)
			}
			if isSep(prev) {
				return handleErr(input, "%q and %q cannot be next to each other", prev, r)
			}
		case '0' <= r && r <= '9':
		case unicode.IsDigit(r) || unicode.IsNumber(r):
			return handleErr(input, "only digits 0-9 are allowed, not %q", r)
		case unicode.In(r, unicode.Mn, unicode.Mc):
			if i == 0 {
				return handleErr(input, "cannot start with a combining mark")
			}
			if sc := scriptOf(r); sc != "" && sc != "Inherited" && sc != "Common" && !slices.Contains(scripts, sc) {
				scripts = append(scripts, sc)
			}
		case unicode.IsLetter(r):
			sc := scriptOf(r)
			if r == 'ー' { // the prolonged sound mark is Common but only written in Japanese
				sc = "Katakana"
			}
			if sc == "" || sc == "Common" || sc == "Inherited" {
				return handleErr(input, "%q is not allowed: use letters, digits 0-9, \".\", \"_\" or \"-\"", r)
			}
			if !slices.Contains(scripts, sc) {
				scripts = append(scripts, sc)
			}
		default:
			return handleErr(input, "%q is not allowed: use letters, digits 0-9, \".\", \"_\" or \"-\"", r)
		}
		prev = r
		i++
	}
	if !scriptsAllowed(scripts) {
		slices.Sort(scripts)
		return handleErr(input, "mixes scripts (%s): use one script", strings.Join(scripts, " and "))
	}
	return nil
}

// scriptGroups are the script combinations a single language writes together.
var scriptGroups = [][]string{
	{"Han", "Hiragana", "Katakana"},
	{"Han", "Hangul"},
	{"Han", "Bopomofo"},
}

func scriptsAllowed(scripts []string) bool {
	if len(scripts) <= 1 {
		return true
	}
	for _, g := range scriptGroups {
		ok := true
		for _, s := range scripts {
			if !slices.Contains(g, s) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// scriptNames is unicode.Scripts' keys in a fixed order.
var scriptNames = func() []string {
	names := make([]string, 0, len(unicode.Scripts))
	for n := range unicode.Scripts {
		names = append(names, n)
	}
	slices.Sort(names)
	// Look the common scripts up first.
	front := []string{"Latin", "Cyrillic", "Greek", "Han", "Arabic", "Inherited", "Common"}
	return append(front, slices.DeleteFunc(names, func(n string) bool { return slices.Contains(front, n) })...)
}()

func scriptOf(r rune) string {
	for _, n := range scriptNames {
		if unicode.Is(unicode.Scripts[n], r) {
			return n
		}
	}
	return ""
}

// confusables maps a rune of a normalised handle to its prototype in HandleKey. The table is
// part of the network protocol (it decides DHT keys): never change an entry, only add entries
// with a new protocol version.
var confusables = map[rune]string{
	// Digits that look like letters.
	'0': "o", '1': "l", '5': "s",
	// Latin lookalikes.
	'i': "l", 'ı': "l", 'ɩ': "l", 'ł': "l", 'ƚ': "l", 'ɫ': "l",
	'ß': "ss", 'æ': "ae", 'œ': "oe", 'ø': "o", 'đ': "d", 'ð': "d", 'ħ': "h", 'ƀ': "b",
	'ſ': "s", 'ɑ': "a", 'ɡ': "g", 'ȷ': "j", 'ĸ': "k",
	// Greek.
	'α': "a", 'β': "b", 'γ': "y", 'ε': "e", 'η': "n", 'ι': "l", 'κ': "k", 'μ': "u", 'ν': "v",
	'ο': "o", 'ρ': "p", 'τ': "t", 'υ': "u", 'χ': "x", 'ω': "w", 'ϲ': "c", 'ϳ': "j",
	// Cyrillic.
	'а': "a", 'в': "b", 'г': "r", 'е': "e", 'і': "l", 'ј': "j", 'к': "k", 'м': "m", 'н': "h",
	'о': "o", 'п': "n", 'р': "p", 'с': "c", 'т': "t", 'у': "y", 'х': "x", 'ѕ': "s", 'ь': "b",
	'һ': "h", 'ԁ': "d", 'ԛ': "q", 'ԝ': "w", 'ӏ': "l", 'ү': "y", 'ѵ': "v", 'ѡ': "w",
	// Armenian.
	'օ': "o", 'ս': "u", 'ց': "g", 'հ': "h", 'ո': "n", 'զ': "q",
}

// confusableSeqs are replaced, in this order, after the per-rune table.
var confusableSeqs = []struct{ from, to string }{
	{"rn", "m"},
	{"vv", "w"},
}

// HandleKey returns the DHT key body for the normalised handle norm (the output of
// NormalizeHandle), folding confusables so that lookalike names share one key and so can't
// both be held: "paypal", "paypa1", "pay.pal", "pаypal" (Cyrillic а) and "paypaI" all map to
// "paypal"'s key. Steps:
//
//  1. NFD, then drop the separators ".", "_", "-" and the combining diacritical marks
//     U+0300..U+036F (so "é" folds to "e", "й" to "и");
//  2. map each rune through the confusables table (digits 0→o 1→l 5→s; i ı ł ι і ӏ → l;
//     Greek, Cyrillic and Armenian homoglyphs to their Latin prototype, ß→ss, æ→ae, ...);
//  3. replace "rn" with "m", then "vv" with "w";
//  4. NFC.
//
// The result is a network key: it must never change for a given input (golden tests hold it).
// HandleKey does not validate norm; for a valid handle the result is never empty.
func HandleKey(norm string) string {
	var b strings.Builder
	b.Grow(len(norm))
	for _, r := range nfd(norm) {
		switch {
		case isSep(r), 0x300 <= r && r <= 0x36F:
			continue
		}
		if p, ok := confusables[r]; ok {
			b.WriteString(p)
		} else {
			b.WriteRune(r)
		}
	}
	s := b.String()
	for _, q := range confusableSeqs {
		s = strings.ReplaceAll(s, q.from, q.to)
	}
	return norm2nfc(s)
}

func nfd(s string) string      { return norm.NFD.String(s) }
func norm2nfc(s string) string { return norm.NFC.String(s) }

// SelfCertHandle returns the self-certifying handle "name~suffix" of pub, where suffix is the
// first SelfCertSuffixLen characters of lowercase base32 of
// SHA-256(LabelSelfCert || 0x00 || name || 0x00 || pubkey) and name is normalised first. An
// invalid name is replaced by "user"; SelfCertHandle never fails.
func SelfCertHandle(name string, pub AccountPub) string {
	n, err := NormalizeHandle(name)
	if err != nil {
		n = "user"
	}
	return n + "~" + selfCertSuffix(n, pub)
}

func selfCertSuffix(norm string, pub AccountPub) string {
	h := sha256.New()
	h.Write([]byte(LabelSelfCert))
	h.Write([]byte{0})
	h.Write([]byte(norm))
	h.Write([]byte{0})
	h.Write(pub.b[:])
	return b32.EncodeToString(h.Sum(nil))[:SelfCertSuffixLen]
}

// ParseSelfCert splits a self-certifying handle (an optional leading "@", then name~suffix)
// into its normalised name and lowercase suffix. It checks the syntax only; use
// VerifySelfCert to check the suffix against a key. Errors are *HandleError.
func ParseSelfCert(s string) (name, suffix string, err error) {
	input := s
	if len(s) > maxHandleInput+1+SelfCertSuffixLen {
		return "", "", handleErr(input, "too long")
	}
	s = strings.TrimPrefix(s, "@")
	i := strings.IndexByte(s, '~')
	if i < 0 {
		return "", "", handleErr(input, `not a self-certifying handle: no "~"`)
	}
	name, suffix = s[:i], strings.ToLower(s[i+1:])
	if len(suffix) != SelfCertSuffixLen || strings.Trim(suffix, base32Alphabet) != "" {
		return "", "", handleErr(input, "the part after \"~\" must be %d characters a-z or 2-7", SelfCertSuffixLen)
	}
	n, err := NormalizeHandle(name)
	if err != nil {
		var he *HandleError
		if errors.As(err, &he) {
			return "", "", handleErr(input, "%s", he.Reason)
		}
		return "", "", err
	}
	return n, suffix, nil
}

// IsSelfCert reports whether s is syntactically a self-certifying handle.
func IsSelfCert(s string) bool {
	_, _, err := ParseSelfCert(s)
	return err == nil
}

// VerifySelfCert reports whether handle is pub's self-certifying handle for its name. The
// suffix is compared in constant time.
func VerifySelfCert(handle string, pub AccountPub) bool {
	name, suffix, err := ParseSelfCert(handle)
	if err != nil || pub.IsZero() {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(suffix), []byte(selfCertSuffix(name, pub))) == 1
}
