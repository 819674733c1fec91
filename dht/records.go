package dht

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/callsign/callsign/identity"
	ma "github.com/multiformats/go-multiaddr"
)

// Key namespaces of the two record kinds.
const (
	identityNS = "csid"
	handleNS   = "csname"

	identityPrefix = "/" + identityNS + "/"
	handlePrefix   = "/" + handleNS + "/"
)

// IdentityRecord is the signed address-book entry of one account, published
// at /csid/<account-id>. Times are carried with millisecond precision.
//
// It has two kinds (docs/DEVICES.md §0.3). Kind 1 carries one prekey bundle
// for all devices (Prekeys); kind 3 carries one per device (Bundles) and
// the devices the account revoked. A record is kind 3 exactly when Bundles
// is not nil. Bundle(i) reads the bundle of a device in either.
type IdentityRecord struct {
	Account identity.AccountPub
	// Seq orders records of one account, whatever their kind: the highest
	// valid Seq wins.
	Seq     uint64
	Issued  time.Time
	Expires time.Time // at most 7 days after Issued
	// Devices holds 1 to 8 device certificates issued by Account, no two
	// with one peer id, X25519 key or DeviceID; in a kind-3 record, in
	// ascending DeviceID order.
	Devices []identity.DeviceCert
	// Prekeys is the E2E prekey bundle of a kind-1 record, opaque here (at
	// most 4 KiB). A kind-3 record has none: sealing one with Prekeys is an
	// error.
	Prekeys []byte
	// Bundles, in a kind-3 record, holds one E2E prekey bundle per entry of
	// Devices, in the same order, each of 1 to 1,600 bytes and opaque here.
	// nil in a kind-1 record.
	Bundles [][]byte
	// Revoked lists, in a kind-3 record only, the devices the account
	// revoked: at most 32, in ascending order, none of them in Devices.
	Revoked []identity.DeviceID
	// Mailboxes and Relays are peers (multiaddrs, usually ending in /p2p/<id>)
	// that keep mail and relay traffic for the account, at most 8 each.
	Mailboxes []ma.Multiaddr
	Relays    []ma.Multiaddr
	// DisplayName is free UTF-8 text of at most 64 bytes.
	DisplayName string
	// Handles lists the normalised handles the account claims, at most 16.
	Handles []string
	// Attestations are opaque signed statements, at most 8 of 512 bytes.
	Attestations [][]byte
}

// HandleRecord binds a handle to an owner account, published at
// /csname/<identity.HandleKey(name)> (a self-certifying name is stored under
// /csname/<name> itself).
type HandleRecord struct {
	Name      string // normalised
	Owner     identity.AccountPub
	Seq       uint64
	ClaimedAt time.Time // first claim; kept across republishes
	Issued    time.Time
	Expires   time.Time
	Nonce     uint64 // proof of work; 0 for self-certifying names
}

// MaxDevices is the most devices an identity record lists.
const MaxDevices = 8

// MultiDevice reports whether r is a kind-3 record, with a bundle per
// device.
func (r *IdentityRecord) MultiDevice() bool { return r.Bundles != nil }

// Bundle returns the E2E prekey bundle of Devices[i]: Bundles[i] in a
// kind-3 record; in a kind-1 record Prekeys, the one bundle, for i == 0 and
// nil for any other device. It is nil when i is not a device's index.
func (r *IdentityRecord) Bundle(i int) []byte {
	switch {
	case i < 0 || i >= len(r.Devices):
		return nil
	case r.MultiDevice():
		if i < len(r.Bundles) {
			return r.Bundles[i]
		}
		return nil
	case i == 0:
		return r.Prekeys
	}
	return nil
}

// AddDevice lists the device c with its prekey bundle in r, in place of
// the entry of the same DeviceID if r has one. r becomes kind 3 (a kind-1
// r's Prekeys become its first device's bundle), its devices kept in
// DeviceID order. It does not check c, the bundle or the count: sealing
// does.
func (r *IdentityRecord) AddDevice(c identity.DeviceCert, bundle []byte) {
	if !r.MultiDevice() {
		bundles := [][]byte{}
		for i := range r.Devices {
			bundles = append(bundles, r.Bundle(i))
		}
		r.Bundles, r.Prekeys = bundles, nil
	}
	id := c.DeviceID()
	i, found := slices.BinarySearchFunc(r.Devices, id, func(d identity.DeviceCert, id identity.DeviceID) int {
		di := d.DeviceID()
		return bytes.Compare(di[:], id[:])
	})
	if found {
		r.Devices[i], r.Bundles[i] = c, bundle
		return
	}
	r.Devices = slices.Insert(slices.Clone(r.Devices), i, c)
	r.Bundles = slices.Insert(slices.Clone(r.Bundles), i, bundle)
}

