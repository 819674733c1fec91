package groupchat

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// Transport carries carriers to every device of each account in to (and,
// for this account itself, its other devices), in order, through the
// outbox, acknowledgements and mailboxes: msg.Service.QueueGroup.
type Transport interface {
	QueueGroup(ctx context.Context, to []identity.AccountID, bodies ...[]byte) error
}

// DirectTransport is a Transport that can carry carriers that go to no
// mailbox, only to the devices themselves: msg.Service.QueueGroupDirect.
// Receipts use it when the Transport has it.
type DirectTransport interface {
	QueueGroupDirect(ctx context.Context, to []identity.AccountID, bodies ...[]byte) error
}

// FileTransport is a Transport that can also be told the attachment (a
// files.Ref, as in Message.File) of the message a carrier holds, so that
// the attachment can follow the carrier to a member's mailbox:
// msg.Service.QueueGroupFile. Send uses it when the Transport has it.
type FileTransport interface {
	QueueGroupFile(ctx context.Context, to []identity.AccountID, file []byte, bodies ...[]byte) error
}

// Config configures a Service.
type Config struct {
	DB        *store.DB
	Account   *identity.AccountKey
	Device    identity.DeviceID
	Transport Transport
	// OnEvent is told of every change; it must not block.
	OnEvent func(Event)
	Now     func() time.Time // nil: time.Now
	Log     *slog.Logger
	// RotateAfter and RotateEvery bound a sender key's life: a device
	// starts a new one after this many messages or this long, whichever
	// comes first (GROUPS.md §1.4). 0: 1,000 and 7 days.
	RotateAfter uint32
	RotateEvery time.Duration
}

// Limits.
const (
	// maxPending caps the carriers kept per group until what they follow
	// arrives.
	maxPending = 256
	// maxInvites caps the invitations from strangers waiting at once.
	maxInvites = 32
)

// Errors.
var (
	ErrNotFound  = errors.New("no such group")
	ErrNotMember = errors.New("not a member of this group")
	ErrNoText    = errors.New("a group message needs a text or a file")
	ErrTooLarge  = errors.New("group message too large")
)

// EventKind says what an Event is about.
type EventKind int

const (
	// EventGroup: a group's record, members or name changed (Info).
	EventGroup EventKind = iota + 1
	// EventMessage: a message was stored (sent here, or received).
	EventMessage
	// EventDeleted: a message's time was up (the group's timer): it is
	// gone from this device; Message is what it was.
	EventDeleted
)

// Event is a change the node tells its clients about.
type Event struct {
	Kind    EventKind
	Group   group.ID
	Message *Message // EventMessage
	// Updated: an action (a reaction, an edit, a delete for everyone)
	// changed Message, which was here before (EventMessage). Removed is
	// the attachment reference a delete for everyone dropped: its file
	// goes.
	Updated bool
	Removed []byte
}

// Message is a group message as the node shows it.
type Message struct {
	Group  group.ID
	ID     string // hex, the same at every member
	From   identity.AccountID
	Dev    identity.DeviceID
	Out    bool // sent by this account (here or on another of its devices)
	Text   []byte
	File   []byte // an attachment's reference (files.Ref), nil for none
	SentAt time.Time
	At     time.Time // stored here
	Read   bool
	// Expires is when the message disappears from this device (zero:
	// it stays).
	Expires time.Time
	// ReplyTo is the id of the message this one quotes ("": none).
	ReplyTo string
	// Reactions are at most one per member account.
	Reactions []Reaction
	// Edited: Text is its sender's edit. Deleted: its sender deleted it
	// for everyone (no Text, no File).
	Edited, Deleted bool
	// Of a message this account sent: the other member accounts when it
	// was sent, and how many of them have it and read it (receipts.go).
	Recipients, Delivered, ReadBy int
}

