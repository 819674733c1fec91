package e2e

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math"
)

// Skipped-message-key bounds.
const (
	// MaxSkip is the most message keys one incoming message may make a
	// session skip in one chain (messages lost or still in flight). A
	// message needing more is refused with ErrTooManySkipped.
	MaxSkip = 1000

	// MaxSkippedKeys caps the skipped message keys a session stores; the
	// oldest are evicted (their messages then fail with ErrReplay).
	MaxSkippedKeys = 2000
)

// party is the public identity of one side of a session.
type party struct {
	signer [ed25519.PublicKeySize]byte
	dh     [keySize]byte
}

type skipID struct {
	dh [keySize]byte
	n  uint32
}

type skippedKey struct {
	id skipID
	mk messageKey
}

// Session is one Double Ratchet session with a peer. It is plain state: not
// safe for concurrent use; the caller serialises calls and persists the state
// with Marshal after each successful Encrypt or Decrypt (in the same
// transaction as the message, so a crash never desynchronises it).
type Session struct {
	initiator bool
	self      party
	peer      party
	id        [sha256.Size]byte // SHA-256 of the handshake prefix

	// handshake is the initial message prefix, sent in front of every
	// message while the initiator has not yet heard back (so a lost first
	// message does not lose the session). Nil for the responder.
	handshake []byte
	// confirmed reports that a message not wrapped in the handshake was
	// decrypted: the peer has seen this session's replies.
	confirmed bool

	dhs            ratchetKey
	dhr            [keySize]byte
	rk             rootKey
	cks, ckr       chainKey
	hasCKs, hasCKr bool
	ns, nr, pn     uint32

	skipped map[skipID]messageKey
	order   []skipID // skipped key ids, oldest first

	rand io.Reader // nil: crypto/rand.Reader
}

// ID returns the session's identifier: the SHA-256 of its handshake prefix.
// Both sides compute the same value.
func (s *Session) ID() [32]byte { return s.id }

// Initiator reports whether this side started the session.
func (s *Session) Initiator() bool { return s.initiator }

// PeerSigner returns the peer's Ed25519 account key.
func (s *Session) PeerSigner() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), s.peer.signer[:]...)
}

// PeerDH returns the peer device's X25519 identity key.
func (s *Session) PeerDH() []byte { return append([]byte(nil), s.peer.dh[:]...) }

// Confirmed reports whether the peer is known to have this session: the
// initiator has received a reply, or the responder has received a message
// sent after that reply.
func (s *Session) Confirmed() bool { return s.confirmed }

// initiatorSigner is the account key of the party that started the session.
func (s *Session) initiatorSigner() []byte {
	if s.initiator {
		return s.self.signer[:]
	}
	return s.peer.signer[:]
}

// initiatorDH is the X25519 identity key of the party that started the session.
func (s *Session) initiatorDH() []byte {
	if s.initiator {
		return s.self.dh[:]
	}
	return s.peer.dh[:]
}

// sessionAD is the associated data binding both identities, initiator first:
// Ed25519(A) || IK(A) || Ed25519(B) || IK(B), 128 bytes.
func (s *Session) sessionAD(b []byte) []byte {
	a, r := &s.self, &s.peer
	if !s.initiator {
		a, r = r, a
	}
	b = append(b, a.signer[:]...)
	b = append(b, a.dh[:]...)
	b = append(b, r.signer[:]...)
	return append(b, r.dh[:]...)
}

func (s *Session) aeadData(hdr, ad []byte) []byte {
	b := make([]byte, 0, 4*keySize+len(hdr)+len(ad))
	b = s.sessionAD(b)
	b = append(b, hdr...)
	return append(b, ad...)
}

// Encrypt seals plaintext (at most MaxPlaintext bytes) with the next
// sending message key; ad is authenticated but not sent. Until the initiator
// has received a reply, the result is an initial message (the handshake
// prefix followed by the ratchet message); afterwards it is a ratchet
// message. On error the session is unchanged.
func (s *Session) Encrypt(plaintext, ad []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("encrypt: plaintext of %d bytes exceeds %d", len(plaintext), MaxPlaintext)
	}
	if !s.hasCKs {
		return nil, errors.New("encrypt: session has no sending chain")
	}
	if s.ns == math.MaxUint32 {
		return nil, errors.New("encrypt: sending chain exhausted")
	}
	next, mk := kdfCK(&s.cks)
	defer mk.clear()
	out := make([]byte, 0, len(s.handshake)+headerSize+len(plaintext)+tagSize)
	out = append(out, s.handshake...)
	start := len(out)
	out = appendHeader(out, s.dhs.pub[:], s.pn, s.ns)
	aead, nonce := mk.aead()
	out = aead.Seal(out, nonce, plaintext, s.aeadData(out[start:], ad))
	s.cks.clear()
	s.cks = next
	s.ns++
	return out, nil
}

// Decrypt opens a message produced by the peer's Encrypt with the same ad:
// a ratchet message, or an initial message of this session (the initiator
// repeats the handshake until it hears back). Messages may arrive out of
// order or not at all, within MaxSkip per chain. A message decrypts at most
// once: the second time is ErrReplay (or ErrDecrypt). On any error the
// session is unchanged.
func (s *Session) Decrypt(msg, ad []byte) ([]byte, error) {
	typ, err := messageType(msg)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	plain := typ == typeMessage
	if !plain {
		m, err := parseInitial(msg)
		if err != nil {
			return nil, fmt.Errorf("decrypt: %w", err)
		}
		id := sha256.Sum256(m.prefix)
		if subtle.ConstantTimeCompare(id[:], s.id[:]) != 1 {
			return nil, fmt.Errorf("decrypt: initial message of another session: %w", ErrDecrypt)
		}
		msg = m.msg
	}
	h, ct, err := parseMessage(msg)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	pt, err := s.decrypt(h, ct, ad)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	if plain || s.initiator {
		s.confirmed = true
		s.handshake = nil
	}
	return pt, nil
}

