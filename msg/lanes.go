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
//
// This account's own devices, its siblings, have lanes too: each gets a
// copy of every message this device sends (content kind copy, a control
// message queued for that device alone, out/<id>\0<dev>), so that a
// conversation reads the same on each (docs/DEVICES.md §2.1). The
// siblings are the devices of this account's own record, looked up at
// the start, again when a device it does not name writes, and at a send
// when the view is older than selfViewAge. A message sent before the
// first look-up is remembered in memory (early) and copied when it
// completes: a device stopped before then leaves those copies to repair.

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
	revoked   []identity.DeviceID              // the devices the record lists as revoked
	viewAt    time.Time                        // when view was last set
	resolving bool                             // a look-up started by refreshView is under way
	again     bool                             // refreshView was asked for one more, after it
	triedAt   time.Time                        // when refreshView last started one
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

// selfViewAge is how old this account's own view may be at a send before
// it is looked up again, in the background: the siblings a message is
// copied to are at most this stale (beyond what a sibling's first frame
// makes known at once).
const selfViewAge = time.Minute

// freshViewWait bounds the look-up a send makes when the contact's view
// is older than Config.ViewAge (freshenView).
const freshViewWait = 2 * time.Second

// selfViewRetry is the first wait before this account's own record is
// looked up again, when the lookup at the start found nothing.
const selfViewRetry = 500 * time.Millisecond

// maxEarlyCopies caps the messages remembered for copying before this
// account's own record is first looked up.
const maxEarlyCopies = 1024

