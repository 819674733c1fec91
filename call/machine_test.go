package call

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/turn"
)

// The state machine's specification: what every event does in every
// phase, per direction. An event not listed for a phase does nothing
// there: the call stays as it is and the peer hears nothing.
func transitions() map[[3]int]step {
	to := func(p phase) step { return step{to: p} }
	ends := func(r Reason) step { return step{to: phEnded, reason: r} }
	endsTelling := func(r Reason, t sigType, why sigReason) step {
		return step{to: phEnded, reason: r, send: t, why: why}
	}
	noPath := func(r Reason) step {
		return step{to: phEnded, reason: r, send: sigHangup, why: reasonFailed, noPath: true}
	}
	hangup := endsTelling(ReasonHangup, sigHangup, reasonNone)
	failed := endsTelling(ReasonFailed, sigHangup, reasonFailed)

	// Whatever a live call is doing, these end it.
	anyLive := map[event]step{
		evFail:         failed,
		evClose:        hangup,
		evRemoteHangup: ends(ReasonRemoteHangup),
		evRemoteFailed: ends(ReasonFailed),
		evICEFailed:    noPath(ReasonICEFailed),
		evDTLSFailed:   noPath(ReasonFailed),
		evSetupTimeout: noPath(ReasonTimeout),
		evRemoteClosed: ends(ReasonRemoteHangup),
		evMediaLost:    failed,
	}
	with := func(m map[event]step) map[event]step { return merge(anyLive, m) }
	outUnanswered := map[event]step{
		evHangup:      endsTelling(ReasonCancelled, sigCancel, reasonNone),
		evRingTimeout: endsTelling(ReasonMissed, sigCancel, reasonMissed),
		evAccept:      to(phAnswering),
		evDeclined:    ends(ReasonDeclined),
		evUnavailable: ends(ReasonUnavailable),
		evMissed:      ends(ReasonMissed),
		evBusy:        ends(ReasonBusy),
	}
	calling := with(outUnanswered)
	calling[evRinging] = to(phRinging)
	calling[evInviteFailed] = ends(ReasonUnavailable)
	// Cancels come only from a caller.
	inCancel := map[event]step{evCancel: ends(ReasonCancelled), evCancelMissed: ends(ReasonMissed)}

	spec := map[phase]map[Direction]map[event]step{
		phCalling: {DirectionOut: calling},
		phRinging: {
			DirectionOut: with(outUnanswered),
			DirectionIn: with(merge(inCancel, map[event]step{
				evHangup:      endsTelling(ReasonDeclined, sigDecline, reasonDeclined),
				evDecline:     endsTelling(ReasonDeclined, sigDecline, reasonDeclined),
				evAnswer:      to(phAnswering),
				evRingTimeout: endsTelling(ReasonMissed, sigDecline, reasonMissed),
				// Another device of the account answered or declined;
				// only a device still ringing hears of it.
				evCancelElsewhere: ends(ReasonElsewhere),
				evCancelDeclined:  ends(ReasonDeclined),
			})),
		},
		phAnswering: {
			DirectionOut: with(map[event]step{evHangup: hangup, evAnswered: to(phConnecting), evAnswerFailed: failed, evConnected: to(phActive)}),
			DirectionIn:  with(merge(inCancel, map[event]step{evHangup: hangup, evAnswered: to(phConnecting), evAnswerFailed: failed, evConnected: to(phActive)})),
		},
		phConnecting: {
			DirectionOut: with(map[event]step{evHangup: hangup, evConnected: to(phActive)}),
			DirectionIn:  with(merge(inCancel, map[event]step{evHangup: hangup, evConnected: to(phActive)})),
		},
		phActive: {
			DirectionOut: with(map[event]step{evHangup: hangup}),
			DirectionIn:  with(merge(inCancel, map[event]step{evHangup: hangup})),
		},
		phEnded: {DirectionOut: {}, DirectionIn: {}}, // every call ends exactly once
	}
	out := map[[3]int]step{}
	for p, dirs := range spec {
		for d, evs := range dirs {
			for e, s := range evs {
				out[key(p, d, e)] = s
			}
		}
	}
	return out
}

func merge(a, b map[event]step) map[event]step {
	out := map[event]step{}
	for e, s := range a {
		out[e] = s
	}
	for e, s := range b {
		out[e] = s
	}
	return out
}

func key(p phase, d Direction, e event) [3]int {
	di := 0
	if d == DirectionIn {
		di = 1
	}
	return [3]int{int(p), di, int(e)}
}

// TestTransitions checks every event in every phase, both directions,
// against the specification above: what happens, and nothing else.
func TestTransitions(t *testing.T) {
	spec := transitions()
	checked := 0
	for p := range numPhases {
		for _, d := range []Direction{DirectionOut, DirectionIn} {
			if p == phCalling && d == DirectionIn {
				continue // an incoming call starts ringing
			}
			for e := range numEvents {
				want, wantOK := spec[key(p, d, e)]
				got, ok := next(p, d, e)
				checked++
				switch {
				case ok != wantOK:
					t.Errorf("%s %s call, %s: applies %v (%s), want %v", d, p, e, ok, fmtStep(got), wantOK)
				case ok && got != want:
					t.Errorf("%s %s call, %s: %s, want %s", d, p, e, fmtStep(got), fmtStep(want))
				}
			}
		}
	}
	if want := (int(numPhases)*2 - 1) * int(numEvents); checked != want {
		t.Errorf("checked %d cases, want %d", checked, want)
	}
}

