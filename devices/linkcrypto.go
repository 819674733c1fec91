package devices

// The link's key agreement (docs/DEVICES.md §1, the protocol box), with
// primitives from the standard library and x/crypto only. Peer ids have no
// fixed length, so each enters a hash as len(2 bytes, big endian) || id:
// "E peer || N peer" can then be read back one way only. Every other input
// has a fixed length (keys 32, commit 32, nonce 16) or comes last.
//
//	idp(x)  = BE16(len(x)) || x
//	proof   = HMAC-SHA256(secret, "callsign/v1/link-hello" || idp(E) || idp(N))
//	commit  = SHA-256(eN || nN)
//	th      = SHA-256(idp(E) || idp(N) || commit || eE || eN || nN)
//	k       = HKDF-SHA256(ikm = X25519(eE, eN), salt = secret, info = "callsign/v1/link" || th), 32 bytes
//	SAS     = BE32(HKDF-SHA256(ikm = k, no salt, info = "callsign/v1/link-sas")[:4]) mod 10^6, "482 913"
//	confirm = HMAC-SHA256(k, "callsign/v1/link-confirm" || role), role 0x01 = E, 0x02 = N
//	seal    = ChaCha20-Poly1305 under HKDF-SHA256(ikm = k, no salt, info = "callsign/v1/link-seal"),
//	          nonce = BE96(i): 0 for Account, i for the i-th history chunk;
//	          additional data "callsign/v1/link-account" or "callsign/v1/link-history"
//
// The commitment keeps a man in the middle who knows the secret from
// choosing its keys after seeing eN: it gets one 10^-6 guess at equal SASes
// per attempt, and every attempt needs a person to confirm.

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	labelLinkHello   = "callsign/v1/link-hello"
	labelLink        = "callsign/v1/link"
	labelLinkSAS     = "callsign/v1/link-sas"
	labelLinkConfirm = "callsign/v1/link-confirm"
	labelLinkSeal    = "callsign/v1/link-seal"
	adLinkAccount    = "callsign/v1/link-account"
	adLinkHistory    = "callsign/v1/link-history"

	linkNonceSize = 16 // bytes of nN
	linkKeySize   = 32

	roleE byte = 1 // the existing device, which shows the code
	roleN byte = 2 // the new device, which types it
)

// errLinkOpen is a sealed frame that does not open under the link's key.
var errLinkOpen = errors.New("sealed frame does not open")

// linkKey is the key both devices derive at step 3. Not comparable.
type linkKey struct {
	b [linkKeySize]byte
	_ [0]func()
}

func appendIDP(b []byte, id peer.ID) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	return append(b, id...)
}

// helloProof is N's proof that it holds the code's secret, bound to both
// peer ids (which Noise authenticates).
func helloProof(secret LinkSecret, e, n peer.ID) []byte {
	m := hmac.New(sha256.New, secret.b[:])
	m.Write([]byte(labelLinkHello))
	m.Write(appendIDP(appendIDP(nil, e), n))
	return m.Sum(nil)
}

// linkCommit is N's commitment to its ephemeral key and nonce.
func linkCommit(eN, nN []byte) []byte {
	h := sha256.New()
	h.Write(eN)
	h.Write(nN)
	return h.Sum(nil)
}

// linkTranscript is th.
func linkTranscript(e, n peer.ID, commit, eE, eN, nN []byte) []byte {
	h := sha256.New()
	h.Write(appendIDP(appendIDP(nil, e), n))
	h.Write(commit)
	h.Write(eE)
	h.Write(eN)
	h.Write(nN)
	return h.Sum(nil)
}

// deriveLinkKey computes k from the X25519 shared secret, the code's secret
// and the transcript hash.
func deriveLinkKey(shared []byte, secret LinkSecret, th []byte) linkKey {
	b, err := hkdf.Key(sha256.New, shared, secret.b[:], labelLink+string(th), linkKeySize)
	if err != nil {
		panic("bug: devices: hkdf: " + err.Error())
	}
	var k linkKey
	copy(k.b[:], b)
	return k
}

// sas is the six digits both screens show, as "482 913".
func (k *linkKey) sas() string {
	b, err := hkdf.Key(sha256.New, k.b[:], nil, labelLinkSAS, 4)
	if err != nil {
		panic("bug: devices: hkdf: " + err.Error())
	}
	v := binary.BigEndian.Uint32(b) % 1_000_000
	return fmt.Sprintf("%03d %03d", v/1000, v%1000)
}

// confirm is the Confirm MAC of role.
func (k *linkKey) confirm(role byte) []byte {
	m := hmac.New(sha256.New, k.b[:])
	m.Write([]byte(labelLinkConfirm))
	m.Write([]byte{role})
	return m.Sum(nil)
}

func (k *linkKey) aead() cipherAEAD {
	b, err := hkdf.Key(sha256.New, k.b[:], nil, labelLinkSeal, chacha20poly1305.KeySize)
	if err != nil {
		panic("bug: devices: hkdf: " + err.Error())
	}
	a, err := chacha20poly1305.New(b)
	if err != nil {
		panic("bug: devices: chacha20poly1305: " + err.Error())
	}
	return a
}

type cipherAEAD interface {
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
}

func linkSealNonce(i uint64) []byte {
	n := make([]byte, chacha20poly1305.NonceSize)
	binary.BigEndian.PutUint64(n[4:], i)
	return n
}

// seal seals the i-th sealed frame's payload (0: Account; 1, 2, ...: history).
func (k *linkKey) seal(i uint64, ad string, plain []byte) []byte {
	return k.aead().Seal(nil, linkSealNonce(i), plain, []byte(ad))
}

func (k *linkKey) open(i uint64, ad string, sealed []byte) ([]byte, error) {
	b, err := k.aead().Open(nil, linkSealNonce(i), sealed, []byte(ad))
	if err != nil {
		return nil, errLinkOpen
	}
	return b, nil
}

// linkKeys runs step 3's derivation for one side: its own private key
// (eE's on E, eN's on N) and the other side's public key.
func linkKeys(priv *ecdh.PrivateKey, peerPub []byte, secret LinkSecret, e, n peer.ID, commit, eE, eN, nN []byte) (linkKey, error) {
	pub, err := ecdh.X25519().NewPublicKey(peerPub)
	if err != nil {
		return linkKey{}, fmt.Errorf("bad ephemeral key: %w", err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return linkKey{}, fmt.Errorf("bad ephemeral key: %w", err) // a low-order point
	}
	return deriveLinkKey(shared, secret, linkTranscript(e, n, commit, eE, eN, nN)), nil
}
