package e2e

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"github.com/callsign/callsign/internal/wire"
	"io"
	"math"
)

const (
	// MaxSessions caps the sessions a SessionSet keeps with one peer (the
	// active one and older ones still able to decrypt late messages); the
	// oldest inactive session is retired first.
	MaxSessions = 4

	// maxRetired caps the remembered ids of retired sessions.
	maxRetired = 32
)

// SessionSet holds every session with one peer and decides which one
// encrypts. It implements the tie-break for both sides initiating at once
// (see the package doc). Like Session it is plain state, not safe for
// concurrent use; persist it with Marshal after every successful call.
type SessionSet struct {
	sessions []*Session          // [0] encrypts; the rest only decrypt
	retired  [][sha256.Size]byte // ids of dropped sessions, oldest first
}

// Active returns the session that encrypts, or nil if there is none.
func (p *SessionSet) Active() *Session {
	if len(p.sessions) == 0 {
		return nil
	}
	return p.sessions[0]
}

// Len returns the number of sessions held.
func (p *SessionSet) Len() int { return len(p.sessions) }

// PeerDHs returns the peer's X25519 identity key of each session held,
// the active one first.
func (p *SessionSet) PeerDHs() [][]byte {
	out := make([][]byte, len(p.sessions))
	for i, s := range p.sessions {
		out[i] = s.PeerDH()
	}
	return out
}

// Initiate starts a new session with the peer from its bundle (see
// InitiateSession) and makes it the active one.
func (p *SessionSet) Initiate(self Identity, peerSigner ed25519.PublicKey, b Bundle, rand io.Reader) error {
	if err := p.checkPeer(peerSigner); err != nil {
		return fmt.Errorf("initiate session: %w", err)
	}
	s, _, err := InitiateSession(self, peerSigner, b, rand)
	if err != nil {
		return err
	}
	p.sessions = append([]*Session{s}, p.sessions...)
	p.trim()
	return nil
}

// Encrypt encrypts with the active session; ErrNoSession if there is none.
func (p *SessionSet) Encrypt(plaintext, ad []byte) ([]byte, error) {
	s := p.Active()
	if s == nil {
		return nil, fmt.Errorf("encrypt: %w", ErrNoSession)
	}
	return s.Encrypt(plaintext, ad)
}

// Decrypt decrypts a message from the peer whose account key is
// peerSigner. An initial message for a session the set does not hold is
// accepted with AcceptSession against st; accepted then reports that st
// changed and must be persisted with the set. An initial message of a
// retired session is ErrReplay. On error the set and st are unchanged.
func (p *SessionSet) Decrypt(self Identity, st *PrekeyState, peerSigner ed25519.PublicKey, msg, ad []byte, rand io.Reader) (plaintext []byte, accepted bool, err error) {
	if err := p.checkPeer(peerSigner); err != nil {
		return nil, false, fmt.Errorf("decrypt: %w", err)
	}
	typ, err := messageType(msg)
	if err != nil {
		return nil, false, fmt.Errorf("decrypt: %w", err)
	}
	if typ == typeInitial {
		if len(msg) < initialPrefixSize {
			return nil, false, fmt.Errorf("decrypt: %w: initial message too short", ErrMalformed)
		}
		id := sha256.Sum256(msg[:initialPrefixSize])
		for _, s := range p.sessions {
			if subtle.ConstantTimeCompare(s.id[:], id[:]) == 1 {
				pt, err := s.Decrypt(msg, ad)
				return pt, false, err
			}
		}
		for _, r := range p.retired {
			if r == id {
				return nil, false, fmt.Errorf("decrypt: initial message of a retired session: %w", ErrReplay)
			}
		}
		s, pt, err := AcceptSession(self, st, peerSigner, msg, ad, rand)
		if err != nil {
			return nil, false, err
		}
		p.addAccepted(s)
		return pt, true, nil
	}

	var firstErr error
	for i, s := range p.sessions {
		pt, err := s.Decrypt(msg, ad)
		if err == nil {
			p.received(i)
			return pt, false, nil
		}
		if firstErr == nil || (errors.Is(firstErr, ErrDecrypt) && !errors.Is(err, ErrDecrypt)) {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("decrypt: %w", ErrNoSession)
	}
	return nil, false, firstErr
}

func (p *SessionSet) checkPeer(peerSigner ed25519.PublicKey) error {
	if len(peerSigner) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: peer signer is %d bytes", ErrMalformed, len(peerSigner))
	}
	if s := p.Active(); s != nil && subtle.ConstantTimeCompare(s.peer.signer[:], peerSigner) != 1 {
		return errors.New("session set belongs to another peer")
	}
	return nil
}