// earlyCopy is a message sent before this account's own record was first
// looked up: its copies are queued once the record names the siblings.
type earlyCopy struct{ peer, id string }

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
		ps = &peerState{id: a.id, dev: dev, acct: a, mu: &a.mu, sibling: a.id == s.selfID,
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
// a, not to each: call signals (until calls ring on every device,
// docs/DEVICES.md §3). It is the record's first device's, or the zero
// device's before a look-up. s.mu is held.
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
	if a.id == s.selfID {
		s.siblingsAdded(a.view, devs)
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
// (MoveCopy). A control message (a read receipt, a sibling's copy or
// read) is for one device: one waiting for the zero device (queued before
// the account was looked up) goes to each device of the view, one for a
// device that left is dropped (the devices that remain have their own),
// except a group carrier, which goes to the view's devices that have
// none: a group's members' carriers are for every device of an account,
// a device restored or linked in place of that one included
// (handOnControl).
// ps.mu is held.
func (s *Service) handOnLocked(ps *peerState) error {
	a := ps.acct
	s.mu.Lock()
	ids := slices.Clone(ps.pending)
	view := slices.DeleteFunc(slices.Clone(a.view), func(d identity.DeviceID) bool { return ps.sibling && d == s.selfDev })
	s.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	moved := map[identity.DeviceID][]string{}
	now := s.cfg.Now()
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		data := s.data(tx)
		clear(moved)
		for _, id := range ids {
			added, err := data.MoveCopy(string(a.id), id, ps.dev, view)
			if errors.Is(err, store.ErrNotFound) {
				// A control message, or acked or deleted meanwhile.
				if added, err = handOnControl(data, id, ps.dev, view, now); err != nil {
					return err
				}
			} else if err != nil {
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
	return nil
}

// handOnControl hands on control message id, waiting for device from:
// when from is the zero device, to each device of view; when from is a
// device that left, a group carrier to each device of view that has no
// entry of its own for it (a device linked or restored since the carrier
// was queued), unsealed again from the content its entry kept; any other
// control message nowhere (it was for that device alone). A device of
// view that had the carrier and acknowledged it already gets it again,
// and drops it as seen. (An entry for the zero device that is sealed was
// sealed by a version that sent receipts to one device, the record's
// first: it goes there.) It returns the devices it went to.
func handOnControl(data *Data, id string, from identity.DeviceID, view []identity.DeviceID, now time.Time) ([]identity.DeviceID, error) {
	e, err := data.DeviceOutbox(id, from)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := data.DeleteDeviceOutbox(id, from); err != nil {
		return nil, err
	}
	if len(view) == 0 {
		return nil, nil
	}
	if !from.IsZero() {
		return handOnCarrier(data, e, from, view, now)
	}
	if len(e.Envelope) > 0 && e.Envelope[0] == envSealed {
		view = view[:1]
	}
	for _, d := range view {
		e.Dev = d
		if err := data.PutOutbox(e); err != nil {
			return nil, err
		}
	}
	return view, nil
}

// handOnCarrier queues group carrier e, whose device from left its
// account's record, for the devices of view that have no entry for it.
func handOnCarrier(data *Data, e OutboxEntry, from identity.DeviceID, view []identity.DeviceID, now time.Time) ([]identity.DeviceID, error) {
	var env []byte
	switch {
	case len(e.Envelope) == 0:
	case e.Envelope[0] == envGroup || e.Envelope[0] == envGroupDirect:
		env = e.Envelope
	case e.Envelope[0] == envGroupSealed && len(e.Content) > 0:
		// Sealed for from: the content is sealed again for each device.
		env = append([]byte{envGroup}, e.Content...)
	case e.Envelope[0] == envGroupDirectSealed && len(e.Content) > 0:
		env = append([]byte{envGroupDirect}, e.Content...)
	}
	if env == nil {
		return nil, nil
	}
	var added []identity.DeviceID
	for _, d := range view {
		if d == from {
			continue
		}
		if _, err := data.DeviceOutbox(e.ID, d); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		c := OutboxEntry{ID: e.ID, Peer: e.Peer, Dev: d, Envelope: env, File: e.File, NextAttempt: now, CreatedAt: e.CreatedAt}
		if err := data.PutOutbox(c); err != nil {
			return nil, err
		}
		added = append(added, d)
	}
	return added, nil
}

// refreshView looks a up again in the background when a device its view
// does not name writes (a device linked or restored since), at most once
// per viewRefresh, whether the last look-up found it or not. For a
// sibling, whose certificate only a holder of this account's key can
// make, soon says to look up now: a device just linked is copied to from
// its first frame on; asked while a look-up runs, it runs another after
// it, since the one under way may have started before the change.
func (s *Service) refreshView(a *acctState, soon bool) {
	s.mu.Lock()
	limited := time.Since(a.viewAt) < viewRefresh || time.Since(a.triedAt) < viewRefresh
	if a.resolving && soon {
		a.again = true
	}
	if a.resolving || s.state != 1 || limited && !soon {
		s.mu.Unlock()
		return
	}
	a.resolving, a.triedAt = true, time.Now()
	s.mu.Unlock()
	s.wg.Go(func() {
		for {
			ctx, cancel := context.WithTimeout(s.ctx, dialTimeout)
			s.relook(ctx, a.id)
			cancel()
			s.mu.Lock()
			again := a.again && s.state == 1
			a.again = false
			if !again {
				a.resolving = false
				s.mu.Unlock()
				return
			}
			a.triedAt = time.Now()
			s.mu.Unlock()
		}
	})
}

// inView reports whether dev is one of a's devices as last looked up. An
// account not looked up since the start has no view: what the directory
// cached of it may predate dev, so it is looked up afresh too.
func (s *Service) inView(a *acctState, dev identity.DeviceID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(a.view, dev)
}

// siblings returns the lanes of this account's other devices, as its own
// record named them when last looked up, and whether it has been looked
// up since the start. A view older than selfViewAge, or none, makes it be
// looked up again in the background.
func (s *Service) siblings() ([]*peerState, bool) {
	s.mu.Lock()
	a := s.acctLocked(s.selfID)
	known := a.view != nil
	var out []*peerState
	for _, d := range a.view {
		if d != s.selfDev {
			out = append(out, s.laneLocked(a, d))
		}
	}
	stale := !known || time.Since(a.viewAt) > selfViewAge
	s.mu.Unlock()
	if stale {
		s.refreshView(a, false)
	}
	return out, known
}

// putForSibling queues text m for this account's device dev, as a control
// message with m's id: kind contentCopy for a message this device sends,
// contentRelay for one it received (repair.go); to names m.Peer, the
// account it went to or came from.
func (s *Service) putForSibling(data *Data, kind uint64, m *Message, dev identity.DeviceID) error {
	to := identity.AccountID(m.Peer).Hash()
	if to == nil {
		return fmt.Errorf("text %s for a sibling: %w: peer %q", m.ID, store.ErrInvalid, m.Peer)
	}
	c := content{kind: kind, seq: m.Seq, sentAt: m.SentAt.UnixNano(), body: m.Body, file: m.File, to: to}
	c.replyTo, c.action = m.wireExtras()
	c.timer, c.timerSet = m.wireTimer()
	env := append([]byte{envPending}, c.marshal()...)
	return data.PutOutbox(OutboxEntry{ID: m.ID, Peer: string(s.selfID), Dev: dev, Envelope: env, NextAttempt: m.At, CreatedAt: m.At})
}

// noteEarly remembers the messages of batch, sent before this account's
// own record was looked up, for copyEarly.
func (s *Service) noteEarly(batch []*sendReq) {
	s.mu.Lock()
	dropped := 0
	for _, r := range batch {
		if len(s.early) == maxEarlyCopies {
			dropped++
			continue
		}
		s.early = append(s.early, earlyCopy{r.m.Peer, r.m.ID})
	}
	if dropped > 0 && !s.earlyFull {
		s.earlyFull = true // said once, not per message
		s.log.Warn("this account's other devices are not known yet: messages sent now are not copied to them", "messages", dropped)
	}
	known := s.acctLocked(s.selfID).view != nil
	s.mu.Unlock()
	if known {
		s.copyEarly() // looked up meanwhile
	}
}

// copyEarly queues the copies of the messages sent before this account's
// own record was first looked up, now that it has been.
func (s *Service) copyEarly() {
	s.mu.Lock()
	a := s.acctLocked(s.selfID)
	if a.view == nil || len(s.early) == 0 || s.state != 1 {
		s.mu.Unlock()
		return
	}
	early := s.early
	s.early = nil
	var sibs []*peerState
	for _, d := range a.view {
		if d != s.selfDev {
			sibs = append(sibs, s.laneLocked(a, d))
		}
	}
	s.mu.Unlock()
	if len(sibs) == 0 {
		return
	}
	var ids []string
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		data := s.data(tx)
		ids = ids[:0]
		for _, e := range early {
			m, err := data.Message(e.peer, e.id)
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return err
			}
			for _, sib := range sibs {
				if err := s.putForSibling(data, contentCopy, &m, sib.dev); err != nil {
					return err
				}
			}
			ids = append(ids, e.id)
		}
		return nil
	})
	if err != nil {
		s.log.Warn("copy messages sent since the start to this account's other devices", "err", err)
		return
	}
	for _, sib := range sibs {
		s.enqueue(sib, false, nil, ids...)
	}
}

// RefreshSelf looks this account's own record up now and waits for it: a
// device linked or revoked here, whose record this device just published,
// is copied to, or no longer, from the next send on.
func (s *Service) RefreshSelf(ctx context.Context) error {
	_, err := s.lookup(ctx, s.selfID)
	return err
}

// selfViewLoop looks this account's own record up until it is found once:
// at a start the network may not answer yet (the routing table is empty),
// and until the record is read the messages sent wait for their copies
// (noteEarly). Later lookups follow sends (siblings).
func (s *Service) selfViewLoop() {
	a := s.acct(s.selfID)
	backoff := selfViewRetry
	for {
		ctx, cancel := context.WithTimeout(s.ctx, dialTimeout)
		_, err := s.lookup(ctx, s.selfID)
		cancel()
		if err == nil || s.ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		known := a.view != nil
		s.mu.Unlock()
		if known {
			return
		}
		s.log.Debug("look this account up", "err", err, "again in", backoff)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, selfViewAge)
	}
}

