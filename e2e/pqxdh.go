package e2e

import (
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/sha256"
	"fmt"
	"io"
)

// InitiateSession runs the initiator's side of PQXDH against the peer's
// bundle b, which must verify against peerSigner, and starts the Double
// Ratchet. It returns the session and the handshake prefix of the initial
// message (for logging or deduplication by the caller; Encrypt already puts
// it in front of every message until the peer replies, so the caller sends
// only what Encrypt returns).
//
// The X25519 ephemeral and ratchet keys are drawn from rand
// (crypto/rand.Reader if nil), which the session keeps for later ratchet
// steps until it is marshalled. ML-KEM encapsulation draws from the system's
// secure source, as crypto/mlkem allows nothing else.
func InitiateSession(self Identity, peerSigner ed25519.PublicKey, b Bundle, rand io.Reader) (*Session, []byte, error) {
	if err := self.check(); err != nil {
		return nil, nil, fmt.Errorf("initiate session: %w", err)
	}
	if err := b.Verify(peerSigner); err != nil {
		return nil, nil, fmt.Errorf("initiate session: %w", err)
	}
	ek, err := newX25519(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("initiate session: %w", err)
	}
	m := &initialMessage{
		ik:     self.DH.PublicKey().Bytes(),
		ikSig:  signKey(self.Signer, kindIdentity, 0, self.DH.PublicKey().Bytes()),
		ek:     ek.PublicKey().Bytes(),
		spkID:  b.SignedPrekeyID,
		pqKind: kindPQPrekey,
		pqID:   b.PQPrekeyID,
	}
	pqPub := b.PQPrekey
	if b.OneTimePQ != nil {
		m.pqKind, m.pqID, pqPub = kindOneTimePQ, b.OneTimePQ.ID, b.OneTimePQ.Public
	}

	km := make([]byte, 0, 5*keySize)
	defer clear(km)
	dh1, err := dh(self.DH, b.SignedPrekey)
	if err != nil {
		return nil, nil, fmt.Errorf("initiate session: %w: signed prekey: %v", ErrMalformed, err)
	}
	dh2, err := dh(ek, b.IdentityDH)
	if err != nil {
		return nil, nil, fmt.Errorf("initiate session: %w: identity key: %v", ErrMalformed, err)
	}
	dh3, err := dh(ek, b.SignedPrekey)
	if err != nil {
		return nil, nil, fmt.Errorf("initiate session: %w: signed prekey: %v", ErrMalformed, err)
	}
	km = append(append(append(km, dh1...), dh2...), dh3...)
	clear(dh1)
	clear(dh2)
	clear(dh3)
	if b.OneTime != nil {
		dh4, err := dh(ek, b.OneTime.Public)
		if err != nil {
			return nil, nil, fmt.Errorf("initiate session: %w: one-time prekey: %v", ErrMalformed, err)
		}
		km = append(km, dh4...)
		clear(dh4)
		m.otID = b.OneTime.ID
	}
	encKey, err := mlkem.NewEncapsulationKey768(pqPub)
	if err != nil {
		return nil, nil, fmt.Errorf("initiate session: %w: pq prekey: %v", ErrMalformed, err)
	}
	ss, ct := encKey.Encapsulate()
	km = append(km, ss...)
	clear(ss)
	m.ct = ct
	sk := kdfPQXDH(km)
	defer sk.clear()

	prefix := m.appendPrefix(make([]byte, 0, initialPrefixSize))
	s := &Session{
		initiator: true,
		id:        sha256.Sum256(prefix),
		handshake: prefix,
		rand:      rand,
	}
	copy(s.self.signer[:], self.signerPub())
	copy(s.self.dh[:], m.ik)
	copy(s.peer.signer[:], peerSigner)
	copy(s.peer.dh[:], b.IdentityDH)

	// Double Ratchet, initiator: the peer's first ratchet key is its signed
	// prekey.
	copy(s.dhr[:], b.SignedPrekey)
	rk, err := newX25519(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("initiate session: %w", err)
	}
	s.dhs = newRatchetKey(rk)
	out, err := dh(rk, b.SignedPrekey)
	if err != nil {
		return nil, nil, fmt.Errorf("initiate session: %w: signed prekey: %v", ErrMalformed, err)
	}
	s.rk, s.cks = kdfRK(&sk, out)
	clear(out)
	s.hasCKs = true
	return s, clone(prefix), nil
}