// Info is a group as this account sees it.
type Info struct {
	ID        group.ID
	Name      string
	Status    Status
	Members   []group.Member // in the order of the log: the creator first
	Admin     bool           // this account is an admin
	Unread    int
	LastAt    time.Time
	InvitedBy identity.AccountID // who added this account
	Request   bool               // the invitation came from a stranger (or from someone this device could not tell)
	Epoch     uint64
	// Timer is the group's disappearing-message timer (0: off).
	Timer time.Duration
}

// Service keeps this device's groups: their logs, its sender keys and the
// messages, and makes and applies carriers. Safe for concurrent use.
type Service struct {
	cfg  Config
	self identity.AccountID
	log  *slog.Logger

	mu      sync.Mutex
	logs    map[group.ID]*group.Log // loaded logs
	members map[identity.AccountID]int
	// asked and answered rate-limit key requests: by group and account
	// asked, by group and asking device answered.
	asked, answered map[keyAsk]time.Time

	// Carriers that Receive makes (it may not call the Transport, whose
	// locks are held around it) wait in sends for the sender goroutine.
	sendMu   sync.Mutex
	sends    []send
	receipts map[receiptKey][]byte // ids waiting to be told (receipts.go)
	wake     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// keyAsk names a key request: a group, the other account and, for an
// answer, the asking device.
type keyAsk struct {
	g   group.ID
	a   identity.AccountID
	dev identity.DeviceID
}

// keyAskEvery bounds the key requests to one account in one group, and
// the answers to one device; maxKeyAsks the requests remembered.
const (
	keyAskEvery = 30 * time.Second
	maxKeyAsks  = 4096
)

// send is carriers for accounts, queued by Receive.
type send struct {
	to     []identity.AccountID
	bodies [][]byte
}

// New opens the groups kept in cfg.DB.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Account == nil || cfg.Transport == nil {
		return nil, errors.New("groupchat: DB, Account and Transport are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RotateAfter == 0 {
		cfg.RotateAfter = 1000
	}
	if cfg.RotateEvery == 0 {
		cfg.RotateEvery = 7 * 24 * time.Hour
	}
	s := &Service{cfg: cfg, self: cfg.Account.Public().ID(), log: cfg.Log, logs: map[group.ID]*group.Log{}, wake: make(chan struct{}, 1),
		asked: map[keyAsk]time.Time{}, answered: map[keyAsk]time.Time{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.countMembers(); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Go(s.sender)
	return s, nil
}

// later queues carriers for the sender goroutine.
func (s *Service) later(to []identity.AccountID, bodies ...[]byte) {
	s.sendMu.Lock()
	s.sends = append(s.sends, send{to, bodies})
	s.sendMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sender hands what Receive queued to the Transport, in order, and
// sweeps expired messages (timer.go), until Close.
func (s *Service) sender() {
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	// Receipts wait receiptDelay after the first, so that those of many
	// messages go together.
	receipts := time.NewTimer(time.Hour)
	receipts.Stop()
	defer receipts.Stop()
	armed := false
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
			s.sweep()
			continue
		case <-receipts.C:
			armed = false
			s.sendReceipts()
			continue
		case <-s.wake:
		}
		s.sendMu.Lock()
		batch := s.sends
		s.sends = nil
		waiting := len(s.receipts) > 0
		s.sendMu.Unlock()
		for _, b := range batch {
			if err := s.cfg.Transport.QueueGroup(s.ctx, b.to, b.bodies...); err != nil && s.ctx.Err() == nil {
				s.log.Warn("group carriers not queued", "err", err)
			}
		}
		if waiting && !armed {
			receipts.Reset(receiptDelay)
			armed = true
		}
	}
}

// receiptDelay is how long a receipt waits for others to go with it.
var receiptDelay = 500 * time.Millisecond

// countMembers rebuilds the index of the accounts this one shares a
// group it joined with.
func (s *Service) countMembers() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members = map[identity.AccountID]int{}
	return s.cfg.DB.View(func(tx *store.Tx) error {
		d := in(tx)
		all, err := d.recs(func(error) error { return nil })
		if err != nil {
			return err
		}
		for _, gr := range all {
			if gr.r.status != Joined {
				continue
			}
			l, err := s.loadLocked(d, gr.g)
			if err != nil {
				s.log.Warn("a group's log does not load", "group", gr.g, "err", err)
				continue
			}
			s.addMembersLocked(l.State(), 1)
		}
		return nil
	})
}

