package msg

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"
)

// Protocol ids.
const (
	// ProtocolMsg carries Deliver and Ack frames (see the package doc).
	ProtocolMsg protocol.ID = "/callsign/msg/1.1.0"
	// ProtocolMsg10 is the version before first-contact stamps and
	// additions, still served and spoken to peers that know no other.
	ProtocolMsg10 protocol.ID = "/callsign/msg/1.0.0"
	// ProtocolPrekey hands out bundles with one-time prekeys.
	ProtocolPrekey protocol.ID = "/callsign/prekey/1.0.0"
	// ProtocolSignal is the signal lane: call signals only, on a stream of
	// their own beside the one that carries text messages (see the
	// package doc).
	ProtocolSignal protocol.ID = "/callsign/signal/1.0.0"
)

// Message states, in Message.State and Event.State.
const (
	StateQueued    = "queued"    // outgoing: durable in the outbox, not yet on the wire
	StateSent      = "sent"      // outgoing: written to the recipient's stream
	StateDelivered = "delivered" // outgoing: the recipient acknowledged it as stored
	StateRead      = "read"      // outgoing: a read receipt came back; incoming: MarkRead
	StateFailed    = "failed"    // outgoing: the recipient refused it (Event.Reason says why); it will not be retried
	StateReceived  = "received"  // incoming: stored, not yet read
)

// Errors returned (wrapped) by the Service.
var (
	// ErrTooLarge means a message exceeds Config.MaxMessage; the error
	// text names the limit.
	ErrTooLarge = errors.New("message too large")
	// ErrClosed means the Service is closed (or not started).
	ErrClosed = errors.New("messaging service is not running")
	// ErrBadRecipient means the recipient is not a valid account id, or is
	// this account.
	ErrBadRecipient = errors.New("bad recipient")
	// ErrDeviceRevoked means this device was revoked from its account
	// (docs/DEVICES.md §4): it sends nothing more.
	ErrDeviceRevoked = errors.New("this device was removed from its account")
)

// Decision is a Policy's verdict on a sender.
type Decision int

const (
	// Deliver stores the message in the conversation; the sender is a
	// contact and gets read receipts.
	Deliver Decision = iota + 1
	// Request stores the message in a conversation flagged as a message
	// request; no read receipts go back.
	Request
	// Drop acknowledges the message as stored and stores nothing, so a
	// blocked sender learns nothing.
	Drop
)

// Policy classifies senders. The node implements it from the address
// book (contacts, blocks, pinned keys). Classify must be fast and safe for
// concurrent use; it is called for every incoming message and read.
type Policy interface {
	Classify(from identity.AccountID) Decision
}

// Recipient is what a Directory knows about an account.
type Recipient struct {
	Account identity.AccountPub
	Devices []identity.DeviceCert // the account's devices; the first one is used
	// Bundles holds the devices' e2e bundles (e2e.MarshalBundle) from the
	// identity record, by their index in Devices; nil for a device the
	// record has none for (a kind-1 record carries the first device's).
	Bundles [][]byte
	Relays  []peer.AddrInfo // relays through which the devices may be reached
	// Mailboxes hold messages while the devices can't be reached (package
	// mailbox; see msg/mailbox.go); at most the first two are used.
	Mailboxes []peer.AddrInfo
	// Revoked are the devices the account revoked: what they send is
	// refused.
	Revoked []identity.DeviceID
}

// bundleOf returns the published bundle of the device dev certifies, or
// nil.
func (r Recipient) bundleOf(dev identity.DeviceCert) []byte {
	for i, d := range r.Devices {
		if i < len(r.Bundles) && bytes.Equal(d.X25519, dev.X25519) {
			return r.Bundles[i]
		}
	}
	return nil
}

// Directory resolves an account to its devices, bundles and relays. The
// node implements it with the DHT. Lookup must honour ctx.
type Directory interface {
	Lookup(ctx context.Context, account identity.AccountID) (Recipient, error)
}

// Forgetter is a Directory that caches what it looked up: Forget drops an
// account's entry, so that the next Lookup asks the network. The service
// forgets an account before it looks it up again because a device its
// view lacks wrote (a device linked since).
type Forgetter interface {
	Forget(account identity.AccountID)
}

// EventKind says what an Event reports.
type EventKind int

const (
	// EventMessage: a new incoming message was stored (Message is set).
	EventMessage EventKind = iota + 1
	// EventState: a message changed state (ID and State are set).
	EventState
	// EventUpdated: a reaction, edit or delete changed a stored message
	// (Message is it, as it is now).
	EventUpdated
	// EventDeleted: a message expired and was deleted (Message is it, as
	// it was: its attachment is the node's to delete).
	EventDeleted
)

// Event reports a change the user may see.
type Event struct {
	Kind  EventKind
	Peer  identity.AccountID
	ID    string // message id
	State string // the new state (EventState) or StateReceived
	// EventMessage: the stored message: an incoming one, or (Direction
	// DirOut) a copy of one this account sent from another of its devices.
	Message *Message
	Request bool   // EventMessage: the conversation is a message request
	Reason  string // EventState with StateFailed: the recipient's reason, if it gave one
}

