package e2e

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

func TestOneTimePrekeyConsumedOnce(t *testing.T) {
	a, b, c := newParty(t, 1), newParty(t, 2), newParty(t, 3)
	if err := b.st.GenerateOneTime(b.id, 3, epoch, b.r); err != nil {
		t.Fatal(err)
	}
	if x, pq := b.st.OneTimeAvailable(); x != 3 || pq != 3 {
		t.Fatalf("available = %d, %d, want 3, 3", x, pq)
	}
	bundle := b.st.IssueBundle()
	if bundle.OneTime == nil || bundle.OneTimePQ == nil {
		t.Fatal("issued bundle has no one-time prekeys")
	}
	if x, pq := b.st.OneTimeAvailable(); x != 2 || pq != 2 {
		t.Fatalf("available after issue = %d, %d, want 2, 2", x, pq)
	}
	if next := b.st.IssueBundle(); next.OneTime.ID == bundle.OneTime.ID || next.OneTimePQ.ID == bundle.OneTimePQ.ID {
		t.Fatal("the same one-time prekey was issued twice")
	}

	sa, _, err := InitiateSession(a.id, b.pub, bundle, a.r)
	if err != nil {
		t.Fatal(err)
	}
	ma := mustEncrypt(t, sa, "from a")
	if _, _, err := AcceptSession(b.id, b.st, a.pub, ma, nil, b.r); err != nil {
		t.Fatal(err)
	}
	if b.st.findOneTime(bundle.OneTime.ID) != nil || b.st.findPQ(kindOneTimePQ, bundle.OneTimePQ.ID) != nil {
		t.Fatal("one-time prekeys still held after the handshake")
	}
	// The same initial message again: its one-time prekey is gone.
	if _, _, err := AcceptSession(b.id, b.st, a.pub, ma, nil, b.r); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("second accept: err = %v, want ErrUnknownPrekey", err)
	}
	// Another initiator handed the same bundle can't use it either.
	sc, _, err := InitiateSession(c.id, b.pub, bundle, c.r)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := AcceptSession(b.id, b.st, c.pub, mustEncrypt(t, sc, "from c"), nil, b.r); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("reuse by another initiator: err = %v, want ErrUnknownPrekey", err)
	}
}

func TestOneTimePrekeyCap(t *testing.T) {
	b := newParty(t, 2)
	for range MaxOneTimePrekeys/40 + 1 {
		if err := b.st.GenerateOneTime(b.id, 40, epoch, b.r); err != nil {
			t.Fatal(err)
		}
	}
	if x, pq := b.st.OneTimeAvailable(); x != MaxOneTimePrekeys || pq != MaxOneTimePrekeys {
		t.Fatalf("available = %d, %d, want cap %d", x, pq, MaxOneTimePrekeys)
	}
	if err := b.st.GenerateOneTime(b.id, MaxOneTimePrekeys+1, epoch, b.r); err == nil {
		t.Fatal("batch over the cap accepted")
	}
}

func TestRotationGrace(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	old := b.st.Bundle()

	if changed, err := b.st.Rotate(b.id, epoch.Add(PrekeyRotation-time.Second), b.r); err != nil || changed {
		t.Fatalf("rotate before due: changed=%v err=%v", changed, err)
	}
	rotatedAt := epoch.Add(PrekeyRotation)
	if changed, err := b.st.Rotate(b.id, rotatedAt, b.r); err != nil || !changed {
		t.Fatalf("rotate when due: changed=%v err=%v", changed, err)
	}
	fresh := b.st.Bundle()
	if fresh.SignedPrekeyID == old.SignedPrekeyID || fresh.PQPrekeyID == old.PQPrekeyID ||
		bytes.Equal(fresh.SignedPrekey, old.SignedPrekey) {
		t.Fatal("rotation kept the old prekeys current")
	}
	if err := fresh.Verify(b.pub); err != nil {
		t.Fatal(err)
	}

	// Within the grace period a handshake against the old bundle works.
	// (The replacement itself is rotated again meanwhile.)
	if _, err := b.st.Rotate(b.id, rotatedAt.Add(PrekeyGrace-time.Second), b.r); err != nil {
		t.Fatal(err)
	}
	sa, _, err := InitiateSession(a.id, b.pub, old, a.r)
	if err != nil {
		t.Fatal(err)
	}
	m := mustEncrypt(t, sa, "in grace")
	if _, pt, err := AcceptSession(b.id, b.st, a.pub, m, nil, b.r); err != nil || string(pt) != "in grace" {
		t.Fatalf("accept within grace = %q, %v", pt, err)
	}

	// After the grace period it is refused.
	if changed, err := b.st.Rotate(b.id, rotatedAt.Add(PrekeyGrace), b.r); err != nil || !changed {
		t.Fatalf("rotate after grace: changed=%v err=%v", changed, err)
	}
	sa2, _, err := InitiateSession(a.id, b.pub, old, a.r)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := AcceptSession(b.id, b.st, a.pub, mustEncrypt(t, sa2, "late"), nil, b.r); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("accept after grace: err = %v, want ErrUnknownPrekey", err)
	}
	// The current bundle still works.
	sa3, _, err := InitiateSession(a.id, b.pub, b.st.Bundle(), a.r)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := AcceptSession(b.id, b.st, a.pub, mustEncrypt(t, sa3, "new"), nil, b.r); err != nil {
		t.Fatal(err)
	}
}