func (s *Service) addMembersLocked(st *group.State, n int) {
	for _, m := range st.Members() {
		id := m.Account.ID()
		if id == s.self {
			continue
		}
		if s.members[id] += n; s.members[id] <= 0 {
			delete(s.members, id)
		}
	}
}

// IsMember reports whether acct is a member of a group this account has
// joined: its messages are then no stranger's (the node's policy).
func (s *Service) IsMember(acct identity.AccountID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members[acct] > 0
}

// Close ends the service and waits for its sender goroutine.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Service) emit(e Event) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(e)
	}
}

// loadLocked returns g's log, from the cache or the store; nil, nil when
// the group is unknown.
func (s *Service) loadLocked(d data, g group.ID) (*group.Log, error) {
	if l := s.logs[g]; l != nil {
		return l, nil
	}
	ops, err := d.ops(g)
	if err != nil || len(ops) == 0 {
		return nil, err
	}
	l, err := group.Load(ops)
	if err != nil {
		return nil, fmt.Errorf("%w: group %v: %v", store.ErrCorrupt, g, err)
	}
	s.logs[g] = l
	return l, nil
}

// ParseID parses a group id as Info.ID.String gives it.
func ParseID(s string) (group.ID, error) {
	var g group.ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(g) {
		return g, fmt.Errorf("%w: %q is not a group id", ErrNotFound, s)
	}
	copy(g[:], b)
	return g, nil
}

func (s *Service) info(l *group.Log, r rec) Info {
	st := l.State()
	in := Info{ID: l.ID(), Name: st.Name, Status: r.status, Members: st.Members(), Unread: int(r.unread),
		LastAt: r.lastAt, Request: r.request, Epoch: st.Epoch, Timer: st.Timer}
	if m, ok := st.Member(s.cfg.Account.Public()); ok {
		in.Admin = m.Admin
	}
	if p, err := identity.ParseAccountPub(r.invitedBy); err == nil && r.invitedBy != nil {
		in.InvitedBy = p.ID()
	}
	return in
}

// Groups lists the groups this account is in, was invited to or left,
// the latest first.
func (s *Service) Groups() ([]Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Info
	err := s.cfg.DB.View(func(tx *store.Tx) error {
		d := in(tx)
		all, err := d.recs(func(err error) error {
			s.log.Warn("a damaged group record is passed over", "err", err)
			return nil
		})
		if err != nil {
			return err
		}
		for _, o := range all {
			l, err := s.loadLocked(d, o.g)
			if err != nil || l == nil {
				s.log.Warn("a group's log does not load", "group", o.g, "err", err)
				continue
			}
			out = append(out, s.info(l, o.r))
		}
		return nil
	})
	slices.SortStableFunc(out, func(a, b Info) int { return b.LastAt.Compare(a.LastAt) })
	return out, err
}

// Group returns one group.
func (s *Service) Group(g group.ID) (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out Info
	err := s.cfg.DB.View(func(tx *store.Tx) error {
		r, l, err := s.groupLocked(in(tx), g)
		if err == nil {
			out = s.info(l, r)
		}
		return err
	})
	return out, err
}

// groupLocked reads g's record and log: ErrNotFound without them.
func (s *Service) groupLocked(d data, g group.ID) (rec, *group.Log, error) {
	r, ok, err := d.rec(g)
	if err != nil {
		return rec{}, nil, err
	}
	if !ok {
		return rec{}, nil, ErrNotFound
	}
	l, err := s.loadLocked(d, g)
	if err == nil && l == nil {
		err = fmt.Errorf("%w: group %v has no log", store.ErrCorrupt, g)
	}
	return r, l, err
}