// decrypt is the Double Ratchet's RatchetDecrypt. It computes every new
// key into locals and commits them only after the message authenticated.
func (s *Session) decrypt(h header, ct, ad []byte) ([]byte, error) {
	if mk, ok := s.skipped[skipID{h.dh, h.n}]; ok {
		pt, err := s.open(&mk, h, ct, ad)
		if err != nil {
			return nil, err
		}
		s.dropSkipped(skipID{h.dh, h.n})
		return pt, nil
	}

	var pending []skippedKey
	defer func() {
		for i := range pending {
			pending[i].mk.clear()
		}
	}()
	skip := func(ck *chainKey, dhPub [keySize]byte, from, until uint32) (uint32, error) {
		if until > from && until-from > MaxSkip {
			return from, ErrTooManySkipped
		}
		for ; from < until; from++ {
			next, mk := kdfCK(ck)
			ck.clear()
			*ck = next
			pending = append(pending, skippedKey{id: skipID{dhPub, from}, mk: mk})
		}
		return from, nil
	}

	ratchet := h.dh != s.dhr || !s.hasCKr
	var (
		ckr    chainKey
		nr     uint32
		newRK  rootKey
		newCKs chainKey
		newDHs *ecdh.PrivateKey
	)
	if ratchet {
		if h.dh == s.dhr {
			// The peer's current key without a receiving chain: the
			// initiator's first reply always brings a new key.
			return nil, ErrDecrypt
		}
		if s.hasCKr {
			old := chainKey{b: s.ckr.b}
			_, err := skip(&old, s.dhr, s.nr, h.pn)
			old.clear()
			if err != nil {
				return nil, err
			}
		}
		priv, err := s.dhs.ecdh()
		if err != nil {
			return nil, ErrDecrypt
		}
		dh1, err := dh(priv, h.dh[:])
		if err != nil {
			return nil, ErrDecrypt
		}
		rk1, ck := kdfRK(&s.rk, dh1)
		clear(dh1)
		ckr = ck
		newDHs, err = newX25519(s.rand)
		if err != nil {
			rk1.clear()
			return nil, err
		}
		dh2, err := dh(newDHs, h.dh[:])
		if err != nil {
			rk1.clear()
			return nil, ErrDecrypt
		}
		newRK, newCKs = kdfRK(&rk1, dh2)
		clear(dh2)
		rk1.clear()
	} else {
		if h.n < s.nr {
			return nil, ErrReplay
		}
		ckr = chainKey{b: s.ckr.b}
		nr = s.nr
	}
	nr, err := skip(&ckr, h.dh, nr, h.n)
	if err != nil {
		return nil, err
	}
	next, mk := kdfCK(&ckr)
	ckr.clear()
	defer mk.clear()
	pt, err := s.open(&mk, h, ct, ad)
	if err != nil {
		next.clear()
		newRK.clear()
		newCKs.clear()
		return nil, err
	}

	// Commit.
	if ratchet {
		s.pn = s.ns
		s.ns = 0
		s.nr = 0
		s.dhr = h.dh
		s.rk.clear()
		s.rk = newRK
		s.cks.clear()
		s.cks = newCKs
		s.hasCKs = true
		s.dhs = newRatchetKey(newDHs)
	}
	s.ckr.clear()
	s.ckr = next
	s.hasCKr = true
	s.nr = nr + 1
	for i := range pending {
		s.addSkipped(pending[i].id, pending[i].mk)
	}
	pending = nil
	return pt, nil
}

func (s *Session) open(mk *messageKey, h header, ct, ad []byte) ([]byte, error) {
	aead, nonce := mk.aead()
	pt, err := aead.Open(nil, nonce, ct, s.aeadData(h.encode, ad))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func (s *Session) addSkipped(id skipID, mk messageKey) {
	if s.skipped == nil {
		s.skipped = make(map[skipID]messageKey)
	}
	for len(s.order) >= MaxSkippedKeys {
		s.dropSkipped(s.order[0])
	}
	s.skipped[id] = messageKey{b: mk.b}
	s.order = append(s.order, id)
}

func (s *Session) dropSkipped(id skipID) {
	if _, ok := s.skipped[id]; !ok {
		return
	}
	s.skipped[id] = messageKey{}
	delete(s.skipped, id)
	if len(s.order) > 0 && s.order[0] == id {
		s.order = s.order[1:]
		return
	}
	if i := indexSkip(s.order, id); i >= 0 {
		copy(s.order[i:], s.order[i+1:])
		s.order = s.order[:len(s.order)-1]
	}
}

func indexSkip(list []skipID, id skipID) int {
	for i := range list {
		if list[i] == id {
			return i
		}
	}
	return -1
}

// wins reports whether session a is preferred over session b by the
// simultaneous-initiation tie-break: the session whose initiator has the
// lexicographically smaller Ed25519 account key wins, and between two
// devices of one account (the same account key) the smaller X25519
// identity key.
func wins(a, b *Session) bool {
	if c := bytes.Compare(a.initiatorSigner(), b.initiatorSigner()); c != 0 {
		return c < 0
	}
	return bytes.Compare(a.initiatorDH(), b.initiatorDH()) < 0
}
