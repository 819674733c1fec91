package devices

import (
	"bytes"
	"fmt"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
)

// RosterEntry is what the account's devices know of one of them: the value
// of a KindRoster register, keyed by the device's DeviceID. Its name is
// private to the account (the public identity record lists no names).
type RosterEntry struct {
	PeerID    []byte // the device's libp2p peer id, as bytes
	X25519    []byte // its E2E identity key, which its DeviceID is derived from
	Name      string // what the person called it ("laptop"), at most MaxDeviceName bytes
	Added     time.Time
	RevokedAt time.Time // zero while the device is linked; revocation is final
}

// MaxDeviceName is the longest device name in bytes.
const MaxDeviceName = 64

const maxPeerIDLen = 64

// DeviceID is the id of the device e describes.
func (e RosterEntry) DeviceID() identity.DeviceID { return identity.DeviceIDOf(e.X25519) }

// Revoked reports whether the device was revoked.
func (e RosterEntry) Revoked() bool { return !e.RevokedAt.IsZero() }

// Marshal encodes e (devices.proto RosterEntry).
func (e RosterEntry) Marshal() []byte {
	var w wire.Encoder
	w.Bytes(1, e.PeerID)
	w.Bytes(2, e.X25519)
	w.String(3, e.Name)
	w.Time(4, e.Added)
	w.Time(5, e.RevokedAt)
	return w.B
}

// UnmarshalRosterEntry decodes a RosterEntry. Additions of a newer version
// are skipped here (a replica keeps and forwards the bytes it received).
func UnmarshalRosterEntry(b []byte) (RosterEntry, error) {
	d := wire.NewFrameDecoder(b, ErrMalformed, maxAdditions)
	var e RosterEntry
	e.PeerID = bytes.Clone(d.Bytes(1, 1, maxPeerIDLen))
	e.X25519 = bytes.Clone(d.Fixed(2, identity.X25519KeySize))
	e.Name = d.String(3, 1, MaxDeviceName)
	e.Added = d.Time(4)
	e.RevokedAt = d.Time(5)
	if err := d.End(); err != nil {
		return RosterEntry{}, fmt.Errorf("roster entry: %w", err)
	}
	if e.PeerID == nil || e.Added.IsZero() {
		return RosterEntry{}, fmt.Errorf("roster entry: %w: no peer id or no time added", ErrMalformed)
	}
	return e, nil
}
