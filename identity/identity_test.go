package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seedKey returns the account key whose seed is SHA-256(s): fixed keys for golden vectors.
func seedKey(tb testing.TB, s string) *AccountKey {
	tb.Helper()
	h := sha256.Sum256([]byte(s))
	k, err := AccountKeyFromSeed(h[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

const (
	alicePubHex = "d5bf4a3fcce717b0388bcc2749ebc148ad9969b23f45ee1b605fd58778576ac4"
	bobPubHex   = "ecc1b58727f3f12b3194881a9ecb9de0b28ce7b207230d8e930fe1bce75e256c"
	// Cross-checked with an independent Python implementation of the AccountID layout.
	aliceID = "csa1eygnzl22ex7ffcqqoffhzxhqwup657xuftlb23"
	bobID   = "csa1ggucmtrsjryhekhe2p4symfnsly66uyp2xldtq"
)

func TestKeyGolden(t *testing.T) {
	a, b := seedKey(t, "alice"), seedKey(t, "bob")
	if got := hex.EncodeToString(a.Public().Bytes()); got != alicePubHex {
		t.Errorf("alice pub = %s, want %s", got, alicePubHex)
	}
	if got := hex.EncodeToString(b.Public().Bytes()); got != bobPubHex {
		t.Errorf("bob pub = %s, want %s", got, bobPubHex)
	}
	if got := a.Public().ID(); got != aliceID {
		t.Errorf("alice id = %s, want %s", got, aliceID)
	}
	if got := b.Public().ID(); got != bobID {
		t.Errorf("bob id = %s, want %s", got, bobID)
	}
}

func TestSeedRoundTrip(t *testing.T) {
	a := seedKey(t, "alice")
	b, err := AccountKeyFromSeed(a.Seed())
	if err != nil {
		t.Fatal(err)
	}
	if !a.Public().Equal(b.Public()) {
		t.Fatal("key from seed has a different public key")
	}
	s := a.Seed()
	s[0] ^= 1 // Seed must return a copy
	if !bytes.Equal(a.Seed(), b.Seed()) {
		t.Fatal("mutating Seed's result changed the key")
	}
	if _, err := AccountKeyFromSeed(make([]byte, 31)); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("31-byte seed: err = %v, want ErrInvalidKey", err)
	}
}

func TestGenerateAccountKey(t *testing.T) {
	k1, err := GenerateAccountKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := GenerateAccountKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Public().Equal(k2.Public()) {
		t.Fatal("two generated keys are equal")
	}
	// A given reader is used: same bytes, same key.
	seed := sha256.Sum256([]byte("alice"))
	k3, err := GenerateAccountKey(bytes.NewReader(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(k3.Public().Bytes()); got != alicePubHex {
		t.Fatalf("key from reader = %s, want %s", got, alicePubHex)
	}
	if _, err := GenerateAccountKey(bytes.NewReader(seed[:10])); err == nil {
		t.Fatal("short reader: no error")
	}
}

func TestSignVerifyDomainSeparation(t *testing.T) {
	a, b := seedKey(t, "alice"), seedKey(t, "bob")
	msg := []byte("hello")
	sig := a.Sign(LabelHandleRecord, msg)
	if !a.Public().Verify(LabelHandleRecord, msg, sig) {
		t.Fatal("valid signature rejected")
	}
	if a.Public().Verify(LabelIdentityRecord, msg, sig) {
		t.Error("signature verified under another label")
	}
	if a.Public().Verify(LabelHandleRecord, []byte("hellp"), sig) {
		t.Error("signature verified for another message")
	}
	if b.Public().Verify(LabelHandleRecord, msg, sig) {
		t.Error("signature verified under another key")
	}
	if a.Public().Verify(LabelHandleRecord, msg, sig[:63]) {
		t.Error("short signature verified")
	}
	var zero AccountPub
	if zero.Verify(LabelHandleRecord, msg, sig) {
		t.Error("zero key verified a signature")
	}
	// label || 0x00 || msg: moving bytes between label and message must not verify.
	sig2 := a.Sign("callsign/v1/x", []byte("y"))
	if a.Public().Verify("callsign/v1/xy", nil, sig2) {
		t.Error("label/message boundary is ambiguous")
	}
}

func TestBadLabelPanics(t *testing.T) {
	a := seedKey(t, "alice")
	for _, label := range []string{"", "handle-record", "callsign/v1/", "callsign/v2/x", "callsign/v1/a\x00b"} {
		func() {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.HasPrefix(s, "bug: ") {
					t.Errorf("Sign(%q): recover() = %v, want a \"bug: \" panic", label, r)
				}
			}()
			a.Sign(label, nil)
		}()
	}
}

func TestParseAccountPub(t *testing.T) {
	good := unhex(t, alicePubHex)
	p, err := ParseAccountPub(good)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Equal(seedKey(t, "alice").Public()) || p.IsZero() {
		t.Fatal("parsed key differs")
	}
	good[0] ^= 0xff // Parse must copy
	if !p.Equal(seedKey(t, "alice").Public()) {
		t.Fatal("ParseAccountPub kept a reference to its input")
	}
	le := func(s string) []byte { // 64 hex digits, big-endian y plus sign bit → encoding
		b := unhex(t, s)
		for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
			b[i], b[j] = b[j], b[i]
		}
		return b
	}
	bad := map[string][]byte{
		"empty":                   nil,
		"31 bytes":                make([]byte, 31),
		"33 bytes":                make([]byte, 33),
		"identity (order 1)":      le("0000000000000000000000000000000000000000000000000000000000000001"),
		"order 2 (y = -1)":        le("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffec"),
		"order 4 (all zero)":      make([]byte, 32),
		"order 4, sign bit":       le("8000000000000000000000000000000000000000000000000000000000000000"),
		"y = p (non-canonical)":   le("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed"),
		"y = p+1 (non-canonical)": le("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffee"),
		"x = 0 with sign bit":     le("8000000000000000000000000000000000000000000000000000000000000001"),
	}
	for name, b := range bad {
		if _, err := ParseAccountPub(b); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: err = %v, want ErrInvalidKey", name, err)
		}
	}
	// About half of all y values are on the curve; check that both outcomes occur and that
	// every generated key parses.
	onCurve := 0
	for i := range 64 {
		h := sha256.Sum256([]byte{byte(i)})
		h[31] &= 0x7f
		if _, err := ParseAccountPub(h[:]); err == nil {
			onCurve++
		}
		k := seedKey(t, fmt.Sprint(i))
		if _, err := ParseAccountPub(k.Public().Bytes()); err != nil {
			t.Fatalf("generated key rejected: %v", err)
		}
	}
	if onCurve < 16 || onCurve > 48 {
		t.Errorf("%d of 64 random encodings on the curve, want about half", onCurve)
	}
}

func TestZeroAccountPub(t *testing.T) {
	var z AccountPub
	if !z.IsZero() || z.Bytes() != nil || z.ID() != "" {
		t.Fatalf("zero AccountPub: IsZero=%v Bytes=%x ID=%q", z.IsZero(), z.Bytes(), z.ID())
	}
	if z.Equal(seedKey(t, "alice").Public()) {
		t.Fatal("zero key equals a real key")
	}
}

func TestKeyNeverPrinted(t *testing.T) {
	a := seedKey(t, "alice")
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("k", "key", a)
	outs := []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, a), buf.String()}
	for _, enc := range []string{hex.EncodeToString(a.Seed()), fmt.Sprint(a.Seed()[:4])} {
		for _, out := range outs {
			if strings.Contains(out, enc) || strings.Contains(out, strings.Trim(enc, "[]")) {
				t.Fatalf("key material printed: %s", out)
			}
		}
	}
	for _, out := range outs {
		if !strings.Contains(out, aliceID) {
			t.Errorf("printed key does not name its account: %s", out)
		}
	}
}
