package msg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// loadPrekeys reads the prekey state from the store, or creates it, then
// rotates and tops up one-time prekeys, persisting any change.
func (s *Service) loadPrekeys() error {
	s.preMu.Lock()
	defer s.preMu.Unlock()
	sec, err := s.cfg.DB.Secrets()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("load prekeys: %w", err)
	}
	changed := false
	if len(sec.Prekeys) == 0 {
		st, err := e2e.NewPrekeyState(s.self, s.cfg.Now(), nil)
		if err != nil {
			return fmt.Errorf("create prekeys: %w", err)
		}
		s.prekeys, changed = st, true
	} else {
		st, err := e2e.UnmarshalPrekeyState(sec.Prekeys)
		if err != nil {
			return fmt.Errorf("load prekeys: %w", err)
		}
		if !bytes.Equal(st.Bundle().IdentityDH, s.self.DH.PublicKey().Bytes()) {
			return errors.New("load prekeys: stored prekeys belong to another device key")
		}
		s.prekeys = st
	}
	c, err := s.maintainPrekeysLocked()
	if err != nil {
		return err
	}
	if changed || c {
		return s.persistPrekeysLocked()
	}
	return nil
}

// maintainPrekeysLocked rotates signed and PQ prekeys on schedule and tops
// up one-time prekeys; it reports whether the state changed and signals
// BundleChanged when the published bundle did. preMu must be held.
func (s *Service) maintainPrekeysLocked() (bool, error) {
	rotated, err := s.prekeys.Rotate(s.self, s.cfg.Now(), nil)
	if err != nil {
		return false, fmt.Errorf("rotate prekeys: %w", err)
	}
	changed := rotated
	if x, pq := s.prekeys.OneTimeAvailable(); min(x, pq) < oneTimeLow {
		if err := s.prekeys.GenerateOneTime(s.self, oneTimeBatch, s.cfg.Now(), nil); err != nil {
			return false, fmt.Errorf("generate one-time prekeys: %w", err)
		}
		changed = true
	}
	if rotated {
		select {
		case s.bundleCh <- struct{}{}:
		default:
		}
	}
	return changed, nil
}

func (s *Service) persistPrekeysLocked() error {
	b, err := s.prekeys.Marshal()
	if err != nil {
		return fmt.Errorf("persist prekeys: %w", err)
	}
	if err := s.cfg.DB.Update(func(tx *store.Tx) error { return tx.PutPrekeys(b) }); err != nil {
		return fmt.Errorf("persist prekeys: %w", err)
	}
	return nil
}

// reloadPrekeysLocked replaces the in-memory prekeys with the stored ones,
// after a transaction that would have persisted a change failed.
func (s *Service) reloadPrekeysLocked() {
	sec, err := s.cfg.DB.Secrets()
	if err == nil {
		if st, err := e2e.UnmarshalPrekeyState(sec.Prekeys); err == nil {
			s.prekeys = st
			return
		}
	}
	s.log.Warn("reload prekeys failed; keeping the in-memory state", "err", err)
}

func (s *Service) prekeyLoop() {
	t := time.NewTicker(prekeyCheck)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.preMu.Lock()
		changed, err := s.maintainPrekeysLocked()
		if err == nil && changed {
			err = s.persistPrekeysLocked()
		}
		if err != nil {
			s.reloadPrekeysLocked()
			s.log.Warn("prekey maintenance failed", "err", err)
		}
		s.preMu.Unlock()
	}
}

// Bundle returns the current e2e bundle (without one-time prekeys) to
// publish in the identity record.
func (s *Service) Bundle() ([]byte, error) {
	s.preMu.Lock()
	defer s.preMu.Unlock()
	if s.prekeys == nil {
		return nil, fmt.Errorf("bundle: %w", ErrClosed)
	}
	return e2e.MarshalBundle(s.prekeys.Bundle())
}

// BundleChanged delivers a value whenever the bundle Bundle returns has
// changed (prekeys rotated), so the node republishes the identity record.
// The channel has a buffer of one and is never closed.
func (s *Service) BundleChanged() <-chan struct{} { return s.bundleCh }

// handlePrekey answers a ProtocolPrekey request with a bundle carrying
// fresh one-time prekeys, persisted as issued before the answer leaves.
func (s *Service) handlePrekey(_ context.Context, from peer.ID, req []byte) ([]byte, error) {
	r, err := unmarshalPrekeyRequest(req)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(r.account, s.cfg.Account.Public().Bytes()) {
		return nil, errors.New("this device does not belong to the requested account")
	}
	s.preMu.Lock()
	defer s.preMu.Unlock()
	b := s.prekeys.IssueBundle()
	if _, err := s.maintainPrekeysLocked(); err != nil {
		s.reloadPrekeysLocked()
		return nil, p2p.WithCode(p2p.CodeInternal, err)
	}
	if err := s.persistPrekeysLocked(); err != nil {
		s.reloadPrekeysLocked()
		return nil, p2p.WithCode(p2p.CodeInternal, err)
	}
	enc, err := e2e.MarshalBundle(b)
	if err != nil {
		return nil, p2p.WithCode(p2p.CodeInternal, err)
	}
	s.log.Debug("issued one-time prekeys", "peer", from)
	resp := prekeyResponse{bundle: enc}
	return resp.marshal(), nil
}

// fetchBundle asks the recipient's device for a bundle with one-time
// prekeys and falls back to the published one. The result is checked
// against the device's certified X25519 key (e2e checks the signatures).
func (s *Service) fetchBundle(ctx context.Context, rec Recipient, dev identity.DeviceCert, pid peer.ID) (e2e.Bundle, error) {
	check := func(raw []byte) (e2e.Bundle, error) {
		b, err := e2e.UnmarshalBundle(raw)
		if err != nil {
			return e2e.Bundle{}, err
		}
		if !bytes.Equal(b.IdentityDH, dev.X25519) {
			return e2e.Bundle{}, errors.New("bundle identity key does not match the device certificate")
		}
		if err := b.Verify(rec.Account.Bytes()); err != nil {
			return e2e.Bundle{}, err
		}
		return b, nil
	}
	ctx, cancel := context.WithTimeout(ctx, prekeyTimeout)
	defer cancel()
	req := prekeyRequest{account: rec.Account.Bytes()}
	resp, err := p2p.Request(ctx, s.cfg.Host, pid, ProtocolPrekey, true, req.marshal(), maxPrekeyResponse)
	if err == nil {
		var r prekeyResponse
		if r, err = unmarshalPrekeyResponse(resp); err == nil {
			var b e2e.Bundle
			if b, err = check(r.bundle); err == nil {
				return b, nil
			}
		}
	}
	s.log.Debug("one-time prekey request failed; using the published bundle", "peer", rec.Account.ID(), "err", err)
	b, err := check(rec.Bundle)
	if err != nil {
		return e2e.Bundle{}, fmt.Errorf("published bundle: %w", err)
	}
	return b, nil
}