// Config configures a Service. Zero values mean the default in each
// field's comment.
type Config struct {
	Host      host.Host            // required
	DB        *store.DB            // required
	Account   *identity.AccountKey // required
	DeviceDH  *ecdh.PrivateKey     // required: this device's X25519 e2e identity key
	Cert      identity.DeviceCert  // required: this device's certificate, sent with every message
	Directory Directory            // required
	Policy    Policy               // required
	// OnEvent receives every event; it must not block. nil drops events.
	OnEvent func(Event)
	// OnSignal receives every call signal (SendSignal on the other side),
	// with the device of from that sent it, once it is decrypted and its
	// id committed as seen, blocked senders' included; it must not block.
	// nil drops signals.
	OnSignal func(from identity.AccountID, dev identity.DeviceID, payload []byte)
	// AcceptSignal decides, before anything is decrypted, whether signals
	// from an account are read on the signal lane (ProtocolSignal); a
	// refused account's stream is reset and nothing of it is stored (no
	// session, no seen id). nil reads everyone's. It must be fast and safe
	// for concurrent use. (Signals an older peer sends on a msg stream
	// look like read receipts until decrypted, and are read as before.)
	AcceptSignal func(from identity.AccountID) bool
	// OnSync applies a sync batch (devices.SyncBatch) a sibling sent with
	// QueueSync, in a transaction of its own; an error refuses the frame.
	// It must be idempotent: a frame may come again after a crash. nil
	// takes and drops batches.
	OnSync func(batch []byte) error
	// OnGroup applies a group carrier (QueueGroup) from a device of an
	// account, in a transaction of its own, before the frame's seen id is
	// committed; request says the sender is a stranger whose messages
	// would wait in requests. An error refuses the frame with its text as
	// the reason. It must be idempotent (a frame may come again after a
	// crash) and must not call into the Service: it runs while the
	// sender's conversation is locked. nil refuses every carrier.
	OnGroup func(from identity.AccountID, dev identity.DeviceID, body []byte, request bool) error
	// OnDeposited is called, on the recipient's sender goroutine, after
	// mailbox mb took the text messages ids for a device of account to
	// under token (the recipient token it was deposited with, valid about
	// a day), and group carriers queued with QueueGroupFile, whose files
	// it lists: the node parks their attachments there. It must not
	// block. nil: nothing is told.
	OnDeposited func(to identity.AccountID, mb peer.ID, token []byte, ids []string, files [][]byte)
	// OnSiblings is called, on a goroutine of its own, when this
	// account's own record is looked up: first says it is the first time
	// since the start (QueueSync works from then on), added names the
	// devices the record lists that the previous look-up did not (on the
	// first, every other device). nil: nobody is told.
	OnSiblings func(added []identity.DeviceID, first bool)
	// OnRevoked is called once when this device learns that its account
	// revoked it (its own record lists it as revoked); from then on Send
	// fails with ErrDeviceRevoked. It must not block. nil: nobody is told.
	OnRevoked func()
	// Revoked starts the service as a device its account revoked (it
	// learnt so before a restart).
	Revoked bool
	// MaxMessage caps a message's plaintext; 0 = DefaultMaxMessage
	// (64 KiB less 64 bytes), which is also the largest allowed.
	MaxMessage int
	// RetryMin and RetryMax bound the delay between delivery attempts to
	// a peer (doubling from RetryMin, ±20% jitter); 0 = 500 ms and 30 s.
	RetryMin, RetryMax time.Duration
	// ViewAge is how old the devices of a contact last read from its
	// record may be at a send before they are read again: a device the
	// contact linked or revoked since is found at the first send after
	// this long. 0 = one minute.
	ViewAge time.Duration
	// PeerRate is the frames per second one remote peer may deliver and
	// PeerBurst its bucket; 0 = 20000 and 2000. Beyond it the service
	// stops reading that peer's streams (back-pressure), so its memory use
	// stays bounded.
	PeerRate  float64
	PeerBurst int
	// MaxRequests and MaxRequestBytes cap the message requests (messages
	// from senders the Policy classifies as Request) waiting in the store
	// from one sender: messages, and bytes of their text; 0 = 100 and
	// 1 MiB. MaxRequestsTotal and MaxRequestBytesTotal cap them from all
	// senders together; 0 = 1000 and 10 MiB. A message beyond a cap is
	// refused (the sender's copy fails with the reason); accepting a
	// request (the Policy classifies the sender as Deliver) frees its
	// share.
	MaxRequests          int
	MaxRequestBytes      int64
	MaxRequestsTotal     int
	MaxRequestBytesTotal int64
	// StampBits is the proof of work asked of a first contact (see the
	// package doc); 0 = DefaultStampBits, at most MaxStampBits.
	StampBits int
	// Mailboxes returns this account's mailboxes, which it registers with
	// and drains (msg/mailbox.go); nil = none. It must be fast and safe
	// for concurrent use.
	Mailboxes func() []peer.AddrInfo
	// MailboxPoll is how often the mailboxes are drained while online;
	// 0 = 30 s.
	MailboxPoll time.Duration
	// Logger; nil discards. Plaintext, keys and tokens are never logged.
	Logger *slog.Logger
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

// Internal limits.
const (
	maxBatch          = 64        // frames per group commit / per seal transaction
	maxBatchBytes     = 512 << 10 // bytes per group commit
	window            = 512       // frames in flight per peer stream
	maxStreamsPerPeer = 4         // concurrent inbound msg streams per peer
	maxCachedSessions = 256       // session sets kept in memory
	maxCachedFrames   = 2048      // sealed frames kept in memory per peer
	maxUnknownStreams = 64        // concurrent inbound msg streams of peers that are not known contacts
	maxKnownPeers     = 4096      // contacts' peer ids remembered from certificates
	idleStream        = 5 * time.Second
	inboundIdle       = 60 * time.Second // between a contact's frames
	strangerIdle      = 10 * time.Second // before and between the frames of anyone else
	strangerLifetime  = time.Minute      // of a stream not known to be a contact's
	ackTimeout        = 30 * time.Second
	sentDelay         = 200 * time.Millisecond // persist "sent" for frames not acked by then
	dialTimeout       = 15 * time.Second
	prekeyTimeout     = 5 * time.Second
	streamLifetime    = 10 * time.Minute
	oneTimeLow        = 20 // top up one-time prekeys below this many
	oneTimeBatch      = 50
	prekeyCheck       = time.Hour
)

// Service delivers end-to-end encrypted messages: it owns ProtocolMsg and
// ProtocolPrekey on the host, the durable outbox and this device's e2e
// prekeys. Its methods are safe for concurrent use.
type Service struct {
	cfg       Config
	log       *slog.Logger
	self      e2e.Identity
	selfID    identity.AccountID
	selfDev   identity.DeviceID // this device's DeviceID
	revoked   atomic.Bool       // this device was revoked (markRevoked)
	certBytes []byte
	maxCT     int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	msgSrv, preSrv, sigSrv *p2p.Server
	notifiee               *network.NotifyBundle

	// Lock order: acctState.mu, then preMu, then mu.
	mu       sync.Mutex
	state    int // 0 new, 1 started, 2 closed; guarded by mu
	accts    map[identity.AccountID]*acctState
	byPeerID map[peer.ID]identity.AccountID
	inbound  map[inboundKey]int
	limiters map[inboundKey]*rate.Limiter
	cached   int       // session sets loaded in memory
	lastAt   time.Time // last message timestamp handed out
	requests requestBook
	// early holds the messages sent since the start before this
	// account's own record was looked up, whose copies go to the
	// siblings it names (lanes.go); at most maxEarlyCopies.
	early     []earlyCopy
	earlyFull bool // the warning that early is full was logged

	stampLim *rate.Limiter // first-contact stamp checks
	stampSem chan struct{}

	preMu    sync.Mutex
	prekeys  *e2e.PrekeyState // guarded by preMu
	bundleCh chan struct{}
	sendQ    chan *sendReq
	sendDone chan struct{} // closed when sendLoop returns

	mbox mboxState // mailboxes: deposits and this account's own (msg/mailbox.go)
}

// peerState is a lane: what the Service keeps per device of a remote
// account (lanes.go).
type peerState struct {
	id   identity.AccountID
	dev  identity.DeviceID // the zero device: the account's devices are not known yet
	acct *acctState
	// sibling: id is this account, dev another of its devices; the lane
	// carries copies of the messages this device sends (lanes.go).
	sibling bool

	// mu is the account's (acctState.mu): it guards set and serialises
	// every use of the sessions with this device together with the
	// transaction that persists them.
	mu *sync.Mutex
	// set holds the sessions with dev; nil: not loaded (the zero
	// device's is always empty).
	set *e2e.SessionSet
	// restarted is when the session with dev was last dropped because
	// the device could not open it (restartSessionLocked).
	restarted time.Time

	// Guarded by Service.mu.
	pending []string // outbox ids in send order, not yet acknowledged
	running bool     // a sender goroutine owns this peer
	// frames holds the Deliver frames of pending entries that were sealed
	// when they were queued, so sending them reads nothing back from the
	// store. At most maxCachedFrames per peer; the rest are read on demand.
	frames map[string]sealedFrame
	// unsealed holds the pending ids that may not be sealed yet. While it
	// is not empty, new messages are not sealed when queued, so the
	// ratchet order stays the send order.
	unsealed map[string]bool
	kick     chan struct{} // Kick: retry now, skipping the backoff
	wake     chan struct{} // new entries queued for a running stream
	// progress is closed (and replaced) whenever acks take entries out of
	// pending, for a signal waiting to overtake fewer of them.
	progress chan struct{}

	// The signal lane (msg/signal.go), guarded by Service.mu.
	sigQ       []*sigReq     // signals waiting for the lane, in SendSignal order
	sigRunning bool          // a lane goroutine owns this peer's signals
	sigWake    chan struct{} // signals queued for a running lane
	inCall     time.Time     // the life of the last signal sent: until then, texts are sealed at most presealMax ahead
}

// New validates cfg and allocates a Service; Start makes it serve.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Host == nil:
		return nil, errors.New("msg: Config.Host is required")
	case cfg.DB == nil:
		return nil, errors.New("msg: Config.DB is required")
	case cfg.Account == nil:
		return nil, errors.New("msg: Config.Account is required")
	case cfg.DeviceDH == nil || cfg.DeviceDH.Curve() != ecdh.X25519():
		return nil, errors.New("msg: Config.DeviceDH must be an X25519 key")
	case cfg.Directory == nil:
		return nil, errors.New("msg: Config.Directory is required")
	case cfg.Policy == nil:
		return nil, errors.New("msg: Config.Policy is required")
	}
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MaxMessage < 0 || cfg.MaxMessage > DefaultMaxMessage {
		return nil, fmt.Errorf("msg: Config.MaxMessage %d is outside 1..%d", cfg.MaxMessage, DefaultMaxMessage)
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 500 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.ViewAge <= 0 {
		cfg.ViewAge = time.Minute
	}
	if cfg.RetryMax < cfg.RetryMin {
		return nil, errors.New("msg: Config.RetryMax is below RetryMin")
	}
	if cfg.PeerRate <= 0 {
		cfg.PeerRate = 20000
	}
	if cfg.PeerBurst <= 0 {
		cfg.PeerBurst = 2000
	}
	cfg.MaxRequests = or(cfg.MaxRequests, DefaultMaxRequests)
	cfg.MaxRequestBytes = or(cfg.MaxRequestBytes, DefaultMaxRequestBytes)
	cfg.MaxRequestsTotal = or(cfg.MaxRequestsTotal, DefaultMaxRequestsTotal)
	cfg.MaxRequestBytesTotal = or(cfg.MaxRequestBytesTotal, DefaultMaxRequestBytesTotal)
	cfg.StampBits = or(cfg.StampBits, DefaultStampBits)
	if cfg.MaxRequests < 0 || cfg.MaxRequestBytes < 0 || cfg.MaxRequestsTotal < 0 || cfg.MaxRequestBytesTotal < 0 {
		return nil, errors.New("msg: Config's request limits must not be negative")
	}
	if cfg.StampBits < 0 || cfg.StampBits > MaxStampBits {
		return nil, fmt.Errorf("msg: Config.StampBits %d is outside 1..%d", cfg.StampBits, MaxStampBits)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MailboxPoll <= 0 {
		cfg.MailboxPoll = mailboxPollMin
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !cfg.Cert.Account.Equal(cfg.Account.Public()) {
		return nil, errors.New("msg: Config.Cert is not issued by Config.Account")
	}
	if string(cfg.Cert.PeerID) != string(cfg.Host.ID()) {
		return nil, errors.New("msg: Config.Cert does not certify this host's peer id")
	}
	if string(cfg.Cert.X25519) != string(cfg.DeviceDH.PublicKey().Bytes()) {
		return nil, errors.New("msg: Config.Cert does not certify Config.DeviceDH")
	}
	if err := cfg.Cert.Verify(cfg.Now()); err != nil {
		return nil, fmt.Errorf("msg: Config.Cert: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg:       cfg,
		log:       log.With("component", "msg"),
		self:      e2e.Identity{Signer: ed25519.NewKeyFromSeed(cfg.Account.Seed()), DH: cfg.DeviceDH},
		selfID:    cfg.Account.Public().ID(),
		selfDev:   cfg.Cert.DeviceID(),
		certBytes: cfg.Cert.Marshal(),
		maxCT:     maxCiphertext(cfg.MaxMessage),
		ctx:       ctx,
		cancel:    cancel,
		accts:     map[identity.AccountID]*acctState{},
		byPeerID:  map[peer.ID]identity.AccountID{},
		inbound:   map[inboundKey]int{},
		limiters:  map[inboundKey]*rate.Limiter{},
		requests:  requestBook{peers: map[identity.AccountID]usage{}},
		stampLim:  rate.NewLimiter(stampChecksPerSecond, stampCheckBurst),
		stampSem:  make(chan struct{}, stampCheckParallel),
		bundleCh:  make(chan struct{}, 1),
		sendQ:     make(chan *sendReq, 256),
		sendDone:  make(chan struct{}),
	}
	s.revoked.Store(cfg.Revoked)
	return s, nil
}

// Start loads (or creates) the prekeys, rebuilds the outbox queues,
// registers the stream handlers and starts delivering. It returns once the
// service is serving.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.state != 0 {
		s.mu.Unlock()
		return errors.New("msg: Start called twice or after Close")
	}
	s.state = 1
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start messaging: %w", err)
	}
	if err := s.loadPrekeys(); err != nil {
		return fmt.Errorf("start messaging: %w", err)
	}
	queues, err := s.loadOutbox()
	if err != nil {
		return fmt.Errorf("start messaging: %w", err)
	}
	if err := s.loadRequests(); err != nil {
		return fmt.Errorf("start messaging: %w", err)
	}
	// Contacts' streams have their own slots: strangers share a smaller
	// pool with shorter deadlines, where an idle stream gives way to a
	// new one, so they can never hold up a contact's delivery.
	s.msgSrv = p2p.HandleStream(s.cfg.Host, ProtocolMsg, p2p.HandlerConfig{
		Timeout:        streamLifetime,
		MaxRequest:     maxDeliverFrame(s.cfg.MaxMessage),
		Rate:           20,
		Burst:          40,
		MaxConcurrent:  256,
		Versions:       []protocol.ID{ProtocolMsg10},
		Known:          s.isContactPeer,
		MaxUnknown:     maxUnknownStreams,
		UnknownTimeout: strangerLifetime,
		Logger:         s.log,
	}, s.handleMsg)
	// The signal lane has slots, limits and a frame cap of its own, so a
	// contact's text backlog (or a stranger's flood) never holds up a call.
	s.sigSrv = p2p.HandleStream(s.cfg.Host, ProtocolSignal, p2p.HandlerConfig{
		Timeout:        streamLifetime,
		MaxRequest:     maxSignalFrame,
		Rate:           5,
		Burst:          10,
		MaxConcurrent:  256,
		Known:          s.isContactPeer,
		MaxUnknown:     maxUnknownStreams,
		UnknownTimeout: strangerLifetime,
		Logger:         s.log,
	}, s.handleSignal)
	s.preSrv = p2p.Handle(s.cfg.Host, ProtocolPrekey, p2p.HandlerConfig{
		Timeout:    10 * time.Second,
		MaxRequest: 64,
		Rate:       2,
		Burst:      10,
		Logger:     s.log,
	}, s.handlePrekey)
	s.notifiee = &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		s.kickPeerID(c.RemotePeer())
		s.mailboxConnected(c.RemotePeer())
	}}
	s.cfg.Host.Network().Notify(s.notifiee)
	// The stored queues go first, before any new Send can be queued.
	s.mu.Lock()
	for acct, lanes := range queues {
		a := s.acctLocked(acct)
		for dev, ids := range lanes {
			ps := s.laneLocked(a, dev)
			s.enqueueLocked(ps, false, nil, ids...)
			s.startSenderLocked(ps)
		}
	}
	s.mu.Unlock()
	// This account's own record names its other devices, which get a copy
	// of each message this one sends.
	s.wg.Go(s.selfViewLoop)
	s.wg.Go(s.prekeyLoop)
	s.wg.Go(s.sendLoop)
	s.wg.Go(s.expireLoop)
	if s.cfg.Mailboxes != nil {
		s.wg.Go(s.mailboxLoop)
	}
	return nil
}

