package msg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// A message goes to every device of its recipient's account (the fan-out,
// docs/DEVICES.md §2.1): it is stored once and queued as one copy per
// device (queue.go), and each device has a lane of its own, a peerState:
// its sessions, its queue of ids, its sender goroutine, its stream. The
// account's view of the record says which devices a message is queued for
// when it is sent; until the account has been looked up since the start,
// messages wait as one copy for the zero device, whose lane looks the
// account up and hands each copy on to the devices (MoveCopy). A lane
// whose device leaves the record hands its copies on the same way.

// acctState is what messaging keeps per peer account: its lanes, the
// devices of its record as last looked up, and its first-contact stamp,
// which serves every device of the two accounts.
type acctState struct {
	id identity.AccountID

	// mu serialises the transactions that write the conversation with
	// this account, its queued copies and its lanes' sessions: receiving
	// from any of its devices, MarkRead, commitSends, a lane's sealing
	// and acks. Every lane's mu points here. Lock order: acctState.mu
	// (accounts in order), then preMu, then Service.mu.
	mu sync.Mutex

	// Guarded by Service.mu.
	idOK      bool                             // Send has parsed id: a valid account id
	lanes     map[identity.DeviceID]*peerState // by device; the zero device: not looked up yet
	view      []identity.DeviceID              // the record's devices, in its order; nil: not looked up since the start
	viewAt    time.Time                        // when view was last set
	resolving bool                             // a look-up started by refreshView is under way
	stamp     []byte                           // the first-contact stamp this peer asked for, of stampBits bits; nil until it asks
	stampBits int
	// stamping is closed when the stamp being computed for this peer is
	// done; nil when none is.
	stamping chan struct{}
	// shown is the last state reported (Event) of each message with a
	// copy waiting, so that each state is reported once however many
	// devices it goes to (emitSent, applyAcks).
	shown map[string]string
}

// errLaneMoved ends a delivery attempt of a lane whose device is not in
// the account's record: its copies went to the record's devices.
var errLaneMoved = errors.New("the device left the account's record; its messages went to the others")

// viewRefresh is how often a device the view does not name may make the
// account be looked up again (refreshView).
const viewRefresh = 10 * time.Second

// acctLocked returns the state for acct, creating it. s.mu is held.
func (s *Service) acctLocked(acct identity.AccountID) *acctState {
	a := s.accts[acct]
	if a == nil {
		a = &acctState{id: acct, lanes: map[identity.DeviceID]*peerState{}, shown: map[string]string{}}
		s.accts[acct] = a
	}
	return a
}

func (s *Service) acct(acct identity.AccountID) *acctState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acctLocked(acct)
}

// laneLocked returns a's lane to dev, creating it. s.mu is held.
func (s *Service) laneLocked(a *acctState, dev identity.DeviceID) *peerState {
	ps := a.lanes[dev]
	if ps == nil {
		ps = &peerState{id: a.id, dev: dev, acct: a, mu: &a.mu,
			kick: make(chan struct{}, 1), wake: make(chan struct{}, 1),
			frames: map[string]sealedFrame{}, unsealed: map[string]bool{},
			progress: make(chan struct{}), sigWake: make(chan struct{}, 1)}
		a.lanes[dev] = ps
	}
	return ps
}

func (s *Service) lane(a *acctState, dev identity.DeviceID) *peerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.laneLocked(a, dev)
}

// targetsLocked returns the lanes a message to a is queued for: one per
// device of its view, or the zero device's. s.mu is held.
func (s *Service) targetsLocked(a *acctState) []*peerState {
	if len(a.view) == 0 {
		return []*peerState{s.laneLocked(a, identity.DeviceID{})}
	}
	out := make([]*peerState, len(a.view))
	for i, d := range a.view {
		out[i] = s.laneLocked(a, d)
	}
	return out
}

