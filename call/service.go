package call

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/turn"
)

// Defaults and limits of the Service.
const (
	// DefaultRingTimeout is how long a call rings before both ends give up
	// with ReasonMissed.
	DefaultRingTimeout = 30 * time.Second
	// inboxSize bounds the signals queued for the service's goroutine;
	// beyond it HandleSignal drops them.
	inboxSize = 256
	// maxPendingCandidates caps the candidates held for a call that has
	// not been answered yet (media's own cap per call is 64).
	maxPendingCandidates = 64
	// maxReplies bounds refusal replies (busy, unavailable) in flight.
	maxReplies = 16
	// sendTimeout bounds one SendSignal during a call; finalTimeout the
	// last one (hangup, cancel, decline), which is sent even while the
	// service closes.
	sendTimeout  = 10 * time.Second
	finalTimeout = 2 * time.Second
	// answerTimeout bounds Answer (credentials, peer connection, answer).
	answerTimeout = 10 * time.Second
	// blockedLogInterval is the least time between two call-log entries
	// for refused invites from the same caller, so a flood of invites
	// can't fill the store.
	blockedLogInterval = 10 * time.Second
)

// Errors returned by the Service's methods.
var (
	// ErrClosed means the service has been closed (or not started).
	ErrClosed = errors.New("call: service closed")
	// ErrUnknownCall means no live call has the given id.
	ErrUnknownCall = errors.New("call: no such call")
	// ErrNotRinging means the call can't be answered or declined: it is
	// outgoing, already answered, or over.
	ErrNotRinging = errors.New("call: call is not ringing here")
	// errEnded means the call ended while Answer was under way.
	errEnded = fmt.Errorf("%w: it ended while being answered", ErrNotRinging)
	// ErrInCall means a call is already going on; this service runs one
	// call at a time.
	ErrInCall = errors.New("call: already in a call")
	// ErrSelf means Dial was asked to call this account itself.
	ErrSelf = errors.New("call: cannot call yourself")
)

// Signaler carries signalling payloads to another account inside the E2E
// session. SendSignal returns once the other account's device has the
// payload, or with an error once ctx ends or it can't be delivered (the
// device is offline or refused it): a signal is never delivered late. It
// may be called from several goroutines; each call sends its signals from
// one goroutine of its own (Call's sender), in order, so a slow peer holds
// up neither the call's state machine nor another call.
type Signaler interface {
	// SendSignal sends to the device dev of to, or to every device of to
	// when dev is zero (docs/DEVICES.md §3: an invite rings on each).
	SendSignal(ctx context.Context, to identity.AccountID, dev identity.DeviceID, payload []byte) error
}

// Decision is the node's call policy verdict for one caller.
type Decision struct {
	// Allow lets the call ring; a refused caller hears only "unavailable".
	Allow bool
	// RelayOnly answers the call with relay candidates only, so the caller
	// never learns this node's addresses (non-contacts, or "always relay").
	RelayOnly bool
}

// Policy decides who may call. Check runs on the service's goroutine for
// every invite before anything but the signal's header is read; it must
// be quick and must not block.
type Policy interface {
	Check(from identity.AccountID) Decision
}

// CallLog persists the call log. PutCall is called from the service's
// goroutines when a call ends and for every refused invite (see
// Record.Blocked); it should be quick.
type CallLog interface {
	PutCall(Record) error
}

