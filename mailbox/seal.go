package mailbox

import (
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/callsign/callsign/identity"
)

// Sealed-sender box, version 2 (hybrid; see the package doc):
//
//	box    = 0x02 || id (16) || pq prekey id (4, BE) || ephemeral X25519 key (32) ||
//	         ML-KEM-768 ciphertext (1088) || ChaCha20-Poly1305(key, nonce 0, plaintext, ad = header)
//	header = everything before the AEAD ciphertext (1141 bytes)
//	key    = HKDF-SHA256(ikm = ML-KEM shared secret || X25519(ephemeral, recipient),
//	                     salt = header || recipient X25519 key,
//	                     info = "callsign/v1/mailbox-seal-hybrid")
//
// Version 1 (X25519 only) is still opened, never sealed:
//
//	box = 0x01 || ephemeral X25519 key (32) || ChaCha20-Poly1305(key, nonce 0, plaintext, ad)
//	key = HKDF-SHA256(ikm = X25519(ephemeral, recipient), salt = ephemeral || recipient,
//	                  info = "callsign/v1/mailbox-seal"), ad = "callsign/v1/mailbox-seal"
const (
	sealV1      = 0x01
	sealV2      = 0x02
	labelSeal   = "callsign/v1/mailbox-seal"
	labelHybrid = "callsign/v1/mailbox-seal-hybrid"
	labelToken  = "callsign/v1/mailbox-token"
	labelDevTok = "callsign/v1/mailbox-device-token"
	labelBoxID  = "callsign/v1/mailbox-box-id"
	labelDigest = "callsign/v1/mailbox-digest"

	// BoxIDSize is the size of a box's id, what a mailbox tells two
	// deposits of one message apart by.
	BoxIDSize = 16

	sealV1Overhead = 1 + 32 + chacha20poly1305.Overhead
	sealHeader     = 1 + BoxIDSize + 4 + 32 + mlkem.CiphertextSize768
	// SealOverhead is how many bytes Seal adds to a plaintext.
	SealOverhead = sealHeader + chacha20poly1305.Overhead
)

// ErrOpen means a sealed envelope does not open with this device's keys.
var ErrOpen = errors.New("mailbox: envelope does not open")

// SealKey is what a box is sealed to: the recipient device's X25519 key
// (from its certificate) and the ML-KEM-768 prekey of its published bundle
// (the PQ last-resort prekey, signed by the account) with its id.
type SealKey struct {
	X25519 *ecdh.PublicKey
	PQID   uint32
	PQ     *mlkem.EncapsulationKey768
}

func (k SealKey) check() error {
	if k.X25519 == nil || k.X25519.Curve() != ecdh.X25519() || k.PQ == nil || k.PQID == 0 {
		return errors.New("seal: incomplete recipient key")
	}
	return nil
}

// Decapsulator opens the KEM half of a box: it decapsulates ciphertext
// with the recipient's ML-KEM-768 prekey whose id is id (e2e.PrekeyState
// does, for its current and replaced PQ prekeys).
type Decapsulator interface {
	DecapsulatePQ(id uint32, ciphertext []byte) ([]byte, error)
}

// Seal encrypts plaintext (a msg Deliver frame, which names the sender) to
// the recipient device's keys, under a fresh ephemeral X25519 key and a
// fresh ML-KEM encapsulation, so only that device learns who sent it. The
// box's id is random.
func Seal(to SealKey, plaintext []byte) ([]byte, error) {
	id := make([]byte, BoxIDSize)
	rand.Read(id)
	return seal(to, id, plaintext)
}

// SealFrom is Seal with the box's id derived from secret (a sender's own
// secret key material), the recipient's X25519 key and the plaintext:
//
//	id = HMAC-SHA256(key = secret, "callsign/v1/mailbox-box-id" || 0x00 || recipient X25519 || plaintext)[:16]
//
// The rest of the box is fresh each time (Go's ML-KEM encapsulates only
// with randomness it draws itself), but sealing the same frame again gives
// a box with the same id, and a mailbox that still holds one answers
// "duplicate" instead of storing it twice (a sender that restarted
// deposits its waiting messages again). Equal ids tell the mailbox only
// that two deposits carry the same message, which equal bytes told it
// before.
func SealFrom(secret []byte, to SealKey, plaintext []byte) ([]byte, error) {
	if to.X25519 == nil {
		return nil, errors.New("seal: incomplete recipient key")
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(labelBoxID))
	m.Write([]byte{0})
	m.Write(to.X25519.Bytes())
	m.Write(plaintext)
	return seal(to, m.Sum(nil)[:BoxIDSize], plaintext)
}

