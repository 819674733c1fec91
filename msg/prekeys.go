package msg

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/mailbox"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
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
	dctx, cancel := context.WithTimeout(ctx, prekeyTimeout)
	defer cancel()
	req := prekeyRequest{account: rec.Account.Bytes()}
	resp, err := p2p.Request(dctx, s.cfg.Host, pid, ProtocolPrekey, true, req.marshal(), maxPrekeyResponse)
	if err == nil {
		var r prekeyResponse
		if r, err = unmarshalPrekeyResponse(resp); err == nil {
			var b e2e.Bundle
			if b, err = check(r.bundle); err == nil {
				return b, nil
			}
		}
	}
	s.log.Debug("one-time prekey request failed; asking the mailboxes", "peer", rec.Account.ID(), "err", err)
	b, err := check(rec.bundleOf(dev))
	if err != nil {
		return e2e.Bundle{}, fmt.Errorf("published bundle: %w", err)
	}
	// The device is away: one of its mailboxes may hand out one-time
	// prekeys it left there. Keys that don't verify are dropped, and
	// without any the signed prekeys of the record serve.
	if x, pq := s.mailboxPrekeys(ctx, rec, dev.DeviceID()); x != nil || pq != nil {
		withOT := b
		withOT.OneTime, withOT.OneTimePQ = x, pq
		if err := withOT.Verify(rec.Account.Bytes()); err == nil {
			return withOT, nil
		}
		s.log.Info("a mailbox handed out one-time prekeys that do not verify", "peer", rec.Account.ID())
	}
	return b, nil
}

// Mailbox one-time prekeys (package mailbox): this device hands each of
// its mailboxes a batch of one-time prekeys of each kind, marked issued
// and persisted before they leave, when the mailbox says (in its answer
// to a registration or a drain) that it holds fewer than
// mailboxPrekeyLow of either; the batch replaces what it held. A sender
// that can't reach a device asks the device's mailboxes for a key of each
// kind (mailboxPrekeys); a mailbox that refuses or has none leaves the
// sender with the signed prekeys of the record, as before.
const (
	mailboxPrekeyBatch = 50
	mailboxPrekeyLow   = 10
)

// topUpMailbox uploads a fresh batch of one-time prekeys to mb when held
// says it is low. A mailbox whose upload failed is not asked again until
// the next registration (failed[mb]), so an older mailbox that does not
// take prekeys doesn't burn a batch at every poll.
func (s *Service) topUpMailbox(mb peer.ID, held mailbox.Held, failed map[peer.ID]bool) {
	if failed[mb] || min(held.Prekeys, held.PQPrekeys) >= mailboxPrekeyLow || s.ctx.Err() != nil {
		return
	}
	s.preMu.Lock()
	if s.prekeys == nil {
		s.preMu.Unlock()
		return
	}
	err := s.prekeys.GenerateOneTime(s.self, mailboxPrekeyBatch, s.cfg.Now(), nil)
	var x, pq []e2e.OneTimePrekey
	if err == nil {
		x, pq = s.prekeys.IssueOneTime(mailboxPrekeyBatch)
		if _, err = s.maintainPrekeysLocked(); err == nil {
			err = s.persistPrekeysLocked()
		}
	}
	if err != nil {
		s.reloadPrekeysLocked()
	}
	s.preMu.Unlock()
	if err != nil {
		s.log.Warn("one-time prekeys for a mailbox", "mailbox", mb, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, mailboxTimeout)
	defer cancel()
	after, err := mailbox.UploadPrekeys(ctx, s.cfg.Host, mb, x, pq)
	if err != nil {
		failed[mb] = true
		if s.ctx.Err() == nil {
			s.log.Info("upload one-time prekeys to mailbox", "mailbox", mb, "err", err)
		}
		return
	}
	s.mboxStatus(mb, func(st *MailboxStatus) { st.Prekeys = min(after.Prekeys, after.PQPrekeys) })
}

// mailboxPrekeys asks rec's mailboxes, in turn, for one-time prekeys, and
// returns the first answer that has any (shape checked, not signatures).
// The mailbox learns that this connection asks for the member a token
// names, as it does from a deposit.
func (s *Service) mailboxPrekeys(ctx context.Context, rec Recipient, dev identity.DeviceID) (x, pq *e2e.OneTimePrekey) {
	for _, mb := range rec.Mailboxes[:min(len(rec.Mailboxes), mailboxCopies)] {
		if mb.ID == s.cfg.Host.ID() {
			continue
		}
		s.cfg.Host.Peerstore().AddAddrs(mb.ID, mb.Addrs, peerstore.TempAddrTTL)
		var x, pq *e2e.OneTimePrekey
		fetch := func(token []byte) error {
			fctx, cancel := context.WithTimeout(ctx, prekeyTimeout)
			defer cancel()
			var err error
			x, pq, err = mailbox.FetchPrekeys(fctx, s.cfg.Host, mb.ID, token)
			return err
		}
		var err error
		if len(rec.Devices) > 1 {
			// Only the device's own queue: the account's (legacy) one
			// holds keys another device of the account left, signed by
			// the same account key, which this device could not use.
			err = fetch(mailbox.DeviceToken(rec.Account.Bytes(), []byte(mb.ID), dev, mailbox.Day(s.cfg.Now())))
		} else {
			err = s.withMemberToken(rec, dev, mb.ID, fetch)
		}
		if err != nil {
			s.log.Debug("one-time prekeys from a mailbox", "mailbox", mb.ID, "err", err)
			continue
		}
		if x != nil || pq != nil {
			return x, pq
		}
	}
	return nil, nil
}

// pqPrekeys opens the KEM half of mailbox boxes with this device's signed
// PQ prekeys (current, and replaced ones for e2e.PQPrekeyKeep).
type pqPrekeys struct{ s *Service }

func (p pqPrekeys) DecapsulatePQ(id uint32, ct []byte) ([]byte, error) {
	p.s.preMu.Lock()
	defer p.s.preMu.Unlock()
	if p.s.prekeys == nil {
		return nil, ErrClosed
	}
	return p.s.prekeys.DecapsulatePQ(id, ct)
}

// NewDevicePrekeys makes the prekeys of a device joining account with
// the E2E identity key dh (a device being linked, docs/DEVICES.md §1): the
// prekey state to store as the device's (store.Tx.PutPrekeys), which the
// msg service started on that store goes on with, and the bundle its
// identity record entry carries.
func NewDevicePrekeys(account *identity.AccountKey, dh *ecdh.PrivateKey, now time.Time) (state, bundle []byte, err error) {
	self := e2e.Identity{Signer: ed25519.NewKeyFromSeed(account.Seed()), DH: dh}
	st, err := e2e.NewPrekeyState(self, now, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("create prekeys: %w", err)
	}
	if state, err = st.Marshal(); err != nil {
		return nil, nil, fmt.Errorf("create prekeys: %w", err)
	}
	if bundle, err = e2e.MarshalBundle(st.Bundle()); err != nil {
		return nil, nil, err
	}
	return state, bundle, nil
}