// AcceptSession runs the responder's side of PQXDH on an initial message
// from the peer whose account key is peerSigner, and decrypts the ratchet
// message it carries with the associated data ad (the same ad the initiator
// gave Encrypt). The initiator's identity key must be signed by
// peerSigner (else ErrBadSignature). On success the one-time prekeys the
// handshake used are deleted from st, which the caller then persists; on
// any error st is unchanged. A prekey st does not hold is ErrUnknownPrekey.
//
// Without a one-time prekey, a replayed initial message is accepted again
// (as PQXDH notes); SessionSet refuses the ids of sessions it has seen.
func AcceptSession(self Identity, st *PrekeyState, peerSigner ed25519.PublicKey, initial, ad []byte, rand io.Reader) (*Session, []byte, error) {
	if err := self.check(); err != nil {
		return nil, nil, fmt.Errorf("accept session: %w", err)
	}
	if len(peerSigner) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("accept session: %w: peer signer is %d bytes", ErrMalformed, len(peerSigner))
	}
	m, err := parseInitial(initial)
	if err != nil {
		return nil, nil, fmt.Errorf("accept session: %w", err)
	}
	if !verifyKey(peerSigner, kindIdentity, 0, m.ik, m.ikSig) {
		return nil, nil, fmt.Errorf("accept session: initiator identity key: %w", ErrBadSignature)
	}
	spk := st.findSigned(m.spkID)
	if spk == nil {
		return nil, nil, fmt.Errorf("accept session: signed prekey %d: %w", m.spkID, ErrUnknownPrekey)
	}
	pq := st.findPQ(m.pqKind, m.pqID)
	if pq == nil {
		return nil, nil, fmt.Errorf("accept session: pq prekey %d: %w", m.pqID, ErrUnknownPrekey)
	}
	var opk *dhPrekey
	if m.otID != 0 {
		if opk = st.findOneTime(m.otID); opk == nil {
			return nil, nil, fmt.Errorf("accept session: one-time prekey %d: %w", m.otID, ErrUnknownPrekey)
		}
	}

	km := make([]byte, 0, 5*keySize)
	defer clear(km)
	var parts [][]byte
	defer func() {
		for _, p := range parts {
			clear(p)
		}
	}()
	dh1, err1 := dh(spk.private(), m.ik)
	dh2, err2 := dh(self.DH, m.ek)
	dh3, err3 := dh(spk.private(), m.ek)
	parts = append(parts, dh1, dh2, dh3)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, nil, fmt.Errorf("accept session: low-order key: %w", ErrDecrypt)
	}
	km = append(append(append(km, dh1...), dh2...), dh3...)
	if opk != nil {
		dh4, err := dh(opk.private(), m.ek)
		parts = append(parts, dh4)
		if err != nil {
			return nil, nil, fmt.Errorf("accept session: low-order key: %w", ErrDecrypt)
		}
		km = append(km, dh4...)
	}
	ss, err := pq.decapsulationKey().Decapsulate(m.ct)
	if err != nil {
		return nil, nil, fmt.Errorf("accept session: %w: %v", ErrMalformed, err)
	}
	km = append(km, ss...)
	clear(ss)
	sk := kdfPQXDH(km)

	s := &Session{
		id:   sha256.Sum256(m.prefix),
		rk:   sk,
		rand: rand,
	}
	copy(s.self.signer[:], self.signerPub())
	copy(s.self.dh[:], self.DH.PublicKey().Bytes())
	copy(s.peer.signer[:], peerSigner)
	copy(s.peer.dh[:], m.ik)
	// Double Ratchet, responder: the first ratchet key pair is the signed
	// prekey; the first message's ratchet key starts the receiving chain.
	s.dhs = newRatchetKey(spk.private()) // replaced by the first ratchet step below
	h, ct, err := parseMessage(m.msg)
	if err != nil {
		return nil, nil, fmt.Errorf("accept session: %w", err)
	}
	pt, err := s.decrypt(h, ct, ad)
	if err != nil {
		return nil, nil, fmt.Errorf("accept session: %w", err)
	}
	st.consume(m.otID, m.pqKind, m.pqID)
	return s, pt, nil
}
