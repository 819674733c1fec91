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

// Call states. An outgoing call goes calling → ringing → connecting →
// active → ended, an incoming one ringing → connecting → active → ended;
// any state may jump to ended.
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
	Reason media.Reason // set when State is StateEnded
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
	Reason    media.Reason // set once the call has ended
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
	EndReason media.Reason
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
	inviteSent chan error // outgoing: the invite's send result, for Dial

	mu        sync.Mutex // guards below; lock order: Service.mu before Call.mu
	state     State
	reason    media.Reason
	start     time.Time
	mcStart   time.Time   // when mc was created
	mc        *media.Call // nil until dialled or answered
	offer     string      // incoming: the caller's offer, unread until Answer
	answering bool        // incoming: Answer is under way or done
	ringing   bool        // the ring timer runs (not answered yet)
	pending   []string    // incoming: remote candidates before mc exists
	outq      []signal    // signals to send, in order
	events    []Event     // events to deliver, in order
	activeAt  time.Time
	endAt     time.Time
	final     *Stats // set once the call is torn down
	finished  bool   // run has finished with mc; a late mc is the attacher's to close

	audioPath, videoPath string
}

func newCall(s *Service, id callID, peer identity.AccountID, dir Direction, relayOnly bool) *Call {
	st := StateCalling
	if dir == DirectionIn {
		st = StateRinging
	}
	return &Call{
		s: s, id: id, peer: peer, dir: dir, relayOnly: relayOnly,
		log:     s.log.With("call", id.String(), "peer", peer, "dir", dir),
		changes: make(chan StateChange, 8),
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		state:   st,
		start:   time.Now(),
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
func (c *Call) Reason() media.Reason {
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
func (c *Call) Hangup() {
	c.mu.Lock()
	reason, sig := media.ReasonHangup, signal{typ: sigHangup, id: c.id}
	switch {
	case c.dir == DirectionOut && c.ringing:
		reason, sig = media.ReasonCancelled, signal{typ: sigCancel, id: c.id}
	case c.dir == DirectionIn && c.ringing && !c.answering:
		reason, sig = media.ReasonDeclined, signal{typ: sigDecline, id: c.id, reason: reasonDeclined}
	}
	c.endLocked(reason, &sig)
	c.mu.Unlock()
	c.kick()
}

// end ends the call with reason and queues sig (if any) for the remote.
// The first end wins.
func (c *Call) end(reason media.Reason, sig *signal) {
	c.mu.Lock()
	c.endLocked(reason, sig)
	c.mu.Unlock()
	c.kick()
}

func (c *Call) endLocked(reason media.Reason, sig *signal) {
	if c.state == StateEnded {
		return
	}
	c.state = StateEnded
	c.reason = reason
	c.endAt = time.Now() // the call's length ends here, not when teardown finishes
	c.ringing = false
	if sig != nil {
		c.outq = append(c.outq, *sig)
	}
	c.log.Debug("call ending", "reason", reason)
}

// setStateLocked records a transition other than the end.
func (c *Call) setStateLocked(st State) {
	if c.state == StateEnded || c.state == st {
		return
	}
	c.state = st
	sc := StateChange{State: st, At: time.Now()}
	c.changes <- sc // never blocks: buffered for every transition
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
	c.mu.Lock()
	st, mc := c.state, c.mc
	switch {
	case st == StateEnded:
		c.mu.Unlock()
		c.log.Debug("signal for an ended call ignored", "type", sig.typ)
		return

	case sig.typ == sigRinging && c.dir == DirectionOut:
		if st == StateCalling {
			c.setStateLocked(StateRinging)
		}
		c.mu.Unlock()
		c.kick()

	case sig.typ == sigAccept && c.dir == DirectionOut && c.ringing:
		c.ringing = false
		c.mu.Unlock()
		if err := mc.SetAnswer(sig.sdp); err != nil {
			c.log.Debug("answer refused", "err", err)
			c.end(media.ReasonFailed, &signal{typ: sigHangup, id: c.id, reason: reasonFailed})
			return
		}
		c.mu.Lock()
		c.setStateLocked(StateConnecting)
		c.mu.Unlock()
		c.kick()

	case sig.typ == sigCandidate:
		if mc == nil {
			if len(c.pending) < maxPendingCandidates {
				c.pending = append(c.pending, sig.cand)
			}
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if err := mc.AddRemoteCandidate(sig.cand); err != nil {
			c.log.Debug("remote candidate refused", "err", err)
		}

	case (sig.typ == sigDecline || sig.typ == sigBusy) && c.dir == DirectionOut && c.ringing:
		reason := media.ReasonBusy
		if sig.typ == sigDecline {
			reason = sig.reason.media()
		}
		c.endLocked(reason, nil)
		c.mu.Unlock()
		c.kick()

	case sig.typ == sigCancel && c.dir == DirectionIn:
		reason := media.ReasonCancelled
		if sig.reason == reasonMissed {
			reason = media.ReasonMissed
		}
		c.endLocked(reason, nil)
		c.mu.Unlock()
		c.kick()

	case sig.typ == sigHangup:
		reason := media.ReasonRemoteHangup
		if sig.reason == reasonFailed {
			reason = media.ReasonFailed
		}
		c.endLocked(reason, nil)
		c.mu.Unlock()
		c.kick()

	default:
		c.mu.Unlock()
		c.log.Debug("signal out of place ignored", "type", sig.typ, "state", st)
	}
}

// answer creates the callee's peer connection and sends the answer.
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
	if c.state == StateEnded || c.finished {
		c.mu.Unlock()
		_ = mc.Close()
		return media.ErrEnded
	}
	c.mc, c.mcStart = mc, mcStart
	c.audioPath, c.videoPath = audio, video
	c.ringing = false
	pending := c.pending
	c.pending = nil
	c.outq = append(c.outq, signal{typ: sigAccept, id: c.id, sdp: answer})
	c.setStateLocked(StateConnecting)
	c.mu.Unlock()
	c.kick()
	for _, cand := range pending {
		if err := mc.AddRemoteCandidate(cand); err != nil {
			c.log.Debug("remote candidate refused", "err", err)
		}
	}
	return nil
}

// run is the call's goroutine: it sends the queued signals in order,
// forwards the local candidates, follows the media's state, enforces the
// ring timeout, and tears the call down.
func (c *Call) run() {
	ring := time.NewTimer(c.s.cfg.RingTimeout)
	defer ring.Stop()
	ringC := ring.C
	var mc *media.Call
	var candC <-chan string
	var stateC <-chan media.StateChange
	for {
		c.mu.Lock()
		evs, out := c.events, c.outq
		c.events, c.outq = nil, nil
		ended := c.state == StateEnded
		ringing := c.ringing
		if mc == nil && c.mc != nil {
			mc = c.mc
			candC, stateC = mc.Candidates(), mc.StateChanges()
		}
		c.mu.Unlock()

		for _, ev := range evs {
			ev.Stats = c.Stats()
			c.s.emit(ev)
		}
		for _, sig := range out {
			c.send(sig, ended)
		}
		if ended {
			break
		}
		if !ringing {
			ringC = nil
		}
		select {
		case <-c.wake:
		case <-ringC:
			ringC = nil
			c.mu.Lock()
			if c.ringing && !c.answering {
				sig := signal{typ: sigCancel, id: c.id, reason: reasonMissed}
				if c.dir == DirectionIn {
					sig = signal{typ: sigDecline, id: c.id, reason: reasonMissed}
				}
				c.endLocked(media.ReasonMissed, &sig)
			}
			c.mu.Unlock()
		case cand, ok := <-candC:
			if !ok {
				candC = nil
				continue
			}
			c.mu.Lock()
			c.outq = append(c.outq, signal{typ: sigCandidate, id: c.id, cand: cand})
			c.mu.Unlock()
		case sc, ok := <-stateC:
			if !ok {
				stateC = nil
				c.end(media.ReasonFailed, &signal{typ: sigHangup, id: c.id, reason: reasonFailed})
				continue
			}
			c.onMediaState(sc)
		case <-c.s.ctx.Done():
			c.end(media.ReasonHangup, &signal{typ: sigHangup, id: c.id})
		}
	}
	c.finish(mc)
}

// onMediaState follows the media call's state.
func (c *Call) onMediaState(sc media.StateChange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch sc.State {
	case media.StateActive:
		// The answer is applied (ringing is over) even if the dispatcher
		// has not recorded connecting yet.
		if c.state != StateEnded && !c.ringing {
			c.setStateLocked(StateConnecting)
			c.activeAt = sc.At
			c.setStateLocked(StateActive)
		}
	case media.StateEnded:
		var sig *signal
		switch sc.Reason {
		case media.ReasonICEFailed, media.ReasonFailed, media.ReasonTimeout:
			sig = &signal{typ: sigHangup, id: c.id, reason: reasonFailed}
			// No path worked: perhaps through a relay that changed, so
			// its last credentials are no fallback any more.
			c.s.creds.drop()
		case media.ReasonRemoteHangup:
		default:
			sig = &signal{typ: sigHangup, id: c.id}
		}
		c.endLocked(sc.Reason, sig)
	}
}

// send hands one signal to the Signaler. A final signal is sent even while
// the service closes, within finalTimeout.
func (c *Call) send(sig signal, final bool) {
	var ctx context.Context
	var cancel context.CancelFunc
	if final {
		ctx, cancel = context.WithTimeout(context.WithoutCancel(c.s.ctx), finalTimeout)
	} else {
		ctx, cancel = context.WithTimeout(c.s.ctx, sendTimeout)
	}
	defer cancel()
	if sig.typ == sigInvite && final {
		// Ended before the invite went out: the callee never hears of it.
		return
	}
	err := c.s.cfg.Signal.SendSignal(ctx, c.peer, sig.marshal())
	if sig.typ == sigInvite && c.inviteSent != nil {
		c.inviteSent <- err
		c.inviteSent = nil
		if err != nil {
			c.end(media.ReasonFailed, nil)
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
		mc.Hangup(reason)
		st = convertStats(mc.Stats(), offset)
		_ = mc.Close()
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