// Close stops the handlers and every goroutine the service started, and
// waits for them. Messages not yet acknowledged stay in the outbox and are
// sent after the next Start. Close is idempotent.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.state == 2 {
		s.mu.Unlock()
		return nil
	}
	started := s.state == 1
	s.state = 2
	s.mu.Unlock()
	s.cancel()
	if started {
		if s.notifiee != nil {
			s.cfg.Host.Network().StopNotify(s.notifiee)
		}
		if s.msgSrv != nil {
			s.msgSrv.Close()
		}
		if s.preSrv != nil {
			s.preSrv.Close()
		}
		if s.sigSrv != nil {
			s.sigSrv.Close()
		}
	}
	s.wg.Wait()
	return nil
}

func (s *Service) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == 1
}

// stamp returns a local timestamp strictly after every earlier one, so
// messages stored in one batch keep their order.
func (s *Service) stamp() time.Time {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !now.After(s.lastAt) {
		now = s.lastAt.Add(time.Nanosecond)
	}
	s.lastAt = now
	return now
}

func (s *Service) emit(e Event) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(e)
	}
}

func newMsgID() msgID {
	var id msgID
	rand.Read(id[:])
	return id
}

// Send queues text for the account to and returns the stored message (state
// StateQueued) as soon as it is durable in the outbox; delivery happens in
// the background. A text longer than Config.MaxMessage is ErrTooLarge.
func (s *Service) Send(ctx context.Context, to identity.AccountID, text []byte) (Message, error) {
	return s.send(ctx, to, Outgoing{Text: text})
}

