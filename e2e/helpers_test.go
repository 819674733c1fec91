package e2e

import (
	"bytes"
	"crypto/ed25519"
	"io"
	mrand "math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// detRand returns a deterministic byte stream for seed.
func detRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

type testParty struct {
	id  Identity
	pub ed25519.PublicKey
	st  *PrekeyState
	r   io.Reader
}

func newParty(t testing.TB, seed byte) *testParty {
	t.Helper()
	r := detRand(seed)
	sk := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(r, sk); err != nil {
		t.Fatal(err)
	}
	signer := ed25519.NewKeyFromSeed(sk)
	dhk, err := GenerateDHKey(r)
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{Signer: signer, DH: dhk}
	st, err := NewPrekeyState(id, epoch, r)
	if err != nil {
		t.Fatal(err)
	}
	return &testParty{id: id, pub: signer.Public().(ed25519.PublicKey), st: st, r: r}
}

// pair returns a session from a to b and b's accepted session, after a's
// first message (plaintext "hello") was delivered.
func pair(t testing.TB, a, b *testParty, oneTime bool) (*Session, *Session) {
	t.Helper()
	bundle := b.st.Bundle()
	if oneTime {
		if err := b.st.GenerateOneTime(b.id, 2, epoch, b.r); err != nil {
			t.Fatal(err)
		}
		bundle = b.st.IssueBundle()
	}
	sa, _, err := InitiateSession(a.id, b.pub, bundle, a.r)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sa.Encrypt([]byte("hello"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	sb, pt, err := AcceptSession(b.id, b.st, a.pub, msg, []byte("ad"), b.r)
	if err != nil {
		t.Fatal(err)
	}
	if string(pt) != "hello" {
		t.Fatalf("first message = %q, want hello", pt)
	}
	return sa, sb
}

func mustEncrypt(t testing.TB, s *Session, pt string) []byte {
	t.Helper()
	m, err := s.Encrypt([]byte(pt), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustDecrypt(t testing.TB, s *Session, m []byte, want string) {
	t.Helper()
	pt, err := s.Decrypt(m, nil)
	if err != nil {
		t.Fatalf("decrypt %q: %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("decrypt = %q, want %q", pt, want)
	}
}

func marshalOrFatal(t testing.TB, s *Session) []byte {
	t.Helper()
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertUnchanged fails if the session's stored form differs from before.
func assertUnchanged(t testing.TB, s *Session, before []byte) {
	t.Helper()
	if after := marshalOrFatal(t, s); !bytes.Equal(before, after) {
		t.Fatal("failed decrypt changed the session state")
	}
}
