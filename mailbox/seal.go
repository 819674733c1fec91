package mailbox

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sealed-sender box (see the package doc):
//
//	0x01 || ephemeral X25519 public key (32) || ChaCha20-Poly1305(key, nonce 0, plaintext, ad)
//
//	key = HKDF-SHA256(ikm = X25519(ephemeral, recipient), salt = ephemeral || recipient,
//	                  info = "callsign/v1/mailbox-seal")
//	ad  = "callsign/v1/mailbox-seal"
const (
	sealVersion    = 0x01
	labelSeal      = "callsign/v1/mailbox-seal"
	labelToken     = "callsign/v1/mailbox-token"
	labelEphemeral = "callsign/v1/mailbox-ephemeral"
	SealOverhead   = 1 + 32 + chacha20poly1305.Overhead
)

// ErrOpen means a sealed envelope does not open with this device's key.
var ErrOpen = errors.New("mailbox: envelope does not open")

func sealKey(shared, eph, recipient []byte) ([]byte, error) {
	salt := append(append([]byte{}, eph...), recipient...)
	return hkdf.Key(sha256.New, shared, salt, labelSeal, chacha20poly1305.KeySize)
}

// Seal encrypts plaintext (a msg Deliver frame, which names the sender) to
// the recipient device's X25519 key, under a fresh ephemeral key, so only
// that device learns who sent it.
func Seal(recipient *ecdh.PublicKey, plaintext []byte) ([]byte, error) {
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return seal(eph, recipient, plaintext)
}

// SealFrom is Seal with the ephemeral key derived from secret (a sender's
// own secret key material), the recipient and the plaintext:
//
//	ephemeral = HMAC-SHA256(key = secret, "callsign/v1/mailbox-ephemeral" || 0x00 || recipient || plaintext)
//
// so sealing the same frame again gives the same box, and a mailbox that
// still holds it answers "duplicate" instead of storing it twice (a sender
// that restarted deposits its waiting messages again). Equal boxes tell the
// mailbox only that the bytes are equal, which it sees anyway.
func SealFrom(secret []byte, recipient *ecdh.PublicKey, plaintext []byte) ([]byte, error) {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(labelEphemeral))
	m.Write([]byte{0})
	m.Write(recipient.Bytes())
	m.Write(plaintext)
	eph, err := ecdh.X25519().NewPrivateKey(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	return seal(eph, recipient, plaintext)
}

func seal(eph *ecdh.PrivateKey, recipient *ecdh.PublicKey, plaintext []byte) ([]byte, error) {
	shared, err := eph.ECDH(recipient)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	ephPub := eph.PublicKey().Bytes()
	k, err := sealKey(shared, ephPub, recipient.Bytes())
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(k)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, SealOverhead+len(plaintext))
	out = append(append(out, sealVersion), ephPub...)
	// The key is used once (a fresh ephemeral key per box): a zero nonce is safe.
	return aead.Seal(out, make([]byte, chacha20poly1305.NonceSize), plaintext, []byte(labelSeal)), nil
}

// Open decrypts a box made by Seal for priv's public key.
func Open(priv *ecdh.PrivateKey, box []byte) ([]byte, error) {
	if len(box) < SealOverhead || box[0] != sealVersion {
		return nil, ErrOpen
	}
	ephPub, err := ecdh.X25519().NewPublicKey(box[1:33])
	if err != nil {
		return nil, ErrOpen
	}
	shared, err := priv.ECDH(ephPub)
	if err != nil {
		return nil, ErrOpen
	}
	k, err := sealKey(shared, box[1:33], priv.PublicKey().Bytes())
	if err != nil {
		return nil, ErrOpen
	}
	aead, err := chacha20poly1305.New(k)
	if err != nil {
		return nil, ErrOpen
	}
	pt, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), box[33:], []byte(labelSeal))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Day is the token epoch of t: whole UTC days since the Unix epoch.
func Day(t time.Time) int64 { return t.Unix() / 86400 }

// Token is the recipient token a sender addresses a deposit with at the
// mailbox whose peer id bytes are mailbox, for the member with account key
// account, on day:
//
//	HMAC-SHA256(key = account, "callsign/v1/mailbox-token" || 0x00 || mailbox || day (8, big-endian))[:16]
//
// It changes every day and differs between mailboxes, and names no sender.
func Token(account, mailbox []byte, day int64) []byte {
	m := hmac.New(sha256.New, account)
	m.Write([]byte(labelToken))
	m.Write([]byte{0})
	m.Write(mailbox)
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(day)))
	return m.Sum(nil)[:TokenSize]
}
