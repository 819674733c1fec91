package groupchat

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// errWait says a carrier follows something that has not arrived yet (an
// operation, a sender key): it is kept (pending) and tried again when
// the group changes.
var errWait = errors.New("waits for what comes before it")

// Receive applies a carrier from a device of account from (msg's
// Config.OnGroup): request says from is a stranger. An error refuses the
// carrier with nothing stored; a carrier that comes again changes
// nothing. It never calls the Transport.
func (s *Service) Receive(from identity.AccountID, dev identity.DeviceID, body []byte, request bool) error {
	c, err := unmarshalCarrier(body)
	if err != nil {
		return err
	}
	var events []Event
	s.mu.Lock()
	err = s.cfg.DB.Update(func(tx *store.Tx) error {
		events = events[:0]
		d := in(tx)
		err := s.applyLocked(d, from, dev, c, request, &events)
		if err != nil {
			s.log.Debug("a group carrier not applied", "group", c.group, "kind", c.kind, "from", from, "device", dev, "err", err)
		}
		if errors.Is(err, errWait) {
			return s.keepLocked(d, c.group, from, dev, body, request)
		}
		if err != nil {
			return err
		}
		return s.retryLocked(d, c.group, &events)
	})
	if err != nil {
		// The cached log may have run ahead of what was committed.
		delete(s.logs, c.group)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for _, e := range events {
		// A member's message stored here: its sender hears it arrived.
		if e.Kind == EventMessage && !e.Updated && e.Message != nil && !e.Message.Out {
			if id, err := parseMessageID(e.Message.ID); err == nil {
				s.queueReceipts(e.Group, e.Message.From, false, id)
			}
		}
		s.emit(e)
	}
	return nil
}

// applyLocked applies one carrier.
func (s *Service) applyLocked(d data, from identity.AccountID, dev identity.DeviceID, c carrier, request bool, events *[]Event) error {
	r, known, err := d.rec(c.group)
	if err != nil {
		return err
	}
	switch c.kind {
	case kindOps:
		if !known {
			return s.inviteLocked(d, from, c, request, events)
		}
		if from == s.self && r.status == Invited {
			// Another device of this account joined (Join).
			if err := s.joinLocked(d, c.group, &r); err != nil {
				return err
			}
			*events = append(*events, Event{Kind: EventGroup, Group: c.group})
		}
		return s.opsLocked(d, from, c, r, request, events)
	case kindKey:
		if !known {
			return ErrNotMember
		}
		return s.keyLocked(d, from, dev, c, r, events)
	case kindKeyRequest:
		if !known {
			return ErrNotMember
		}
		return s.keyRequestLocked(d, from, dev, c, r)
	case kindReceipt:
		if !known {
			return ErrNotMember
		}
		return s.receiptLocked(d, from, c, events)
	default:
		if !known {
			return ErrNotMember
		}
		return s.messageLocked(d, from, dev, c, r, events)
	}
}

// inviteLocked takes the log of a group this account is not in yet: it
// must name this account a member, added by from.
func (s *Service) inviteLocked(d data, from identity.AccountID, c carrier, request bool, events *[]Event) error {
	ops, err := decodeOps(c)
	if err != nil {
		return err
	}
	l, err := group.Load(ops)
	if errors.Is(err, group.ErrUnknownParent) {
		return errWait
	}
	if err != nil {
		return fmt.Errorf("an invitation: %w", err)
	}
	me, ok := l.State().Member(s.cfg.Account.Public())
	if !ok {
		return fmt.Errorf("%w: an invitation that does not name this account", ErrNotMember)
	}
	by := adder(l, me.Account)
	if by.ID() != from && from != s.self {
		return errors.New("an invitation sent by someone other than who added this account")
	}
	r := rec{status: Invited, invitedBy: by.Bytes(), request: request, lastAt: s.cfg.Now()}
	if from == s.self {
		// A group this account made or joined, from another of its
		// devices.
		r.status = Joined
		if by.ID() == s.self {
			r.invitedBy = nil
		}
	} else if request {
		n, err := s.countInvitesLocked(d)
		if err != nil {
			return err
		}
		if n >= maxInvites {
			return fmt.Errorf("%d invitations from strangers wait already", n)
		}
	}
	for _, o := range l.Ops() {
		if err := d.putOp(o); err != nil {
			return err
		}
	}
	if err := d.putRec(l.ID(), r); err != nil {
		return err
	}
	s.logs[l.ID()] = l
	if r.status == Joined {
		s.addMembersLocked(l.State(), 1)
	}
	*events = append(*events, Event{Kind: EventGroup, Group: l.ID()})
	return nil
}

func (s *Service) countInvitesLocked(d data) (int, error) {
	n := 0
	err := d.sp.Scan(pfxRec, nil, false, func(_ []byte, val func() ([]byte, error)) (bool, error) {
		b, err := val()
		if err != nil {
			return false, err
		}
		if r, err := unmarshalRec(b); err == nil && r.status == Invited && r.request {
			n++
		}
		return true, nil
	})
	return n, err
}

func decodeOps(c carrier) ([]group.Op, error) {
	ops := make([]group.Op, len(c.ops))
	for i, b := range c.ops {
		o, err := group.Unmarshal(b)
		if err != nil {
			return nil, err
		}
		if o.Group != c.group {
			return nil, group.ErrOtherGroup
		}
		ops[i] = o
	}
	return ops, nil
}

// opsLocked adds operations to a group this account knows, brought by
// from (request: a stranger). Each must be signed by its author and
// allowed at its parent; one already held changes nothing; one whose
// parent is unknown waits.
func (s *Service) opsLocked(d data, from identity.AccountID, c carrier, r rec, request bool, events *[]Event) error {
	ops, err := decodeOps(c)
	if err != nil {
		return err
	}
	cached, err := s.loadLocked(d, c.group)
	if err != nil {
		return err
	}
	if cached == nil {
		return fmt.Errorf("%w: group %v has no log", store.ErrCorrupt, c.group)
	}
	l, err := group.Load(cached.Ops())
	if err != nil {
		return err
	}
	before := l.State()
	var added []group.Op
	for _, o := range ops {
		err := l.Add(o)
		if errors.Is(err, group.ErrReplayed) {
			continue
		}
		if errors.Is(err, group.ErrUnknownParent) {
			return errWait // all of the carrier waits: nothing is written
		}
		if err != nil {
			return err
		}
		added = append(added, o)
	}
	if len(added) == 0 {
		return nil
	}
	for _, o := range added {
		if err := d.putOp(o); err != nil {
			return err
		}
	}
	after := l.State()
	var removed []identity.AccountID
	for _, a := range accounts(before) {
		if _, ok := after.Member(mustPub(before, a)); !ok {
			removed = append(removed, a)
		}
	}
	// This account's own operations that lost at a fork are signed again
	// on the new head, when still allowed there (a leave, a removal of
	// someone still in), and sent to the members.
	var reissued []group.Op
	for _, o := range l.Orphans(s.cfg.Account.Public()) {
		n, err := l.Reissue(s.cfg.Account, o, s.cfg.Now())
		if err != nil {
			continue // the winning branch made it moot
		}
		if err := d.putOp(n); err != nil {
			return err
		}
		reissued = append(reissued, n)
	}
	if err := s.applyStateLocked(d, l, &r, before, removed, from, request); err != nil {
		return err
	}
	s.logs[c.group] = l
	if len(reissued) > 0 {
		to := accounts(before)
		for _, a := range accounts(l.State()) {
			if !slices.Contains(to, a) {
				to = append(to, a)
			}
		}
		s.later(to, opsCarriers(c.group, reissued)...)
	}
	*events = append(*events, Event{Kind: EventGroup, Group: c.group})
	return nil
}

func mustPub(st *group.State, a identity.AccountID) identity.AccountPub {
	for _, m := range st.Members() {
		if m.Account.ID() == a {
			return m.Account
		}
	}
	return identity.AccountPub{}
}

// memberLocked returns g's state, refusing a sender that is not a member;
// errWait for a carrier of a newer epoch. A carrier of an older epoch from
// a member is taken: its sender had not heard of the removal yet, and
// whoever was removed got it too, under the key it already had.
func (s *Service) memberLocked(d data, from identity.AccountID, c carrier, r rec) (*group.State, error) {
	if r.status != Joined && r.status != Invited {
		return nil, fmt.Errorf("%w: this account %s", ErrNotMember, r.status)
	}
	l, err := s.loadLocked(d, c.group)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, fmt.Errorf("%w: group %v has no log", store.ErrCorrupt, c.group)
	}
	st := l.State()
	if c.epoch > st.Epoch {
		return nil, errWait
	}
	if _, ok := st.Member(mustPub(st, from)); !ok || mustPub(st, from).IsZero() {
		return nil, errors.New("the sender is not a member of the group")
	}
	return st, nil
}

