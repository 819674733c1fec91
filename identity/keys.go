package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strings"
)

// Domain-separation labels. Every signature is over label || 0x00 || msg, and every
// hash-based derivation in this package starts with its own label and a zero byte.
const (
	LabelIdentityRecord = "callsign/v1/identity-record"
	LabelHandleRecord   = "callsign/v1/handle-record"
	LabelDeviceCert     = "callsign/v1/device-cert"
	LabelPrekey         = "callsign/v1/prekey"
	// LabelGroupOp labels a group's membership operation (package group).
	LabelGroupOp = "callsign/v1/group-op"

	// LabelAccountID labels the hash that turns an account key into its AccountID.
	LabelAccountID = "callsign/v1/account-id"
	// LabelSelfCert labels the hash behind a self-certifying handle's suffix.
	LabelSelfCert = "callsign/v1/self-cert"
	// LabelHandlePoW labels the argon2id input of a handle proof of work.
	LabelHandlePoW = "callsign/v1/handle-pow"
	// LabelSafetyNumber labels the iterated hash behind a safety number.
	LabelSafetyNumber = "callsign/v1/safety-number"
	// LabelDeviceID labels the hash that turns a device's X25519 key into its DeviceID.
	LabelDeviceID = "callsign/v1/device-id"
)

// labelPrefix is what every label must start with.
const labelPrefix = "callsign/v1/"

// Sizes of the keys and signatures this package handles.
const (
	AccountPubSize  = ed25519.PublicKeySize // 32
	AccountSeedSize = ed25519.SeedSize      // 32
	SignatureSize   = ed25519.SignatureSize // 64
)

// ErrInvalidKey is returned (wrapped) when key bytes are not a usable account key.
var ErrInvalidKey = errors.New("invalid account key")

// AccountKey is an account's Ed25519 private key. Use it through a pointer; it is not
// comparable with == (compare k.Public() with Equal). Formatting it with fmt or slog prints
// only its AccountID, never key material. An AccountKey is safe for concurrent use.
type AccountKey struct {
	_    [0]func() // not comparable
	priv ed25519.PrivateKey
	pub  AccountPub
}

// GenerateAccountKey returns a new account key made from 32 bytes read from rand.
// A nil rand means crypto/rand. It fails only if rand fails.
func GenerateAccountKey(rand io.Reader) (*AccountKey, error) {
	if rand == nil {
		rand = cryptoRand{}
	}
	seed := make([]byte, AccountSeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("generate account key: %w", err)
	}
	defer clear(seed)
	return AccountKeyFromSeed(seed)
}

type cryptoRand struct{}

func (cryptoRand) Read(b []byte) (int, error) { return rand.Read(b) }

// AccountKeyFromSeed returns the account key with the given 32-byte Ed25519 seed (RFC 8032
// private key). The seed is copied.
func AccountKeyFromSeed(seed []byte) (*AccountKey, error) {
	if len(seed) != AccountSeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrInvalidKey, len(seed), AccountSeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	k := &AccountKey{priv: priv}
	copy(k.pub.b[:], priv[32:])
	return k, nil
}

// Seed returns a copy of the key's 32-byte seed, the form in which it is stored.
func (k *AccountKey) Seed() []byte { return k.priv.Seed() }

// Public returns the account's public key.
func (k *AccountKey) Public() AccountPub { return k.pub }

// Sign returns the 64-byte Ed25519 signature of label || 0x00 || msg. label must be one of
// this package's "callsign/v1/..." labels; any other label is a programmer bug and panics.
func (k *AccountKey) Sign(label string, msg []byte) []byte {
	checkLabel(label)
	return ed25519.Sign(k.priv, labelled(label, msg))
}

// String returns a description that names the account but holds no key material.
func (k *AccountKey) String() string { return "AccountKey(" + string(k.pub.ID()) + ")" }

// GoString is like String, so %#v never prints key material either.
func (k *AccountKey) GoString() string { return k.String() }