// ShareWithSiblings sends this account's other devices the log of every
// group it joined: a device linked since joins them too (the node calls
// it when its account's record names a new device).
func (s *Service) ShareWithSiblings(ctx context.Context) error {
	all, err := s.Groups()
	if err != nil {
		return err
	}
	for _, gi := range all {
		if gi.Status != Joined {
			continue
		}
		s.mu.Lock()
		var chain []group.Op
		err := s.cfg.DB.View(func(tx *store.Tx) error {
			l, err := s.loadLocked(in(tx), gi.ID)
			if err == nil && l != nil {
				chain = l.Chain()
			}
			return err
		})
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if err := s.cfg.Transport.QueueGroup(ctx, []identity.AccountID{s.self}, opsCarriers(gi.ID, chain)...); err != nil {
			return err
		}
	}
	return nil
}

// Create starts a group named name with this account as its admin.
func (s *Service) Create(ctx context.Context, name string) (Info, error) {
	s.mu.Lock()
	l, err := group.New(s.cfg.Account, name, s.cfg.Now(), nil)
	if err != nil {
		s.mu.Unlock()
		return Info{}, err
	}
	r := rec{status: Joined, lastAt: s.cfg.Now()}
	err = s.cfg.DB.Update(func(tx *store.Tx) error {
		d := in(tx)
		for _, o := range l.Ops() {
			if err := d.putOp(o); err != nil {
				return err
			}
		}
		return d.putRec(l.ID(), r)
	})
	if err == nil {
		s.logs[l.ID()] = l
	}
	s.mu.Unlock()
	if err != nil {
		return Info{}, fmt.Errorf("create group: %w", err)
	}
	// This account's other devices learn of it.
	if err := s.cfg.Transport.QueueGroup(ctx, []identity.AccountID{s.self}, opsCarriers(l.ID(), l.Chain())...); err != nil {
		s.log.Warn("a new group not sent to this account's other devices", "err", err)
	}
	info := s.info(l, r)
	s.emit(Event{Kind: EventGroup, Group: l.ID()})
	return info, nil
}

// change signs ops of this account on g's head and applies them, sends
// them to the members (before and after) and the whole log to the members
// they add, and returns the group as it is then.
func (s *Service) change(ctx context.Context, g group.ID, ops ...group.Op) (Info, error) {
	s.mu.Lock()
	var (
		l              *group.Log
		r              rec
		before, added  []identity.AccountID
		signed         []group.Op
		beforeState    *group.State
		removedMembers []identity.AccountID
	)
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		d := in(tx)
		var cached *group.Log
		var err error
		if r, cached, err = s.groupLocked(d, g); err != nil {
			return err
		}
		if r.status != Joined && !(r.status == Invited && len(ops) == 1 && ops[0].Kind == group.Leave) {
			return ErrNotMember
		}
		// A copy: a refusal half way leaves the cached log as it was.
		if l, err = group.Load(cached.Ops()); err != nil {
			return err
		}
		beforeState = l.State()
		before = accounts(beforeState)
		signed = signed[:0]
		for _, o := range ops {
			op, err := l.Next(s.cfg.Account, o, s.cfg.Now())
			if err != nil {
				return err
			}
			signed = append(signed, op)
			if err := d.putOp(op); err != nil {
				return err
			}
		}
		after := l.State()
		added = added[:0]
		for _, a := range accounts(after) {
			if !slices.Contains(before, a) {
				added = append(added, a)
			}
		}
		removedMembers = removedMembers[:0]
		for _, a := range before {
			if !slices.Contains(accounts(after), a) {
				removedMembers = append(removedMembers, a)
			}
		}
		return s.applyStateLocked(d, l, &r, beforeState, removedMembers, s.self, false)
	})
	if err == nil {
		s.logs[g] = l
	}
	s.mu.Unlock()
	if err != nil {
		return Info{}, err
	}
	if err := s.cfg.Transport.QueueGroup(ctx, before, opsCarriers(g, signed)...); err != nil {
		return Info{}, fmt.Errorf("send the group's change: %w", err)
	}
	if len(added) > 0 {
		if err := s.cfg.Transport.QueueGroup(ctx, added, opsCarriers(g, l.Chain())...); err != nil {
			return Info{}, fmt.Errorf("send the group to its new members: %w", err)
		}
	}
	s.emit(Event{Kind: EventGroup, Group: g})
	return s.info(l, r), nil
}