// keyLocked keeps a member device's sender key.
func (s *Service) keyLocked(d data, from identity.AccountID, dev identity.DeviceID, c carrier, r rec, _ *[]Event) error {
	if from == s.self && dev == s.cfg.Device {
		return errors.New("a sender key from this device itself")
	}
	if _, err := s.memberLocked(d, from, c, r); err != nil {
		return err
	}
	sh, err := e2e.UnmarshalSenderKeyShare(c.share)
	if err != nil {
		return err
	}
	rc, err := e2e.NewReceiverChain(sh)
	if err != nil {
		return err
	}
	old, ok, err := d.chain(c.group, from, dev)
	if err != nil {
		return err
	}
	if ok && (old.epoch > c.epoch || old.epoch == c.epoch && old.gen >= c.gen) {
		return nil // the same or an older one: kept already, or replaced
	}
	return d.putChain(c.group, from, dev, chain{epoch: c.epoch, gen: c.gen, chain: rc.Marshal()})
}

// askKeyLocked asks from, at most once per keyAskEvery, for the sender
// key of its message that waits: its key may never come otherwise (this
// device was linked after the key went to its account).
func (s *Service) askKeyLocked(g group.ID, from identity.AccountID, epoch uint64) {
	if !s.rateLocked(s.asked, keyAsk{g: g, a: from}) {
		return
	}
	s.log.Debug("asking for a member's sender key", "group", g, "member", from, "epoch", epoch)
	c := carrier{kind: kindKeyRequest, group: g, epoch: epoch}
	s.later([]identity.AccountID{from}, c.marshal())
}

