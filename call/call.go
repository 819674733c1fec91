package call

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/media"
)

// State is where a call is in its life.
type State string

// Call states, as the API shows them. An outgoing call goes calling →
// ringing → connecting → active → ended, an incoming one ringing →
// connecting → active → ended; any state may jump to ended. machine.go has
// every transition.
const (
	// StateCalling: outgoing, the invite is sent and the callee's node has
	// not answered yet.
	StateCalling State = "calling"
	// StateRinging: outgoing, the callee's node rings; incoming, ringing
	// here until Answer, Decline or the ring timeout.
	StateRinging State = "ringing"
	// StateConnecting: answered; ICE and DTLS under way.
	StateConnecting State = "connecting"
	// StateActive: a media path is up and media flows.
	StateActive State = "active"
	// StateEnded: over; Reason says why.
	StateEnded State = "ended"
)

// Direction says who placed a call.
type Direction string

// Directions.
const (
	DirectionIn  Direction = "in"
	DirectionOut Direction = "out"
)

// StateChange is one transition of a call.
type StateChange struct {
	State  State
	Reason Reason // set when State is StateEnded
	At     time.Time
}

// EventKind names an Event.
type EventKind string

// Event kinds.
const (
	// EventIncoming: an admitted call rings here (sent once, before any
	// state change of that call).
	EventIncoming EventKind = "incoming-call"
	// EventState: a call changed state; Call.State is the new one.
	EventState EventKind = "state-change"
)

// Event is what Config.OnEvent receives.
type Event struct {
	Kind  EventKind
	Call  Info
	Stats Stats // the call's media figures when the event was delivered
}

// Info is a snapshot of a call for the API.
type Info struct {
	ID        string
	Peer      identity.AccountID
	Direction Direction
	State     State
	Reason    Reason // set once the call has ended
	RelayOnly bool
	Start     time.Time // invite sent or received
	Active    time.Time // media first flowed; zero before
	End       time.Time // the call ended; zero while it goes on
}

// Duration is how long media flowed: from Active to End, or to now while
// the call goes on; 0 when it never became active.
func (i Info) Duration() time.Duration {
	switch {
	case i.Active.IsZero():
		return 0
	case i.End.IsZero():
		return time.Since(i.Active)
	}
	return i.End.Sub(i.Active)
}

// Stats is a snapshot of a call's media figures.
type Stats struct {
	// Path is "direct" or "relay" once a candidate pair is selected.
	Path media.Path
	// Setup is the time from the invite (sent or received) to the first
	// media packet both ways; 0 until then. For an incoming call answered
	// by a person it includes the ringing.
	Setup time.Duration
	// Packet and payload byte counts of RTP, all tracks.
	PacketsSent, PacketsReceived uint64
	BytesSent, BytesReceived     uint64
	// Loss is the share of the remote's packets lost on the way here, 0 to 1.
	Loss float64
	// RTT is the round-trip time; 0 while unknown.
	RTT time.Duration
}

// Record is one call-log entry, written when a call ends and for every
// refused invite.
type Record struct {
	ID        string // call id (32 hex digits)
	Peer      string // the other account's id
	Direction Direction
	Start     time.Time     // invite sent or received
	Duration  time.Duration // active to end; 0 when media never flowed
	EndReason Reason
	Path      media.Path // "" when no path was selected

	// Media figures at the end of the call (see Stats).
	PacketsSent, PacketsReceived uint64
	BytesSent, BytesReceived     uint64
	Loss                         float64
	RTT                          time.Duration

	// Blocked marks an invite the call policy refused: the caller heard
	// "unavailable" and this node never rang or read its SDP.
	Blocked bool
}