// applyStateLocked follows a change of g's state from before to after,
// brought by from (request: a stranger), in the store: this account's
// status, its sender keys, the index of co-members.
func (s *Service) applyStateLocked(d data, l *group.Log, r *rec, before *group.State, removed []identity.AccountID, from identity.AccountID, request bool) error {
	g, after := l.ID(), l.State()
	_, wasMember := before.Member(s.cfg.Account.Public())
	_, isMember := after.Member(s.cfg.Account.Public())
	oldStatus := r.status
	if wasMember && !isMember && (r.status == Joined || r.status == Invited) {
		r.status = Removed
		if selfLeft(l, s.self) {
			r.status = Left
		}
	}
	if !wasMember && isMember && (r.status == Left || r.status == Removed) {
		// Added again: an invitation, from whoever added this account
		// this time, and a stranger's as a first one is (inviteLocked),
		// whatever the one before was. Brought by someone else, it is
		// held as a stranger's: nothing here tells whether the adder is
		// one (the node shows a contact's all the same).
		r.status, r.invitedBy, r.request = Invited, nil, true
		if by := adder(l, s.cfg.Account.Public()); !by.IsZero() {
			r.invitedBy = by.Bytes()
			if by.ID() == from {
				r.request = request
			}
		}
	}
	if oldStatus == Joined {
		s.addMembersLocked(before, -1)
	}
	if r.status == Joined {
		s.addMembersLocked(after, 1)
	}
	if r.status == Left || r.status == Removed {
		if err := d.deleteOwn(g); err != nil {
			return err
		}
		if err := d.deleteChains(g, ""); err != nil {
			return err
		}
	} else if after.Epoch != before.Epoch {
		// A removal or a departure: this device's next message starts a
		// chain the departed never get.
		if err := d.deleteOwn(g); err != nil {
			return err
		}
	}
	for _, a := range removed {
		if err := d.deleteChains(g, a); err != nil {
			return err
		}
	}
	return d.putRec(g, *r)
}

// adder is who last added p to l's group (zero: nobody did).
func adder(l *group.Log, p identity.AccountPub) identity.AccountPub {
	var by identity.AccountPub
	for _, o := range l.Chain() {
		if o.Kind == group.Add && o.Subject.Equal(p) || o.Kind == group.Create && o.Author.Equal(p) {
			by = o.Author
		}
	}
	return by
}

// selfLeft reports whether the operation that took self out of l's group
// was self's own leave.
func selfLeft(l *group.Log, self identity.AccountID) bool {
	ch := l.Chain()
	for i := len(ch) - 1; i >= 0; i-- {
		switch o := ch[i]; {
		case o.Kind == group.Leave && o.Author.ID() == self:
			return true
		case o.Kind == group.Remove && o.Subject.ID() == self:
			return false
		}
	}
	return false
}

func accounts(st *group.State) []identity.AccountID {
	ms := st.Members()
	out := make([]identity.AccountID, len(ms))
	for i, m := range ms {
		out[i] = m.Account.ID()
	}
	return out
}

// Invite adds accounts to g (this account must be an admin) and sends
// them the group: each sees it as an invitation until it joins.
func (s *Service) Invite(ctx context.Context, g group.ID, who ...identity.AccountPub) (Info, error) {
	var ops []group.Op
	for _, p := range who {
		ops = append(ops, group.Op{Kind: group.Add, Subject: p})
	}
	return s.change(ctx, g, ops...)
}

// Remove takes a member out of g (this account must be an admin).
func (s *Service) Remove(ctx context.Context, g group.ID, who identity.AccountPub) (Info, error) {
	return s.change(ctx, g, group.Op{Kind: group.Remove, Subject: who})
}

