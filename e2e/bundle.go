package e2e

import (
	"crypto/ed25519"
	"crypto/mlkem"
	"fmt"
	"github.com/callsign/callsign/internal/wire"
	"math"
)

// MaxBundleSize caps an encoded Bundle; UnmarshalBundle refuses more. A full
// bundle with both one-time prekeys is about 2.9 KiB.
const MaxBundleSize = 4096

// OneTimePrekey is a one-time prekey as published: its id, public key (32
// bytes X25519, or a 1184-byte ML-KEM-768 encapsulation key) and the account
// key's signature over it.
type OneTimePrekey struct {
	ID     uint32
	Public []byte
	Sig    []byte
}

// Bundle is the public half of a party's prekeys, what an initiator needs to
// start a session. Every key in it is signed by the party's Ed25519 account
// key over "callsign/v1/prekey" || 0x00 || kind || id || pub; the identity
// key IdentityDH is signed the same way with kind 0 and id 0. Ids are at
// least 1.
type Bundle struct {
	IdentityDH      []byte // X25519 identity key (IK), 32 bytes
	IdentityDHSig   []byte
	SignedPrekeyID  uint32
	SignedPrekey    []byte // X25519, 32 bytes
	SignedPrekeySig []byte
	PQPrekeyID      uint32
	PQPrekey        []byte // ML-KEM-768 encapsulation key, 1184 bytes (last resort)
	PQPrekeySig     []byte
	OneTime         *OneTimePrekey // optional X25519 one-time prekey
	OneTimePQ       *OneTimePrekey // optional ML-KEM-768 one-time prekey
}

// Verify checks the shape of b and every signature in it against signer, the
// peer's Ed25519 account key. A wrong signature is ErrBadSignature; a bad
// length or key encoding is ErrMalformed.
func (b Bundle) Verify(signer ed25519.PublicKey) error {
	if len(signer) != ed25519.PublicKeySize {
		return fmt.Errorf("verify bundle: %w: signer is %d bytes", ErrMalformed, len(signer))
	}
	keys := []signedKey{
		{"identity key", kindIdentity, 0, b.IdentityDH, b.IdentityDHSig, keySize},
		{"signed prekey", kindSignedPrekey, b.SignedPrekeyID, b.SignedPrekey, b.SignedPrekeySig, keySize},
		{"pq prekey", kindPQPrekey, b.PQPrekeyID, b.PQPrekey, b.PQPrekeySig, mlkem.EncapsulationKeySize768},
	}
	if b.OneTime != nil {
		keys = append(keys, signedKey{"one-time prekey", kindOneTime, b.OneTime.ID, b.OneTime.Public, b.OneTime.Sig, keySize})
	}
	if b.OneTimePQ != nil {
		keys = append(keys, signedKey{"one-time pq prekey", kindOneTimePQ, b.OneTimePQ.ID, b.OneTimePQ.Public, b.OneTimePQ.Sig, mlkem.EncapsulationKeySize768})
	}
	for _, k := range keys {
		if err := k.verify(signer); err != nil {
			return fmt.Errorf("verify bundle: %w", err)
		}
	}
	return nil
}

// signedKey is one signed public key of a bundle, as verify checks it.
type signedKey struct {
	name string
	kind byte
	id   uint32
	pub  []byte
	sig  []byte
	size int
}

// verify checks k's shape (length, a non-zero id but for the identity
// key, a canonical X25519 or a valid ML-KEM key) and its signature by
// signer: ErrMalformed or ErrBadSignature.
func (k signedKey) verify(signer ed25519.PublicKey) error {
	if len(k.pub) != k.size || len(k.sig) != sigSize || (k.kind != kindIdentity && k.id == 0) {
		return fmt.Errorf("%w: %s", ErrMalformed, k.name)
	}
	if k.size == keySize && !canonicalX25519(k.pub) {
		return fmt.Errorf("%w: %s is not a canonical X25519 key", ErrMalformed, k.name)
	}
	if k.size == mlkem.EncapsulationKeySize768 {
		if _, err := mlkem.NewEncapsulationKey768(k.pub); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrMalformed, k.name, err)
		}
	}
	if !verifyKey(signer, k.kind, k.id, k.pub, k.sig) {
		return fmt.Errorf("%s: %w", k.name, ErrBadSignature)
	}
	return nil
}

// MarshalBundle encodes b in the strict protobuf form UnmarshalBundle reads
// (schema in e2e.proto). It does not verify signatures.
func MarshalBundle(b Bundle) ([]byte, error) {
	var e wire.Encoder
	e.Bytes(1, b.IdentityDH)
	e.Bytes(2, b.IdentityDHSig)
	e.Uint(3, uint64(b.SignedPrekeyID))
	e.Bytes(4, b.SignedPrekey)
	e.Bytes(5, b.SignedPrekeySig)
	e.Uint(6, uint64(b.PQPrekeyID))
	e.Bytes(7, b.PQPrekey)
	e.Bytes(8, b.PQPrekeySig)
	if b.OneTime != nil {
		e.Bytes(9, marshalOneTime(b.OneTime))
	}
	if b.OneTimePQ != nil {
		e.Bytes(10, marshalOneTime(b.OneTimePQ))
	}
	if len(e.B) > MaxBundleSize {
		return nil, fmt.Errorf("marshal bundle: %w: %d bytes exceeds %d", ErrMalformed, len(e.B), MaxBundleSize)
	}
	if _, err := UnmarshalBundle(e.B); err != nil {
		return nil, fmt.Errorf("marshal bundle: %w", err)
	}
	return e.B, nil
}

