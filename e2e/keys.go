package e2e

import (
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Domain-separation labels. Changing any of them changes every derived key
// and is a wire-format break (the golden vectors in the tests fail).
const (
	labelPrekey  = "callsign/v1/prekey"
	labelPQXDH   = "callsign/v1/pqxdh"
	labelRoot    = "callsign/v1/ratchet-root"
	labelMessage = "callsign/v1/message-keys"
)

// Kinds of signed keys; the kind is part of the signed statement so a key of
// one kind can never be presented as another.
const (
	kindIdentity     byte = 0x00 // X25519 identity key (IK), id 0
	kindSignedPrekey byte = 0x01 // X25519 signed prekey (SPK)
	kindPQPrekey     byte = 0x02 // ML-KEM-768 last-resort prekey (PQSPK)
	kindOneTime      byte = 0x03 // X25519 one-time prekey (OPK)
	kindOneTimePQ    byte = 0x04 // ML-KEM-768 one-time prekey (PQOPK)
)

const (
	keySize = 32 // X25519 keys, root, chain and message keys
	sigSize = ed25519.SignatureSize
)

// noCompare makes a struct type incomparable, so secret keys can't be
// compared with == (which would not be constant time).
type noCompare [0]func()

// rootKey, chainKey and messageKey are distinct types so one can never be
// passed where another is expected.
type (
	rootKey struct {
		_ noCompare
		b [keySize]byte
	}
	chainKey struct {
		_ noCompare
		b [keySize]byte
	}
	messageKey struct {
		_ noCompare
		b [keySize]byte
	}
)

func (k *rootKey) clear()    { clear(k.b[:]) }
func (k *chainKey) clear()   { clear(k.b[:]) }
func (k *messageKey) clear() { clear(k.b[:]) }

// ratchetKey is a session's own X25519 ratchet key pair. It keeps the raw
// bytes and builds the crypto/ecdh key (which costs a scalar multiplication)
// only when a DH needs it, so restoring a session from storage for every
// message stays cheap.
type ratchetKey struct {
	_    noCompare
	priv [keySize]byte
	pub  [keySize]byte
	key  *ecdh.PrivateKey // nil until first use
}

func newRatchetKey(k *ecdh.PrivateKey) ratchetKey {
	r := ratchetKey{key: k}
	copy(r.priv[:], k.Bytes())
	copy(r.pub[:], k.PublicKey().Bytes())
	return r
}

func (r *ratchetKey) ecdh() (*ecdh.PrivateKey, error) {
	if r.key == nil {
		k, err := ecdh.X25519().NewPrivateKey(r.priv[:])
		if err != nil {
			return nil, err
		}
		r.key = k
	}
	return r.key, nil
}

// Identity is one party's long-term key material: the Ed25519 account key
// that signs prekeys, and the X25519 identity key (IK) used in the
// handshake. The caller owns and stores both.
type Identity struct {
	Signer ed25519.PrivateKey
	DH     *ecdh.PrivateKey // X25519
}

// GenerateDHKey returns a new X25519 key drawn from rand (crypto/rand.Reader
// if nil), for use as Identity.DH.
func GenerateDHKey(rand io.Reader) (*ecdh.PrivateKey, error) {
	return newX25519(rand)
}

func (id Identity) check() error {
	if len(id.Signer) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: identity signer is %d bytes", ErrMalformed, len(id.Signer))
	}
	if id.DH == nil || id.DH.Curve() != ecdh.X25519() {
		return fmt.Errorf("%w: identity DH key is not X25519", ErrMalformed)
	}
	return nil
}

func (id Identity) signerPub() []byte {
	return id.Signer.Public().(ed25519.PublicKey)
}

// newX25519 reads a private key from r. crypto/ecdh's GenerateKey ignores its
// reader since Go 1.26, so the bytes are read here to honour the caller's
// source (tests use a deterministic one).
func newX25519(r io.Reader) (*ecdh.PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [keySize]byte
	defer clear(b[:])
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, fmt.Errorf("e2e: read random: %w", err)
	}
	return ecdh.X25519().NewPrivateKey(b[:])
}

// dh computes X25519(priv, pub). A non-canonical or low-order public key
// yields an error.
func dh(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	if !canonicalX25519(pub) {
		return nil, errors.New("non-canonical X25519 public key")
	}
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return priv.ECDH(p)
}

// canonicalX25519 reports whether pub is the one encoding of its point:
// 32 bytes, top bit clear, value below 2^255-19. X25519 ignores the top bit
// and reduces larger values, so without this check two encodings would give
// the same shared secret and a handshake could be altered undetected.
func canonicalX25519(pub []byte) bool {
	if len(pub) != keySize || pub[31]&0x80 != 0 {
		return false
	}
	if pub[31] != 0x7f || pub[0] < 0xed {
		return true
	}
	for _, c := range pub[1:31] {
		if c != 0xff {
			return true
		}
	}
	return false
}

// signedStatement is the byte string a prekey signature covers:
// "callsign/v1/prekey" || 0x00 || kind || id (uint32 big endian) || pub.
func signedStatement(kind byte, id uint32, pub []byte) []byte {
	m := make([]byte, 0, len(labelPrekey)+6+len(pub))
	m = append(m, labelPrekey...)
	m = append(m, 0x00, kind)
	m = binary.BigEndian.AppendUint32(m, id)
	return append(m, pub...)
}