// Outgoing is a message to send: a text, with an attachment, a quote or as
// an action (SendAction).
type Outgoing struct {
	Text    []byte
	File    []byte // an attachment's reference, opaque to msg (SendFile)
	ReplyTo string // the id of the message it quotes
	Action  *Action
	// TimerSet sets the conversation's disappearing-message timer
	// (SetTimer): the message has no text.
	TimerSet *time.Duration
}

// SendMessage is Send of out: a reply when ReplyTo is set (its id is
// checked for form, not for being there: the quote may be older than
// what this device holds).
func (s *Service) SendMessage(ctx context.Context, to identity.AccountID, out Outgoing) (Message, error) {
	if out.Action != nil {
		return Message{}, fmt.Errorf("send: %w: an action goes with SendAction", store.ErrInvalid)
	}
	if out.File != nil && (len(out.File) > MaxFileRef) {
		return Message{}, fmt.Errorf("send: %w: an attachment reference of %d bytes (1 to %d)", ErrTooLarge, len(out.File), MaxFileRef)
	}
	if out.ReplyTo != "" {
		if _, err := parseMsgID(out.ReplyTo); err != nil {
			return Message{}, fmt.Errorf("send: %w: quoting %q: %v", store.ErrInvalid, out.ReplyTo, err)
		}
	}
	return s.send(ctx, to, out)
}