func seal(to SealKey, id, plaintext []byte) ([]byte, error) {
	if err := to.check(); err != nil {
		return nil, err
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(to.X25519)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	ss, ct := to.PQ.Encapsulate()
	out := make([]byte, 0, SealOverhead+len(plaintext))
	out = append(out, sealV2)
	out = append(out, id...)
	out = binary.BigEndian.AppendUint32(out, to.PQID)
	out = append(out, eph.PublicKey().Bytes()...)
	out = append(out, ct...)
	aead, err := hybridAEAD(ss, shared, out, to.X25519.Bytes())
	clear(ss)
	clear(shared)
	if err != nil {
		return nil, err
	}
	// The key is used once (a fresh ephemeral key and encapsulation per
	// box): a zero nonce is safe.
	return aead.Seal(out, make([]byte, chacha20poly1305.NonceSize), plaintext, out[:sealHeader]), nil
}

func hybridAEAD(kemSS, dhSS, header, recipient []byte) (cipher.AEAD, error) {
	ikm := append(append(make([]byte, 0, len(kemSS)+len(dhSS)), kemSS...), dhSS...)
	defer clear(ikm)
	salt := append(append(make([]byte, 0, len(header)+len(recipient)), header...), recipient...)
	k, err := hkdf.Key(sha256.New, ikm, salt, labelHybrid, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return chacha20poly1305.New(k)
}

// Open decrypts a box made by Seal or SealFrom for this device: priv is
// its X25519 key, pq decapsulates with its PQ prekeys. A version 1 box
// (X25519 only, sealed before the hybrid box existed) opens with priv
// alone. Anything that does not open is ErrOpen.
func Open(priv *ecdh.PrivateKey, pq Decapsulator, box []byte) ([]byte, error) {
	if len(box) == 0 {
		return nil, ErrOpen
	}
	switch box[0] {
	case sealV1:
		return openV1(priv, box)
	case sealV2:
	default:
		return nil, ErrOpen
	}
	if len(box) < SealOverhead || pq == nil {
		return nil, ErrOpen
	}
	h := box[:sealHeader]
	pqID := binary.BigEndian.Uint32(h[1+BoxIDSize:])
	ephPub, err := ecdh.X25519().NewPublicKey(h[1+BoxIDSize+4 : 1+BoxIDSize+4+32])
	if err != nil {
		return nil, ErrOpen
	}
	shared, err := priv.ECDH(ephPub)
	if err != nil {
		return nil, ErrOpen
	}
	defer clear(shared)
	ss, err := pq.DecapsulatePQ(pqID, h[1+BoxIDSize+4+32:])
	if err != nil {
		return nil, ErrOpen
	}
	defer clear(ss)
	aead, err := hybridAEAD(ss, shared, h, priv.PublicKey().Bytes())
	if err != nil {
		return nil, ErrOpen
	}
	pt, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), box[sealHeader:], h)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

func openV1(priv *ecdh.PrivateKey, box []byte) ([]byte, error) {
	if len(box) < sealV1Overhead {
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
	defer clear(shared)
	salt := append(append([]byte{}, box[1:33]...), priv.PublicKey().Bytes()...)
	k, err := hkdf.Key(sha256.New, shared, salt, labelSeal, chacha20poly1305.KeySize)
	if err != nil {
		return nil, ErrOpen
	}
	aead, err := chacha20poly1305.New(k)
	clear(k)
	if err != nil {
		return nil, ErrOpen
	}
	pt, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), box[33:], []byte(labelSeal))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// digest is what a mailbox tells deposits apart by: for a version 2 box,
// its version and id (SealFrom gives a message sealed again the same id);
// for anything else, all its bytes:
//
//	SHA-256("callsign/v1/mailbox-digest" || 0x00 || 0x02 || id)[:16], or SHA-256(box)[:16]
func digest(box []byte) [16]byte {
	var d [16]byte
	if len(box) >= SealOverhead && box[0] == sealV2 {
		h := sha256.New()
		h.Write([]byte(labelDigest))
		h.Write([]byte{0})
		h.Write(box[:1+BoxIDSize])
		copy(d[:], h.Sum(nil))
		return d
	}
	s := sha256.Sum256(box)
	copy(d[:], s[:])
	return d
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

// DeviceToken is the token a sender addresses a deposit or a prekey fetch
// with to one device of a member (dev, identity.DeviceID of its
// certificate), at a mailbox that keeps a queue per device (Held.PerDevice):
//
//	HMAC-SHA256(key = account, "callsign/v1/mailbox-device-token" || 0x00 || mailbox ||
//	            dev (8) || day (8, big-endian))[:16]
//
// It rotates like Token, and names no sender. A mailbox without queues per
// device answers it "not a member".
func DeviceToken(account, mailbox []byte, dev identity.DeviceID, day int64) []byte {
	m := hmac.New(sha256.New, account)
	m.Write([]byte(labelDevTok))
	m.Write([]byte{0})
	m.Write(mailbox)
	m.Write(dev[:])
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(day)))
	return m.Sum(nil)[:TokenSize]
}