// SetAdmin makes a member an admin, or no longer one.
func (s *Service) SetAdmin(ctx context.Context, g group.ID, who identity.AccountPub, admin bool) (Info, error) {
	k := group.Demote
	if admin {
		k = group.Promote
	}
	return s.change(ctx, g, group.Op{Kind: k, Subject: who})
}

// Rename renames g (this account must be an admin).
func (s *Service) Rename(ctx context.Context, g group.ID, name string) (Info, error) {
	return s.change(ctx, g, group.Op{Kind: group.Rename, Name: name})
}

// Leave takes this account out of g; declining an invitation is leaving.
func (s *Service) Leave(ctx context.Context, g group.ID) (Info, error) {
	return s.change(ctx, g, group.Op{Kind: group.Leave})
}

// Join accepts the invitation to g.
func (s *Service) Join(ctx context.Context, g group.ID) (Info, error) {
	s.mu.Lock()
	var info Info
	var chain []group.Op
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		d := in(tx)
		r, l, err := s.groupLocked(d, g)
		if err != nil {
			return err
		}
		chain = l.Chain()
		switch r.status {
		case Joined:
		case Invited:
			if err := s.joinLocked(d, g, &r); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: this account %s", ErrNotMember, r.status)
		}
		info = s.info(l, r)
		return nil
	})
	s.mu.Unlock()
	if err != nil {
		return Info{}, err
	}
	// The account's other devices join too: the log from this account is
	// its word that it is in.
	if err := s.cfg.Transport.QueueGroup(ctx, []identity.AccountID{s.self}, opsCarriers(g, chain)...); err != nil {
		s.log.Warn("joining not told to this account's other devices", "err", err)
	}
	s.emit(Event{Kind: EventGroup, Group: g})
	return info, nil
}

// joinLocked makes this account a member of g, which invited it.
func (s *Service) joinLocked(d data, g group.ID, r *rec) error {
	l, err := s.loadLocked(d, g)
	if err != nil {
		return err
	}
	r.status, r.request = Joined, false
	s.addMembersLocked(l.State(), 1)
	return d.putRec(g, *r)
}

// Send sends a text (and an attachment's reference, or nil) to g's
// members: sealed once under this device's sender key and carried to each
// member device, this account's other devices included.
func (s *Service) Send(ctx context.Context, g group.ID, text, file []byte) (Message, error) {
	return s.SendReply(ctx, g, text, file, "")
}

// SendReply is Send of a message that quotes message replyTo of g ("":
// none), which must be here.
func (s *Service) SendReply(ctx context.Context, g group.ID, text, file []byte, replyTo string) (Message, error) {
	if len(text) == 0 && len(file) == 0 {
		return Message{}, ErrNoText
	}
	if len(text) > MaxText || len(file) > MaxFileRef {
		return Message{}, fmt.Errorf("%w: text of %d bytes (at most %d), attachment reference of %d (at most %d)", ErrTooLarge, len(text), MaxText, len(file), MaxFileRef)
	}
	p := plain{text: bytes.Clone(text), file: bytes.Clone(file)}
	if replyTo != "" {
		id, err := parseMessageID(replyTo)
		if err != nil {
			return Message{}, err
		}
		p.replyTo = id[:]
	}
	return s.send(ctx, g, p)
}