// SendAction sends a reaction, an edit or a delete of a message of the
// conversation with to, and applies it here at once: ErrNotYours for an
// edit or delete of the other side's message, ErrTooLate past EditWindow,
// store.ErrNotFound for a message that is not here. text is an edit's new
// text (nil otherwise).
func (s *Service) SendAction(ctx context.Context, to identity.AccountID, a Action, text []byte) (Message, error) {
	if a.Kind != ActionEdit {
		text = nil
	}
	err := s.cfg.DB.View(func(tx *store.Tx) error {
		_, err := s.data(tx).CheckAction(string(to), a, text, s.cfg.Now())
		return err
	})
	if err != nil {
		return Message{}, fmt.Errorf("send: %w", err)
	}
	return s.send(ctx, to, Outgoing{Text: a.fallback(text), Action: &a})
}

// SendFile is Send of a text carrying an attachment's reference (file,
// at most MaxFileRef bytes, opaque to msg) with text as its caption,
// possibly empty: the recipient's devices and this account's others get
// it as Message.File. The caption and reference together must fit
// Config.MaxMessage less 8 bytes.
func (s *Service) SendFile(ctx context.Context, to identity.AccountID, text, file []byte) (Message, error) {
	if len(file) == 0 || len(file) > MaxFileRef {
		return Message{}, fmt.Errorf("send: %w: an attachment reference of %d bytes (1 to %d)", ErrTooLarge, len(file), MaxFileRef)
	}
	return s.send(ctx, to, Outgoing{Text: text, File: file})
}

func (s *Service) send(ctx context.Context, to identity.AccountID, out Outgoing) (Message, error) {
	text, file := out.Text, out.File
	if n := len(text) + len(file); n > s.cfg.MaxMessage || (file != nil || out.ReplyTo != "" || out.Action != nil) && n > s.cfg.MaxMessage-64 {
		return Message{}, fmt.Errorf("send: %w: %d bytes exceeds the limit of %d bytes", ErrTooLarge, n, s.cfg.MaxMessage)
	}
	if to == s.selfID {
		return Message{}, fmt.Errorf("send: %w: cannot message this account itself", ErrBadRecipient)
	}
	if s.revoked.Load() {
		return Message{}, fmt.Errorf("send: %w", ErrDeviceRevoked)
	}
	// An id Send has parsed before is valid: parsing bech32 costs
	// microseconds, and Send is the hot path.
	s.mu.Lock()
	a := s.accts[to]
	known := a != nil && a.idOK
	s.mu.Unlock()
	if !known {
		if _, err := identity.ParseAccountID(string(to)); err != nil {
			return Message{}, fmt.Errorf("send: %w: %v", ErrBadRecipient, err)
		}
		s.mu.Lock()
		s.acctLocked(to).idOK = true
		s.mu.Unlock()
	}
	if err := ctx.Err(); err != nil {
		return Message{}, fmt.Errorf("send: %w", err)
	}
	if !s.running() {
		return Message{}, fmt.Errorf("send: %w", ErrClosed)
	}
	s.freshenView(ctx, to)
	req := &sendReq{
		m: Message{
			ID:        newMsgID().String(),
			Peer:      string(to),
			Direction: DirOut,
			Body:      append([]byte(nil), text...),
			File:      bytes.Clone(file),
			ReplyTo:   out.ReplyTo,
			Action:    out.Action,
			TimerSet:  out.TimerSet,
			State:     StateQueued,
		},
		done: make(chan error, 1),
	}
	select {
	case s.sendQ <- req:
	case <-s.ctx.Done():
		return Message{}, fmt.Errorf("send: %w", ErrClosed)
	case <-ctx.Done():
		return Message{}, fmt.Errorf("send: %w", ctx.Err())
	}
	// Once queued, the request is committed or fails; wait for the answer
	// so the caller never sees a message it can't know the fate of.
	var err error
	select {
	case err = <-req.done:
	case <-s.sendDone:
		select {
		case err = <-req.done:
		default:
			err = ErrClosed
		}
	}
	if err != nil {
		return Message{}, fmt.Errorf("send: %w", err)
	}
	return req.m, nil
}

// sendReq is one Send waiting for the group commit.
type sendReq struct {
	m    Message
	done chan error
}