func signKey(signer ed25519.PrivateKey, kind byte, id uint32, pub []byte) []byte {
	return ed25519.Sign(signer, signedStatement(kind, id, pub))
}

func verifyKey(signer ed25519.PublicKey, kind byte, id uint32, pub, sig []byte) bool {
	return len(signer) == ed25519.PublicKeySize && len(sig) == sigSize &&
		ed25519.Verify(signer, signedStatement(kind, id, pub), sig)
}

// kdfPQXDH is PQXDH's KDF: HKDF-SHA256 with a zero salt, IKM = F || km where
// F is 32 0xFF bytes, info "callsign/v1/pqxdh", 32 bytes out.
func kdfPQXDH(km []byte) rootKey {
	ikm := make([]byte, 0, keySize+len(km))
	for range keySize {
		ikm = append(ikm, 0xFF)
	}
	ikm = append(ikm, km...)
	defer clear(ikm)
	out, err := hkdf.Key(sha256.New, ikm, make([]byte, sha256.Size), labelPQXDH, keySize)
	if err != nil {
		panic("bug: hkdf: " + err.Error())
	}
	var rk rootKey
	copy(rk.b[:], out)
	clear(out)
	return rk
}

// kdfRK is the ratchet's root KDF: HKDF-SHA256 with salt = root key,
// IKM = DH output, info "callsign/v1/ratchet-root", 64 bytes split into the
// next root key and a chain key.
func kdfRK(rk *rootKey, dhOut []byte) (rootKey, chainKey) {
	out, err := hkdf.Key(sha256.New, dhOut, rk.b[:], labelRoot, 2*keySize)
	if err != nil {
		panic("bug: hkdf: " + err.Error())
	}
	var nrk rootKey
	var ck chainKey
	copy(nrk.b[:], out[:keySize])
	copy(ck.b[:], out[keySize:])
	clear(out)
	return nrk, ck
}

// kdfCK is the symmetric ratchet: message key = HMAC-SHA256(ck, 0x01), next
// chain key = HMAC-SHA256(ck, 0x02).
func kdfCK(ck *chainKey) (chainKey, messageKey) {
	var next chainKey
	var mk messageKey
	mk.b = hmac32(&ck.b, []byte{0x01})
	next.b = hmac32(&ck.b, []byte{0x02})
	return next, mk
}

// hmac32 is HMAC-SHA256 (RFC 2104) with a 32-byte key and a message of at
// most hmacMaxMsg bytes, computed on the stack: the ratchet runs it several
// times per message, and crypto/hmac allocates two hash states per key.
// Every intermediate is cleared before returning.
func hmac32(key *[keySize]byte, msg []byte) [sha256.Size]byte {
	if len(msg) > hmacMaxMsg {
		panic("bug: hmac32 message too long")
	}
	const block = 64 // SHA-256 block size
	var buf [block + hmacMaxMsg]byte
	for i := range block {
		var k byte
		if i < keySize {
			k = key[i]
		}
		buf[i] = k ^ 0x36
	}
	n := copy(buf[block:], msg)
	inner := sha256.Sum256(buf[:block+n])
	for i := range block {
		buf[i] ^= 0x36 ^ 0x5c
	}
	copy(buf[block:], inner[:])
	out := sha256.Sum256(buf[:block+sha256.Size])
	clear(buf[:])
	clear(inner[:])
	return out
}

// hmacMaxMsg bounds hmac32's message: the longest is an HKDF expand block,
// T(1) || info || counter.
const hmacMaxMsg = sha256.Size + len(labelMessage) + 1

// zeroSalt is HKDF's salt for message keys: 32 zero bytes.
var zeroSalt [sha256.Size]byte

// aead expands a message key with HKDF-SHA256 (zero salt, info
// "callsign/v1/message-keys") into a ChaCha20-Poly1305 key and 12-byte nonce.
// Every message key is used for exactly one message, so the derived nonce is
// never reused under a key.
func (mk *messageKey) aead() (cipher.AEAD, []byte) {
	// HKDF-SHA256 (RFC 5869) spelled out with hmac32, so no step allocates:
	// PRK = HMAC(salt, IKM); T(1) = HMAC(PRK, info || 0x01);
	// T(2) = HMAC(PRK, T(1) || info || 0x02); output T(1) || T(2)[:12].
	var msg [hmacMaxMsg]byte
	prk := hmac32(&zeroSalt, mk.b[:])
	n := copy(msg[:], labelMessage)
	msg[n] = 0x01
	t1 := hmac32(&prk, msg[:n+1])
	n = copy(msg[:], t1[:])
	n += copy(msg[n:], labelMessage)
	msg[n] = 0x02
	t2 := hmac32(&prk, msg[:n+1])
	a, err := chacha20poly1305.New(t1[:chacha20poly1305.KeySize])
	if err != nil {
		panic("bug: chacha20poly1305: " + err.Error())
	}
	nonce := append([]byte(nil), t2[:chacha20poly1305.NonceSize]...)
	clear(prk[:])
	clear(t1[:])
	clear(t2[:])
	clear(msg[:])
	return a, nonce
}