// addAccepted adds a session the peer started. If our active session is one
// we started and the peer has not confirmed it, both sides initiated at
// once: the tie-break decides which becomes active. Otherwise the peer
// started over (it lost its state, or our session was never delivered) and
// its session becomes active.
func (p *SessionSet) addAccepted(s *Session) {
	a := p.Active()
	if a != nil && a.initiator && !a.confirmed && wins(a, s) {
		p.sessions = append([]*Session{a, s}, p.sessions[1:]...)
	} else {
		p.sessions = append([]*Session{s}, p.sessions...)
	}
	p.trim()
}

// received notes that session i decrypted a message. A plain message on an
// inactive session while the active one is unconfirmed means the peer is
// using that session: it becomes active if it wins the tie-break against
// the active one (an initial message arrived after the peer had already
// settled on the session we started).
func (p *SessionSet) received(i int) {
	if i == 0 {
		return
	}
	s, a := p.sessions[i], p.sessions[0]
	if !s.confirmed || a.confirmed || s.initiator == a.initiator || !wins(s, a) {
		return
	}
	rest := append([]*Session{s}, p.sessions[:i]...)
	p.sessions = append(rest, p.sessions[i+1:]...)
}

func (p *SessionSet) trim() {
	for len(p.sessions) > MaxSessions {
		last := p.sessions[len(p.sessions)-1]
		p.sessions = p.sessions[:len(p.sessions)-1]
		p.retire(last.id)
	}
}

func (p *SessionSet) retire(id [sha256.Size]byte) {
	p.retired = append(p.retired, id)
	if len(p.retired) > maxRetired {
		p.retired = p.retired[len(p.retired)-maxRetired:]
	}
}

// Marshal encodes the set for storage (schema in e2e.proto); it holds
// secret keys.
func (p *SessionSet) Marshal() ([]byte, error) {
	var e wire.Encoder
	e.Uint(1, sessionSetVersion)
	for _, s := range p.sessions {
		b, err := s.Marshal()
		if err != nil {
			return nil, err
		}
		e.Bytes(2, b)
		clear(b)
	}
	for _, r := range p.retired {
		e.Bytes(3, r[:])
	}
	return e.B, nil
}

// UnmarshalSessionSet decodes a set written by SessionSet.Marshal,
// strictly; anything else is ErrMalformed.
func UnmarshalSessionSet(data []byte) (*SessionSet, error) {
	if len(data) > maxSessionSetSize {
		return nil, fmt.Errorf("unmarshal session set: %w: %d bytes exceeds %d", ErrMalformed, len(data), maxSessionSetSize)
	}
	d := wire.NewDecoder(data, ErrMalformed)
	if v := d.Uint(1, math.MaxUint32); d.Err() == nil && v != sessionSetVersion {
		return nil, fmt.Errorf("unmarshal session set: %w: unsupported version %d", ErrMalformed, v)
	}
	p := &SessionSet{}
	for d.More(2) {
		v := d.Bytes(2, 1, maxSessionSize)
		if d.Err() != nil {
			break
		}
		if len(p.sessions) >= MaxSessions {
			return nil, fmt.Errorf("unmarshal session set: %w: more than %d sessions", ErrMalformed, MaxSessions)
		}
		s, err := unmarshalSession(v)
		if err != nil {
			return nil, fmt.Errorf("unmarshal session set: %w", err)
		}
		if len(p.sessions) > 0 && p.sessions[0].peer.signer != s.peer.signer {
			return nil, fmt.Errorf("unmarshal session set: %w: sessions with different peers", ErrMalformed)
		}
		p.sessions = append(p.sessions, s)
	}
	for d.More(3) {
		v := d.Fixed(3, sha256.Size)
		if d.Err() != nil {
			break
		}
		if len(p.retired) >= maxRetired {
			return nil, fmt.Errorf("unmarshal session set: %w: more than %d retired ids", ErrMalformed, maxRetired)
		}
		p.retired = append(p.retired, [sha256.Size]byte(v))
	}
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("unmarshal session set: %w", err)
	}
	return p, nil
}