// MaxOneTimePrekeySize caps an encoded one-time prekey (an ML-KEM-768 one
// with its id and signature is 1,258 bytes).
const MaxOneTimePrekeySize = 1300

// MarshalOneTimePrekey encodes k in the strict form UnmarshalOneTimePrekey
// reads (the OneTimePrekey message of e2e.proto): a mailbox stores and
// hands out one-time prekeys in it.
func MarshalOneTimePrekey(k OneTimePrekey) []byte { return marshalOneTime(&k) }

// UnmarshalOneTimePrekey decodes a one-time prekey written by
// MarshalOneTimePrekey: an ML-KEM-768 one (1184-byte key) when pq, else an
// X25519 one (32 bytes). It checks shape only; VerifyOneTimePrekey checks
// the signature.
func UnmarshalOneTimePrekey(data []byte, pq bool) (OneTimePrekey, error) {
	if len(data) > MaxOneTimePrekeySize {
		return OneTimePrekey{}, fmt.Errorf("unmarshal one-time prekey: %w: %d bytes", ErrMalformed, len(data))
	}
	size := keySize
	if pq {
		size = mlkem.EncapsulationKeySize768
	}
	d := wire.NewDecoder(nil, ErrMalformed)
	k := unmarshalOneTime(d, data, size)
	if err := d.Err(); err != nil {
		return OneTimePrekey{}, fmt.Errorf("unmarshal one-time prekey: %w", err)
	}
	return *k, nil
}

// VerifyOneTimePrekey checks that k is a one-time prekey of the given kind
// (ML-KEM-768 when pq, else X25519) signed by signer, the party's Ed25519
// account key, exactly as Bundle.Verify checks the ones in a bundle.
func VerifyOneTimePrekey(signer ed25519.PublicKey, k OneTimePrekey, pq bool) error {
	if len(signer) != ed25519.PublicKeySize {
		return fmt.Errorf("verify one-time prekey: %w: signer is %d bytes", ErrMalformed, len(signer))
	}
	sk := signedKey{"one-time prekey", kindOneTime, k.ID, k.Public, k.Sig, keySize}
	if pq {
		sk = signedKey{"one-time pq prekey", kindOneTimePQ, k.ID, k.Public, k.Sig, mlkem.EncapsulationKeySize768}
	}
	if err := sk.verify(signer); err != nil {
		return fmt.Errorf("verify one-time prekey: %w", err)
	}
	return nil
}

func marshalOneTime(k *OneTimePrekey) []byte {
	var e wire.Encoder
	e.Uint(1, uint64(k.ID))
	e.Bytes(2, k.Public)
	e.Bytes(3, k.Sig)
	return e.B
}

// UnmarshalBundle decodes a bundle written by MarshalBundle. It is strict:
// fields in order, no unknown or duplicate fields, exact key lengths, at
// most MaxBundleSize bytes. It checks shape only; call Verify for the
// signatures.
func UnmarshalBundle(data []byte) (Bundle, error) {
	if len(data) > MaxBundleSize {
		return Bundle{}, fmt.Errorf("unmarshal bundle: %w: %d bytes exceeds %d", ErrMalformed, len(data), MaxBundleSize)
	}
	d := wire.NewDecoder(data, ErrMalformed)
	var b Bundle
	b.IdentityDH = clone(d.Fixed(1, keySize))
	b.IdentityDHSig = clone(d.Fixed(2, sigSize))
	b.SignedPrekeyID = uint32(d.Uint(3, math.MaxUint32))
	b.SignedPrekey = clone(d.Fixed(4, keySize))
	b.SignedPrekeySig = clone(d.Fixed(5, sigSize))
	b.PQPrekeyID = uint32(d.Uint(6, math.MaxUint32))
	b.PQPrekey = clone(d.Fixed(7, mlkem.EncapsulationKeySize768))
	b.PQPrekeySig = clone(d.Fixed(8, sigSize))
	if v := d.Bytes(9, 1, MaxBundleSize); v != nil {
		b.OneTime = unmarshalOneTime(d, v, keySize)
	}
	if v := d.Bytes(10, 1, MaxBundleSize); v != nil {
		b.OneTimePQ = unmarshalOneTime(d, v, mlkem.EncapsulationKeySize768)
	}
	if err := d.End(); err != nil {
		return Bundle{}, fmt.Errorf("unmarshal bundle: %w", err)
	}
	if b.SignedPrekeyID == 0 || b.PQPrekeyID == 0 {
		return Bundle{}, fmt.Errorf("unmarshal bundle: %w: missing prekey id", ErrMalformed)
	}
	return b, nil
}

func unmarshalOneTime(outer *wire.Decoder, data []byte, size int) *OneTimePrekey {
	d := wire.NewDecoder(data, ErrMalformed)
	k := &OneTimePrekey{
		ID:     uint32(d.Uint(1, math.MaxUint32)),
		Public: clone(d.Fixed(2, size)),
		Sig:    clone(d.Fixed(3, sigSize)),
	}
	if err := d.End(); err != nil {
		outer.Fail("one-time prekey: %v", err)
		return nil
	}
	if k.ID == 0 {
		outer.Fail("one-time prekey: missing id")
		return nil
	}
	return k
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
