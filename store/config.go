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
	Name      string    `json:"name"` // normalised handle
	Nonce     uint64    `json:"nonce"`
	Seq       uint64    `json:"seq"`
	ClaimedAt time.Time `json:"claimed_at"`
}

var pfxClaim = []byte("claim/")

// PutClaim stores or replaces the claim for c.Name.
func (tx *Tx) PutClaim(c HandleClaim) error {
	if err := checkID("handle name", c.Name); err != nil {
		return err
	}
	return tx.setJSON(key(pfxClaim, []byte(c.Name)), c)
}

// Claims lists the stored claims ordered by name.
func (tx *Tx) Claims() ([]HandleClaim, error) {
	return scanJSON[HandleClaim](tx, pfxClaim)
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
	TCP  int `json:"tcp"`
	QUIC int `json:"quic"`
}

var keyListenPorts = []byte("conf/listen-ports")

// ListenPorts returns the remembered ports, or ErrNotFound.
func (tx *Tx) ListenPorts() (ListenPorts, error) {
	var p ListenPorts
	err := tx.getJSON(keyListenPorts, &p)
	return p, err
}

// PutListenPorts remembers p.
func (tx *Tx) PutListenPorts(p ListenPorts) error { return tx.setJSON(keyListenPorts, p) }

var pfxSetting = []byte("set/")

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

// scanJSON decodes every value under prefix in key order.
func scanJSON[T any](tx *Tx, prefix []byte) ([]T, error) {
	var out []T
	err := tx.scan(prefix, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		var v T
		if err := tx.decode(k, val, &v); err != nil {
			return false, err
		}
		out = append(out, v)
		return true, nil
	})
	return out, err
}