// Config configures a Service. Zero values mean the default in each field's
// comment.
type Config struct {
	// Host is the node's libp2p host. Required when TURN or Relays is set
	// (the credential protocol runs on it); otherwise unused.
	Host host.Host
	// Self is this node's account. Required.
	Self identity.AccountID
	// Engine runs the calls' peer connections. Required. Its own
	// ICEServers apply only to calls for which this service finds no STUN
	// URLs and no TURN credentials.
	Engine *media.Engine
	// Signal carries signals to other accounts. Required.
	Signal Signaler
	// Policy decides who may call. Required.
	Policy Policy
	// Log persists the call log. nil keeps none.
	Log CallLog
	// TURN is this node's TURN server (public nodes). When set, the service
	// serves credentials for it on ProtocolTURN and uses it for its own
	// calls. nil serves nothing.
	TURN *turn.Server
	// TURNMembers decides who gets credentials from TURN: the relay's
	// members (see the package doc), on top of the built-in rule (a
	// direct, non-relayed connection, at most 6 requests then one per
	// 2 s per peer). Required with TURN: a relay open to every peer is
	// never the default.
	TURNMembers Members
	// Relays lists the public nodes to ask for TURN credentials before a
	// call gathers candidates (the first three are asked, in parallel).
	// nil asks none.
	Relays func() []peer.ID
	// STUN returns extra ICE URLs ("stun:ip:port") for calls that are not
	// relay-only. nil means none.
	STUN func() []string
	// AlwaysRelay reports the user's "always relay" setting: every call,
	// in and out, gathers relay candidates only. nil means off.
	AlwaysRelay func() bool
	// AutoAnswer reports the auto-answer setting (voicemail, bots, tests):
	// when on, an admitted incoming call is answered at once, sending
	// AutoAnswerSource and recording into recordDir ("" records nothing).
	// nil means off.
	AutoAnswer func() (on bool, recordDir string)
	// AutoAnswerSource is the media an auto-answered call sends. nil
	// sends nothing.
	AutoAnswerSource media.Source
	// RingTimeout is how long a call may ring unanswered before both ends
	// end it with ReasonMissed. Default DefaultRingTimeout.
	RingTimeout time.Duration
	// OnEvent receives every incoming call and state change, in order per
	// call. It is called from the service's goroutines and must not block.
	// nil drops them.
	OnEvent func(Event)
	// Logger receives the service's logs. nil discards them.
	Logger *slog.Logger
}

// DialOptions configure an outgoing call.
type DialOptions struct {
	// Source is the media to send. nil sends nothing (receive only).
	Source media.Source
	// RecordDir, when set, records the received media into
	// <RecordDir>/<call id>.ogg and <RecordDir>/<call id>.ivf.
	RecordDir string
	// RelayOnly gathers relay candidates only, so the callee never learns
	// this node's addresses. Config.AlwaysRelay forces it on.
	RelayOnly bool
	// Sink receives the remote media (a browser tab the node bridges),
	// instead of a recording; set at most one of Sink and RecordDir. The
	// call closes it when it ends.
	Sink media.Sink
}

// AnswerOptions configure the answer to an incoming call.
type AnswerOptions struct {
	// Source is the media to send. nil sends nothing (receive only).
	Source media.Source
	// RecordDir, when set, records the received media as for DialOptions.
	RecordDir string
	// Sink receives the remote media instead of a recording, as for
	// DialOptions.
	Sink media.Sink
}

// Service runs one node's calls. Create it with New, then Start; Close
// ends every call. All methods are safe for concurrent use.
type Service struct {
	cfg     Config
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	inbox   chan inbound
	replies chan struct{} // semaphore for refusal replies
	creds   credCache

	// mu guards the fields below. Lock order: Service.mu before Call.mu.
	mu         sync.Mutex
	wg         sync.WaitGroup // every goroutine the service starts; Add under mu
	started    bool
	closed     bool
	calls      map[callID]*Call
	turnSrv    *p2p.Server
	legacySrv  *p2p.Server                      // ProtocolTURNLegacy
	lastLogged map[identity.AccountID]time.Time // refused invites, for blockedLogInterval
}

type inbound struct {
	from    identity.AccountID
	dev     identity.DeviceID // the device of from that sent it
	payload []byte
}

