package store

import (
	"bytes"
	"crypto/sha256"
	"errors"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/encoding/protowire"
)

// Schema 9 keeps per device of a contact (docs/DEVICES.md §0.5, §2.1) its
// e2e sessions, sess/<peer>\0<dev:8> instead of one set under sess/<peer>,
// and a queued message's copy, dq/<peer>\0<dev:8>\0<id> with the envelope
// that schema 8 kept in the message's msgid/ entry (kind 3), which names
// the devices instead; qstart/ goes. The forms below are e2e's SessionSet
// and Session (e2e/e2e.proto) and msg's queued index entry as schema 8 held
// them, frozen: only the fields the migration reads.
//
//	SessionSet: 1 version (1), 2 session (bytes, repeated; the first is
//	active), 3 retired (bytes, repeated)
//	Session: 6 peer_dh (32 bytes)
//	msgid/<peer>\0<id>, kind 3: 3, at (8 bytes), uvarint state length,
//	state, envelope (the rest)
const (
	sessionSetVersionV8 = 1
	deviceIDLabelV9     = "callsign/v1/device-id" // identity.LabelDeviceID
	deviceIDSizeV9      = 8
)

// deviceIDV9 is identity.DeviceIDOf, frozen: the first 8 bytes of
// SHA-256(label || 0x00 || X25519).
func deviceIDV9(x25519 []byte) []byte {
	h := sha256.New()
	h.Write([]byte(deviceIDLabelV9))
	h.Write([]byte{0})
	h.Write(x25519)
	return h.Sum(nil)[:deviceIDSizeV9]
}

// splitSessionSetV8 parses a schema-8 session set and returns one set per
// device its sessions are with, in the order their first session appears
// (so the first is the active session's device), each with the set's
// retired ids. A set with no sessions yields none.
func splitSessionSetV8(b []byte) (devs [][]byte, sets [][]byte, err error) {
	var sessions, retired [][]byte
	version := uint64(0)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, nil, protowire.ParseError(n)
			}
			version, b = v, b[n:]
		case (num == 2 || num == 3) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, nil, protowire.ParseError(n)
			}
			if num == 2 {
				sessions = append(sessions, v)
			} else {
				retired = append(retired, v)
			}
			b = b[n:]
		default:
			return nil, nil, errors.New("unexpected field in a session set")
		}
	}
	if version != sessionSetVersionV8 {
		return nil, nil, errors.New("session set of an unknown version")
	}
	groups := map[string][][]byte{}
	for _, s := range sessions {
		dh, err := sessionPeerDHV8(s)
		if err != nil {
			return nil, nil, err
		}
		dev := string(deviceIDV9(dh))
		if groups[dev] == nil {
			devs = append(devs, []byte(dev))
		}
		groups[dev] = append(groups[dev], s)
	}
	for _, dev := range devs {
		e := protowire.AppendTag(nil, 1, protowire.VarintType)
		e = protowire.AppendVarint(e, sessionSetVersionV8)
		for _, s := range groups[string(dev)] {
			e = protowire.AppendTag(e, 2, protowire.BytesType)
			e = protowire.AppendBytes(e, s)
		}
		for _, r := range retired {
			e = protowire.AppendTag(e, 3, protowire.BytesType)
			e = protowire.AppendBytes(e, r)
		}
		sets = append(sets, e)
	}
	return devs, sets, nil
}

// sessionPeerDHV8 returns field 6 (peer_dh) of an encoded session.
func sessionPeerDHV8(b []byte) ([]byte, error) {
	var dh []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 6 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			dh, b = v, b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	if len(dh) != 32 {
		return nil, errors.New("session without the peer's identity key")
	}
	return dh, nil
}

// activeDeviceV8 returns the device of the active session in a schema-8
// set (sess/<peer>, sealed), or nil when there is none or it can't be read.
func activeDeviceV8(txn *badger.Txn, s *sealer, peer []byte) []byte {
	k := append(bytes.Clone(pfxSession), peer...)
	it, err := txn.Get(k)
	if err != nil {
		return nil
	}
	sv, err := it.ValueCopy(nil)
	if err != nil {
		return nil
	}
	v, err := s.open(nil, k, sv)
	if err != nil {
		return nil
	}
	defer clear(v)
	devs, _, err := splitSessionSetV8(v)
	if err != nil || len(devs) == 0 {
		return nil
	}
	return devs[0]
}