// Call is one call of the Service. Its methods are safe for concurrent
// use.
type Call struct {
	s         *Service
	id        callID
	peer      identity.AccountID
	dir       Direction
	relayOnly bool
	log       *slog.Logger

	changes    chan StateChange // buffered: at most five transitions
	done       chan struct{}
	wake       chan struct{}
	inviteSent chan error // outgoing: the invite's send result, for Dial; the sender's
	sendWake   chan struct{}

	mu       sync.Mutex // guards below; lock order: Service.mu before Call.mu
	ph       phase      // where the state machine is (machine.go)
	state    State      // what the API shows of ph
	reason   Reason
	start    time.Time
	mcStart  time.Time   // when mc was created
	mc       *media.Call // nil until dialled or answered
	offer    string      // incoming: the caller's offer, unread until Answer
	pending  []string    // incoming: remote candidates before mc exists
	outq     []signal    // signals to send, in order
	sendq    []signal    // handed to the sender goroutine, in order
	sendEnd  bool        // the call ended: the sender sends what sendq holds and returns
	events   []Event     // events to deliver, in order
	activeAt time.Time
	endAt    time.Time
	final    *Stats // set once the call is torn down
	finished bool   // run has finished with mc; a late mc is the attacher's to close

	audioPath, videoPath string

	// peerDev is the peer's device the call is with: incoming, the
	// caller's device that sent the invite; outgoing, the callee's device
	// that answered, zero until one does (the invite rings on every
	// device of the callee's account). Guarded by mu.
	peerDev identity.DeviceID
}

func newCall(s *Service, id callID, peer identity.AccountID, dir Direction, relayOnly bool) *Call {
	ph := phCalling
	if dir == DirectionIn {
		ph = phRinging
	}
	return &Call{
		s: s, id: id, peer: peer, dir: dir, relayOnly: relayOnly,
		log:      s.log.With("call", id.String(), "peer", peer, "dir", dir),
		changes:  make(chan StateChange, 8),
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		ph:       ph,
		sendWake: make(chan struct{}, 1),
		state:    ph.state(),
		start:    time.Now(),
	}
}

// ID returns the call's id (32 lowercase hex digits).
func (c *Call) ID() string { return c.id.String() }

// Peer returns the other account.
func (c *Call) Peer() identity.AccountID { return c.peer }

// Direction reports who placed the call.
func (c *Call) Direction() Direction { return c.dir }

// RelayOnly reports whether this end gathers relay candidates only.
func (c *Call) RelayOnly() bool { return c.relayOnly }

// State returns the call's state.
func (c *Call) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Reason returns why the call ended, or "" while it goes on.
func (c *Call) Reason() Reason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// Info returns a snapshot of the call.
func (c *Call) Info() Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.infoLocked()
}

func (c *Call) infoLocked() Info {
	i := Info{
		ID: c.id.String(), Peer: c.peer, Direction: c.dir, State: c.state,
		Reason: c.reason, RelayOnly: c.relayOnly, Start: c.start, Active: c.activeAt,
	}
	if c.state == StateEnded {
		i.End = c.endAt
	}
	return i
}

// Changes delivers the call's state changes after the initial one (calling
// for an outgoing call, ringing for an incoming one), in order. StateEnded
// comes once the media is torn down and recordings are complete; the
// channel is then closed. It is buffered for every change a call can make,
// so a call never waits for its reader.
func (c *Call) Changes() <-chan StateChange { return c.changes }

// Done is closed once the call has ended and its log entry is written.
func (c *Call) Done() <-chan struct{} { return c.done }

// Recordings returns the paths of the call's recording files, "" when it
// records nothing.
func (c *Call) Recordings() (audio, video string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.audioPath, c.videoPath
}

// Stats returns a snapshot of the call's media figures; after the call has
// ended, the figures at its end.
func (c *Call) Stats() Stats {
	c.mu.Lock()
	if c.final != nil {
		st := *c.final
		c.mu.Unlock()
		return st
	}
	mc, offset := c.mc, c.mcStart.Sub(c.start)
	c.mu.Unlock()
	if mc == nil {
		return Stats{}
	}
	return convertStats(mc.Stats(), offset)
}

func convertStats(ms media.Stats, offset time.Duration) Stats {
	st := Stats{
		Path:        ms.Path,
		PacketsSent: ms.PacketsSent, PacketsReceived: ms.PacketsReceived,
		BytesSent: ms.BytesSent, BytesReceived: ms.BytesReceived,
		Loss: ms.Loss, RTT: ms.RTT,
	}
	if ms.SetupTime > 0 {
		st.Setup = offset + ms.SetupTime
	}
	return st
}

// Hangup ends the call: an outgoing call not yet answered is cancelled,
// an incoming one still ringing is declined, any other is hung up. The
// remote is told. It returns at once; Done is closed when the call is torn
// down.
func (c *Call) Hangup() { c.apply(evHangup) }

