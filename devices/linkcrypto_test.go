package devices

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func fixedX25519(t testing.TB, b byte) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// linkSide runs steps 1..3 for fixed keys: what one side derives when
// "E" is e (holding eE) and "N" is n (holding eN, nN).
func linkSide(t testing.TB, secret LinkSecret, e, n peer.ID, eE, eN *ecdh.PrivateKey, nN []byte, onE bool) (linkKey, []byte) {
	t.Helper()
	commit := linkCommit(eN.PublicKey().Bytes(), nN)
	priv, pub := eN, eE.PublicKey().Bytes()
	if onE {
		priv, pub = eE, eN.PublicKey().Bytes()
	}
	k, err := linkKeys(priv, pub, secret, e, n, commit, eE.PublicKey().Bytes(), eN.PublicKey().Bytes(), nN)
	if err != nil {
		t.Fatal(err)
	}
	return k, commit
}

// TestLinkCryptoVectors pins every derivation of the link for fixed
// inputs (checked against an independent Python implementation with the
// cryptography package when written), and checks that both sides derive the same key and SAS.
func TestLinkCryptoVectors(t *testing.T) {
	secret := fixedSecret(0x5a)
	e, n := fixedPeer(t, 1), fixedPeer(t, 3)
	eE, eN := fixedX25519(t, 0x11), fixedX25519(t, 0x22)
	nN := bytes.Repeat([]byte{0x33}, linkNonceSize)

	kE, commit := linkSide(t, secret, e, n, eE, eN, nN, true)
	kN, _ := linkSide(t, secret, e, n, eE, eN, nN, false)
	if kE.b != kN.b || kE.sas() != kN.sas() {
		t.Fatalf("the sides disagree: E %x %s, N %x %s", kE.b, kE.sas(), kN.b, kN.sas())
	}
	th := linkTranscript(e, n, commit, eE.PublicKey().Bytes(), eN.PublicKey().Bytes(), nN)
	for _, v := range []struct{ name, got, want string }{
		{"proof", hex.EncodeToString(helloProof(secret, e, n)), "ae98c58aa3ea63be54301ea4809a9241e47b4162b9047690213b6acc2cfeb2ba"},
		{"commit", hex.EncodeToString(commit), "3b10069de99ee443e74b17ad3aa877df7ed2ea9d62c2ac99e32242bf08433740"},
		{"th", hex.EncodeToString(th), "70e3c9d0405cedf991ceaa41c318cbe3dd771de2d1a74fc88243bea67a7c5c26"},
		{"k", hex.EncodeToString(kE.b[:]), "77236d540e51dd16e513dfdfe8114a98943340f82c916b616e3ad22320a1b924"},
		{"sas", kE.sas(), "548 203"},
		{"confirm E", hex.EncodeToString(kE.confirm(roleE)), "502c588ee3ad9de81149ba4f0a72b1f34dba594ec9ea3432497b7a542e92f22f"},
		{"confirm N", hex.EncodeToString(kE.confirm(roleN)), "35e43b6657770ada3133b3fc59ad2bebc71ea07957a3b359745a4e5041919636"},
		{"account", hex.EncodeToString(kE.seal(0, adLinkAccount, []byte("seed"))), "e7d5e9984e1bdc21fef1be0b3b5fbbb11a8b5ad9"},
	} {
		if v.got != v.want {
			t.Errorf("%s = %s, want %s", v.name, v.got, v.want)
		}
	}
	if kE.sas()[3] != ' ' || len(kE.sas()) != 7 {
		t.Errorf("SAS %q is not shown as \"ddd ddd\"", kE.sas())
	}
	if b, err := kN.open(0, adLinkAccount, kE.seal(0, adLinkAccount, []byte("seed"))); err != nil || string(b) != "seed" {
		t.Errorf("N opens E's account: %q, %v", b, err)
	}
	if _, err := kN.open(1, adLinkAccount, kE.seal(0, adLinkAccount, []byte("seed"))); err == nil {
		t.Error("an account opened under another nonce")
	}
	if _, err := kN.open(0, adLinkHistory, kE.seal(0, adLinkAccount, []byte("seed"))); err == nil {
		t.Error("an account opened as a history chunk")
	}
	// The peer ids are length-prefixed: moving bytes from one to the other
	// changes the proof and the transcript.
	if bytes.Equal(helloProof(secret, e, n), helloProof(secret, e+n[:1], n[1:])) {
		t.Error("the proof does not tell E||N apart from a split elsewhere")
	}
	if bytes.Equal(th, linkTranscript(e+n[:1], n[1:], commit, eE.PublicKey().Bytes(), eN.PublicKey().Bytes(), nN)) {
		t.Error("the transcript does not tell E||N apart from a split elsewhere")
	}
}

// TestLinkCryptoMITM: a relay M that knows the secret and runs the
// protocol with N (as E, its own ephemeral eM1) and with E (as N, eM2)
// leaves N and E with different SASes. (With the commitment, M can't pick
// eM1 or eM2 after seeing the other side's key; they match with
// probability 10^-6 per attempt.) It also can't make the two legs' keys
// equal, so it can't pass Confirm on to either side.
func TestLinkCryptoMITM(t *testing.T) {
	secret := fixedSecret(0x5a)
	e, n, m := fixedPeer(t, 1), fixedPeer(t, 3), fixedPeer(t, 4)
	eE, eN := fixedX25519(t, 0x11), fixedX25519(t, 0x22)
	eM1, eM2 := fixedX25519(t, 0x44), fixedX25519(t, 0x55)
	nN, nM := bytes.Repeat([]byte{0x33}, linkNonceSize), bytes.Repeat([]byte{0x66}, linkNonceSize)

	// Leg 1: N dialled M (Noise makes the code's peer M's), M plays E.
	kN, _ := linkSide(t, secret, m, n, eM1, eN, nN, false)
	// Leg 2: M dialled E as itself, plays N.
	kE, _ := linkSide(t, secret, e, m, eE, eM2, nM, true)
	if kN.sas() == kE.sas() {
		t.Fatalf("both screens show %s under a man in the middle", kN.sas())
	}
	if bytes.Equal(kN.confirm(roleE), kE.confirm(roleE)) || bytes.Equal(kN.confirm(roleN), kE.confirm(roleN)) {
		t.Fatal("the legs' Confirm MACs match")
	}
	// Even with the same ephemeral keys on both legs, the peer ids in the
	// transcript keep the legs apart.
	kN2, _ := linkSide(t, secret, m, n, eE, eN, nN, false)
	kE2, _ := linkSide(t, secret, e, m, eE, eN, nN, true)
	if kN2.sas() == kE2.sas() {
		t.Fatal("relaying the keys unchanged gives both screens one SAS")
	}
}