func TestRotationIsDeterministic(t *testing.T) {
	run := func() []byte {
		b := newParty(t, 9)
		for i := range 5 {
			if _, err := b.st.Rotate(b.id, epoch.Add(time.Duration(i)*PrekeyRotation), b.r); err != nil {
				t.Fatal(err)
			}
		}
		enc, err := b.st.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	if !bytes.Equal(run(), run()) {
		t.Fatal("same state, times and random bytes gave different prekey states")
	}
}

func TestPrekeyStateRoundTrip(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	if err := b.st.GenerateOneTime(b.id, 5, epoch, b.r); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Rotate(b.id, epoch.Add(PrekeyRotation), b.r); err != nil {
		t.Fatal(err)
	}
	bundle := b.st.IssueBundle()
	enc, err := b.st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	st, err := UnmarshalPrekeyState(enc)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := st.Marshal(); !bytes.Equal(again, enc) {
		t.Fatal("marshal after unmarshal differs")
	}
	if x, _ := st.OneTimeAvailable(); x != 4 {
		t.Fatalf("restored state has %d unissued one-time prekeys, want 4", x)
	}
	sa, _, err := InitiateSession(a.id, b.pub, bundle, a.r)
	if err != nil {
		t.Fatal(err)
	}
	if _, pt, err := AcceptSession(b.id, st, a.pub, mustEncrypt(t, sa, "x"), nil, b.r); err != nil || string(pt) != "x" {
		t.Fatalf("accept with restored state = %q, %v", pt, err)
	}
	for _, bad := range [][]byte{nil, {0x08, 0x02}, append(append([]byte(nil), enc...), 0x08, 0x01)} {
		if _, err := UnmarshalPrekeyState(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("unmarshal %x: err = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestBundleSignatures(t *testing.T) {
	b := newParty(t, 2)
	if err := b.st.GenerateOneTime(b.id, 1, epoch, b.r); err != nil {
		t.Fatal(err)
	}
	good := b.st.IssueBundle()
	if err := good.Verify(b.pub); err != nil {
		t.Fatal(err)
	}
	sigs := map[string]func(*Bundle) []byte{
		"identity":    func(x *Bundle) []byte { return x.IdentityDHSig },
		"signed":      func(x *Bundle) []byte { return x.SignedPrekeySig },
		"pq":          func(x *Bundle) []byte { return x.PQPrekeySig },
		"one-time":    func(x *Bundle) []byte { return x.OneTime.Sig },
		"one-time pq": func(x *Bundle) []byte { return x.OneTimePQ.Sig },
	}
	for name, sig := range sigs {
		enc, _ := MarshalBundle(good)
		bad, err := UnmarshalBundle(enc)
		if err != nil {
			t.Fatal(err)
		}
		sig(&bad)[3] ^= 1
		if err := bad.Verify(b.pub); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%s: err = %v, want ErrBadSignature", name, err)
		}
		a := newParty(t, 1)
		if _, _, err := InitiateSession(a.id, b.pub, bad, a.r); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%s: initiate: err = %v, want ErrBadSignature", name, err)
		}
	}
	// A key swapped for another (validly signed elsewhere) is caught: ids
	// and kinds are signed.
	swapped := good
	swapped.SignedPrekeyID++
	if err := swapped.Verify(b.pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed id: err = %v, want ErrBadSignature", err)
	}
	swapped = good
	swapped.SignedPrekey, swapped.SignedPrekeySig = good.OneTime.Public, good.OneTime.Sig
	swapped.SignedPrekeyID = good.OneTime.ID
	if err := swapped.Verify(b.pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("one-time key as signed prekey: err = %v, want ErrBadSignature", err)
	}
}

func TestWrongPeerSigner(t *testing.T) {
	a, b, mallory := newParty(t, 1), newParty(t, 2), newParty(t, 3)
	bundle := b.st.Bundle()
	if err := bundle.Verify(mallory.pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("verify with wrong signer: err = %v, want ErrBadSignature", err)
	}
	if _, _, err := InitiateSession(a.id, mallory.pub, bundle, a.r); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("initiate with wrong signer: err = %v, want ErrBadSignature", err)
	}
	sa, _, err := InitiateSession(a.id, b.pub, bundle, a.r)
	if err != nil {
		t.Fatal(err)
	}
	m := mustEncrypt(t, sa, "hi")
	// b is told the message is from mallory: a's identity key is not
	// signed by mallory's account key.
	if _, _, err := AcceptSession(b.id, b.st, mallory.pub, m, nil, b.r); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("accept with wrong signer: err = %v, want ErrBadSignature", err)
	}
	if _, _, err := AcceptSession(b.id, b.st, ed25519.PublicKey(make([]byte, 5)), m, nil, b.r); !errors.Is(err, ErrMalformed) {
		t.Fatalf("accept with short signer: err = %v, want ErrMalformed", err)
	}
	// Mallory can't claim a's identity key with her own account key either:
	// the session's associated data binds the account keys.
	forged := append([]byte(nil), m...)
	copy(forged[2+keySize:], signKey(mallory.id.Signer, kindIdentity, 0, a.id.DH.PublicKey().Bytes()))
	if _, _, err := AcceptSession(b.id, b.st, mallory.pub, forged, nil, b.r); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("accept of a's handshake re-signed by mallory: err = %v, want ErrDecrypt", err)
	}
}

