package msg

import (
	"context"
	"errors"
	"fmt"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// MaxSignal is the largest call signal payload SendSignal carries.
const MaxSignal = 32 << 10

// ErrSignalTooLarge is returned by SendSignal for a payload over MaxSignal.
var ErrSignalTooLarge = errors.New("signal too large")

// SendSignal queues a call signal for the account to: an opaque payload
// carried inside the E2E session like a read receipt (a control frame),
// through the same durable outbox and in order with everything else queued
// for that peer, and handed to the recipient's Config.OnSignal instead of
// being stored as a message. It returns once the signal is queued.
func (s *Service) SendSignal(ctx context.Context, to identity.AccountID, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send signal: %w", err)
	}
	if len(payload) == 0 || len(payload) > MaxSignal {
		return fmt.Errorf("send signal: %w: %d bytes, limit %d", ErrSignalTooLarge, len(payload), MaxSignal)
	}
	if !s.running() {
		return fmt.Errorf("send signal: %w", ErrClosed)
	}
	c := content{kind: contentSignal, body: payload}
	mid := newMsgID()
	id := mid.String()
	now := s.stamp()
	ps := s.peer(to)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	// With the session in memory and nothing older waiting to be sealed,
	// seal now: the sealed frame and the ratchet state it advanced commit
	// in one transaction, and the sender goroutine has nothing to seal.
	var (
		env   []byte
		state []byte
		f     sealedFrame
	)
	sealed := s.canSealLocked(ps)
	if sealed {
		pt := c.marshal()
		ct, err := ps.set.Encrypt(pt, messageAD(mid, kindReceipt))
		clear(pt)
		if err == nil {
			df := deliverFrame{id: mid, sender: s.cfg.Account.Public().Bytes(), cert: s.certBytes, kind: kindReceipt, ciphertext: ct}
			var frame []byte
			env, frame = df.sealedEnvelope()
			f = sealedFrame{id: id, frame: frame, env: env, receipt: true}
			state, err = ps.set.Marshal()
		}
		if err != nil {
			s.releaseSetLocked(ps, true)
			return fmt.Errorf("send signal: %w", err)
		}
	} else {
		env = append([]byte{envPending}, c.marshal()...)
	}
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		if err := tx.PutOutbox(store.OutboxEntry{ID: id, Peer: string(to), Envelope: env, NextAttempt: now, CreatedAt: now}); err != nil {
			return err
		}
		if state != nil {
			return tx.PutSession(string(to), state)
		}
		return nil
	})
	if sealed {
		// On failure the in-memory ratchet ran ahead of the store: reload it.
		s.releaseSetLocked(ps, err != nil)
	}
	if err != nil {
		return fmt.Errorf("send signal: %w", err)
	}
	if sealed {
		s.enqueue(ps, true, []sealedFrame{f}, id)
	} else {
		s.enqueue(ps, false, nil, id)
	}
	return nil
}