// Revoke lists ids as revoked devices of r (each once, in order); r
// becomes kind 3 if it was not, since only kind 3 lists revoked devices.
// A listed device stays listed: the caller leaves the revoked out of
// Devices (mergeDevices does).
func (r *IdentityRecord) Revoke(ids ...identity.DeviceID) {
	n := len(r.Revoked)
	for _, id := range ids {
		if !slices.Contains(r.Revoked, id) {
			r.Revoked = append(r.Revoked, id)
		}
	}
	if len(r.Revoked) == n {
		return
	}
	slices.SortFunc(r.Revoked, func(a, b identity.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	if !r.MultiDevice() {
		r.AddDevice(r.Devices[0], r.Bundle(0))
	}
}

// deviceIDs are the ids of r's devices, in its order.
func (r *IdentityRecord) deviceIDs() []identity.DeviceID {
	ids := make([]identity.DeviceID, len(r.Devices))
	for i, c := range r.Devices {
		ids[i] = c.DeviceID()
	}
	return ids
}

// toMillis converts t to the wire's unix milliseconds; times before 1970
// have no encoding.
func toMillis(t time.Time) (uint64, error) {
	ms := t.UnixMilli()
	if ms <= 0 {
		return 0, fmt.Errorf("time %v before 1970", t)
	}
	return uint64(ms), nil
}

func fromMillis(v uint64) (time.Time, error) {
	if v == 0 || v > 1<<53 {
		return time.Time{}, malformed("time %d out of range", v)
	}
	return time.UnixMilli(int64(v)).UTC(), nil
}

func (r *IdentityRecord) toWire() (*wireIdentity, error) {
	if r.Account.IsZero() {
		return nil, errors.New("identity record without account")
	}
	w := &wireIdentity{
		Kind:         kindIdentity,
		Account:      r.Account.Bytes(),
		Seq:          r.Seq,
		DisplayName:  r.DisplayName,
		Handles:      r.Handles,
		Attestations: r.Attestations,
	}
	var err error
	if w.Issued, err = toMillis(r.Issued); err != nil {
		return nil, err
	}
	if w.Expires, err = toMillis(r.Expires); err != nil {
		return nil, err
	}
	if !r.MultiDevice() {
		if len(r.Revoked) != 0 {
			return nil, errors.New("identity record: revoked devices without a bundle per device (kind 3)")
		}
		w.Prekeys = r.Prekeys
		for _, c := range r.Devices {
			w.Devices = append(w.Devices, c.Marshal())
		}
	} else {
		switch {
		case len(r.Prekeys) != 0:
			return nil, errors.New("identity record: Prekeys beside a bundle per device (kind 3)")
		case len(r.Bundles) != len(r.Devices):
			return nil, fmt.Errorf("identity record: %d bundles for %d devices", len(r.Bundles), len(r.Devices))
		}
		w.Kind = kindIdentityV2
		for i, c := range r.Devices {
			if len(r.Bundles[i]) == 0 {
				return nil, fmt.Errorf("identity record: device %d without a bundle", i)
			}
			w.Entries = append(w.Entries, wireDeviceEntry{Cert: c.Marshal(), Bundle: r.Bundles[i]})
		}
		for _, id := range r.Revoked {
			w.Revoked = append(w.Revoked, id[:])
		}
	}
	for _, a := range r.Mailboxes {
		w.Mailboxes = append(w.Mailboxes, a.Bytes())
	}
	for _, a := range r.Relays {
		w.Relays = append(w.Relays, a.Bytes())
	}
	return w, nil
}

// fromWire converts a decoded payload to the domain type. It checks that
// every embedded value parses; validate.go checks the rules that need a key
// or a clock.
func (w *wireIdentity) fromWire() (*IdentityRecord, error) {
	pub, err := identity.ParseAccountPub(w.Account)
	if err != nil {
		return nil, malformed("identity: account key: %v", err)
	}
	r := &IdentityRecord{
		Account:     pub,
		Seq:         w.Seq,
		Prekeys:     bytes.Clone(w.Prekeys),
		DisplayName: w.DisplayName,
	}
	if r.Issued, err = fromMillis(w.Issued); err != nil {
		return nil, err
	}
	if r.Expires, err = fromMillis(w.Expires); err != nil {
		return nil, err
	}
	certs := w.Devices
	if w.Kind == kindIdentityV2 {
		certs = make([][]byte, 0, len(w.Entries))
		r.Bundles = make([][]byte, 0, len(w.Entries))
		for _, e := range w.Entries {
			certs = append(certs, e.Cert)
			r.Bundles = append(r.Bundles, bytes.Clone(e.Bundle))
		}
		for _, id := range w.Revoked {
			r.Revoked = append(r.Revoked, identity.DeviceID(id))
		}
	}
	for _, b := range certs {
		c, err := identity.UnmarshalDeviceCert(b)
		if err != nil {
			return nil, malformed("identity: device certificate: %v", err)
		}
		r.Devices = append(r.Devices, c)
	}
	if err := r.checkOrder(); err != nil {
		return nil, malformed("identity: %v", err)
	}
	if r.Mailboxes, err = addrsFromWire(w.Mailboxes); err != nil {
		return nil, err
	}
	if r.Relays, err = addrsFromWire(w.Relays); err != nil {
		return nil, err
	}
	r.Handles = append([]string(nil), w.Handles...)
	for _, a := range w.Attestations {
		r.Attestations = append(r.Attestations, bytes.Clone(a))
	}
	return r, nil
}

// checkOrder checks what keeps a kind-3 record to one byte form beyond
// its codec: devices in ascending DeviceID order and revoked ids in
// ascending order, so neither lists an id twice. A kind-1 record passes.
func (r *IdentityRecord) checkOrder() error {
	if !r.MultiDevice() {
		return nil
	}
	ids := make([]identity.DeviceID, len(r.Devices))
	for i, c := range r.Devices {
		ids[i] = c.DeviceID()
	}
	if err := ascending(ids); err != nil {
		return fmt.Errorf("devices: %w", err)
	}
	if err := ascending(r.Revoked); err != nil {
		return fmt.Errorf("revoked: %w", err)
	}
	return nil
}

// ascending reports an error unless every id is above the one before.
func ascending(ids []identity.DeviceID) error {
	for i := 1; i < len(ids); i++ {
		switch bytes.Compare(ids[i-1][:], ids[i][:]) {
		case 0:
			return fmt.Errorf("device id %s listed twice", ids[i])
		case 1:
			return fmt.Errorf("device id %s after %s: not in ascending order", ids[i], ids[i-1])
		}
	}
	return nil
}

// checkDevices checks the rules on a record's devices that need no key or
// clock (validate.go checks the certificates): no two devices share a peer
// id, an X25519 key or a DeviceID, and no revoked device is listed.
func (r *IdentityRecord) checkDevices() error {
	ids := make([]identity.DeviceID, len(r.Devices))
	for i, c := range r.Devices {
		ids[i] = c.DeviceID()
		for j, o := range r.Devices[:i] {
			switch {
			case bytes.Equal(c.PeerID, o.PeerID):
				return fmt.Errorf("devices %d and %d share a peer id", j, i)
			case bytes.Equal(c.X25519, o.X25519):
				return fmt.Errorf("devices %d and %d share an X25519 key", j, i)
			case ids[i] == ids[j]:
				return fmt.Errorf("devices %d and %d share device id %s", j, i, ids[i])
			}
		}
	}
	for _, id := range r.Revoked {
		if i := slices.Index(ids, id); i >= 0 {
			return fmt.Errorf("device %d (%s) is listed as revoked", i, id)
		}
	}
	return nil
}

func addrsFromWire(list [][]byte) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, b := range list {
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			return nil, malformed("identity: multiaddr: %v", err)
		}
		if !bytes.Equal(a.Bytes(), b) {
			return nil, malformed("identity: non-canonical multiaddr")
		}
		out = append(out, a)
	}
	return out, nil
}

