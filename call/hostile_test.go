package call

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/media"
)

// TestHostileSignals throws garbage, oversized signals, signals for
// unknown calls and signals from the wrong account at a ringing callee:
// none of them changes the call, reaches the SDP parser or the user, and
// the call still connects afterwards.
func TestHostileSignals(t *testing.T) {
	n := newFakeNet(t)
	a, b := newNode(t, n, nil), newNode(t, n, nil)
	mallory := newAccount(t)
	ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	cb := b.incoming(t)
	id := cb.id
	var other callID
	other[0] = 0xff

	hostile := []struct {
		from    string
		payload []byte
	}{
		{"a", nil},
		{"a", []byte("garbage")},
		{"a", make([]byte, MaxSignalSize+1)},
		{"a", signal{typ: sigHangup, id: other}.marshal()},
		{"a", signal{typ: sigCandidate, id: other, cand: `{"candidate":"x"}`}.marshal()},
		{"a", signal{typ: sigAccept, id: id, sdp: "v=0"}.marshal()},      // accept is the callee's to send
		{"a", signal{typ: sigRinging, id: id}.marshal()},                 // so is ringing
		{"a", signal{typ: sigBusy, id: id}.marshal()},                    // and busy
		{"a", signal{typ: sigInvite, id: id, sdp: "v=0"}.marshal()},      // a duplicate invite
		{"a", signal{typ: sigHangup, id: id}.marshal()[:10]},             // truncated
		{"a", append(signal{typ: sigHangup, id: id}.marshal(), 0x30, 1)}, // unknown field
		{"mallory", signal{typ: sigHangup, id: id}.marshal()},            // right id, wrong account
		{"mallory", signal{typ: sigCancel, id: id}.marshal()},
		{"mallory", signal{typ: sigCandidate, id: id, cand: `{"candidate":"candidate:1 1 udp 1 192.0.2.1 9 typ host"}`}.marshal()},
	}
	for _, h := range hostile {
		from := a.id
		if h.from == "mallory" {
			from = mallory
		}
		b.svc.HandleSignal(from, identity.DeviceID{}, h.payload)
	}
	// A flood from a stranger is dropped without blocking the caller.
	start := time.Now()
	junk := bytes.Repeat([]byte{0x08}, 100)
	for range 10 * inboxSize {
		b.svc.HandleSignal(mallory, identity.DeviceID{}, junk)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("HandleSignal blocked for %v under a flood", d)
	}
	// A marker signal processed after all of the above: a candidate from
	// alice for the real call, which the callee holds until it answers.
	cand := `{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}`
	polls := 0
	check.Until(t, 5*time.Second, "the marker signal", func() bool {
		if polls%20 == 0 { // resend: the flood may have filled the queue
			b.svc.HandleSignal(a.id, identity.DeviceID{}, signal{typ: sigCandidate, id: id, cand: cand}.marshal())
		}
		polls++
		cb.mu.Lock()
		defer cb.mu.Unlock()
		for _, c := range cb.pending {
			if c == cand {
				return true
			}
		}
		return false
	})

	if cb.State() != StateRinging || ca.State() != StateRinging {
		t.Fatalf("hostile signals changed the call: callee %s (%s), caller %s", cb.State(), cb.Reason(), ca.State())
	}
	if b.eng.ParseCount() != 0 {
		t.Errorf("hostile signals reached the SDP parser %d times", b.eng.ParseCount())
	}
	for _, ev := range b.ev.events() {
		if ev.Call.ID != ca.ID() {
			t.Errorf("the callee was told of %+v", ev)
		}
	}
	if err := b.svc.Answer(cb.ID(), AnswerOptions{Source: media.Tone()}); err != nil {
		t.Fatal(err)
	}
	connectAndCheck(t, ca, cb, media.PathDirect, nil)
}

// TestBadSDP: an admitted caller whose offer is invalid rings, but
// answering fails cleanly and the caller is told; a callee whose answer is
// invalid gets the same treatment from the caller.
func TestBadSDP(t *testing.T) {
	n := newFakeNet(t)
	b := newNode(t, n, nil)
	ghost := newAccount(t)
	var id callID
	id[0] = 7
	b.svc.HandleSignal(ghost, identity.DeviceID{}, signal{typ: sigInvite, id: id, sdp: "v=0\r\nnot an offer"}.marshal())
	cb := b.incoming(t)
	err := b.svc.Answer(cb.ID(), AnswerOptions{Source: media.Tone()})
	if !errors.Is(err, media.ErrBadSDP) {
		t.Errorf("Answer of a bad offer: %v, want ErrBadSDP", err)
	}
	ended(t, cb, 5*time.Second)
	if cb.Reason() != ReasonFailed {
		t.Errorf("callee ended with %q, want failed", cb.Reason())
	}

	// The caller side: the "callee" answers garbage.
	a := newNode(t, n, nil)
	var sent []signal
	n.tap(func(from, to identity.AccountID, sig signal) {
		if from == a.id {
			sent = append(sent, sig)
		}
	})
	ca, err := a.svc.Dial(dialCtx(t), ghost, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	a.svc.HandleSignal(ghost, identity.DeviceID{}, signal{typ: sigAccept, id: ca.id, sdp: "v=0\r\ngarbage"}.marshal())
	ended(t, ca, 5*time.Second)
	if ca.Reason() != ReasonFailed {
		t.Errorf("caller ended with %q, want failed", ca.Reason())
	}
	check.Until(t, 5*time.Second, "hangup(failed) to the callee", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, s := range sent {
			if s.typ == sigHangup && s.reason == reasonFailed && s.id == ca.id {
				return true
			}
		}
		return false
	})
}
