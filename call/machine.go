package call

// The call state machine: every call's lifecycle, in one pure function.
// A Call feeds it events (the user's actions, the peer's signals, the ring
// timer, and what media's peer connection detected) and carries out the
// step it returns: the new state, the end and its reason, the signal the
// peer must hear. Nothing else changes a call's state.

// Reason says why a call ended. Its values are part of the API's JSON
// (end_reason) and of the call log.
type Reason string

// End reasons. The first seven come from signalling (this end's action or
// the peer's signal); the last three from what media detected.
const (
	ReasonHangup       Reason = "hangup"        // this end hung up, or its node closed
	ReasonRemoteHangup Reason = "remote-hangup" // the peer hung up: its hangup signal, or its DTLS close
	ReasonDeclined     Reason = "declined"      // the callee declined
	ReasonBusy         Reason = "busy"          // the callee was in another call
	ReasonMissed       Reason = "missed"        // nobody answered within the ring timeout
	ReasonCancelled    Reason = "cancelled"     // the caller gave up before an answer
	ReasonUnavailable  Reason = "unavailable"   // the callee's policy refused the call, or the invite could not reach the callee's device
	ReasonFailed       Reason = "failed"        // a bad answer, DTLS failed, a lost browser tab, or the peer failed
	ReasonICEFailed    Reason = "ice-failed"    // no candidate pair worked, or the path died
	ReasonTimeout      Reason = "timeout"       // no media path within the engine's connect timeout
	// ReasonElsewhere: another device of this account answered the call
	// (docs/DEVICES.md §3); this one stopped ringing.
	ReasonElsewhere Reason = "answered-elsewhere"
)

// phase is where a call is in the state machine. It is finer than State,
// which is what the API shows of it.
type phase uint8

const (
	// phCalling: outgoing; the invite is sent, the callee's node not heard
	// from. Shown as calling.
	phCalling phase = iota
	// phRinging: the callee rings: outgoing, its node said so; incoming,
	// here. Shown as ringing.
	phRinging
	// phAnswering: answered, the answer not yet applied (incoming: Answer
	// is under way; outgoing: the callee's accept arrived and its answer is
	// being applied). Shown as the state before it.
	phAnswering
	// phConnecting: the answer is applied; ICE and DTLS under way.
	phConnecting
	// phActive: a media path is up.
	phActive
	// phEnded: over, with a Reason.
	phEnded
	numPhases
)

var phaseNames = [numPhases]string{"calling", "ringing", "answering", "connecting", "active", "ended"}

func (p phase) String() string { return phaseNames[p] }

// state is the State the API shows for p; "" for phAnswering, which shows
// the state the call had before it.
func (p phase) state() State {
	switch p {
	case phCalling:
		return StateCalling
	case phRinging:
		return StateRinging
	case phConnecting:
		return StateConnecting
	case phActive:
		return StateActive
	case phEnded:
		return StateEnded
	}
	return ""
}

// event is something that may move a call.
type event uint8

const (
	// This end: the user, the node, the service.
	evHangup       event = iota // Hangup
	evDecline                   // Decline
	evAnswer                    // Answer begins
	evAnswered                  // the answer is applied (Answer made it, or the caller applied the callee's)
	evAnswerFailed              // the answer could not be made or applied
	evFail                      // Fail: this end can't go on (a browser tab lost)
	evInviteFailed              // the invite could not be handed to the Signaler
	evRingTimeout               // Config.RingTimeout passed
	evClose                     // the service closes

	// Signals from the peer.
	evRinging      // ringing
	evAccept       // accept(answer)
	evDeclined     // decline(declined)
	evUnavailable  // decline(unavailable)
	evMissed       // decline(missed)
	evBusy         // busy
	evCancel       // cancel
	evCancelMissed // cancel(missed)
	// cancel(elsewhere) and cancel(declined): another device of this
	// account answered or declined; a device that still rings stops.
	evCancelElsewhere
	evCancelDeclined
	evRemoteHangup // hangup
	evRemoteFailed // hangup(failed)

	// What media's peer connection detected (media.Event), or that it
	// stopped reporting.
	evConnected    // media.Connected
	evICEFailed    // media.ICEFailed
	evDTLSFailed   // media.DTLSFailed
	evSetupTimeout // media.SetupTimeout
	evRemoteClosed // media.RemoteClosed
	evMediaLost    // media's events ended before the call did

	numEvents
)

var eventNames = [numEvents]string{
	"hangup", "decline", "answer", "answered", "answer-failed", "fail", "invite-failed", "ring-timeout", "close",
	"sig-ringing", "sig-accept", "sig-declined", "sig-unavailable", "sig-missed", "sig-busy", "sig-cancel",
	"sig-cancel-missed", "sig-cancel-elsewhere", "sig-cancel-declined", "sig-hangup", "sig-hangup-failed",
	"media-connected", "media-ice-failed", "media-dtls-failed", "media-setup-timeout", "media-remote-closed", "media-lost",
}

func (e event) String() string { return eventNames[e] }

// step is what an event does to a call.
type step struct {
	to     phase
	reason Reason    // when to is phEnded
	send   sigType   // the signal the peer must hear; 0 for none
	why    sigReason // its reason field
	// noPath: no media path worked, perhaps through a relay that changed,
	// so the relays' last credentials are no fallback any more.
	noPath bool
}

