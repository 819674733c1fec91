package store

import (
	"bytes"
	"crypto/sha256"
	"errors"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/encoding/protowire"
)

// Schema 9 keeps a contact's e2e sessions per device of the contact
// (docs/DEVICES.md §0.5): sess/<peer>\0<dev:8> instead of one set under
// sess/<peer>, and sdev/<peer> names the device the peer's outbox seals
// for. The forms below are e2e's SessionSet and Session (e2e/e2e.proto) as
// schema 8 held them, frozen: only the fields the split reads.
//
//	SessionSet: 1 version (1), 2 session (bytes, repeated; the first is
//	active), 3 retired (bytes, repeated)
//	Session: 6 peer_dh (32 bytes)
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

// migrateSessionsPerDevice moves schema 8's sess/<peer> (one set of every
// session with the peer's account) to schema 9's sess/<peer>\0<dev> (one
// set per device of the peer) and writes sdev/<peer>, the device of the
// set's active session: the one the queued messages were sealed for. A set
// with no session is deleted. A value that does not open or parse is left
// where it is: schema 9 never reads sess/<peer>, and the entry is still
// there for `store verify` and a person to see, instead of the node
// refusing to start. Batched and resumable like the other migrations;
// a key already in the schema-9 form is passed over.
func migrateSessionsPerDevice(txn *badger.Txn, s *sealer) error {
	return migrateEachValue(txn, [][]byte{pfxSession}, true, func(_, k, sv []byte) (int, error) {
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
		if len(devs) > 0 {
			mk := append(bytes.Clone(pfxSessionDevice), peer...)
			mv := s.seal(mk, devs[0])
			if err := txn.Set(mk, mv); err != nil {
				return 0, err
			}
			n += len(mk) + len(mv)
		}
		return n + len(k), txn.Delete(k)
	})
}