// sendLoop commits the Sends that are waiting together, in one
// transaction (group commit), assigning each conversation's sequence
// numbers in arrival order.
func (s *Service) sendLoop() {
	defer close(s.sendDone)
	for {
		var batch []*sendReq
		select {
		case r := <-s.sendQ:
			batch = append(batch, r)
		case <-s.ctx.Done():
			for {
				select {
				case r := <-s.sendQ:
					r.done <- ErrClosed
				default:
					return
				}
			}
		}
	drain:
		for len(batch) < 256 {
			select {
			case r := <-s.sendQ:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commitSends(batch)
	}
}

func (s *Service) commitSends(batch []*sendReq) {
	for _, r := range batch {
		now := s.stamp()
		r.m.SentAt, r.m.At = now, now
	}
	// A message is queued as a copy for each device of its account's view
	// (lanes.go). Each copy is sealed at once when its lane has a session
	// in memory and nothing older waiting to be sealed, so sending needs
	// no second transaction: the message, its sealed envelopes and the
	// ratchet states they advanced commit together. The accounts' locks
	// are held (in account order) until the commit, so no other use of
	// their sessions interleaves.
	groups := map[identity.AccountID][]*sendReq{}
	var accts []identity.AccountID
	for _, r := range batch {
		acct := identity.AccountID(r.m.Peer)
		if groups[acct] == nil {
			accts = append(accts, acct)
		}
		groups[acct] = append(groups[acct], r)
	}
	slices.Sort(accts)
	siblings, selfKnown := s.siblings()
	targets := make(map[identity.AccountID][]*peerState, len(accts))
	sealers := map[*peerState]bool{}
	for _, acct := range accts {
		a := s.acct(acct)
		a.mu.Lock()
		defer a.mu.Unlock()
		s.mu.Lock()
		lanes := s.targetsLocked(a)
		s.mu.Unlock()
		targets[acct] = lanes
		for _, ps := range lanes {
			if s.canSealLocked(ps) {
				sealers[ps] = true
			}
		}
	}
	// memo keeps what the first run of the closure sealed, so a rerun
	// after a conflict reuses it instead of advancing a ratchet again.
	type copyKey struct {
		id  string
		dev identity.DeviceID
	}
	memo := map[copyKey]sealedFrame{}
	var frames map[copyKey]sealedFrame
	var updated []Message // targets of the batch's actions
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		data := s.data(tx)
		frames = map[copyKey]sealedFrame{}
		updated = updated[:0]
		convs := map[string]*Conversation{}
		for _, r := range batch {
			c := convs[r.m.Peer]
			if c == nil {
				cv, err := data.Conversation(r.m.Peer)
				if errors.Is(err, store.ErrNotFound) {
					cv, err = Conversation{Peer: r.m.Peer}, nil
				}
				if err != nil {
					return err
				}
				c = &cv
				convs[r.m.Peer] = c
			}
			r.m.Seq = max(c.NextSeq, 1)
			c.NextSeq = r.m.Seq + 1
			if r.m.Action == nil {
				r.m.Expires = c.Timer // the conversation's timer now
			}
			withTimer(c, &r.m)
			if r.m.Action == nil {
				c.LastAt = r.m.At // an action moves no conversation up
			}
			lanes := targets[identity.AccountID(r.m.Peer)]
			copies := make([]Copy, len(lanes))
			for i, ps := range lanes {
				copies[i].Dev = ps.dev // not sealed yet, unless:
				if !sealers[ps] {
					continue
				}
				k := copyKey{r.m.ID, ps.dev}
				f, ok := memo[k]
				if !ok || f.seq != r.m.Seq {
					var err error
					if f, err = s.sealTextLocked(ps, &r.m); err != nil {
						return err
					}
					memo[k] = f
				}
				frames[k] = f
				copies[i].Env = f.env
			}
			// A fresh random 128-bit id: stored without reading first,
			// with its copies.
			if err := data.InsertQueued(r.m, copies...); err != nil {
				return err
			}
			if r.m.Action != nil {
				t, ok, err := data.ApplyAction(r.m)
				if err != nil {
					return err
				}
				if ok {
					updated = append(updated, t)
				}
			}
			for _, sib := range siblings {
				if err := s.putForSibling(data, contentCopy, &r.m, sib.dev); err != nil {
					return err
				}
			}
		}
		for _, c := range convs {
			if err := data.PutConversation(*c); err != nil {
				return err
			}
		}
		for ps := range sealers {
			state, err := ps.set.Marshal()
			if err != nil {
				return err
			}
			if err := data.PutSession(string(ps.id), ps.dev, state); err != nil {
				return err
			}
		}
		return nil
	})
	for ps := range sealers {
		// On failure the in-memory ratchet ran ahead of the store: reload it.
		s.releaseSetLocked(ps, err != nil)
	}
	if err == nil {
		// Queued is reported before any lane can write a copy and report
		// it sent.
		s.mu.Lock()
		for _, r := range batch {
			s.accts[identity.AccountID(r.m.Peer)].shown[r.m.ID] = StateQueued
		}
		s.mu.Unlock()
		for _, r := range batch {
			s.emit(Event{Kind: EventState, Peer: identity.AccountID(r.m.Peer), ID: r.m.ID, State: StateQueued})
		}
		for i := range updated {
			m := updated[i]
			s.emit(Event{Kind: EventUpdated, Peer: identity.AccountID(m.Peer), ID: m.ID, Message: &m})
		}
		ids := make([]string, len(batch))
		for i, r := range batch {
			ids[i] = r.m.ID
		}
		for _, sib := range siblings {
			s.enqueue(sib, false, nil, ids...)
		}
		if !selfKnown {
			s.noteEarly(batch)
		}
		for _, acct := range accts {
			for _, ps := range targets[acct] {
				var ids []string
				var fs []sealedFrame
				for _, r := range groups[acct] {
					ids = append(ids, r.m.ID)
					fs = append(fs, frames[copyKey{r.m.ID, ps.dev}])
				}
				if sealers[ps] {
					s.enqueue(ps, true, fs, ids...)
				} else {
					s.enqueue(ps, false, nil, ids...)
				}
			}
		}
	}
	for _, r := range batch {
		r.done <- err
	}
}