// isRevoked reports whether the record of acct, as last looked up, lists
// dev as revoked.
func (s *Service) isRevoked(acct identity.AccountID, dev identity.DeviceID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accts[acct]
	return a != nil && slices.Contains(a.revoked, dev)
}

// markRevoked makes this device one its account revoked: it sends nothing
// more, and Config.OnRevoked is told, once.
func (s *Service) markRevoked() {
	if s.revoked.Swap(true) {
		return
	}
	s.log.Warn("this device was revoked by its account: it sends nothing more")
	if s.cfg.OnRevoked != nil {
		s.cfg.OnRevoked()
	}
}

// Revoked reports whether this device learnt that its account revoked it.
func (s *Service) Revoked() bool { return s.revoked.Load() }

// CheckRevoked looks this account's record up afresh, in the background,
// and marks this device revoked if the record lists it so: a sibling said
// it revoked this device, or a contact refused a frame as a revoked
// device's. The record decides, not what was said.
func (s *Service) CheckRevoked() {
	s.mu.Lock()
	a := s.acctLocked(s.selfID)
	a.triedAt = time.Time{}
	s.mu.Unlock()
	s.refreshView(a, true)
}

// freshenView reads the record of to again, before a send to it, when the
// devices last read are older than Config.ViewAge: the message then goes
// to a device linked since, and not to one revoked since. It waits at most
// freshViewWait (a slow network sends to the devices last read) and only
// one send at a time per contact does it; a failed look-up keeps the view
// and is not tried again for Config.ViewAge.
func (s *Service) freshenView(ctx context.Context, to identity.AccountID) {
	s.mu.Lock()
	a := s.acctLocked(to)
	stale := a.view != nil && time.Since(a.viewAt) > s.cfg.ViewAge && time.Since(a.triedAt) > s.cfg.ViewAge && !a.resolving
	if stale {
		a.resolving, a.triedAt = true, time.Now()
	}
	s.mu.Unlock()
	if !stale {
		return
	}
	defer func() {
		s.mu.Lock()
		a.resolving = false
		again := a.again
		a.again = false
		s.mu.Unlock()
		if again {
			s.refreshView(a, true) // asked for while this look-up ran
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, freshViewWait)
	defer cancel()
	s.relook(ctx, to)
}

// relook reads acct's record again past what the directory cached.
func (s *Service) relook(ctx context.Context, acct identity.AccountID) {
	if f, ok := s.cfg.Directory.(Forgetter); ok {
		f.Forget(acct)
	}
	if _, err := s.lookup(ctx, acct); err != nil && s.ctx.Err() == nil {
		s.log.Debug("read an account's record again", "peer", acct, "err", err)
	}
}