// migratePerDevice moves schema 8's layout to schema 9's, in key order:
// each queued message (msgid/ kind 3) gets its envelope as a copy for the
// device of the peer's active session (zero when there is none: msg moves
// it, unsealed, to the device it learns), and its entry names that device;
// qstart/ is deleted; each sess/<peer> (one set of every session with the
// peer's account) becomes one set per device its sessions are with, a set
// with no session deleted. msgid/ goes before sess/, so the schema-8 sets
// are still there to say which device that was. A value that does not
// open or parse is left where it is: schema 9 never reads it, and the
// entry is still there for `store verify` and a person to see, instead of
// the node refusing to start. Batched and resumable like the other
// migrations; an entry already in the schema-9 form is passed over.
func migratePerDevice(txn *badger.Txn, s *sealer) error {
	return migrateEachValue(txn, [][]byte{pfxMsgID, pfxQueueStart, pfxSession}, true, func(pfx, k, sv []byte) (int, error) {
		switch {
		case bytes.Equal(pfx, pfxQueueStart):
			return len(k), txn.Delete(k)
		case bytes.Equal(pfx, pfxMsgID):
			return migrateQueuedV8(txn, s, k, sv)
		}
		return migrateSessionSetV8(txn, s, k, sv)
	})
}

// migrateQueuedV8 moves a queued message's envelope out of its msgid/
// entry; any other entry is left.
func migrateQueuedV8(txn *badger.Txn, s *sealer, k, sv []byte) (int, error) {
	v, err := s.open(nil, k, sv)
	if err != nil || len(v) < 10 || v[0] != queuedCode {
		return 0, nil
	}
	n, l := protowire.ConsumeVarint(v[9:])
	if l < 0 || n > uint64(len(v)-9-l) {
		return 0, nil
	}
	head, env := v[:9+l+int(n)], v[9+l+int(n):]
	if len(env) > 0 && len(env)%deviceIDSizeV9 == 0 && len(env) <= 8*deviceIDSizeV9 {
		// Names devices already: schema 9. A schema-8 envelope is empty
		// or a sealed Deliver frame, which holds a device certificate
		// and is longer than 8 device ids.
		return 0, nil
	}
	peer, id, ok := bytes.Cut(k[len(pfxMsgID):], []byte{0})
	if !ok {
		return 0, nil
	}
	dev := activeDeviceV8(txn, s, peer)
	if dev == nil {
		dev = make([]byte, deviceIDSizeV9)
	}
	qk := bytes.Join([][]byte{pfxQueue, peer, {0}, dev, {0}, id}, nil)
	qv := s.seal(qk, env)
	if err := txn.Set(qk, qv); err != nil {
		return 0, err
	}
	nv := s.seal(k, append(bytes.Clone(head), dev...))
	return len(qk) + len(qv) + len(k) + len(nv), txn.Set(k, nv)
}

// migrateSessionSetV8 splits a schema-8 set into one per device.
func migrateSessionSetV8(txn *badger.Txn, s *sealer, k, sv []byte) (int, error) {
	peer := k[len(pfxSession):]
	if bytes.IndexByte(peer, 0) >= 0 {
		return 0, nil // schema 9 already
	}
	v, err := s.open(nil, k, sv)
	if err != nil {
		return 0, nil
	}
	devs, sets, err := splitSessionSetV8(v)
	clear(v)
	if err != nil {
		return 0, nil
	}
	n := 0
	for i, dev := range devs {
		nk := append(append(append(bytes.Clone(pfxSession), peer...), 0), dev...)
		nv := s.seal(nk, sets[i])
		clear(sets[i])
		if err := txn.Set(nk, nv); err != nil {
			return 0, err
		}
		n += len(nk) + len(nv)
	}
	return n + len(k), txn.Delete(k)
}
