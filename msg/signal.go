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
	id := newMsgID().String()
	now := s.stamp()
	ps := s.peer(to)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		env := append([]byte{envPending}, c.marshal()...)
		return tx.PutOutbox(store.OutboxEntry{ID: id, Peer: string(to), Envelope: env, NextAttempt: now, CreatedAt: now})
	})
	if err != nil {
		return fmt.Errorf("send signal: %w", err)
	}
	s.enqueue(ps, false, nil, id)
	return nil
}
