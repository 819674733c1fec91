package e2e

import (
	"crypto/rand"
	"testing"

	"github.com/callsign/callsign/internal/cputime"
	"golang.org/x/crypto/chacha20poly1305"
)

var bench1KiB = make([]byte, 1024)

// cpuPerOp starts measuring process CPU time; the returned func reports it
// per operation as the "cpu-ns/op" metric next to wall-clock ns/op.
func cpuPerOp(b *testing.B) func() {
	start := cputime.Process()
	return func() {
		if d := cputime.Process() - start; d > 0 && b.N > 0 {
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

// BenchmarkBaselineChaCha20Poly1305 is the floor for a 1 KiB message: one
// bare seal and open, no key derivation.
func BenchmarkBaselineChaCha20Poly1305(b *testing.B) {
	key := make([]byte, chacha20poly1305.KeySize)
	nonce := make([]byte, chacha20poly1305.NonceSize)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, len(bench1KiB)+tagSize)
	b.SetBytes(int64(len(bench1KiB)))
	defer cpuPerOp(b)()
	for b.Loop() {
		ct := aead.Seal(buf[:0], nonce, bench1KiB, nil)
		if _, err := aead.Open(ct[:0], nonce, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRatchet1KiB is Encrypt on one side and Decrypt on the other of a
// 1 KiB message in the same chain (the common case: several messages in a
// row).
func BenchmarkRatchet1KiB(b *testing.B) {
	a, c := newParty(b, 1), newParty(b, 2)
	sa, sc := pair(b, a, c, false)
	mustDecrypt(b, sa, mustEncrypt(b, sc, "confirm"), "confirm")
	b.SetBytes(int64(len(bench1KiB)))
	defer cpuPerOp(b)()
	for b.Loop() {
		m, err := sa.Encrypt(bench1KiB, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sc.Decrypt(m, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRatchetPingPong1KiB alternates direction, so every message also
// turns the DH ratchet (two X25519 operations, a key generation and two
// root KDFs on the receiving side).
func BenchmarkRatchetPingPong1KiB(b *testing.B) {
	a, c := newParty(b, 1), newParty(b, 2)
	sa, sc := pair(b, a, c, false)
	sa.rand, sc.rand = rand.Reader, rand.Reader
	from, to := sc, sa
	b.SetBytes(int64(len(bench1KiB)))
	defer cpuPerOp(b)()
	for b.Loop() {
		m, err := from.Encrypt(bench1KiB, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := to.Decrypt(m, nil); err != nil {
			b.Fatal(err)
		}
		from, to = to, from
	}
}

// BenchmarkPQXDH is a full session set-up: the initiator verifies the
// bundle, runs PQXDH and encrypts a first message; the responder runs PQXDH
// and decrypts it.
func BenchmarkPQXDH(b *testing.B) {
	a, c := newParty(b, 1), newParty(b, 2)
	bundle := c.st.Bundle()
	defer cpuPerOp(b)()
	for b.Loop() {
		sa, _, err := InitiateSession(a.id, c.pub, bundle, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		m, err := sa.Encrypt([]byte("hello"), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := AcceptSession(c.id, c.st, a.pub, m, nil, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionMarshalRoundTrip is storing and restoring a session, as
// the node does around every message.
func BenchmarkSessionMarshalRoundTrip(b *testing.B) {
	a, c := newParty(b, 1), newParty(b, 2)
	sa, sc := pair(b, a, c, false)
	mustDecrypt(b, sa, mustEncrypt(b, sc, "confirm"), "confirm")
	defer cpuPerOp(b)()
	for b.Loop() {
		enc, err := sa.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := UnmarshalSession(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPrekeyStateUnmarshal restores a prekey state holding
// MaxOneTimePrekeys one-time prekeys of each kind, as the node does before
// accepting a session.
func BenchmarkPrekeyStateUnmarshal(b *testing.B) {
	c := newParty(b, 2)
	if err := c.st.GenerateOneTime(c.id, MaxOneTimePrekeys, epoch, c.r); err != nil {
		b.Fatal(err)
	}
	enc, err := c.st.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	defer cpuPerOp(b)()
	for b.Loop() {
		if _, err := UnmarshalPrekeyState(enc); err != nil {
			b.Fatal(err)
		}
	}
}