// canSealLocked reports whether a message queued for ps now may be sealed
// at once: ps has an active session (loaded from the store if need be),
// no older entry waits to be sealed, and, while ps is in a call, fewer
// than presealMax sealed entries wait for acks (so the call's signals can
// overtake them: msg/signal.go). ps.mu must be held.
func (s *Service) canSealLocked(ps *peerState) bool {
	s.mu.Lock()
	clean := len(ps.unsealed) == 0 && (len(ps.pending) < presealMax || time.Now().After(ps.inCall))
	s.mu.Unlock()
	if !clean {
		return false
	}
	if err := s.loadSetLocked(ps); err != nil {
		return false // the sender will load it, and report the error
	}
	return ps.set.Active() != nil
}

// sealTextLocked encrypts the text message m for ps and returns its
// Deliver frame. ps.mu must be held; the caller persists the session.
func (s *Service) sealTextLocked(ps *peerState, m *Message) (sealedFrame, error) {
	a := ps.set.Active()
	if a == nil {
		return sealedFrame{}, errors.New("seal: no session")
	}
	id, err := parseMsgID(m.ID)
	if err != nil {
		return sealedFrame{}, fmt.Errorf("seal: %w", err)
	}
	kind := uint64(kindRatchet)
	if a.Initiator() && !a.Confirmed() {
		kind = kindInitial
	}
	pt := s.textPlain(ps, m)
	ct, err := ps.set.Encrypt(pt, messageAD(id, kind))
	clear(pt)
	if err != nil {
		return sealedFrame{}, fmt.Errorf("seal %s: %w", m.ID, err)
	}
	f := deliverFrame{id: id, sender: s.cfg.Account.Public().Bytes(), cert: s.certBytes, kind: kind, ciphertext: ct}
	env, frame := f.sealedEnvelope()
	return sealedFrame{id: m.ID, frame: frame, env: env, seq: m.Seq}, nil
}