// New validates cfg and returns a service that is not started yet.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Self == "":
		return nil, errors.New("call: Config.Self is required")
	case cfg.Engine == nil:
		return nil, errors.New("call: Config.Engine is required")
	case cfg.Signal == nil:
		return nil, errors.New("call: Config.Signal is required")
	case cfg.Policy == nil:
		return nil, errors.New("call: Config.Policy is required")
	case cfg.Host == nil && (cfg.TURN != nil || cfg.Relays != nil):
		return nil, errors.New("call: Config.Host is required with TURN or Relays")
	case cfg.TURN != nil && cfg.TURNMembers == nil:
		return nil, errors.New("call: Config.TURNMembers is required with TURN")
	case cfg.RingTimeout < 0:
		return nil, errors.New("call: Config.RingTimeout is negative")
	}
	if cfg.RingTimeout == 0 {
		cfg.RingTimeout = DefaultRingTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		inbox:      make(chan inbound, inboxSize),
		replies:    make(chan struct{}, maxReplies),
		creds:      credCache{m: map[peer.ID]turn.Credentials{}},
		calls:      map[callID]*Call{},
		lastLogged: map[identity.AccountID]time.Time{},
	}, nil
}

// Start serves ProtocolTURN (when Config.TURN is set) and starts the
// goroutine that handles signals. It returns at once; ctx is not retained.
func (s *Service) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.started {
		return errors.New("call: service already started")
	}
	s.started = true
	if s.cfg.TURN != nil {
		// Members already checked have their own pool of streams, so
		// strangers waiting for a membership lookup never hold a
		// member's place.
		hc := p2p.HandlerConfig{
			Timeout: 10 * time.Second, Rate: turnRate, Burst: turnBurst,
			MaxConcurrent: 32, Known: s.cfg.TURNMembers.Known, Logger: s.log,
		}
		s.turnSrv = p2p.HandleStream(s.cfg.Host, ProtocolTURN, hc, s.serveTURN)
		s.legacySrv = p2p.HandleStream(s.cfg.Host, ProtocolTURNLegacy, hc, s.serveTURNLegacy)
	}
	s.goLocked(s.dispatch)
	return nil
}

// Close ends every call (with a hangup to the remote), stops serving
// ProtocolTURN and waits for every goroutine the service started. It is
// idempotent.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	srvs := []*p2p.Server{s.turnSrv, s.legacySrv}
	s.turnSrv, s.legacySrv = nil, nil
	s.mu.Unlock()
	for _, srv := range srvs {
		if srv != nil {
			_ = srv.Close()
		}
	}
	s.cancel()
	s.wg.Wait()
	return nil
}

// goLocked starts f on a goroutine Close waits for. s.mu must be held and
// the service not closed.
func (s *Service) goLocked(f func()) {
	s.wg.Go(f)
}

// emit hands ev to OnEvent.
func (s *Service) emit(ev Event) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
}

// putLog writes r to the call log.
func (s *Service) putLog(r Record) {
	if s.cfg.Log == nil {
		return
	}
	if err := s.cfg.Log.PutCall(r); err != nil {
		s.log.Warn("write call log", "call", r.ID, "err", err)
	}
}

// HandleSignal takes one decrypted signal from the device dev of an
// account. It never blocks: the signal is queued for the service's
// goroutine, or dropped (logged at debug) when it is larger than
// MaxSignalSize, the queue is full, or the service is closed. payload is
// copied.
func (s *Service) HandleSignal(from identity.AccountID, dev identity.DeviceID, payload []byte) {
	if len(payload) > MaxSignalSize {
		s.log.Debug("signal dropped: too large", "from", from, "size", len(payload))
		return
	}
	if s.ctx.Err() != nil {
		return
	}
	select {
	case s.inbox <- inbound{from: from, dev: dev, payload: append([]byte(nil), payload...)}:
	default:
		s.log.Debug("signal dropped: queue full", "from", from)
	}
}