// rateLocked reports whether k's key request (or answer) may go now, at
// most once per keyAskEvery, and notes it. The map forgets the old ones
// once it holds maxKeyAsks.
func (s *Service) rateLocked(m map[keyAsk]time.Time, k keyAsk) bool {
	now := time.Now()
	if now.Sub(m[k]) < keyAskEvery {
		return false
	}
	if len(m) >= maxKeyAsks {
		for k, at := range m {
			if now.Sub(at) >= keyAskEvery {
				delete(m, k)
			}
		}
	}
	m[k] = now
	return true
}

// keyRequestLocked answers a member device that asks for this device's
// sender key, at most once per keyAskEvery for each asking device (an
// answer to one device of an account does not hold up its device linked
// since, which asks too), with a share sent to the
// asking account's devices: from the chain's first message when the
// account was a member then, else from the next one (a member added since
// reads nothing sent before it joined).
func (s *Service) keyRequestLocked(d data, from identity.AccountID, dev identity.DeviceID, c carrier, r rec) error {
	st, err := s.memberLocked(d, from, c, r)
	if err != nil {
		return err
	}
	o, ok, err := d.own(c.group)
	if err != nil || !ok || o.epoch != st.Epoch || c.epoch != st.Epoch || o.initial == nil {
		return err // nothing to give: the asker waits for this device's next chain
	}
	if !s.rateLocked(s.answered, keyAsk{g: c.group, a: from, dev: dev}) {
		return nil
	}
	s.log.Debug("giving a member device this device's sender key", "group", c.group, "member", from, "device", dev)
	share := o.initial
	if m, _ := st.Member(mustPub(st, from)); m.Since > o.seq {
		sk, err := e2e.UnmarshalSenderKey(o.key)
		if err != nil {
			return fmt.Errorf("%w: own sender key: %v", store.ErrCorrupt, err)
		}
		share = e2e.MarshalSenderKeyShare(sk.Share())
	}
	key := carrier{kind: kindKey, group: c.group, epoch: o.epoch, gen: o.gen, share: share}
	s.later([]identity.AccountID{from}, key.marshal())
	return nil
}

