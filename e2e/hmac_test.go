package e2e

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// hmac32 must equal crypto/hmac for every message length it accepts; the
// ratchet's keys (and the golden vectors) depend on it.
func TestHMAC32MatchesStdlib(t *testing.T) {
	for n := 0; n <= hmacMaxMsg; n++ {
		var key [keySize]byte
		rand.Read(key[:])
		msg := make([]byte, n)
		rand.Read(msg)
		m := hmac.New(sha256.New, key[:])
		m.Write(msg)
		want := m.Sum(nil)
		if got := hmac32(&key, msg); !hmac.Equal(got[:], want) {
			t.Fatalf("message of %d bytes: hmac32 %x, crypto/hmac %x", n, got, want)
		}
	}
}

func TestRatchetStepAllocations(t *testing.T) {
	var ck chainKey
	rand.Read(ck.b[:])
	if n := testing.AllocsPerRun(100, func() { kdfCK(&ck) }); n != 0 {
		t.Errorf("kdfCK allocates %v times per step, want 0", n)
	}
}