// send seals p (a message, or an action: Act) once and carries it to g's
// members; a message is stored here, an action applied to its target.
func (s *Service) send(ctx context.Context, g group.ID, p plain) (Message, error) {
	now := s.cfg.Now()
	p.sentAt = now
	// The group's timer is read with the log below; the plaintext is
	// sealed there.
	if _, err := rand.Read(p.id[:]); err != nil {
		return Message{}, err
	}
	var (
		members  []identity.AccountID
		unshared []identity.AccountID
		keyBody  []byte
		msgBody  []byte
		m        stored
		removed  []byte // an attachment an action deleted
	)
	s.mu.Lock()
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		d := in(tx)
		r, l, err := s.groupLocked(d, g)
		if err != nil {
			return err
		}
		if r.status != Joined {
			return fmt.Errorf("%w: this account %s", ErrNotMember, r.status)
		}
		st := l.State()
		members = accounts(st)
		if p.action == nil {
			p.expires = st.Timer
		}
		// What it quotes or changes must be here, and the change allowed.
		if p.replyTo != nil {
			if _, found, err := d.message(g, [16]byte(p.replyTo)); err != nil || !found {
				return cmp.Or(err, fmt.Errorf("%w: the message quoted", ErrNoMessage))
			}
		}
		if p.action != nil {
			t, found, err := d.message(g, p.action.target)
			if err != nil || !found {
				return cmp.Or(err, ErrNoMessage)
			}
			if err := allowedAction(p.action, s.self, p.sentAt, p.text, &t); err != nil {
				return err
			}
		}
		o, ok, err := d.own(g)
		if err != nil {
			return err
		}
		var sk *e2e.SenderKey
		if ok {
			sk, err = e2e.UnmarshalSenderKey(o.key)
			if err != nil {
				return fmt.Errorf("%w: own sender key: %v", store.ErrCorrupt, err)
			}
		}
		if !ok || o.epoch != st.Epoch || sk.Iteration() >= s.cfg.RotateAfter || now.Sub(o.made) >= s.cfg.RotateEvery {
			if sk, err = e2e.NewSenderKey(nil); err != nil {
				return err
			}
			o = own{epoch: st.Epoch, gen: o.gen + 1, made: now, initial: e2e.MarshalSenderKeyShare(sk.Share()), seq: st.Seq}
		}
		// The key goes first to the members it was not sent to.
		unshared = unshared[:0]
		for _, a := range members {
			h := a.Hash()
			if !slices.ContainsFunc(o.shared, func(b []byte) bool { return bytes.Equal(b, h) }) {
				unshared = append(unshared, a)
				o.shared = append(o.shared, h)
			}
		}
		keyBody = nil
		if len(unshared) > 0 {
			c := carrier{kind: kindKey, group: g, epoch: st.Epoch, gen: o.gen, share: e2e.MarshalSenderKeyShare(sk.Share())}
			keyBody = c.marshal()
		}
		sealed, err := sk.Seal(messageAD(g, st.Epoch, s.self, s.cfg.Device), p.marshal())
		if err != nil {
			return err
		}
		o.key = sk.Marshal()
		if err := d.putOwn(g, o); err != nil {
			return err
		}
		c := carrier{kind: kindMessage, group: g, epoch: st.Epoch, sealed: sealed}
		msgBody = c.marshal()
		if p.action != nil {
			m, removed, _, err = s.applyActionLocked(d, g, s.self, &p)
			return err
		}
		m = stored{id: p.id, from: s.self, dev: s.cfg.Device, sentAt: now, at: now, text: p.text, file: p.file, out: true, read: true, expires: p.expires, replyTo: p.replyTo,
			recipients: len(members) - 1}
		if err := d.putMessage(g, m); err != nil {
			return err
		}
		r.lastAt = now
		return d.putRec(g, r)
	})
	s.mu.Unlock()
	if err != nil {
		return Message{}, fmt.Errorf("group send: %w", err)
	}
	if keyBody != nil {
		if err := s.cfg.Transport.QueueGroup(ctx, unshared, keyBody); err != nil {
			return Message{}, fmt.Errorf("group send: the sender key: %w", err)
		}
	}
	if ft, ok := s.cfg.Transport.(FileTransport); ok && p.file != nil {
		err = ft.QueueGroupFile(ctx, members, p.file, msgBody)
	} else {
		err = s.cfg.Transport.QueueGroup(ctx, members, msgBody)
	}
	if err != nil {
		return Message{}, fmt.Errorf("group send: %w", err)
	}
	out := m.message(g)
	s.emit(Event{Kind: EventMessage, Group: g, Message: &out, Updated: p.action != nil, Removed: removed})
	return out, nil
}