// MarkRead marks incoming messages from peer as read and, when the Policy
// says peer is a contact (Deliver), queues an encrypted read receipt for
// them. An id that is unknown or not an incoming message fails the whole
// call and changes nothing.
func (s *Service) MarkRead(ctx context.Context, from identity.AccountID, ids []string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mark read: %w", err)
	}
	if !s.running() {
		return fmt.Errorf("mark read: %w", ErrClosed)
	}
	wire := make([]msgID, 0, len(ids))
	for _, id := range ids {
		w, err := parseMsgID(id)
		if err != nil {
			return fmt.Errorf("mark read: %w", err)
		}
		wire = append(wire, w)
	}
	receipt := s.cfg.Policy.Classify(from) == Deliver
	var changed []msgID
	var receipts, reads []string
	now := s.stamp()
	// Hold the account's lock until the receipts are queued, so a message
	// sealed when queued (commitSends) never overtakes them in the queue.
	// They go to each device of the account, and this account's other
	// devices are told what was read here (they send no receipts).
	a := s.acct(from)
	a.mu.Lock()
	defer a.mu.Unlock()
	s.mu.Lock()
	lanes := s.targetsLocked(a)
	s.mu.Unlock()
	siblings, _ := s.siblings()
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		data := s.data(tx)
		changed, receipts, reads = changed[:0], receipts[:0], reads[:0]
		for i, id := range ids {
			m, err := data.Message(string(from), id)
			if err != nil {
				return fmt.Errorf("message %s: %w", id, err)
			}
			if m.Direction != DirIn {
				return fmt.Errorf("message %s: %w: not an incoming message", id, store.ErrInvalid)
			}
			if m.State == StateRead {
				continue
			}
			m.State = StateRead
			if err := data.PutMessage(m); err != nil {
				return err
			}
			changed = append(changed, wire[i])
		}
		if len(changed) == 0 {
			return nil
		}
		c, err := data.Conversation(string(from))
		if err == nil {
			c.Unread = max(0, c.Unread-len(changed))
			if err := data.PutConversation(c); err != nil {
				return err
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		for chunk := range slices.Chunk(changed, maxReceiptIDs) {
			if receipt {
				id, err := putControl(data, from, lanes, content{kind: contentReceipt, ids: chunk}, now)
				if err != nil {
					return err
				}
				receipts = append(receipts, id)
			}
			if len(siblings) > 0 {
				id, err := putControl(data, s.selfID, siblings, content{kind: contentRead, ids: chunk, to: from.Hash()}, now)
				if err != nil {
					return err
				}
				reads = append(reads, id)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark read: %w", err)
	}
	for _, id := range changed {
		s.emit(Event{Kind: EventState, Peer: from, ID: id.String(), State: StateRead})
	}
	if len(receipts) > 0 {
		for _, ps := range lanes {
			s.enqueue(ps, false, nil, receipts...)
		}
	}
	if len(reads) > 0 {
		for _, ps := range siblings {
			s.enqueue(ps, false, nil, reads...)
		}
	}
	return nil
}

// putControl queues control message c, under a fresh id, for each of
// lanes, the lanes of one account's devices, and returns the id.
func putControl(data *Data, peer identity.AccountID, lanes []*peerState, c content, now time.Time) (string, error) {
	id := newMsgID().String()
	env := append([]byte{envPending}, c.marshal()...)
	for _, ps := range lanes {
		if err := data.PutOutbox(OutboxEntry{ID: id, Peer: string(peer), Dev: ps.dev, Envelope: env, NextAttempt: now, CreatedAt: now}); err != nil {
			return "", err
		}
	}
	return id, nil
}

// Kick makes the delivery to peer retry now instead of waiting out its
// backoff. The node calls it when the peer connects (the service also
// watches the host's connections itself).
func (s *Service) Kick(acct identity.AccountID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accts[acct]
	if a == nil || s.state != 1 {
		return
	}
	for _, ps := range a.lanes {
		if len(ps.pending) > 0 && !ps.running {
			s.startSenderLocked(ps)
		}
		select {
		case ps.kick <- struct{}{}:
		default:
		}
	}
}

// isContactPeer reports whether p is a device of an account the Policy
// delivers (a contact), as far as the service knows the device: from
// looking the account up, or from a certificate p presented before.
func (s *Service) isContactPeer(p peer.ID) bool {
	s.mu.Lock()
	acct, ok := s.byPeerID[p]
	s.mu.Unlock()
	return ok && (acct == s.selfID || s.cfg.Policy.Classify(acct) == Deliver)
}

// learnPeer remembers that p presented a valid certificate of acct, a
// contact. The map is bounded: beyond maxKnownPeers an arbitrary entry
// goes (only contacts' devices and the accounts this one sends to are
// added, so it is not reached in practice).
func (s *Service) learnPeer(p peer.ID, acct identity.AccountID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.byPeerID[p]; ok && old == acct {
		return
	}
	if len(s.byPeerID) >= maxKnownPeers {
		for q := range s.byPeerID {
			delete(s.byPeerID, q)
			break
		}
	}
	s.byPeerID[p] = acct
}

func (s *Service) kickPeerID(p peer.ID) {
	s.mu.Lock()
	acct, ok := s.byPeerID[p]
	s.mu.Unlock()
	if ok {
		s.Kick(acct)
	}
}

// enqueue appends outbox ids to ps's queue and makes sure a sender runs.
// sealed says the entries are sealed in the store; frames, when not nil,
// holds their Deliver frames (frames[i] for ids[i]).
func (s *Service) enqueue(ps *peerState, sealed bool, frames []sealedFrame, ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != 1 {
		return // stays in the outbox for the next Start
	}
	s.enqueueLocked(ps, sealed, frames, ids...)
	s.startSenderLocked(ps)
	select {
	case ps.wake <- struct{}{}:
	default:
	}
}

func (s *Service) enqueueLocked(ps *peerState, sealed bool, frames []sealedFrame, ids ...string) {
	for i, id := range ids {
		if !sealed {
			ps.unsealed[id] = true
		} else if frames != nil && len(ps.frames) < maxCachedFrames {
			ps.frames[id] = frames[i]
		}
	}
	ps.pending = append(ps.pending, ids...)
}

func (s *Service) startSenderLocked(ps *peerState) {
	if ps.running || len(ps.pending) == 0 || s.state != 1 {
		return
	}
	ps.running = true
	s.wg.Go(func() { s.runSender(ps) })
}

// loadOutbox returns the outbox ids per lane (account and device) in the
// order they were queued: the text messages' copies, each in its device's
// lane, the control messages' outbox entries for one device (copies for
// siblings) in that device's, and the other control messages' in the
// zero device's (it looks the account up and hands them on to the
// primary lane).
func (s *Service) loadOutbox() (map[identity.AccountID]map[identity.DeviceID][]string, error) {
	type queued struct {
		id string
		at time.Time
	}
	type laneKey struct {
		acct identity.AccountID
		dev  identity.DeviceID
	}
	byLane := map[laneKey][]queued{}
	err := s.cfg.DB.View(func(tx *store.Tx) error {
		data := s.data(tx)
		entries, err := data.DueOutbox(time.Unix(0, 1<<62), 1<<30)
		if err != nil {
			return err
		}
		for _, e := range entries {
			k := laneKey{identity.AccountID(e.Peer), e.Dev}
			byLane[k] = append(byLane[k], queued{e.ID, e.CreatedAt})
		}
		qs, err := data.Queued()
		for _, q := range qs {
			k := laneKey{identity.AccountID(q.Peer), q.Dev}
			byLane[k] = append(byLane[k], queued{q.ID, q.At})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load outbox: %w", err)
	}
	out := map[identity.AccountID]map[identity.DeviceID][]string{}
	for k, qs := range byLane {
		slices.SortStableFunc(qs, func(a, b queued) int { return a.at.Compare(b.at) })
		if out[k.acct] == nil {
			out[k.acct] = map[identity.DeviceID][]string{}
		}
		for _, q := range qs {
			out[k.acct][k.dev] = append(out[k.acct][k.dev], q.id)
			if q.at.After(s.lastAt) {
				s.lastAt = q.at
			}
		}
	}
	return out, nil
}

// loadSetLocked loads the sessions with ps's device from the store if they
// are not in memory. ps.mu must be held.
func (s *Service) loadSetLocked(ps *peerState) error {
	if ps.set != nil {
		return nil
	}
	set := &e2e.SessionSet{}
	if !ps.dev.IsZero() {
		var b []byte
		err := s.cfg.DB.View(func(tx *store.Tx) error {
			var err error
			b, err = s.data(tx).Session(string(ps.id), ps.dev)
			return err
		})
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return fmt.Errorf("load session: %w", err)
		default:
			if set, err = e2e.UnmarshalSessionSet(b); err != nil {
				return fmt.Errorf("load session: %w", err)
			}
		}
	}
	ps.set = set
	s.mu.Lock()
	s.cached++
	s.mu.Unlock()
	return nil
}

// releaseSetLocked drops ps's sessions from memory when too many are
// cached, or when drop is set (its state may no longer match the store).
// ps.mu must be held.
func (s *Service) releaseSetLocked(ps *peerState, drop bool) {
	if ps.set == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if drop || s.cached > maxCachedSessions {
		ps.set = nil
		s.cached--
	}
}

// messageAD is the associated data bound into every e2e message:
// "callsign/v1/msg" || 0x00 || id || kind, so a ciphertext can't be
// replayed under another id or kind.
func messageAD(id msgID, kind uint64) []byte {
	b := make([]byte, 0, len(labelMsg)+2+idSize)
	b = append(b, labelMsg...)
	b = append(b, 0)
	b = append(b, id[:]...)
	return append(b, byte(kind))
}

const labelMsg = "callsign/v1/msg"

// or returns v, or def when v is zero.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