// dispatch is the service's goroutine: it handles every inbound signal in
// order.
func (s *Service) dispatch() {
	for {
		select {
		case in := <-s.inbox:
			s.handle(in)
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Service) handle(in inbound) {
	typ, id, err := decodeHeader(in.payload)
	if err != nil {
		s.log.Debug("signal dropped", "from", in.from, "err", err)
		return
	}
	if typ == sigInvite {
		s.handleInvite(in.from, in.dev, id, in.payload)
		return
	}
	s.mu.Lock()
	c := s.calls[id]
	s.mu.Unlock()
	if c == nil || c.peer != in.from {
		s.log.Debug("signal for an unknown call ignored", "from", in.from, "type", typ, "call", id)
		return
	}
	sig, err := decodeSignal(in.payload)
	if err != nil {
		s.log.Debug("signal dropped", "from", in.from, "call", id, "err", err)
		return
	}
	if !c.fromDevice(in.dev, sig) {
		return
	}
	c.onSignal(sig)
	c.afterDeviceSignal(in.dev, sig)
}

// sendToAll sends sig to every device of to, in the background, within
// finalTimeout: a cancel that stops the devices still ringing.
func (s *Service) sendToAll(to identity.AccountID, sig signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.goLocked(func() {
		ctx, cancel := context.WithTimeout(s.ctx, finalTimeout)
		defer cancel()
		if err := s.cfg.Signal.SendSignal(ctx, to, identity.DeviceID{}, sig.marshal()); err != nil {
			s.log.Debug("tell the other devices", "to", to, "call", sig.id, "err", err)
		}
	})
}

// handleInvite applies the policy to an invite before it reads anything
// but the header, then admits the call and rings.
func (s *Service) handleInvite(from identity.AccountID, dev identity.DeviceID, id callID, payload []byte) {
	s.mu.Lock()
	_, dup := s.calls[id]
	s.mu.Unlock()
	if dup {
		s.log.Debug("duplicate invite ignored", "from", from, "call", id)
		return
	}
	dec := s.cfg.Policy.Check(from)
	if !dec.Allow {
		s.log.Debug("invite refused by policy", "from", from, "call", id)
		s.refuse(from, dev, id, signal{typ: sigDecline, id: id, reason: reasonUnavailable}, ReasonUnavailable, true)
		return
	}
	sig, err := decodeSignal(payload)
	if err != nil {
		s.log.Debug("invite dropped", "from", from, "call", id, "err", err)
		return
	}
	relayOnly := dec.RelayOnly || s.alwaysRelay()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.busyLocked() {
		s.mu.Unlock()
		s.log.Debug("invite refused: busy", "from", from, "call", id)
		s.refuse(from, dev, id, signal{typ: sigBusy, id: id}, ReasonBusy, false)
		return
	}
	c := newCall(s, id, from, DirectionIn, relayOnly)
	c.peerDev = dev // the caller's device: every reply goes to it
	c.offer = sig.sdp
	c.events = append(c.events, Event{Kind: EventIncoming, Call: c.infoLocked()})
	c.outq = append(c.outq, signal{typ: sigRinging, id: id})
	s.calls[id] = c
	s.goLocked(c.run)
	auto, dir := false, ""
	if s.cfg.AutoAnswer != nil {
		auto, dir = s.cfg.AutoAnswer()
	}
	if auto {
		s.goLocked(func() {
			if err := s.Answer(id.String(), AnswerOptions{Source: s.cfg.AutoAnswerSource, RecordDir: dir}); err != nil {
				s.log.Debug("auto-answer failed", "call", id, "err", err)
			}
		})
	}
	s.mu.Unlock()
	s.log.Debug("incoming call", "from", from, "call", id, "relay_only", relayOnly, "auto_answer", auto)
}

// refuse answers an invite that never rings with sig, and logs it.
func (s *Service) refuse(from identity.AccountID, dev identity.DeviceID, id callID, sig signal, reason Reason, blocked bool) {
	now := time.Now()
	s.mu.Lock()
	logIt := now.Sub(s.lastLogged[from]) >= blockedLogInterval
	if logIt {
		if len(s.lastLogged) >= 4096 {
			clear(s.lastLogged)
		}
		s.lastLogged[from] = now
	}
	closed := s.closed
	if !closed {
		select {
		case s.replies <- struct{}{}:
			s.goLocked(func() {
				defer func() { <-s.replies }()
				ctx, cancel := context.WithTimeout(s.ctx, finalTimeout)
				defer cancel()
				if err := s.cfg.Signal.SendSignal(ctx, from, dev, sig.marshal()); err != nil {
					s.log.Debug("send refusal", "to", from, "call", id, "err", err)
				}
			})
		default:
			s.log.Debug("refusal not sent: too many in flight", "to", from)
		}
	}
	s.mu.Unlock()
	if logIt {
		s.putLog(Record{ID: id.String(), Peer: string(from), Direction: DirectionIn, Start: now, EndReason: reason, Blocked: blocked})
	}
}

func (s *Service) alwaysRelay() bool {
	return s.cfg.AlwaysRelay != nil && s.cfg.AlwaysRelay()
}

// busyLocked reports whether a call is going on. s.mu must be held.
func (s *Service) busyLocked() bool {
	for _, c := range s.calls {
		if c.State() != StateEnded {
			return true
		}
	}
	return false
}

func (s *Service) lookup(id string) *Call {
	cid, ok := parseCallID(id)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[cid]
}

func (s *Service) forget(c *Call) {
	s.mu.Lock()
	if s.calls[c.id] == c {
		delete(s.calls, c.id)
	}
	s.mu.Unlock()
}

// Calls returns the calls going on: ringing, connecting or active.
func (s *Service) Calls() []*Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Call
	for _, c := range s.calls {
		if c.State() != StateEnded {
			out = append(out, c)
		}
	}
	return out
}

// Dial calls an account. It fetches TURN credentials, creates the peer
// connection and the offer, and returns once the Signaler has delivered
// the invite, or failed to (the call then ends as unavailable); the call
// moves on by itself (see Call.Changes). It fails with ErrInCall while
// another call is going on, ErrSelf, ErrClosed, or when the source, the
// recording files or the offer can't be set up; a relay-only call fails
// when no TURN server is available.
func (s *Service) Dial(ctx context.Context, to identity.AccountID, opts DialOptions) (*Call, error) {
	if to == s.cfg.Self {
		return nil, ErrSelf
	}
	if to == "" {
		return nil, errors.New("call: dial: no account")
	}
	s.mu.Lock()
	busy, ok := s.busyLocked(), s.started && !s.closed
	s.mu.Unlock()
	switch {
	case !ok:
		return nil, ErrClosed
	case busy:
		return nil, ErrInCall
	}
	var id callID
	_, _ = rand.Read(id[:])
	relayOnly := opts.RelayOnly || s.alwaysRelay()
	servers := s.iceServers(ctx, relayOnly)
	sink, audio, video, err := sinkFor(opts.Sink, opts.RecordDir, id)
	if err != nil {
		return nil, fmt.Errorf("call: dial: %w", err)
	}
	start := time.Now()
	mc, err := s.cfg.Engine.NewCall(media.CallConfig{
		ID: id.String(), Outgoing: true, RelayOnly: relayOnly, ICEServers: servers,
		Source: opts.Source, Sink: sink,
	})
	if err != nil {
		if sink != nil {
			_ = sink.Close()
		}
		return nil, fmt.Errorf("call: dial: %w", err)
	}
	offer, err := mc.Offer(ctx)
	if err != nil {
		_ = mc.Close()
		return nil, fmt.Errorf("call: dial: %w", err)
	}
	sent := make(chan error, 1)
	s.mu.Lock()
	if s.closed || s.busyLocked() {
		busy := !s.closed
		s.mu.Unlock()
		_ = mc.Close()
		if busy {
			return nil, ErrInCall
		}
		return nil, ErrClosed
	}
	c := newCall(s, id, to, DirectionOut, relayOnly)
	c.start, c.mcStart = start, start
	c.mc = mc
	c.audioPath, c.videoPath = audio, video
	c.inviteSent = sent
	c.outq = append(c.outq, signal{typ: sigInvite, id: id, sdp: offer})
	s.calls[id] = c
	s.goLocked(c.run)
	s.mu.Unlock()

	select {
	case err := <-sent:
		if err != nil {
			// The callee's device is offline, unreachable or refused the
			// invite: the call ends as unavailable (evInviteFailed), just
			// as when the callee's policy refuses it.
			c.log.Debug("invite not delivered", "err", err)
		}
		return c, nil
	case <-ctx.Done():
		c.Hangup() // the caller gave up: cancelled
		return nil, fmt.Errorf("call: dial: %w", ctx.Err())
	}
}

// sinkFor returns the sink a call's remote media goes to: the given one,
// or a recorder into dir (nil when both are empty).
func sinkFor(sink media.Sink, dir string, id callID) (media.Sink, string, string, error) {
	switch {
	case sink != nil && dir != "":
		return nil, "", "", errors.New("a call records or goes to a sink, not both")
	case sink != nil:
		return sink, "", "", nil
	}
	return recorder(dir, id)
}

// recorder creates the recording files for a call, or returns a nil Sink
// when dir is empty.
func recorder(dir string, id callID) (media.Sink, string, string, error) {
	if dir == "" {
		return nil, "", "", nil
	}
	audio := filepath.Join(dir, id.String()+".ogg")
	video := filepath.Join(dir, id.String()+".ivf")
	r, err := media.NewRecorder(audio, video)
	if err != nil {
		return nil, "", "", err
	}
	return r, audio, video, nil
}

// Answer answers a ringing incoming call: it fetches TURN credentials
// (relay-only when the policy or AlwaysRelay says so), parses and checks
// the caller's offer, and sends the answer. It fails with ErrUnknownCall,
// ErrNotRinging (also when the call ends while being answered), or when
// the offer is invalid or the call can't be set up; then the call ends
// with ReasonFailed and the caller is told.
func (s *Service) Answer(callID string, opts AnswerOptions) error {
	c := s.lookup(callID)
	if c == nil {
		return ErrUnknownCall
	}
	c.mu.Lock()
	if !c.applyLocked(evAnswer, time.Now()) {
		c.mu.Unlock()
		return ErrNotRinging
	}
	offer := c.offer
	c.offer = ""
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(s.ctx, answerTimeout)
	defer cancel()
	if err := c.answer(ctx, offer, opts); err != nil {
		c.apply(evAnswerFailed) // nothing when it ended meanwhile
		return fmt.Errorf("call: answer %s: %w", callID, err)
	}
	return nil
}

// Fail ends a call because this end can't go on (a browser tab that
// carried its media closed or failed): the remote hears a hangup marked
// failed, and the call ends with ReasonFailed. It returns
// ErrUnknownCall for an id that is not going on.
func (s *Service) Fail(callID string) error {
	c := s.lookup(callID)
	if c == nil || !c.apply(evFail) {
		return ErrUnknownCall
	}
	return nil
}

// Decline refuses a ringing incoming call; the caller hears "declined".
func (s *Service) Decline(callID string) error {
	c := s.lookup(callID)
	if c == nil {
		return ErrUnknownCall
	}
	if !c.apply(evDecline) {
		return ErrNotRinging
	}
	return nil
}

// Hangup ends a call: an outgoing call not yet answered is cancelled, an
// incoming one still ringing is declined, any other is hung up. It returns
// ErrUnknownCall for an id that is not going on.
func (s *Service) Hangup(callID string) error {
	c := s.lookup(callID)
	if c == nil || !c.apply(evHangup) {
		return ErrUnknownCall
	}
	return nil
}
