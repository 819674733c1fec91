package e2e

import (
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/sha256"
	"fmt"
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
	maxPrekeyStateSize = 64 << 10
	maxSessionSetSize  = MaxSessions*maxSessionSize + 64<<10
)

// Marshal encodes the session for storage (schema in e2e.proto). The
// encoding holds secret keys: store it encrypted at rest. A restored session
// continues exactly where this one stands.
func (s *Session) Marshal() ([]byte, error) {
	var e encoder
	e.uint(1, sessionVersion)
	e.bool(2, s.initiator)
	e.bytes(3, s.self.signer[:])
	e.bytes(4, s.self.dh[:])
	e.bytes(5, s.peer.signer[:])
	e.bytes(6, s.peer.dh[:])
	e.bytes(7, s.id[:])
	e.bytes(8, s.handshake)
	e.bool(9, s.confirmed)
	e.bytes(10, s.dhs.priv[:])
	e.bytes(11, s.dhs.pub[:])
	e.bytes(12, s.dhr[:])
	e.bytes(13, s.rk.b[:])
	if s.hasCKs {
		e.bytes(14, s.cks.b[:])
	}
	if s.hasCKr {
		e.bytes(15, s.ckr.b[:])
	}
	e.uint(16, uint64(s.ns))
	e.uint(17, uint64(s.nr))
	e.uint(18, uint64(s.pn))
	for _, id := range s.order {
		mk := s.skipped[id]
		var k encoder
		k.bytes(1, id.dh[:])
		k.uint(2, uint64(id.n))
		k.bytes(3, mk.b[:])
		e.bytes(19, k.b)
		clear(k.b)
	}
	return e.b, nil
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
	d := decoder{b: data}
	if v := d.uint(1, math.MaxUint32); d.err == nil && v != sessionVersion {
		return nil, fmt.Errorf("%w: unsupported session version %d", ErrMalformed, v)
	}
	s := &Session{}
	s.initiator = d.bool(2)
	copy(s.self.signer[:], d.fixed(3, ed25519.PublicKeySize))
	copy(s.self.dh[:], d.fixed(4, keySize))
	copy(s.peer.signer[:], d.fixed(5, ed25519.PublicKeySize))
	copy(s.peer.dh[:], d.fixed(6, keySize))
	copy(s.id[:], d.fixed(7, sha256.Size))
	s.handshake = clone(d.optFixed(8, initialPrefixSize))
	s.confirmed = d.bool(9)
	copy(s.dhs.priv[:], d.fixed(10, keySize))
	copy(s.dhs.pub[:], d.fixed(11, keySize))
	copy(s.dhr[:], d.fixed(12, keySize))
	copy(s.rk.b[:], d.fixed(13, keySize))
	if v := d.optFixed(14, keySize); v != nil {
		copy(s.cks.b[:], v)
		s.hasCKs = true
	}
	if v := d.optFixed(15, keySize); v != nil {
		copy(s.ckr.b[:], v)
		s.hasCKr = true
	}
	s.ns = uint32(d.uint(16, math.MaxUint32))
	s.nr = uint32(d.uint(17, math.MaxUint32))
	s.pn = uint32(d.uint(18, math.MaxUint32))
	for d.more(19) {
		if len(s.order) >= MaxSkippedKeys {
			return nil, fmt.Errorf("%w: more than %d skipped keys", ErrMalformed, MaxSkippedKeys)
		}
		v := d.bytes(19, 1, 128)
		k := decoder{b: v}
		var id skipID
		copy(id.dh[:], k.fixed(1, keySize))
		id.n = uint32(k.uint(2, math.MaxUint32))
		var mk messageKey
		copy(mk.b[:], k.fixed(3, keySize))
		if err := k.end(); err != nil {
			return nil, fmt.Errorf("skipped key: %w", err)
		}
		if _, dup := s.skipped[id]; dup {
			return nil, fmt.Errorf("%w: duplicate skipped key", ErrMalformed)
		}
		s.addSkipped(id, mk)
		mk.clear()
	}
	if err := d.end(); err != nil {
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
	var e encoder
	e.uint(1, prekeyStateVersion)
	e.bytes(2, s.identityDH)
	e.bytes(3, s.identitySig)
	e.uint(4, uint64(s.nextID))
	for _, k := range s.signed {
		e.bytes(5, marshalDHPrekey(k))
	}
	for _, k := range s.pq {
		e.bytes(6, marshalPQPrekey(k))
	}
	for _, k := range s.oneTime {
		e.bytes(7, marshalDHPrekey(k))
	}
	for _, k := range s.oneTimePQ {
		e.bytes(8, marshalPQPrekey(k))
	}
	return e.b, nil
}

func marshalDHPrekey(k dhPrekey) []byte {
	var e encoder
	e.uint(1, uint64(k.id))
	e.bytes(2, k.raw[:])
	e.bytes(3, k.sig)
	e.uint(4, uint64(max(k.created, 0)))
	e.uint(5, uint64(max(k.retired, 0)))
	e.bool(6, k.issued)
	return e.b
}

func marshalPQPrekey(k pqPrekey) []byte {
	var e encoder
	e.uint(1, uint64(k.id))
	e.bytes(2, k.seed[:])
	e.bytes(3, k.sig)
	e.uint(4, uint64(max(k.created, 0)))
	e.uint(5, uint64(max(k.retired, 0)))
	e.bool(6, k.issued)
	return e.b
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
	d := decoder{b: data}
	if v := d.uint(1, math.MaxUint32); d.err == nil && v != prekeyStateVersion {
		return nil, fmt.Errorf("%w: unsupported prekey state version %d", ErrMalformed, v)
	}
	s := &PrekeyState{}
	s.identityDH = clone(d.fixed(2, keySize))
	s.identitySig = clone(d.fixed(3, sigSize))
	s.nextID = uint32(d.uint(4, math.MaxUint32))
	ids := map[uint32]bool{}
	readDH := func(num protowire.Number, limit int) []dhPrekey {
		var out []dhPrekey
		for d.more(num) {
			v := d.bytes(num, 1, 256)
			if len(out) >= limit {
				d.fail("more than %d prekeys in field %d", limit, num)
				return nil
			}
			k := decoder{b: v}
			p := dhPrekey{id: uint32(k.uint(1, math.MaxUint32))}
			priv := k.fixed(2, keySize)
			p.sig = clone(k.fixed(3, sigSize))
			p.created = int64(k.uint(4, math.MaxInt64))
			p.retired = int64(k.uint(5, math.MaxInt64))
			p.issued = k.bool(6)
			if err := k.end(); err != nil {
				d.fail("prekey: %v", err)
				return nil
			}
			copy(p.raw[:], priv)
			if p.id == 0 || ids[p.id] || p.id >= s.nextID {
				d.fail("bad prekey id %d", p.id)
				return nil
			}
			ids[p.id] = true
			out = append(out, p)
		}
		return out
	}
	readPQ := func(num protowire.Number, limit int) []pqPrekey {
		var out []pqPrekey
		for d.more(num) {
			v := d.bytes(num, 1, 256)
			if len(out) >= limit {
				d.fail("more than %d prekeys in field %d", limit, num)
				return nil
			}
			k := decoder{b: v}
			p := pqPrekey{id: uint32(k.uint(1, math.MaxUint32))}
			seed := k.fixed(2, mlkem.SeedSize)
			p.sig = clone(k.fixed(3, sigSize))
			p.created = int64(k.uint(4, math.MaxInt64))
			p.retired = int64(k.uint(5, math.MaxInt64))
			p.issued = k.bool(6)
			if err := k.end(); err != nil {
				d.fail("pq prekey: %v", err)
				return nil
			}
			copy(p.seed[:], seed)
			if p.id == 0 || ids[p.id] || p.id >= s.nextID {
				d.fail("bad prekey id %d", p.id)
				return nil
			}
			ids[p.id] = true
			out = append(out, p)
		}
		return out
	}
	s.signed = readDH(5, maxRetiredPrekeys+1)
	s.pq = readPQ(6, maxRetiredPrekeys+1)
	s.oneTime = readDH(7, MaxOneTimePrekeys)
	s.oneTimePQ = readPQ(8, MaxOneTimePrekeys)
	if err := d.end(); err != nil {
		return nil, err
	}
	if len(s.signed) == 0 || len(s.pq) == 0 {
		return nil, fmt.Errorf("%w: no current prekeys", ErrMalformed)
	}
	return s, nil
}