// messageLocked opens and stores a member device's message.
func (s *Service) messageLocked(d data, from identity.AccountID, dev identity.DeviceID, c carrier, r rec, events *[]Event) error {
	if from == s.self && dev == s.cfg.Device {
		return errors.New("a message from this device itself")
	}
	st, err := s.memberLocked(d, from, c, r)
	if err != nil {
		return err
	}
	ch, ok, err := d.chain(c.group, from, dev)
	if err != nil {
		return err
	}
	id, _, err := e2e.GroupMessageChain(c.sealed)
	if err != nil {
		return err
	}
	if (!ok || ch.epoch != c.epoch) && c.epoch < st.Epoch {
		return errors.New("group epoch ended: its sender key was replaced")
	}
	if !ok || ch.epoch != c.epoch {
		s.askKeyLocked(c.group, from, c.epoch)
		return errWait
	}
	rc, err := e2e.UnmarshalReceiverChain(ch.chain)
	if err != nil {
		return fmt.Errorf("%w: a sender key: %v", store.ErrCorrupt, err)
	}
	if rc.ID() != id {
		s.askKeyLocked(c.group, from, c.epoch)
		return errWait // a chain whose key has not come yet
	}
	pt, err := rc.Open(messageAD(c.group, c.epoch, from, dev), c.sealed)
	if errors.Is(err, e2e.ErrReplay) {
		return nil // opened before: a carrier that came again
	}
	if err != nil {
		return err
	}
	p, err := unmarshalPlain(pt)
	if err != nil {
		return err
	}
	ch.chain = rc.Marshal()
	if err := d.putChain(c.group, from, dev, ch); err != nil {
		return err
	}
	if p.action != nil {
		// Folded into its target, never shown itself; one that comes
		// again was refused by its chain above (a replay).
		if here, err := d.hasMessage(c.group, p.action.target); err != nil || !here {
			if err != nil {
				return err
			}
			return s.holdActionLocked(d, c.group, from, &p) // its target is on its way
		}
		t, removed, ok, err := s.applyActionLocked(d, c.group, from, &p)
		if err != nil || !ok {
			return err
		}
		msg := t.message(c.group)
		*events = append(*events, Event{Kind: EventMessage, Group: c.group, Message: &msg, Updated: true, Removed: removed})
		return nil
	}
	seen, err := d.hasMessage(c.group, p.id)
	if err != nil || seen {
		return err
	}
	now := s.cfg.Now()
	m := stored{id: p.id, from: from, dev: dev, sentAt: p.sentAt, at: now, text: p.text, file: p.file, out: from == s.self, read: from == s.self, expires: p.expires, replyTo: p.replyTo}
	if err := d.putMessage(c.group, m); err != nil {
		return err
	}
	r.lastAt = now
	if !m.out {
		r.unread++
	}
	if err := d.putRec(c.group, r); err != nil {
		return err
	}
	m, removed, err := s.earlyActionsLocked(d, c.group, m)
	if err != nil {
		return err
	}
	msg := m.message(c.group)
	*events = append(*events, Event{Kind: EventMessage, Group: c.group, Message: &msg, Removed: removed})
	return nil
}

// keepLocked keeps a carrier that waits, at most maxPending per group (a
// group this account does not know: none).
func (s *Service) keepLocked(d data, g group.ID, from identity.AccountID, dev identity.DeviceID, body []byte, request bool) error {
	r, ok, err := d.rec(g)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("an invitation whose log is incomplete")
	}
	n := 0
	err = d.sp.Scan(key(pfxPending, g[:]), nil, false, func([]byte, func() ([]byte, error)) (bool, error) {
		n++
		return true, nil
	})
	if err != nil {
		return err
	}
	if n >= maxPending {
		return fmt.Errorf("%d carriers of the group wait already", n)
	}
	r.pending++
	if err := d.putRec(g, r); err != nil {
		return err
	}
	p := pendingCarrier{from: from, dev: dev, body: body, request: request}
	return d.sp.Set(key(pfxPending, g[:], be64(r.pending)), p.marshal())
}

// retryLocked applies the carriers of g that wait, in the order they
// came, until a pass applies none.
func (s *Service) retryLocked(d data, g group.ID, events *[]Event) error {
	for {
		type waiting struct {
			k []byte
			p pendingCarrier
		}
		var all []waiting
		err := d.sp.Scan(key(pfxPending, g[:]), nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
			b, err := val()
			if err != nil {
				return false, err
			}
			p, err := unmarshalPending(b)
			if err != nil {
				return false, fmt.Errorf("%w: %q: %v", store.ErrCorrupt, k, err)
			}
			all = append(all, waiting{slices.Clone(k), p})
			return true, nil
		})
		if err != nil || len(all) == 0 {
			return err
		}
		progressed := false
		for _, w := range all {
			c, err := unmarshalCarrier(w.p.body)
			if err == nil {
				err = s.applyLocked(d, w.p.from, w.p.dev, c, w.p.request, events)
			}
			if errors.Is(err, errWait) {
				continue
			}
			if err != nil {
				s.log.Info("a waiting group carrier was refused", "group", g, "from", w.p.from, "err", err)
			}
			if err := d.sp.Delete(w.k); err != nil {
				return err
			}
			progressed = true
		}
		if !progressed {
			return nil
		}
	}
}
