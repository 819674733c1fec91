package e2e

import (
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/sha256"
	"fmt"
	"github.com/callsign/callsign/internal/wire"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Storage format versions, the first field of each encoding.
const (
	sessionVersion     = 1
	prekeyStateVersion = 1
	sessionSetVersion  = 1
)

// Storage size caps: a session with MaxSkippedKeys skipped keys is about
// 160 KiB.
const (
	maxSessionSize     = 256 << 10
	maxPrekeyStateSize = 128 << 10
	maxSessionSetSize  = MaxSessions*maxSessionSize + 64<<10
)

// Marshal encodes the session for storage (schema in e2e.proto). The
// encoding holds secret keys: store it encrypted at rest. A restored session
// continues exactly where this one stands.
func (s *Session) Marshal() ([]byte, error) {
	var e wire.Encoder
	e.Uint(1, sessionVersion)
	e.Bool(2, s.initiator)
	e.Bytes(3, s.self.signer[:])
	e.Bytes(4, s.self.dh[:])
	e.Bytes(5, s.peer.signer[:])
	e.Bytes(6, s.peer.dh[:])
	e.Bytes(7, s.id[:])
	e.Bytes(8, s.handshake)
	e.Bool(9, s.confirmed)
	e.Bytes(10, s.dhs.priv[:])
	e.Bytes(11, s.dhs.pub[:])
	e.Bytes(12, s.dhr[:])
	e.Bytes(13, s.rk.b[:])
	if s.hasCKs {
		e.Bytes(14, s.cks.b[:])
	}
	if s.hasCKr {
		e.Bytes(15, s.ckr.b[:])
	}
	e.Uint(16, uint64(s.ns))
	e.Uint(17, uint64(s.nr))
	e.Uint(18, uint64(s.pn))
	for _, id := range s.order {
		mk := s.skipped[id]
		var k wire.Encoder
		k.Bytes(1, id.dh[:])
		k.Uint(2, uint64(id.n))
		k.Bytes(3, mk.b[:])
		e.Bytes(19, k.B)
		clear(k.B)
	}
	return e.B, nil
}

// UnmarshalSession decodes a session written by Marshal. It is strict (one
// byte form, known version, consistent state); anything else is
// ErrMalformed. The restored session draws new ratchet keys from
// crypto/rand.Reader.
func UnmarshalSession(data []byte) (*Session, error) {
	s, err := unmarshalSession(data)
	if err != nil {
		return nil, fmt.Errorf("unmarshal session: %w", err)
	}
	return s, nil
}

func unmarshalSession(data []byte) (*Session, error) {
	if len(data) > maxSessionSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(data), maxSessionSize)
	}
	d := wire.NewDecoder(data, ErrMalformed)
	if v := d.Uint(1, math.MaxUint32); d.Err() == nil && v != sessionVersion {
		return nil, fmt.Errorf("%w: unsupported session version %d", ErrMalformed, v)
	}
	s := &Session{}
	s.initiator = d.Bool(2)
	copy(s.self.signer[:], d.Fixed(3, ed25519.PublicKeySize))
	copy(s.self.dh[:], d.Fixed(4, keySize))
	copy(s.peer.signer[:], d.Fixed(5, ed25519.PublicKeySize))
	copy(s.peer.dh[:], d.Fixed(6, keySize))
	copy(s.id[:], d.Fixed(7, sha256.Size))
	s.handshake = clone(d.OptFixed(8, initialPrefixSize))
	s.confirmed = d.Bool(9)
	copy(s.dhs.priv[:], d.Fixed(10, keySize))
	copy(s.dhs.pub[:], d.Fixed(11, keySize))
	copy(s.dhr[:], d.Fixed(12, keySize))
	copy(s.rk.b[:], d.Fixed(13, keySize))
	if v := d.OptFixed(14, keySize); v != nil {
		copy(s.cks.b[:], v)
		s.hasCKs = true
	}
	if v := d.OptFixed(15, keySize); v != nil {
		copy(s.ckr.b[:], v)
		s.hasCKr = true
	}
	s.ns = uint32(d.Uint(16, math.MaxUint32))
	s.nr = uint32(d.Uint(17, math.MaxUint32))
	s.pn = uint32(d.Uint(18, math.MaxUint32))
	for d.More(19) {
		if len(s.order) >= MaxSkippedKeys {
			return nil, fmt.Errorf("%w: more than %d skipped keys", ErrMalformed, MaxSkippedKeys)
		}
		v := d.Bytes(19, 1, 128)
		k := wire.NewDecoder(v, ErrMalformed)
		var id skipID
		copy(id.dh[:], k.Fixed(1, keySize))
		id.n = uint32(k.Uint(2, math.MaxUint32))
		var mk messageKey
		copy(mk.b[:], k.Fixed(3, keySize))
		if err := k.End(); err != nil {
			return nil, fmt.Errorf("skipped key: %w", err)
		}
		if _, dup := s.skipped[id]; dup {
			return nil, fmt.Errorf("%w: duplicate skipped key", ErrMalformed)
		}
		s.addSkipped(id, mk)
		mk.clear()
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	switch {
	case !canonicalX25519(s.dhs.pub[:]):
		return nil, fmt.Errorf("%w: ratchet public key", ErrMalformed)
	case !s.hasCKs:
		return nil, fmt.Errorf("%w: no sending chain", ErrMalformed)
	case !s.hasCKr && s.nr != 0:
		return nil, fmt.Errorf("%w: receive count without a receiving chain", ErrMalformed)
	case s.handshake != nil && (!s.initiator || s.confirmed):
		return nil, fmt.Errorf("%w: handshake on a confirmed or responder session", ErrMalformed)
	case s.handshake == nil && s.initiator && !s.confirmed:
		return nil, fmt.Errorf("%w: unconfirmed initiator session without handshake", ErrMalformed)
	case s.handshake != nil && sha256.Sum256(s.handshake) != s.id:
		return nil, fmt.Errorf("%w: handshake does not match session id", ErrMalformed)
	}
	return s, nil
}