// primaryLocked returns the lane that carries what goes to one device of
// a, not to each: read receipts and call signals (until calls ring on
// every device, docs/DEVICES.md §3). It is the record's first device's, or
// the zero device's before a look-up. s.mu is held.
func (s *Service) primaryLocked(a *acctState) *peerState {
	if len(a.view) == 0 {
		return s.laneLocked(a, identity.DeviceID{})
	}
	return s.laneLocked(a, a.view[0])
}

// setView records the devices of a's record and hands the copies queued
// in the lanes of devices it no longer names on to the ones it does. It
// holds a.mu throughout, so a message sent meanwhile (commitSends) is
// queued either before the view changes, and handed on with the rest in
// order, or after the copies handed on are queued.
func (s *Service) setView(a *acctState, devs []identity.DeviceID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s.mu.Lock()
	a.viewAt = time.Now()
	if slices.Equal(a.view, devs) {
		s.mu.Unlock()
		return
	}
	a.view = slices.Clone(devs)
	var gone []*peerState
	for d, ps := range a.lanes {
		if !slices.Contains(devs, d) && len(ps.pending) > 0 {
			gone = append(gone, ps)
		}
	}
	s.mu.Unlock()
	for _, ps := range gone {
		if err := s.handOnLocked(ps); err != nil && s.ctx.Err() == nil {
			s.log.Warn("hand queued messages on to the account's devices", "peer", a.id, "err", err)
		}
	}
}

// handOn moves what waits in ps's lane, whose device the account's view
// no longer names, to the lanes of the view's devices: each text
// message's copy becomes an unsealed copy for each device that has none
// (MoveCopy), and control messages (read receipts) go to the primary
// lane (a receipt sealed for the old device is refused by the new one,
// and a refused receipt is dropped). ps.mu is held.
func (s *Service) handOnLocked(ps *peerState) error {
	a := ps.acct
	s.mu.Lock()
	ids := slices.Clone(ps.pending)
	view := slices.Clone(a.view)
	s.mu.Unlock()
	if len(ids) == 0 || len(view) == 0 {
		return nil
	}
	moved := map[identity.DeviceID][]string{}
	var control []string
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		data := s.data(tx)
		clear(moved)
		control = control[:0]
		for _, id := range ids {
			added, err := data.MoveCopy(string(a.id), id, ps.dev, view)
			if errors.Is(err, store.ErrNotFound) {
				if _, err := data.Outbox(id); err == nil {
					control = append(control, id)
				}
				continue // a control message, or acked or deleted meanwhile
			}
			if err != nil {
				return err
			}
			for _, d := range added {
				moved[d] = append(moved[d], id)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("hand on %s's messages: %w", a.id, err)
	}
	s.removePending(ps, ids)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != 1 {
		return nil
	}
	for d, ids := range moved {
		to := s.laneLocked(a, d)
		s.enqueueLocked(to, false, nil, ids...)
		s.startSenderLocked(to)
	}
	if len(control) > 0 {
		to := s.primaryLocked(a)
		s.enqueueLocked(to, false, nil, control...)
		s.startSenderLocked(to)
	}
	return nil
}

// refreshView looks a up again in the background when a device its view
// does not name writes (a device linked or restored since), at most once
// per viewRefresh.
func (s *Service) refreshView(a *acctState) {
	s.mu.Lock()
	if a.resolving || s.state != 1 || time.Since(a.viewAt) < viewRefresh {
		s.mu.Unlock()
		return
	}
	a.resolving = true
	s.mu.Unlock()
	s.wg.Go(func() {
		defer func() {
			s.mu.Lock()
			a.resolving = false
			s.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(s.ctx, dialTimeout)
		defer cancel()
		if _, err := s.lookup(ctx, a.id); err != nil && s.ctx.Err() == nil {
			s.log.Debug("look a contact up again", "peer", a.id, "err", err)
		}
	})
}

// inView reports whether dev is one of a's devices as last looked up, or
// a has not been looked up yet.
func (s *Service) inView(a *acctState, dev identity.DeviceID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return a.view == nil || slices.Contains(a.view, dev)
}