func (r *HandleRecord) toWire() (*wireHandle, error) {
	if r.Owner.IsZero() {
		return nil, errors.New("handle record without owner")
	}
	w := &wireHandle{Name: r.Name, Owner: r.Owner.Bytes(), Seq: r.Seq, Nonce: r.Nonce}
	var err error
	if w.ClaimedAt, err = toMillis(r.ClaimedAt); err != nil {
		return nil, err
	}
	if w.Issued, err = toMillis(r.Issued); err != nil {
		return nil, err
	}
	if w.Expires, err = toMillis(r.Expires); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *wireHandle) fromWire() (*HandleRecord, error) {
	pub, err := identity.ParseAccountPub(w.Owner)
	if err != nil {
		return nil, malformed("handle: owner key: %v", err)
	}
	r := &HandleRecord{Name: w.Name, Owner: pub, Seq: w.Seq, Nonce: w.Nonce}
	if r.ClaimedAt, err = fromMillis(w.ClaimedAt); err != nil {
		return nil, err
	}
	if r.Issued, err = fromMillis(w.Issued); err != nil {
		return nil, err
	}
	if r.Expires, err = fromMillis(w.Expires); err != nil {
		return nil, err
	}
	return r, nil
}

// sealIdentity signs r with key (which must own r.Account) and returns the
// envelope bytes that go into the DHT.
func sealIdentity(key *identity.AccountKey, r *IdentityRecord) ([]byte, error) {
	if !key.Public().Equal(r.Account) {
		return nil, errors.New("identity record: signing key does not own the account")
	}
	w, err := r.toWire()
	if err != nil {
		return nil, err
	}
	if err := r.checkOrder(); err != nil {
		return nil, fmt.Errorf("identity record: %w", err)
	}
	if err := r.checkDevices(); err != nil {
		return nil, fmt.Errorf("identity record: %w", err)
	}
	payload := w.marshal()
	env := (&wireEnvelope{Payload: payload, Signature: key.Sign(identity.LabelIdentityRecord, payload)}).marshal()
	if len(env) > MaxIdentityRecordSize {
		return nil, fmt.Errorf("%w: identity record is %d bytes, limit %d", ErrTooLarge, len(env), MaxIdentityRecordSize)
	}
	return env, nil
}

