package msg

import (
	"fmt"
	"slices"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// QueueSync queues sync batches (devices.SyncBatch, each at most 32 KiB)
// for this account's other devices: for those of to, or every sibling the
// account's record names when to is nil. take runs in the transaction that
// queues them, so what it removes from a pending list of its own and what
// this queues commit together; it returns the batches (none: nothing to
// send). A sibling gets them as Content kind 6, through the outbox like a
// copy: acked, retried, kept across restarts (docs/DEVICES.md §2.2).
//
// Before this account's own record has been looked up since the start,
// the siblings are not known, and a record may name none yet: QueueSync
// then calls nothing and returns false (the record is looked up again
// when its view is old); the caller tries again when OnSiblings says the
// record was read. A device the view does not name yet misses what is
// queued now: OnSiblings names it once the view does, for the caller to
// send it what it holds.
func (s *Service) QueueSync(to []identity.DeviceID, take func(tx *store.Tx) ([][]byte, error)) (bool, error) {
	if !s.running() {
		return false, fmt.Errorf("sync: %w", ErrClosed)
	}
	siblings, known := s.siblings()
	if !known {
		return false, nil
	}
	if to != nil {
		siblings = slices.DeleteFunc(siblings, func(ps *peerState) bool { return !slices.Contains(to, ps.dev) })
	}
	if len(siblings) == 0 {
		return false, nil
	}
	// The account's lock orders these after the copies and reads queued
	// before them.
	a := s.acct(s.selfID)
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	now := s.stamp()
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		ids = ids[:0]
		batches, err := take(tx)
		if err != nil {
			return err
		}
		data := s.data(tx)
		for _, b := range batches {
			if len(b) == 0 || len(b) > maxSyncBody {
				return fmt.Errorf("bug: sync batch of %d bytes, at most %d", len(b), maxSyncBody)
			}
			id, err := putControl(data, s.selfID, siblings, content{kind: contentSync, body: b}, now)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("sync: %w", err)
	}
	if len(ids) > 0 {
		for _, ps := range siblings {
			s.enqueue(ps, false, nil, ids...)
		}
	}
	return true, nil
}

// MaxSyncBatch is the largest batch QueueSync takes.
const MaxSyncBatch = maxSyncBody

// siblingsAdded tells Config.OnSiblings which devices a new view of this
// account's own record names that the previous one did not (every other
// device on the first look-up since the start). a.mu and s.mu are held:
// the callback runs on a goroutine of its own.
func (s *Service) siblingsAdded(old, devs []identity.DeviceID) {
	if s.cfg.OnSiblings == nil || s.state != 1 {
		return
	}
	var added []identity.DeviceID
	for _, d := range devs {
		if d != s.selfDev && !slices.Contains(old, d) {
			added = append(added, d)
		}
	}
	if old != nil && len(added) == 0 {
		return
	}
	first := old == nil
	s.wg.Go(func() { s.cfg.OnSiblings(added, first) })
}
