package e2e

import (
	"bytes"
	"crypto/mlkem"
	"errors"
	"testing"
	"time"
)

// TestIssueOneTimeExclusive: keys handed out as a batch (for a mailbox)
// are never handed out again, by IssueBundle or another batch; the
// handshake that uses one consumes it, and a second use is refused.
func TestIssueOneTimeExclusive(t *testing.T) {
	a, b, c := newParty(t, 1), newParty(t, 2), newParty(t, 3)
	if err := b.st.GenerateOneTime(b.id, 10, epoch, b.r); err != nil {
		t.Fatal(err)
	}
	x, pq := b.st.IssueOneTime(4)
	if len(x) != 4 || len(pq) != 4 {
		t.Fatalf("batch of %d, %d, want 4, 4", len(x), len(pq))
	}
	if ax, apq := b.st.OneTimeAvailable(); ax != 6 || apq != 6 {
		t.Fatalf("available after the batch = %d, %d, want 6, 6", ax, apq)
	}
	seen := map[uint32]bool{}
	for _, k := range append(append([]OneTimePrekey{}, x...), pq...) {
		if err := VerifyOneTimePrekey(b.pub, k, len(k.Public) != keySize); err != nil {
			t.Fatal(err)
		}
		seen[k.ID] = true
	}
	x2, pq2 := b.st.IssueOneTime(100)
	for range 7 {
		bu := b.st.IssueBundle()
		if bu.OneTime != nil {
			x2 = append(x2, *bu.OneTime)
		}
	}
	for _, k := range append(x2, pq2...) {
		if seen[k.ID] {
			t.Fatalf("one-time prekey %d handed out twice", k.ID)
		}
	}

	bundle := b.st.Bundle()
	bundle.OneTime, bundle.OneTimePQ = &x[0], &pq[0]
	sa, _, err := InitiateSession(a.id, b.pub, bundle, a.r)
	if err != nil {
		t.Fatal(err)
	}
	m := mustEncrypt(t, sa, "first")
	ids, err := ParseInitialPrekeys(m)
	if err != nil || ids.OneTime != x[0].ID || !ids.PQOneTime || ids.PQPrekey != pq[0].ID {
		t.Fatalf("initial message names %+v, %v; want one-time %d and pq one-time %d", ids, err, x[0].ID, pq[0].ID)
	}
	if _, _, err := AcceptSession(b.id, b.st, a.pub, m, nil, b.r); err != nil {
		t.Fatal(err)
	}
	sc, _, err := InitiateSession(c.id, b.pub, bundle, c.r)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := AcceptSession(b.id, b.st, c.pub, mustEncrypt(t, sc, "reuse"), nil, b.r); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("second use of a mailbox's one-time prekey: err = %v, want ErrUnknownPrekey", err)
	}
}

// TestDecapsulatePQKeep: the PQ prekey a mailbox box was sealed to opens
// after rotation for PQPrekeyKeep, well past PrekeyGrace, and not after.
func TestDecapsulatePQKeep(t *testing.T) {
	b := newParty(t, 2)
	old := b.st.Bundle()
	ek, err := mlkem.NewEncapsulationKey768(old.PQPrekey)
	if err != nil {
		t.Fatal(err)
	}
	ss, ct := ek.Encapsulate()
	for at := epoch; at.Before(epoch.Add(PQPrekeyKeep)); at = at.Add(PrekeyRotation) {
		if _, err := b.st.Rotate(b.id, at, b.r); err != nil {
			t.Fatal(err)
		}
	}
	retiredAt := epoch.Add(PrekeyRotation)
	if _, err := b.st.Rotate(b.id, retiredAt.Add(PQPrekeyKeep-time.Second), b.r); err != nil {
		t.Fatal(err)
	}
	got, err := b.st.DecapsulatePQ(old.PQPrekeyID, ct)
	if err != nil || !bytes.Equal(got, ss) {
		t.Fatalf("decapsulate %v after rotation: %v", PQPrekeyKeep-time.Second, err)
	}
	enc, err := b.st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalPrekeyState(enc); err != nil {
		t.Fatalf("a state keeping %d PQ prekeys does not load: %v", maxRetiredPQ+1, err)
	}
	if _, err := b.st.Rotate(b.id, retiredAt.Add(PQPrekeyKeep), b.r); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.DecapsulatePQ(old.PQPrekeyID, ct); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("decapsulate after PQPrekeyKeep: err = %v, want ErrUnknownPrekey", err)
	}
	if _, err := b.st.DecapsulatePQ(b.st.Bundle().PQPrekeyID, ct[:10]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short ciphertext: err = %v, want ErrMalformed", err)
	}
}

func TestOneTimePrekeyCodec(t *testing.T) {
	b := newParty(t, 2)
	if err := b.st.GenerateOneTime(b.id, 1, epoch, b.r); err != nil {
		t.Fatal(err)
	}
	x, pq := b.st.IssueOneTime(1)
	for i, k := range []OneTimePrekey{x[0], pq[0]} {
		isPQ := i == 1
		enc := MarshalOneTimePrekey(k)
		got, err := UnmarshalOneTimePrekey(enc, isPQ)
		if err != nil || got.ID != k.ID || !bytes.Equal(got.Public, k.Public) || !bytes.Equal(got.Sig, k.Sig) {
			t.Fatalf("round trip: %+v, %v", got, err)
		}
		if _, err := UnmarshalOneTimePrekey(enc, !isPQ); err == nil {
			t.Fatal("a key of the other kind decoded")
		}
		if err := VerifyOneTimePrekey(b.pub, got, !isPQ); err == nil {
			t.Fatal("a key verified as the other kind")
		}
		bad := got
		bad.Sig = append([]byte(nil), got.Sig...)
		bad.Sig[0] ^= 1
		if err := VerifyOneTimePrekey(b.pub, bad, isPQ); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("bad signature: err = %v", err)
		}
	}
}

func FuzzUnmarshalOneTimePrekey(f *testing.F) {
	b := newParty(f, 2)
	if err := b.st.GenerateOneTime(b.id, 1, epoch, b.r); err != nil {
		f.Fatal(err)
	}
	x, pq := b.st.IssueOneTime(1)
	f.Add(MarshalOneTimePrekey(x[0]), false)
	f.Add(MarshalOneTimePrekey(pq[0]), true)
	f.Fuzz(func(t *testing.T, data []byte, isPQ bool) {
		k, err := UnmarshalOneTimePrekey(data, isPQ)
		if err != nil {
			return
		}
		if !bytes.Equal(MarshalOneTimePrekey(k), data) {
			t.Fatal("accepted a non-canonical encoding")
		}
	})
}