// apply runs ev through the state machine and wakes the call's goroutine
// to send what it queued. It reports whether ev applied.
func (c *Call) apply(ev event) bool {
	c.mu.Lock()
	ok := c.applyLocked(ev, time.Now())
	c.mu.Unlock()
	if ok {
		c.kick()
	}
	return ok
}

// applyLocked runs ev, which happened at at, through the state machine
// (next, in machine.go) and carries out its step: the new phase and what
// the API sees of it, the end and its reason, the signal for the peer. It
// reports whether ev applied; nothing changes when it did not. c.mu must
// be held.
func (c *Call) applyLocked(ev event, at time.Time) bool {
	from := c.ph
	st, ok := next(from, c.dir, ev)
	if !ok {
		c.log.Debug("event out of place ignored", "event", ev, "phase", from)
		return false
	}
	if st.send != 0 {
		c.outq = append(c.outq, signal{typ: st.send, id: c.id, reason: st.why})
	}
	if st.noPath {
		c.s.creds.drop()
	}
	c.ph = st.to
	switch {
	case st.to == phEnded:
		// The call's length ends here, not when teardown finishes; the
		// state change is delivered by finish, once media is torn down.
		c.state, c.reason, c.endAt = StateEnded, st.reason, at
		c.log.Debug("call ending", "event", ev, "reason", st.reason)
	case st.to == phActive:
		if from == phAnswering {
			// Media was up before the answer was recorded as applied.
			c.showLocked(StateConnecting, at)
		}
		c.activeAt = at
		c.showLocked(StateActive, at)
	default:
		if s := st.to.state(); s != "" {
			c.showLocked(s, at)
		}
	}
	return true
}

// showLocked records a transition the API sees, other than the end.
func (c *Call) showLocked(st State, at time.Time) {
	if c.state == st {
		return
	}
	c.state = st
	c.changes <- StateChange{State: st, At: at} // never blocks: buffered for every transition
	c.events = append(c.events, Event{Kind: EventState, Call: c.infoLocked()})
}

func (c *Call) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// onSignal applies one decoded signal from the call's peer. It runs on the
// service's dispatch goroutine.
func (c *Call) onSignal(sig signal) {
	if sig.typ == sigCandidate {
		c.onCandidate(sig.cand)
		return
	}
	ev, ok := signalEvent(sig)
	if !ok {
		c.log.Debug("signal out of place ignored", "type", sig.typ)
		return
	}
	c.mu.Lock()
	ok = c.applyLocked(ev, time.Now())
	mc := c.mc
	c.mu.Unlock()
	if !ok {
		return
	}
	c.kick()
	if ev == evAccept {
		// The caller applies the callee's answer (its own goroutine is
		// this one: signals apply in order).
		if err := mc.SetAnswer(sig.sdp); err != nil {
			c.log.Debug("answer refused", "err", err)
			c.apply(evAnswerFailed)
			return
		}
		c.apply(evAnswered)
	}
}

// fromDevice decides whether sig, from the peer's device dev, is for this
// call (docs/DEVICES.md §3). An incoming call hears only the caller's
// device that invited. An outgoing call hears every device of the callee
// until one answers, and then that one only; while another device rings,
// one that is busy or whose policy refuses the call is not the callee's
// answer, so its busy or decline(unavailable) is ignored.
func (c *Call) fromDevice(dev identity.DeviceID, sig signal) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.peerDev.IsZero():
		if dev != c.peerDev {
			c.log.Debug("signal from another device of the peer ignored", "type", sig.typ)
			return false
		}
	case c.dir == DirectionOut && c.ph == phRinging && (sig.typ == sigBusy || sig.typ == sigDecline && sig.reason == reasonUnavailable):
		c.log.Debug("a device that can't take the call, while another rings", "type", sig.typ)
		return false
	case c.dir == DirectionOut && sig.typ == sigAccept && (c.ph == phCalling || c.ph == phRinging):
		c.peerDev = dev
	}
	return true
}

// afterDeviceSignal tells the callee's other devices, once sig from dev
// settled an outgoing call: one answered (they stop ringing, "answered
// elsewhere"), or one declined (they stop, declined).
func (c *Call) afterDeviceSignal(dev identity.DeviceID, sig signal) {
	if c.dir != DirectionOut {
		return
	}
	switch {
	case sig.typ == sigAccept:
		c.s.sendToAll(c.peer, signal{typ: sigCancel, id: c.id, reason: reasonElsewhere})
	case sig.typ == sigDecline && sig.reason == reasonDeclined:
		c.s.sendToAll(c.peer, signal{typ: sigCancel, id: c.id, reason: reasonDeclined})
	}
}

