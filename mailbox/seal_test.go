package mailbox

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// kemKey is a recipient's ML-KEM-768 prekey in tests: a Decapsulator for
// one id.
type kemKey struct {
	id uint32
	dk *mlkem.DecapsulationKey768
}

func (k kemKey) DecapsulatePQ(id uint32, ct []byte) ([]byte, error) {
	if id != k.id {
		return nil, errors.New("unknown pq prekey")
	}
	return k.dk.Decapsulate(ct)
}

// recipient is a device's sealing keys, from fixed seeds.
func recipient(t testing.TB, seed byte) (*ecdh.PrivateKey, kemKey, SealKey) {
	t.Helper()
	x, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	dk, err := mlkem.NewDecapsulationKey768(bytes.Repeat([]byte{seed}, mlkem.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	k := kemKey{id: 7, dk: dk}
	return x, k, SealKey{X25519: x.PublicKey(), PQID: k.id, PQ: dk.EncapsulationKey()}
}

// sealV1Box is the version 1 box (X25519 only) as the mailbox sealed it
// before the hybrid box: envelopes deposited then still wait in mailboxes.
func sealV1Box(t testing.TB, to *ecdh.PublicKey, plaintext []byte) []byte {
	t.Helper()
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := eph.ECDH(to)
	if err != nil {
		t.Fatal(err)
	}
	salt := append(append([]byte{}, eph.PublicKey().Bytes()...), to.Bytes()...)
	k, err := hkdf.Key(sha256.New, shared, salt, labelSeal, chacha20poly1305.KeySize)
	if err != nil {
		t.Fatal(err)
	}
	aead, _ := chacha20poly1305.New(k)
	out := append([]byte{sealV1}, eph.PublicKey().Bytes()...)
	return aead.Seal(out, make([]byte, chacha20poly1305.NonceSize), plaintext, []byte(labelSeal))
}

func TestSealHybrid(t *testing.T) {
	x, kem, to := recipient(t, 1)
	otherX, otherKEM, _ := recipient(t, 2)
	box, err := Seal(to, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if box[0] != sealV2 || len(box) != SealOverhead+5 {
		t.Fatalf("box of version %d and %d bytes, want 2 and %d", box[0], len(box), SealOverhead+5)
	}
	if pt, err := Open(x, kem, box); err != nil || string(pt) != "hello" {
		t.Fatalf("open: %q %v", pt, err)
	}
	// Each half of the hybrid is needed: the right X25519 key with another
	// ML-KEM key fails, and the other way round.
	for name, open := range map[string]func() ([]byte, error){
		"another X25519 key":   func() ([]byte, error) { return Open(otherX, kem, box) },
		"another ML-KEM key":   func() ([]byte, error) { return Open(x, kemKey{id: 7, dk: otherKEM.dk}, box) },
		"no ML-KEM key":        func() ([]byte, error) { return Open(x, nil, box) },
		"an unknown pq prekey": func() ([]byte, error) { return Open(x, kemKey{id: 8, dk: kem.dk}, box) },
	} {
		if _, err := open(); !errors.Is(err, ErrOpen) {
			t.Errorf("opened with %s: %v", name, err)
		}
	}
	// Any byte changed anywhere fails: the id, the pq prekey id, the
	// ephemeral key, the ML-KEM ciphertext, the AEAD ciphertext and tag.
	for name, off := range map[string]int{"version": 0, "id": 1, "pq prekey id": 1 + BoxIDSize + 3,
		"ephemeral key": 1 + BoxIDSize + 4, "ML-KEM ciphertext": 1 + BoxIDSize + 4 + 32 + 500,
		"ML-KEM ciphertext end": sealHeader - 1, "ciphertext": sealHeader, "tag": len(box) - 1} {
		bad := bytes.Clone(box)
		bad[off] ^= 1
		if _, err := Open(x, kem, bad); !errors.Is(err, ErrOpen) {
			t.Errorf("opened a box with its %s tampered: %v", name, err)
		}
	}
	if _, err := Open(x, kem, box[:SealOverhead-1]); !errors.Is(err, ErrOpen) {
		t.Errorf("opened a truncated box: %v", err)
	}
	if _, err := Seal(SealKey{X25519: x.PublicKey()}, []byte("x")); err == nil {
		t.Error("sealed without an ML-KEM key")
	}
}

// TestSealV1StillOpens: envelopes sealed before the upgrade (version 1,
// X25519 only) are not lost.
func TestSealV1StillOpens(t *testing.T) {
	x, kem, _ := recipient(t, 1)
	other, _, _ := recipient(t, 2)
	box := sealV1Box(t, x.PublicKey(), []byte("from before"))
	if pt, err := Open(x, kem, box); err != nil || string(pt) != "from before" {
		t.Fatalf("open a version 1 box: %q %v", pt, err)
	}
	if pt, err := Open(x, nil, box); err != nil || string(pt) != "from before" {
		t.Fatalf("open a version 1 box without an ML-KEM key: %q %v", pt, err)
	}
	if _, err := Open(other, kem, box); !errors.Is(err, ErrOpen) {
		t.Fatalf("opened a version 1 box with another key: %v", err)
	}
	box[len(box)-1] ^= 1
	if _, err := Open(x, kem, box); !errors.Is(err, ErrOpen) {
		t.Fatalf("opened a tampered version 1 box: %v", err)
	}
}

// TestSealFromDuplicate: a frame sealed again (a sender that restarted)
// gives a different box with the same id, which a mailbox counts as the
// same envelope; another frame gets another id.
func TestSealFromDuplicate(t *testing.T) {
	x, kem, to := recipient(t, 1)
	b1, _ := SealFrom([]byte("secret"), to, []byte("frame"))
	b2, _ := SealFrom([]byte("secret"), to, []byte("frame"))
	b3, _ := SealFrom([]byte("secret"), to, []byte("frame2"))
	b4, _ := SealFrom([]byte("other secret"), to, []byte("frame"))
	if bytes.Equal(b1, b2) {
		t.Fatal("two seals share their ML-KEM encapsulation")
	}
	if digest(b1) != digest(b2) {
		t.Fatal("the same frame sealed twice has two digests: a mailbox would store it twice")
	}
	if digest(b1) == digest(b3) || digest(b1) == digest(b4) {
		t.Fatal("different frames or senders share a digest")
	}
	for _, b := range [][]byte{b1, b2} {
		if pt, err := Open(x, kem, b); err != nil || string(pt) != "frame" {
			t.Fatalf("open SealFrom: %q %v", pt, err)
		}
	}
	// Random boxes and version 1 boxes are told apart by all their bytes.
	r1, _ := Seal(to, []byte("frame"))
	r2, _ := Seal(to, []byte("frame"))
	v1 := sealV1Box(t, x.PublicKey(), []byte("frame"))
	if digest(r1) == digest(r2) || digest(v1) == digest(sealV1Box(t, x.PublicKey(), []byte("frame"))) {
		t.Fatal("distinct boxes share a digest")
	}
}

// BenchmarkSeal measures sealing and opening a 1 KiB frame in the hybrid
// box beside the X25519-only version 1 box, in the same run:
//
//	go test ./mailbox -run '^$' -bench Seal
func BenchmarkSeal(b *testing.B) {
	x, kem, to := recipient(b, 1)
	frame := bytes.Repeat([]byte{'m'}, 1024)
	v1 := sealV1Box(b, x.PublicKey(), frame)
	v2, err := SealFrom([]byte("secret"), to, frame)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("v1-x25519/seal", func(b *testing.B) {
		for b.Loop() {
			sealV1Box(b, x.PublicKey(), frame)
		}
		b.ReportMetric(float64(len(v1)-len(frame)), "overhead-B")
	})
	b.Run("v1-x25519/open", func(b *testing.B) {
		for b.Loop() {
			if _, err := Open(x, kem, v1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("v2-hybrid/seal", func(b *testing.B) {
		for b.Loop() {
			if _, err := SealFrom([]byte("secret"), to, frame); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(v2)-len(frame)), "overhead-B")
	})
	b.Run("v2-hybrid/open", func(b *testing.B) {
		for b.Loop() {
			if _, err := Open(x, kem, v2); err != nil {
				b.Fatal(err)
			}
		}
	})
}