// LogValue makes slog log only the account id.
func (k *AccountKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

func checkLabel(label string) {
	if !strings.HasPrefix(label, labelPrefix) || len(label) == len(labelPrefix) || strings.IndexByte(label, 0) >= 0 {
		panic(fmt.Sprintf("bug: signature label %q must start with %q and hold no NUL", label, labelPrefix))
	}
}

func labelled(label string, msg []byte) []byte {
	b := make([]byte, 0, len(label)+1+len(msg))
	b = append(b, label...)
	b = append(b, 0)
	return append(b, msg...)
}

// AccountPub is an account's Ed25519 public key (32 bytes). The zero value is "no key". It is
// not comparable with ==: use Equal.
type AccountPub struct {
	_ [0]func() // not comparable
	b [AccountPubSize]byte
}

// ParseAccountPub parses a 32-byte Ed25519 public key. It accepts only canonical encodings of
// points on the curve that are not of small order, so each account has exactly one byte form
// and nobody can hold a key for which anyone could forge signatures.
func ParseAccountPub(b []byte) (AccountPub, error) {
	var p AccountPub
	if len(b) != AccountPubSize {
		return p, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidKey, len(b), AccountPubSize)
	}
	if err := checkEdwardsPoint(b); err != nil {
		return p, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	copy(p.b[:], b)
	return p, nil
}

// Bytes returns a copy of the 32 key bytes, or nil for the zero AccountPub.
func (p AccountPub) Bytes() []byte {
	if p.IsZero() {
		return nil
	}
	return append([]byte(nil), p.b[:]...)
}

// Equal reports whether p and q are the same key.
func (p AccountPub) Equal(q AccountPub) bool { return subtle.ConstantTimeCompare(p.b[:], q.b[:]) == 1 }

// IsZero reports whether p is the zero value (no key).
func (p AccountPub) IsZero() bool { return p.b == [AccountPubSize]byte{} }

// Verify reports whether sig is p's signature of label || 0x00 || msg. It is false for the
// zero key and for a signature of the wrong size. label must be a "callsign/v1/..." label;
// any other label is a programmer bug and panics.
func (p AccountPub) Verify(label string, msg, sig []byte) bool {
	checkLabel(label)
	if p.IsZero() || len(sig) != SignatureSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(p.b[:]), labelled(label, msg), sig)
}

// ID returns the account's AccountID, or "" for the zero key.
func (p AccountPub) ID() AccountID {
	if p.IsZero() {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(LabelAccountID))
	h.Write([]byte{0})
	h.Write(p.b[:])
	return encodeAccountID(h.Sum(nil)[:accountIDHashSize])
}

// String returns the account's AccountID.
func (p AccountPub) String() string { return string(p.ID()) }

// Curve constants for checkEdwardsPoint (edwards25519, RFC 8032 §5.1).
var (
	edP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	// edD = -121665 / 121666 mod p
	edD = func() *big.Int {
		n := new(big.Int).Neg(big.NewInt(121665))
		inv := new(big.Int).ModInverse(big.NewInt(121666), edP)
		n.Mul(n, inv)
		return n.Mod(n, edP)
	}()
)

// checkEdwardsPoint decodes b as an edwards25519 point (RFC 8032 §5.1.3), rejecting
// non-canonical encodings, points off the curve and points of small order (order dividing 8).
// It uses math/big: it runs once per parsed key, not per signature.
func checkEdwardsPoint(b []byte) error {
	le := make([]byte, 32)
	for i := range 32 {
		le[31-i] = b[i]
	}
	sign := le[0] >> 7
	le[0] &= 0x7f
	y := new(big.Int).SetBytes(le)
	if y.Cmp(edP) >= 0 {
		return errors.New("non-canonical encoding")
	}
	// x² = (y² - 1) / (d·y² + 1)
	y2 := new(big.Int).Mul(y, y)
	y2.Mod(y2, edP)
	u := new(big.Int).Sub(y2, big.NewInt(1))
	u.Mod(u, edP)
	v := new(big.Int).Mul(edD, y2)
	v.Add(v, big.NewInt(1))
	v.Mod(v, edP)
	x2 := new(big.Int).ModInverse(v, edP)
	x2.Mul(x2, u)
	x2.Mod(x2, edP)
	x := new(big.Int).ModSqrt(x2, edP)
	if x == nil {
		return errors.New("not a point on the curve")
	}
	if x.Sign() == 0 && sign == 1 {
		return errors.New("non-canonical encoding")
	}
	if uint8(x.Bit(0)) != sign {
		x.Sub(edP, x)
	}
	// Double three times: a point of small order becomes the identity (0, 1).
	for range 3 {
		x, y = edDouble(x, y)
	}
	if x.Sign() == 0 && y.Cmp(big.NewInt(1)) == 0 {
		return errors.New("point of small order")
	}
	return nil
}

// edDouble doubles (x, y) with the complete twisted Edwards addition law for a = -1.
func edDouble(x, y *big.Int) (*big.Int, *big.Int) {
	xy := new(big.Int).Mul(x, y)
	xy.Mod(xy, edP)
	dxy2 := new(big.Int).Mul(xy, xy)
	dxy2.Mul(dxy2, edD)
	dxy2.Mod(dxy2, edP)
	// x3 = 2xy / (1 + d x²y²); y3 = (y² + x²) / (1 - d x²y²)
	nx := new(big.Int).Lsh(xy, 1)
	dx := new(big.Int).Add(big.NewInt(1), dxy2)
	dx.ModInverse(dx.Mod(dx, edP), edP)
	nx.Mul(nx, dx)
	nx.Mod(nx, edP)
	ny := new(big.Int).Mul(y, y)
	ny.Add(ny, new(big.Int).Mul(x, x))
	dy := new(big.Int).Sub(big.NewInt(1), dxy2)
	dy.ModInverse(dy.Mod(dy, edP), edP)
	ny.Mul(ny, dy)
	ny.Mod(ny, edP)
	return nx, ny
}