// next is the state machine: what ev does to a call in phase p that went
// in direction dir. ok is false when ev does nothing there (out of place,
// or too late): the call stays as it is and nothing is sent.
func next(p phase, dir Direction, ev event) (s step, ok bool) {
	if p == phEnded {
		return step{}, false // every call ends exactly once
	}
	out, in := dir == DirectionOut, dir == DirectionIn
	unanswered := p == phCalling || p == phRinging // outgoing: no accept yet
	end := func(r Reason, send sigType, why sigReason) (step, bool) {
		return step{to: phEnded, reason: r, send: send, why: why}, true
	}
	noPath := func(r Reason) (step, bool) {
		return step{to: phEnded, reason: r, send: sigHangup, why: reasonFailed, noPath: true}, true
	}
	switch ev {
	case evHangup:
		switch {
		case out && unanswered:
			return end(ReasonCancelled, sigCancel, reasonNone)
		case in && p == phRinging:
			return end(ReasonDeclined, sigDecline, reasonDeclined)
		}
		return end(ReasonHangup, sigHangup, reasonNone)
	case evDecline:
		if in && p == phRinging {
			return end(ReasonDeclined, sigDecline, reasonDeclined)
		}
	case evAnswer:
		if in && p == phRinging {
			return step{to: phAnswering}, true
		}
	case evAnswered:
		if p == phAnswering {
			return step{to: phConnecting}, true
		}
	case evAnswerFailed:
		if p == phAnswering {
			return end(ReasonFailed, sigHangup, reasonFailed)
		}
	case evFail:
		return end(ReasonFailed, sigHangup, reasonFailed)
	case evInviteFailed:
		// The Signaler could not get the invite acknowledged within its
		// life: the callee's device is offline, unreachable or refused it.
		// The caller learns only "unavailable", as from a policy.
		if out && p == phCalling {
			return end(ReasonUnavailable, 0, reasonNone)
		}
	case evRingTimeout:
		switch {
		case out && unanswered:
			return end(ReasonMissed, sigCancel, reasonMissed)
		case in && p == phRinging:
			return end(ReasonMissed, sigDecline, reasonMissed)
		}
	case evClose:
		return end(ReasonHangup, sigHangup, reasonNone)

	case evRinging:
		if out && p == phCalling {
			return step{to: phRinging}, true
		}
	case evAccept:
		if out && unanswered {
			return step{to: phAnswering}, true
		}
	case evDeclined, evUnavailable, evMissed, evBusy:
		if out && unanswered {
			r := map[event]Reason{evDeclined: ReasonDeclined, evUnavailable: ReasonUnavailable, evMissed: ReasonMissed, evBusy: ReasonBusy}[ev]
			return end(r, 0, reasonNone)
		}
	case evCancel, evCancelMissed:
		if in {
			if ev == evCancelMissed {
				return end(ReasonMissed, 0, reasonNone)
			}
			return end(ReasonCancelled, 0, reasonNone)
		}
	case evCancelElsewhere, evCancelDeclined:
		// The device that answered gets the cancel too: only a device
		// still ringing stops.
		if in && p == phRinging {
			if ev == evCancelDeclined {
				return end(ReasonDeclined, 0, reasonNone)
			}
			return end(ReasonElsewhere, 0, reasonNone)
		}
	case evRemoteHangup:
		return end(ReasonRemoteHangup, 0, reasonNone)
	case evRemoteFailed:
		return end(ReasonFailed, 0, reasonNone)

	case evConnected:
		// Media may be up before the answer is recorded as applied: the
		// call then goes through connecting to active at once.
		if p == phAnswering || p == phConnecting {
			return step{to: phActive}, true
		}
	case evICEFailed:
		return noPath(ReasonICEFailed)
	case evDTLSFailed:
		return noPath(ReasonFailed)
	case evSetupTimeout:
		return noPath(ReasonTimeout)
	case evRemoteClosed:
		// The peer's DTLS close_notify: it hung up, and its signal may
		// still be on the way.
		return end(ReasonRemoteHangup, 0, reasonNone)
	case evMediaLost:
		return end(ReasonFailed, sigHangup, reasonFailed)
	}
	return step{}, false
}

// signalEvent is the event a decoded signal from the peer is; ok is false
// for signals that move no call (invite, candidate).
func signalEvent(sig signal) (event, bool) {
	switch sig.typ {
	case sigRinging:
		return evRinging, true
	case sigAccept:
		return evAccept, true
	case sigDecline:
		switch sig.reason {
		case reasonUnavailable:
			return evUnavailable, true
		case reasonMissed:
			return evMissed, true
		}
		return evDeclined, true
	case sigBusy:
		return evBusy, true
	case sigCancel:
		switch sig.reason {
		case reasonMissed:
			return evCancelMissed, true
		case reasonElsewhere:
			return evCancelElsewhere, true
		case reasonDeclined:
			return evCancelDeclined, true
		}
		return evCancel, true
	case sigHangup:
		if sig.reason == reasonFailed {
			return evRemoteFailed, true
		}
		return evRemoteHangup, true
	}
	return 0, false
}