func fmtStep(s step) string {
	out := "→ " + s.to.String()
	if s.reason != "" {
		out += " (" + string(s.reason) + ")"
	}
	if s.send != 0 {
		out += fmt.Sprintf(", sends %s(%d)", s.send, s.why)
	}
	if s.noPath {
		out += ", forgets relay credentials"
	}
	return out
}

// TestSignalEvents: each signal the peer may send is one event.
func TestSignalEvents(t *testing.T) {
	cases := []struct {
		sig  signal
		want event
		ok   bool
	}{
		{signal{typ: sigInvite}, 0, false},
		{signal{typ: sigCandidate}, 0, false},
		{signal{typ: sigRinging}, evRinging, true},
		{signal{typ: sigAccept}, evAccept, true},
		{signal{typ: sigDecline, reason: reasonDeclined}, evDeclined, true},
		{signal{typ: sigDecline, reason: reasonUnavailable}, evUnavailable, true},
		{signal{typ: sigDecline, reason: reasonMissed}, evMissed, true},
		{signal{typ: sigBusy}, evBusy, true},
		{signal{typ: sigCancel}, evCancel, true},
		{signal{typ: sigCancel, reason: reasonMissed}, evCancelMissed, true},
		{signal{typ: sigCancel, reason: reasonElsewhere}, evCancelElsewhere, true},
		{signal{typ: sigCancel, reason: reasonDeclined}, evCancelDeclined, true},
		{signal{typ: sigHangup}, evRemoteHangup, true},
		{signal{typ: sigHangup, reason: reasonFailed}, evRemoteFailed, true},
	}
	for _, c := range cases {
		if got, ok := signalEvent(c.sig); got != c.want || ok != c.ok {
			t.Errorf("%s(%d) = %s, %v; want %s, %v", c.sig.typ, c.sig.reason, got, ok, c.want, c.ok)
		}
	}
	for k, want := range map[media.EventKind]event{
		media.Connected: evConnected, media.ICEFailed: evICEFailed, media.DTLSFailed: evDTLSFailed,
		media.SetupTimeout: evSetupTimeout, media.RemoteClosed: evRemoteClosed,
	} {
		if got, ok := mediaEvent(k); !ok || got != want {
			t.Errorf("media %s = %s, %v; want %s", k, got, ok, want)
		}
	}
	for _, k := range []media.EventKind{media.Closed, media.SetupFailed, ""} {
		if _, ok := mediaEvent(k); ok {
			t.Errorf("media %q moves a call; only a Bridge ends with it", k)
		}
	}
}

// TestShownStates: what the API sees of a call's phases. An answer being
// applied shows no change; media up before the answer is recorded still
// shows connecting before active; the end is shown once, by finish.
func TestShownStates(t *testing.T) {
	svc := &Service{log: slog.New(slog.DiscardHandler), creds: credCache{m: map[peer.ID]turn.Credentials{}}}
	run := func(dir Direction, evs ...event) (shown []State, c *Call) {
		c = newCall(svc, callID{1}, "csa1peer", dir, false)
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, e := range evs {
			c.applyLocked(e, time.Now())
		}
		for len(c.changes) > 0 {
			shown = append(shown, (<-c.changes).State)
		}
		return shown, c
	}
	cases := []struct {
		dir   Direction
		evs   []event
		shown []State
		state State
	}{
		{DirectionOut, []event{evRinging, evAccept, evAnswered, evConnected}, []State{StateRinging, StateConnecting, StateActive}, StateActive},
		{DirectionOut, []event{evAccept}, nil, StateCalling}, // accept before ringing: still calling until applied
		{DirectionOut, []event{evRinging, evAccept, evConnected, evAnswered}, []State{StateRinging, StateConnecting, StateActive}, StateActive},
		{DirectionIn, []event{evAnswer}, nil, StateRinging},
		{DirectionIn, []event{evAnswer, evAnswered, evConnected}, []State{StateConnecting, StateActive}, StateActive},
		{DirectionIn, []event{evAnswer, evRemoteClosed, evAnswered}, nil, StateEnded},
	}
	for _, c := range cases {
		shown, call := run(c.dir, c.evs...)
		if !slices.Equal(shown, c.shown) || call.State() != c.state {
			t.Errorf("%s call after %v: showed %v, now %s; want %v, now %s", c.dir, c.evs, shown, call.State(), c.shown, c.state)
		}
		if c.state == StateActive && call.Info().Active.IsZero() {
			t.Errorf("%s call after %v: active without an Active time", c.dir, c.evs)
		}
	}
}