// onCandidate adds a remote candidate, or holds it until the call's
// connection exists.
func (c *Call) onCandidate(cand string) {
	c.mu.Lock()
	if c.ph == phEnded {
		c.mu.Unlock()
		c.log.Debug("candidate for an ended call ignored")
		return
	}
	mc := c.mc
	if mc == nil {
		if len(c.pending) < maxPendingCandidates {
			c.pending = append(c.pending, cand)
		}
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if err := mc.AddRemoteCandidate(cand); err != nil {
		c.log.Debug("remote candidate refused", "err", err)
	}
}

// answer creates the callee's peer connection and sends the answer. The
// call is in phAnswering.
func (c *Call) answer(ctx context.Context, offer string, opts AnswerOptions) error {
	servers := c.s.iceServers(ctx, c.relayOnly)
	sink, audio, video, err := sinkFor(opts.Sink, opts.RecordDir, c.id)
	if err != nil {
		return err
	}
	mcStart := time.Now()
	mc, err := c.s.cfg.Engine.NewCall(media.CallConfig{
		ID: c.id.String(), RelayOnly: c.relayOnly, ICEServers: servers,
		Source: opts.Source, Sink: sink,
	})
	if err != nil {
		if sink != nil {
			_ = sink.Close()
		}
		return err
	}
	answer, err := mc.Answer(ctx, offer)
	if err != nil {
		_ = mc.Close()
		return err
	}
	c.mu.Lock()
	if c.ph != phAnswering || c.finished {
		c.mu.Unlock()
		_ = mc.Close()
		return errEnded
	}
	c.mc, c.mcStart = mc, mcStart
	c.audioPath, c.videoPath = audio, video
	pending := c.pending
	c.pending = nil
	c.outq = append(c.outq, signal{typ: sigAccept, id: c.id, sdp: answer})
	c.applyLocked(evAnswered, time.Now())
	c.mu.Unlock()
	c.kick()
	for _, cand := range pending {
		if err := mc.AddRemoteCandidate(cand); err != nil {
			c.log.Debug("remote candidate refused", "err", err)
		}
	}
	return nil
}

// mediaEvent is the state machine's event for what media detected.
func mediaEvent(k media.EventKind) (event, bool) {
	switch k {
	case media.Connected:
		return evConnected, true
	case media.ICEFailed:
		return evICEFailed, true
	case media.DTLSFailed:
		return evDTLSFailed, true
	case media.SetupTimeout:
		return evSetupTimeout, true
	case media.RemoteClosed:
		return evRemoteClosed, true
	}
	return 0, false
}

// run is the call's goroutine: it hands the queued signals to the
// sender in order, forwards the local candidates, feeds what media detects
// and the ring timeout to the state machine, and tears the call down.
func (c *Call) run() {
	ring := time.NewTimer(c.s.cfg.RingTimeout)
	defer ring.Stop()
	ringC := ring.C
	var mc *media.Call
	var candC <-chan string
	var mediaC <-chan media.Event
	sendCtx, stopSends := context.WithCancel(c.s.ctx)
	defer stopSends()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		c.sender(sendCtx)
	}()
	for {
		c.mu.Lock()
		evs, out := c.events, c.outq
		c.events, c.outq = nil, nil
		ended := c.ph == phEnded
		if mc == nil && c.mc != nil {
			mc = c.mc
			candC, mediaC = mc.Candidates(), mc.Events()
		}
		c.sendq = append(c.sendq, out...)
		c.sendEnd = ended
		c.mu.Unlock()
		if len(out) > 0 || ended {
			select {
			case c.sendWake <- struct{}{}:
			default:
			}
		}

		for _, ev := range evs {
			ev.Stats = c.Stats()
			c.s.emit(ev)
		}
		if ended {
			break
		}
		select {
		case <-c.wake:
		case <-ringC:
			ringC = nil
			c.apply(evRingTimeout)
		case cand, ok := <-candC:
			if !ok {
				candC = nil
				continue
			}
			c.mu.Lock()
			c.outq = append(c.outq, signal{typ: sigCandidate, id: c.id, cand: cand})
			c.mu.Unlock()
		case mev, ok := <-mediaC:
			if !ok {
				mediaC = nil
				c.apply(evMediaLost)
				continue
			}
			if ev, ok := mediaEvent(mev.Kind); ok {
				c.log.Debug("media detected", "event", mev.Kind, "path", mev.Path)
				c.mu.Lock()
				c.applyLocked(ev, mev.At)
				c.mu.Unlock()
			}
		case <-c.s.ctx.Done():
			c.apply(evClose)
		}
	}
	// A signal still on its way is of no use now: the final one goes
	// at once.
	stopSends()
	<-sent
	c.finish(mc)
}

