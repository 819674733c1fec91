package store

import (
	"strings"
	"time"
)

// Secrets are the node's private keys. They are stored as raw bytes under
// sec/; the store does not interpret them.
type Secrets struct {
	AccountSeed []byte // Ed25519 account key seed
	DeviceKey   []byte // marshalled libp2p device private key
	X25519      []byte // X25519 device identity private key for E2E
	Prekeys     []byte // E2E prekey state, opaque
}

var (
	keySecSeed    = []byte("sec/seed")
	keySecDevice  = []byte("sec/device-key")
	keySecX25519  = []byte("sec/x25519")
	keySecPrekeys = []byte("sec/prekeys")
)

// Secrets returns the stored secrets; fields never written are nil. It
// returns ErrNotFound when no secret at all is stored.
func (tx *Tx) Secrets() (Secrets, error) {
	var s Secrets
	any := false
	for _, f := range []struct {
		k   []byte
		dst *[]byte
	}{{keySecSeed, &s.AccountSeed}, {keySecDevice, &s.DeviceKey}, {keySecX25519, &s.X25519}, {keySecPrekeys, &s.Prekeys}} {
		b, err := tx.getRaw(f.k)
		if err == ErrNotFound {
			continue
		}
		if err != nil {
			return Secrets{}, err
		}
		*f.dst, any = b, true
	}
	if !any {
		return Secrets{}, ErrNotFound
	}
	return s, nil
}

// PutSecrets replaces all stored secrets with s; a nil field deletes it.
func (tx *Tx) PutSecrets(s Secrets) error {
	for _, f := range []struct {
		k []byte
		v []byte
	}{{keySecSeed, s.AccountSeed}, {keySecDevice, s.DeviceKey}, {keySecX25519, s.X25519}, {keySecPrekeys, s.Prekeys}} {
		var err error
		if f.v == nil {
			err = tx.del(f.k)
		} else {
			err = tx.setRaw(f.k, f.v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// PutPrekeys replaces only the E2E prekey state, so the messaging layer can
// consume a one-time prekey in the same transaction as the session it starts.
func (tx *Tx) PutPrekeys(state []byte) error { return tx.setRaw(keySecPrekeys, state) }

// HandleClaim is a handle this account has claimed in the DHT.
type HandleClaim struct {
	Name      string // normalised handle
	Nonce     uint64
	Seq       uint64
	ClaimedAt time.Time
}

var pfxClaim = []byte("claim/")

// PutClaim stores or replaces the claim for c.Name.
func (tx *Tx) PutClaim(c HandleClaim) error {
	if err := checkID("handle name", c.Name); err != nil {
		return err
	}
	return setValue(tx, key(pfxClaim, []byte(c.Name)), &c, marshalClaim)
}

// Claims lists the stored claims ordered by name.
func (tx *Tx) Claims() ([]HandleClaim, error) {
	return scanValues(tx, pfxClaim, unmarshalClaim)
}

// DeleteClaim removes the claim for name; removing a missing claim is not an error.
func (tx *Tx) DeleteClaim(name string) error {
	if err := checkID("handle name", name); err != nil {
		return err
	}
	return tx.del(key(pfxClaim, []byte(name)))
}

var pfxBoot = []byte("boot/")

// AddBootstrap remembers a bootstrap peer multiaddr (the store does not parse it).
func (tx *Tx) AddBootstrap(addr string) error {
	if err := checkID("bootstrap address", addr); err != nil {
		return err
	}
	return tx.setRaw(key(pfxBoot, []byte(addr)), nil)
}

// Bootstraps lists the bootstrap multiaddrs in byte order.
func (tx *Tx) Bootstraps() ([]string, error) {
	var out []string
	err := tx.scan(pfxBoot, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
		out = append(out, string(k[len(pfxBoot):]))
		return true, nil
	})
	return out, err
}

// RemoveBootstrap forgets a bootstrap multiaddr; a missing one is not an error.
func (tx *Tx) RemoveBootstrap(addr string) error {
	if err := checkID("bootstrap address", addr); err != nil {
		return err
	}
	return tx.del(key(pfxBoot, []byte(addr)))
}

// ListenPorts remembers the ports the node listened on, so a restart keeps
// its addresses (and any port forwarding the user set up). 0 means none.
type ListenPorts struct {
	TCP  int
	QUIC int
}

var keyListenPorts = []byte("conf/listen-ports")

// ListenPorts returns the remembered ports, or ErrNotFound.
func (tx *Tx) ListenPorts() (ListenPorts, error) {
	return getValue(tx, keyListenPorts, unmarshalListenPorts)
}

// PutListenPorts remembers p; a port outside 0..65535 is ErrInvalid.
func (tx *Tx) PutListenPorts(p ListenPorts) error {
	return setValue(tx, keyListenPorts, &p, marshalListenPorts)
}

// CallSettings are the user's call settings: who may ring (Policy, with
// per-account overrides in Rules, account id to rule), whether calls
// always go through a relay, and auto-answer with its recording
// directory. The store keeps the words as given; the node interprets them.
type CallSettings struct {
	Policy      string
	AlwaysRelay bool
	AutoAnswer  bool
	RecordDir   string
	Rules       map[string]string
}

var keyCallSettings = []byte("conf/call-settings")

// CallSettings returns the stored call settings, or ErrNotFound when none
// were ever stored.
func (tx *Tx) CallSettings() (CallSettings, error) {
	return getValue(tx, keyCallSettings, unmarshalCallSettings)
}

// PutCallSettings stores s. A rule with an empty word, or an account id
// that is empty or holds a NUL byte, is ErrInvalid.
func (tx *Tx) PutCallSettings(s CallSettings) error {
	return setValue(tx, keyCallSettings, &s, marshalCallSettings)
}

var pfxSetting = []byte("set/")

// Settings under set/ are raw bytes the store does not interpret, for
// small scalar values; a structured value gets a type and a binary
// encoding of its own (as CallSettings has), never a caller's JSON.

// GetSetting returns the raw value of a setting and whether it is set.
func (tx *Tx) GetSetting(name string) ([]byte, bool, error) {
	if err := checkID("setting name", name); err != nil {
		return nil, false, err
	}
	b, err := tx.getRaw(key(pfxSetting, []byte(name)))
	if err == ErrNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// PutSetting stores a setting; a nil value deletes it.
func (tx *Tx) PutSetting(name string, value []byte) error {
	if err := checkID("setting name", name); err != nil {
		return err
	}
	k := key(pfxSetting, []byte(name))
	if value == nil {
		return tx.del(k)
	}
	return tx.setRaw(k, value)
}

// Settings returns every setting with its value.
func (tx *Tx) Settings() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := tx.scan(pfxSetting, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		v, err := val()
		out[strings.Clone(string(k[len(pfxSetting):]))] = v
		return err == nil, err
	})
	return out, err
}