func TestBundleCodec(t *testing.T) {
	b := newParty(t, 2)
	if err := b.st.GenerateOneTime(b.id, 1, epoch, b.r); err != nil {
		t.Fatal(err)
	}
	for _, bundle := range []Bundle{b.st.Bundle(), b.st.IssueBundle()} {
		enc, err := MarshalBundle(bundle)
		if err != nil {
			t.Fatal(err)
		}
		if len(enc) > MaxBundleSize {
			t.Fatalf("bundle of %d bytes exceeds %d", len(enc), MaxBundleSize)
		}
		got, err := UnmarshalBundle(enc)
		if err != nil {
			t.Fatal(err)
		}
		if err := got.Verify(b.pub); err != nil {
			t.Fatal(err)
		}
		again, _ := MarshalBundle(got)
		if !bytes.Equal(again, enc) {
			t.Fatal("bundle did not round-trip byte for byte")
		}
	}
	enc, _ := MarshalBundle(b.st.Bundle())
	bad := map[string][]byte{
		"empty":            nil,
		"truncated":        enc[:len(enc)-1],
		"trailing field":   append(append([]byte(nil), enc...), 0x58, 0x01),
		"duplicate field":  append(append([]byte(nil), enc[:34]...), enc...),
		"non-canonical id": nil,
		"too large":        make([]byte, MaxBundleSize+1),
	}
	// Re-encode the signed prekey id (field 3) with a padded varint.
	i := 34 + 66 // after fields 1 (2+32) and 2 (2+64)
	if enc[i] != 0x18 {
		t.Fatalf("field 3 not at %d", i)
	}
	nc := append([]byte(nil), enc[:i+1]...)
	nc = append(nc, enc[i+1]|0x80, 0x00)
	bad["non-canonical id"] = append(nc, enc[i+2:]...)
	for name, data := range bad {
		if _, err := UnmarshalBundle(data); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}