func (m *stored) message(g group.ID) Message {
	out := Message{Group: g, ID: hex.EncodeToString(m.id[:]), From: m.from, Dev: m.dev, Out: m.out,
		Text: m.text, File: m.file, SentAt: m.sentAt, At: m.at, Read: m.read,
		Reactions: slices.Clone(m.reactions), Edited: m.edited, Deleted: m.deleted,
		Recipients: m.recipients, Delivered: len(m.delivered) / 8, ReadBy: len(m.readBy) / 8}
	if m.replyTo != nil {
		out.ReplyTo = hex.EncodeToString(m.replyTo)
	}
	if m.expires > 0 {
		out.Expires = m.at.Add(m.expires)
	}
	return out
}

// Messages returns a page of g's messages, oldest first: the newest limit
// (at most 1,000) before cursor ("" the newest), and the cursor of the
// page before it ("" when there is none).
func (s *Service) Messages(g group.ID, cursor string, limit int) ([]Message, string, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	var before []byte
	if cursor != "" {
		b, err := hex.DecodeString(cursor)
		if err != nil || len(b) != 8+16 {
			return nil, "", fmt.Errorf("bad cursor %q", cursor)
		}
		before = b
	}
	var out []Message
	var next string
	err := s.cfg.DB.View(func(tx *store.Tx) error {
		d := in(tx)
		if _, ok, err := d.rec(g); err != nil || !ok {
			if err == nil {
				err = ErrNotFound
			}
			return err
		}
		var last []byte
		err := d.messages(g, before, limit, func(k []byte, m stored) bool {
			out = append(out, m.message(g))
			last = append(last[:0], k...)
			return true
		})
		if err == nil && len(out) == limit {
			next = hex.EncodeToString(last)
		}
		return err
	})
	slices.Reverse(out)
	return out, next, err
}

// Message returns message id of g (ErrNotFound when g or it is not
// here).
func (s *Service) Message(g group.ID, id string) (Message, error) {
	m, _, _, err := s.message(g, id, false)
	return m, err
}

// MessageReceipts is Message, and of a message this account sent, the
// members still in g that have it (read or not) and that read it, in the
// order they said so (none for another's message).
func (s *Service) MessageReceipts(g group.ID, id string) (m Message, deliveredTo, readBy []identity.AccountID, err error) {
	return s.message(g, id, true)
}

func (s *Service) message(g group.ID, id string, named bool) (out Message, deliveredTo, readBy []identity.AccountID, err error) {
	mid, err := parseMessageID(id)
	if err != nil {
		return Message{}, nil, nil, fmt.Errorf("%w: no message %q", ErrNotFound, id)
	}
	err = s.cfg.DB.View(func(tx *store.Tx) error {
		d := in(tx)
		m, ok, err := d.message(g, mid)
		if err == nil && !ok {
			err = fmt.Errorf("%w: no message %s", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		out = m.message(g)
		if !named || !m.out {
			return nil
		}
		s.mu.Lock()
		l, err := s.loadLocked(d, g)
		s.mu.Unlock()
		if err != nil || l == nil {
			return err
		}
		ix := indexMembers(l.State())
		deliveredTo, readBy = ix.named(m.delivered), ix.named(m.readBy)
		return nil
	})
	return out, deliveredTo, readBy, err
}

// MarkRead marks every message of g read.
func (s *Service) MarkRead(g group.ID) error {
	var read map[identity.AccountID][][16]byte
	s.mu.Lock()
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		d := in(tx)
		r, ok, err := d.rec(g)
		if err != nil || !ok {
			if err == nil {
				err = ErrNotFound
			}
			return err
		}
		if r.unread == 0 {
			return nil
		}
		if read, err = s.markReadLocked(d, g, int(min(r.unread, maxMarkRead))); err != nil {
			return err
		}
		r.unread = 0
		return d.putRec(g, r)
	})
	s.mu.Unlock()
	if err != nil {
		return err
	}
	// Each sender hears its messages were read.
	for from, ids := range read {
		s.queueReceipts(g, from, true, ids...)
	}
	return nil
}
