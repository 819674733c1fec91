package identity

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
)

// DeviceID names one device of an account: the first 8 bytes of
// SHA-256(LabelDeviceID || 0x00 || X25519) of the X25519 key in its DeviceCert. It is derived
// from the E2E identity key rather than the peer id because a session is bound to that key,
// so a stored session names its device without its certificate. The text form is 13
// lowercase base32 characters (the alphabet of AccountID). The zero DeviceID means "none".
type DeviceID [DeviceIDSize]byte

// DeviceIDSize is the length of a DeviceID in bytes; DeviceIDLen of its text form.
const (
	DeviceIDSize = 8
	DeviceIDLen  = (DeviceIDSize*8 + 4) / 5 // 13
)

// ErrInvalidDeviceID is returned (wrapped, with the reason) by ParseDeviceID.
var ErrInvalidDeviceID = errors.New("invalid device id")

// DeviceIDOf returns the DeviceID of the device whose X25519 identity key is x25519Pub.
func DeviceIDOf(x25519Pub []byte) DeviceID {
	h := sha256.New()
	h.Write([]byte(LabelDeviceID))
	h.Write([]byte{0})
	h.Write(x25519Pub)
	var id DeviceID
	copy(id[:], h.Sum(nil))
	return id
}

// DeviceID returns the id of the device c certifies.
func (c DeviceCert) DeviceID() DeviceID { return DeviceIDOf(c.X25519) }

// String returns the 13-character text form.
func (d DeviceID) String() string { return b32.EncodeToString(d[:]) }

// IsZero reports whether d is the zero DeviceID.
func (d DeviceID) IsZero() bool { return d == DeviceID{} }

// ParseDeviceID parses the text form (any case, surrounding spaces ignored).
func ParseDeviceID(s string) (DeviceID, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != DeviceIDLen {
		if len(s) > 64 {
			return DeviceID{}, fmt.Errorf("%w: %d characters, want %d", ErrInvalidDeviceID, len(s), DeviceIDLen)
		}
		return DeviceID{}, fmt.Errorf("%w: %q is %d characters, want %d", ErrInvalidDeviceID, s, len(s), DeviceIDLen)
	}
	b, err := b32.DecodeString(s)
	if err != nil || len(b) != DeviceIDSize {
		return DeviceID{}, fmt.Errorf("%w: %q is not base32 (only a-z and 2-7)", ErrInvalidDeviceID, s)
	}
	var d DeviceID
	copy(d[:], b)
	if d.String() != s {
		// The last character carries 4 bits of padding, which must be zero: one text form.
		return DeviceID{}, fmt.Errorf("%w: %q has a last character no device id ends with", ErrInvalidDeviceID, s)
	}
	return d, nil
}