// sealHandle signs r with key (which must own r.Owner).
func sealHandle(key *identity.AccountKey, r *HandleRecord) ([]byte, error) {
	if !key.Public().Equal(r.Owner) {
		return nil, errors.New("handle record: signing key does not own the handle")
	}
	w, err := r.toWire()
	if err != nil {
		return nil, err
	}
	payload := w.marshal()
	env := (&wireEnvelope{Payload: payload, Signature: key.Sign(identity.LabelHandleRecord, payload)}).marshal()
	if len(env) > MaxHandleRecordSize {
		return nil, fmt.Errorf("%w: handle record is %d bytes, limit %d", ErrTooLarge, len(env), MaxHandleRecordSize)
	}
	return env, nil
}

// openIdentity decodes an envelope and checks its signature. It does not
// check times or the key it was stored under (see validator.identity).
func openIdentity(b []byte) (*IdentityRecord, error) {
	env, err := unmarshalEnvelope(b, MaxIdentityRecordSize)
	if err != nil {
		return nil, err
	}
	if k, err := payloadKind(env.Payload); err != nil {
		return nil, err
	} else if k != kindIdentity && k != kindIdentityV2 {
		return nil, malformed("not an identity record (kind %d)", k)
	}
	w, err := unmarshalIdentity(env.Payload)
	if err != nil {
		return nil, err
	}
	r, err := w.fromWire()
	if err != nil {
		return nil, err
	}
	if !r.Account.Verify(identity.LabelIdentityRecord, env.Payload, env.Signature) {
		return nil, ErrBadSignature
	}
	return r, nil
}

// openHandle decodes a handle envelope and checks its signature.
func openHandle(b []byte) (*HandleRecord, error) {
	env, err := unmarshalEnvelope(b, MaxHandleRecordSize)
	if err != nil {
		return nil, err
	}
	if k, err := payloadKind(env.Payload); err != nil {
		return nil, err
	} else if k != kindHandle {
		return nil, malformed("not a handle record (kind %d)", k)
	}
	w, err := unmarshalHandle(env.Payload)
	if err != nil {
		return nil, err
	}
	r, err := w.fromWire()
	if err != nil {
		return nil, err
	}
	if !r.Owner.Verify(identity.LabelHandleRecord, env.Payload, env.Signature) {
		return nil, ErrBadSignature
	}
	return r, nil
}

// identityKey is the DHT key of an account's identity record.
func identityKey(id identity.AccountID) string { return identityPrefix + string(id) }

// parseName normalises a user-typed handle ("@Alice", "alice",
// "alice~k3x9q2mf7v") and returns it with the DHT key its record lives under.
func parseName(s string) (norm, key string, selfCert bool, err error) {
	s = strings.TrimSpace(s)
	if identity.IsSelfCert(s) {
		name, suffix, err := identity.ParseSelfCert(s)
		if err != nil {
			return "", "", false, fmt.Errorf("%w: %w", ErrInvalidHandle, err)
		}
		n, err := identity.NormalizeHandle(name)
		if err != nil {
			return "", "", false, fmt.Errorf("%w: %w", ErrInvalidHandle, err)
		}
		norm = n + "~" + strings.ToLower(suffix)
		return norm, handlePrefix + norm, true, nil
	}
	n, err := identity.NormalizeHandle(s)
	if err != nil {
		return "", "", false, fmt.Errorf("%w: %w", ErrInvalidHandle, err)
	}
	return n, handlePrefix + identity.HandleKey(n), false, nil
}