// Marshal encodes the prekey state for storage (schema in e2e.proto). It
// holds private keys: store it encrypted at rest.
func (s *PrekeyState) Marshal() ([]byte, error) {
	var e wire.Encoder
	e.Uint(1, prekeyStateVersion)
	e.Bytes(2, s.identityDH)
	e.Bytes(3, s.identitySig)
	e.Uint(4, uint64(s.nextID))
	for _, k := range s.signed {
		e.Bytes(5, k.marshal(k.raw[:]))
	}
	for _, k := range s.pq {
		e.Bytes(6, k.marshal(k.seed[:]))
	}
	for _, k := range s.oneTime {
		e.Bytes(7, k.marshal(k.raw[:]))
	}
	for _, k := range s.oneTimePQ {
		e.Bytes(8, k.marshal(k.seed[:]))
	}
	return e.B, nil
}

// marshal encodes a prekey whose secret (X25519 scalar or ML-KEM seed) is
// secret; the schema is the same for both kinds.
func (m *prekeyMeta) marshal(secret []byte) []byte {
	var e wire.Encoder
	e.Uint(1, uint64(m.id))
	e.Bytes(2, secret)
	e.Bytes(3, m.sig)
	e.Uint(4, uint64(max(m.created, 0)))
	e.Uint(5, uint64(max(m.retired, 0)))
	e.Bool(6, m.issued)
	return e.B
}

// readPrekeys decodes the repeated prekey field num of d (at most limit of
// them, each with a secret of secretSize bytes and an id unused so far and
// below nextID) and builds each with mk.
func readPrekeys[T any](d *wire.Decoder, num protowire.Number, limit, secretSize int, ids map[uint32]bool, nextID uint32, mk func(prekeyMeta, []byte) T) []T {
	var out []T
	for d.More(num) {
		v := d.Bytes(num, 1, 256)
		if len(out) >= limit {
			d.Fail("more than %d prekeys in field %d", limit, num)
			return nil
		}
		k := wire.NewDecoder(v, ErrMalformed)
		m := prekeyMeta{id: uint32(k.Uint(1, math.MaxUint32))}
		secret := k.Fixed(2, secretSize)
		m.sig = clone(k.Fixed(3, sigSize))
		m.created = int64(k.Uint(4, math.MaxInt64))
		m.retired = int64(k.Uint(5, math.MaxInt64))
		m.issued = k.Bool(6)
		if err := k.End(); err != nil {
			d.Fail("prekey in field %d: %v", num, err)
			return nil
		}
		if m.id == 0 || ids[m.id] || m.id >= nextID {
			d.Fail("bad prekey id %d", m.id)
			return nil
		}
		ids[m.id] = true
		out = append(out, mk(m, secret))
	}
	return out
}

// UnmarshalPrekeyState decodes a state written by PrekeyState.Marshal,
// strictly; anything else is ErrMalformed.
func UnmarshalPrekeyState(data []byte) (*PrekeyState, error) {
	s, err := unmarshalPrekeyState(data)
	if err != nil {
		return nil, fmt.Errorf("unmarshal prekey state: %w", err)
	}
	return s, nil
}

func unmarshalPrekeyState(data []byte) (*PrekeyState, error) {
	if len(data) > maxPrekeyStateSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(data), maxPrekeyStateSize)
	}
	d := wire.NewDecoder(data, ErrMalformed)
	if v := d.Uint(1, math.MaxUint32); d.Err() == nil && v != prekeyStateVersion {
		return nil, fmt.Errorf("%w: unsupported prekey state version %d", ErrMalformed, v)
	}
	s := &PrekeyState{}
	s.identityDH = clone(d.Fixed(2, keySize))
	s.identitySig = clone(d.Fixed(3, sigSize))
	s.nextID = uint32(d.Uint(4, math.MaxUint32))
	ids := map[uint32]bool{}
	newDH := func(m prekeyMeta, secret []byte) dhPrekey {
		k := dhPrekey{prekeyMeta: m}
		copy(k.raw[:], secret)
		return k
	}
	newPQ := func(m prekeyMeta, secret []byte) pqPrekey {
		k := pqPrekey{prekeyMeta: m}
		copy(k.seed[:], secret)
		return k
	}
	readDH := func(num protowire.Number, limit int) []dhPrekey {
		return readPrekeys(d, num, limit, keySize, ids, s.nextID, newDH)
	}
	readPQ := func(num protowire.Number, limit int) []pqPrekey {
		return readPrekeys(d, num, limit, mlkem.SeedSize, ids, s.nextID, newPQ)
	}
	s.signed = readDH(5, maxRetiredPrekeys+1)
	s.pq = readPQ(6, maxRetiredPQ+1)
	s.oneTime = readDH(7, MaxOneTimePrekeys)
	s.oneTimePQ = readPQ(8, MaxOneTimePrekeys)
	if err := d.End(); err != nil {
		return nil, err
	}
	if len(s.signed) == 0 || len(s.pq) == 0 {
		return nil, fmt.Errorf("%w: no current prekeys", ErrMalformed)
	}
	return s, nil
}
