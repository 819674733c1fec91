package identity

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/internal/wire"
)

// DeviceCert certifies a device — a libp2p peer key, opaque bytes here — and the device's
// X25519 identity key for E2E, signed by the account key. The wire form is described in the
// package doc and in devicecert.proto.
type DeviceCert struct {
	Account AccountPub
	PeerID  []byte    // libp2p peer id bytes; opaque to this package; 1..MaxPeerIDSize bytes
	X25519  []byte    // 32-byte X25519 public key
	Created time.Time // unix-second precision; the certificate is valid from here...
	Expires time.Time // ...until just before here
	Sig     []byte    // 64-byte Ed25519 signature by Account over LabelDeviceCert
}

// Limits of a DeviceCert.
const (
	MaxPeerIDSize     = 64
	X25519KeySize     = 32
	MaxDeviceCertSize = 256 // largest encoding UnmarshalDeviceCert reads
)

// ClockSkew is how far in the future a certificate's Created time may lie and still verify,
// so that a peer whose clock runs a little behind the issuer's accepts a fresh certificate.
const ClockSkew = 5 * time.Minute

// Errors from DeviceCert decoding and verification; returned wrapped with detail.
var (
	ErrMalformedCert   = errors.New("malformed device certificate")
	ErrCertSignature   = errors.New("device certificate: bad signature")
	ErrCertExpired     = errors.New("device certificate expired")
	ErrCertNotYetValid = errors.New("device certificate not yet valid")
)

// IssueDeviceCert returns a certificate for the device with libp2p peer id bytes peerID and
// X25519 public key x25519Pub, valid from created until expires (both truncated to whole
// seconds), signed by k. The byte slices are copied.
func IssueDeviceCert(k *AccountKey, peerID, x25519Pub []byte, created, expires time.Time) (DeviceCert, error) {
	c := DeviceCert{
		Account: k.Public(),
		PeerID:  append([]byte(nil), peerID...),
		X25519:  append([]byte(nil), x25519Pub...),
		Created: time.Unix(created.Unix(), 0).UTC(),
		Expires: time.Unix(expires.Unix(), 0).UTC(),
	}
	if err := c.checkFields(); err != nil {
		return DeviceCert{}, fmt.Errorf("issue device certificate: %w", err)
	}
	c.Sig = k.Sign(LabelDeviceCert, c.appendTBS(nil))
	return c, nil
}

// Verify checks the certificate's field sizes, its signature by Account, and that now lies in
// [Created-ClockSkew, Expires). Errors wrap ErrMalformedCert, ErrCertSignature,
// ErrCertNotYetValid or ErrCertExpired. Verify does not decide whether Account is the account
// the caller expects: compare c.Account yourself.
func (c DeviceCert) Verify(now time.Time) error {
	if err := c.checkFields(); err != nil {
		return err
	}
	if len(c.Sig) != SignatureSize {
		return fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformedCert, len(c.Sig), SignatureSize)
	}
	if !c.Account.Verify(LabelDeviceCert, c.appendTBS(nil), c.Sig) {
		return ErrCertSignature
	}
	if now.Before(c.Created.Add(-ClockSkew)) {
		return fmt.Errorf("%w: valid from %s", ErrCertNotYetValid, c.Created.UTC().Format(time.RFC3339))
	}
	if !now.Before(c.Expires) {
		return fmt.Errorf("%w: expired at %s", ErrCertExpired, c.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

func (c DeviceCert) checkFields() error {
	switch {
	case c.Account.IsZero():
		return fmt.Errorf("%w: no account key", ErrMalformedCert)
	case len(c.PeerID) == 0 || len(c.PeerID) > MaxPeerIDSize:
		return fmt.Errorf("%w: peer id is %d bytes, want 1..%d", ErrMalformedCert, len(c.PeerID), MaxPeerIDSize)
	case len(c.X25519) != X25519KeySize:
		return fmt.Errorf("%w: x25519 key is %d bytes, want %d", ErrMalformedCert, len(c.X25519), X25519KeySize)
	case isAllZero(c.X25519):
		return fmt.Errorf("%w: x25519 key is all zeros", ErrMalformedCert)
	case c.Created.Unix() <= 0:
		return fmt.Errorf("%w: created time before 1970", ErrMalformedCert)
	case !c.Expires.After(c.Created):
		return fmt.Errorf("%w: expires is not after created", ErrMalformedCert)
	}
	return nil
}

func isAllZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// appendTBS appends fields 1..5, the signed part of the encoding.
func (c DeviceCert) appendTBS(b []byte) []byte {
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, c.Account.b[:])
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, c.PeerID)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, c.X25519)
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(c.Created.Unix()))
	b = protowire.AppendTag(b, 5, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(c.Expires.Unix()))
	return b
}

// Marshal returns the canonical encoding of c (see the package doc). It does not validate c;
// a certificate that Verify accepts always round-trips through UnmarshalDeviceCert.
func (c DeviceCert) Marshal() []byte {
	b := c.appendTBS(make([]byte, 0, 192))
	b = protowire.AppendTag(b, 6, protowire.BytesType)
	return protowire.AppendBytes(b, c.Sig)
}

// UnmarshalDeviceCert decodes the canonical encoding of a certificate. It accepts exactly
// one byte form per certificate: fields 1..6 each present once in ascending order with the
// right wire types, minimal varints, the sizes Verify requires, and nothing else; input longer
// than MaxDeviceCertSize is refused unread. It does not check the signature or validity
// window: call Verify. Errors wrap ErrMalformedCert.
func UnmarshalDeviceCert(b []byte) (DeviceCert, error) {
	if len(b) > MaxDeviceCertSize {
		return DeviceCert{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformedCert, len(b), MaxDeviceCertSize)
	}
	var c DeviceCert
	d := wire.NewDecoder(b, ErrMalformedCert)
	acct := d.Fixed(1, AccountPubSize)
	c.PeerID = clone(d.Bytes(2, 1, MaxPeerIDSize))
	if c.PeerID == nil {
		d.Fail("field 2 missing")
	}
	c.X25519 = clone(d.Fixed(3, X25519KeySize))
	created, _ := d.Varint(4)
	expires, _ := d.Varint(5)
	c.Sig = clone(d.Fixed(6, SignatureSize))
	if err := d.End(); err != nil {
		return DeviceCert{}, err
	}
	var err error
	if c.Account, err = ParseAccountPub(acct); err != nil {
		return DeviceCert{}, fmt.Errorf("%w: field 1: %v", ErrMalformedCert, err)
	}
	const maxUnix = 1 << 40 // far beyond any real date; keeps time arithmetic exact
	if created > maxUnix || expires > maxUnix {
		return DeviceCert{}, fmt.Errorf("%w: time out of range", ErrMalformedCert)
	}
	c.Created = time.Unix(int64(created), 0).UTC()
	c.Expires = time.Unix(int64(expires), 0).UTC()
	if err := c.checkFields(); err != nil {
		return DeviceCert{}, err
	}
	return c, nil
}

// clone copies b (nil stays nil): a certificate owns its bytes.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