// sender is the call's sending goroutine: it hands the signals run queued
// to the Signaler one at a time, in order. SendSignal returns once the
// peer has the signal (or it failed), so run never waits on the network.
// Once the call has ended, only the signal that tells the peer so goes,
// within finalTimeout, even while the service closes.
func (c *Call) sender(ctx context.Context) {
	for {
		c.mu.Lock()
		q, ended := c.sendq, c.sendEnd
		c.sendq = nil
		c.mu.Unlock()
		for _, sig := range q {
			c.send(ctx, sig, ended)
		}
		if ended {
			return
		}
		<-c.sendWake
	}
}

// send hands one signal to the Signaler; final: the call has ended.
func (c *Call) send(ctx context.Context, sig signal, final bool) {
	var cancel context.CancelFunc
	if final {
		switch sig.typ {
		case sigDecline, sigBusy, sigCancel, sigHangup:
		default:
			// An invite, ringing, accept or candidate after the end:
			// the peer never hears of it.
			return
		}
		ctx, cancel = context.WithTimeout(context.WithoutCancel(c.s.ctx), finalTimeout)
	} else {
		ctx, cancel = context.WithTimeout(ctx, sendTimeout)
	}
	defer cancel()
	c.mu.Lock()
	dev := c.peerDev
	c.mu.Unlock()
	err := c.s.cfg.Signal.SendSignal(ctx, c.peer, dev, sig.marshal())
	if sig.typ == sigInvite && c.inviteSent != nil {
		c.inviteSent <- err
		c.inviteSent = nil
		if err != nil {
			c.apply(evInviteFailed)
		}
		return
	}
	if err != nil {
		c.log.Debug("send signal", "type", sig.typ, "err", err)
	}
}

// finish tears the media down, writes the call log and delivers the end.
func (c *Call) finish(mc *media.Call) {
	c.mu.Lock()
	c.finished = true
	if mc == nil {
		mc = c.mc // attached after the loop's last look
	}
	reason, offset := c.reason, c.mcStart.Sub(c.start)
	c.mu.Unlock()
	if c.inviteSent != nil { // ended before the invite went out
		c.inviteSent <- fmt.Errorf("call ended: %s", reason)
	}
	var st Stats
	if mc != nil {
		_ = mc.Close() // the peer hears a DTLS close; recordings are complete
		st = convertStats(mc.Stats(), offset)
	}
	c.mu.Lock()
	c.final = &st
	end := c.endAt
	var dur time.Duration
	if !c.activeAt.IsZero() {
		dur = end.Sub(c.activeAt)
	}
	rec := Record{
		ID: c.id.String(), Peer: string(c.peer), Direction: c.dir, Start: c.start,
		Duration: dur, EndReason: reason, Path: st.Path,
		PacketsSent: st.PacketsSent, PacketsReceived: st.PacketsReceived,
		BytesSent: st.BytesSent, BytesReceived: st.BytesReceived, Loss: st.Loss, RTT: st.RTT,
	}
	c.changes <- StateChange{State: StateEnded, Reason: reason, At: end}
	close(c.changes)
	info := c.infoLocked()
	evs := c.events
	c.events = nil
	c.mu.Unlock()
	c.s.putLog(rec)
	c.s.forget(c)
	for _, ev := range evs {
		ev.Stats = st
		c.s.emit(ev)
	}
	c.s.emit(Event{Kind: EventState, Call: info, Stats: st})
	c.log.Debug("call ended", "reason", reason, "path", st.Path, "sent", st.PacketsSent, "received", st.PacketsReceived)
	close(c.done)
}
