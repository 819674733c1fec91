package call

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/media/mediatest"
)

func dialCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestDirectCall is the main story: alice calls bob, bob's phone rings, he
// answers, audio and video flow both ways over a direct path, both record
// what they hear and see, alice hangs up, and both call logs say so.
func TestDirectCall(t *testing.T) {
	n := newFakeNet(t)
	a, b := newNode(t, n, nil), newNode(t, n, nil)
	dirA, dirB := t.TempDir(), t.TempDir()
	src := media.Sources(media.Tone(), media.Pattern())
	parsedB := b.eng.ParseCount()

	ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: src, RecordDir: dirA})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	cb := b.incoming(t)
	waitState(t, ca, StateRinging, 5*time.Second)
	if cb.ID() != ca.ID() || cb.Peer() != a.id || ca.Peer() != b.id {
		t.Fatalf("ids: caller %s→%s, callee %s from %s", ca.ID(), ca.Peer(), cb.ID(), cb.Peer())
	}
	if got := b.eng.ParseCount(); got != parsedB {
		t.Errorf("callee parsed %d SDPs while ringing, want none before answering", got-parsedB)
	}
	if evs := b.ev.events(); len(evs) == 0 || evs[0].Kind != EventIncoming || evs[0].Call.ID != ca.ID() || evs[0].Call.Peer != a.id {
		t.Errorf("callee's first event %+v, want incoming-call from alice", evs)
	}
	if err := b.svc.Answer(cb.ID(), AnswerOptions{Source: src, RecordDir: dirB}); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	if err := b.svc.Answer(cb.ID(), AnswerOptions{}); !errors.Is(err, ErrNotRinging) {
		t.Errorf("second Answer: %v, want ErrNotRinging", err)
	}
	waitState(t, ca, StateActive, 10*time.Second)
	waitState(t, cb, StateActive, 10*time.Second)
	check.Until(t, 5*time.Second, "media both ways", func() bool {
		return ca.Stats().Setup > 0 && cb.Stats().Setup > 0
	})
	// A call of at least a second and a half (the log's duration says so
	// below) with fifty packets each way, however long a busy machine
	// takes for them.
	activeAt := time.Now()
	check.Until(t, 60*time.Second, "fifty packets each way on both sides", func() bool {
		a, b := ca.Stats(), cb.Stats()
		return min(a.PacketsSent, a.PacketsReceived, b.PacketsSent, b.PacketsReceived) >= 50 && time.Since(activeAt) >= 1500*time.Millisecond
	})
	stA, stB := ca.Stats(), cb.Stats()
	for name, st := range map[string]Stats{"caller": stA, "callee": stB} {
		t.Logf("%s: %+v", name, st)
		if st.Path != media.PathDirect {
			t.Errorf("%s path %q, want direct", name, st.Path)
		}
		if st.PacketsSent < 50 || st.PacketsReceived < 50 || st.BytesSent == 0 || st.BytesReceived == 0 {
			t.Errorf("%s: media did not flow both ways: %+v", name, st)
		}
		if st.Setup > 5*time.Second {
			t.Errorf("%s setup took %v", name, st.Setup)
		}
	}
	if calls := a.svc.Calls(); len(calls) != 1 || calls[0] != ca {
		t.Errorf("caller's Calls() = %v, want the call", calls)
	}

	ca.Hangup()
	ha, hb := ended(t, ca, 10*time.Second), ended(t, cb, 10*time.Second)
	if got, want := states(ha), "ringing,connecting,active,ended"; got != want {
		t.Errorf("caller states %s, want %s", got, want)
	}
	if got, want := states(hb), "connecting,active,ended"; got != want {
		t.Errorf("callee states %s, want %s", got, want)
	}
	if ca.Reason() != ReasonHangup || cb.Reason() != ReasonRemoteHangup {
		t.Errorf("reasons: caller %q, callee %q; want hangup, remote-hangup", ca.Reason(), cb.Reason())
	}
	if len(a.svc.Calls()) != 0 || len(b.svc.Calls()) != 0 {
		t.Error("ended calls still listed by Calls()")
	}

	// The call logs.
	ra, rb := a.record(t, ca.ID()), b.record(t, cb.ID())
	for name, r := range map[string]Record{"caller": ra, "callee": rb} {
		if r.Path != media.PathDirect || r.Duration < time.Second || r.PacketsReceived == 0 || r.PacketsSent == 0 || r.Blocked {
			t.Errorf("%s log record %+v", name, r)
		}
	}
	if ra.Direction != DirectionOut || ra.Peer != string(b.id) || ra.EndReason != ReasonHangup {
		t.Errorf("caller record %+v", ra)
	}
	if rb.Direction != DirectionIn || rb.Peer != string(a.id) || rb.EndReason != ReasonRemoteHangup {
		t.Errorf("callee record %+v", rb)
	}

	// The recordings hold about as many frames as the talk time.
	for name, c := range map[string]*Call{"caller": ca, "callee": cb} {
		r := ra
		if c == cb {
			r = rb
		}
		audio, video := c.Recordings()
		na, nv := mediatest.Frames(t, audio, video)
		wantA := int(r.Duration / (20 * time.Millisecond))
		wantV := int(r.Duration.Seconds() * 15)
		t.Logf("%s recorded %d audio frames (talk time %v: ~%d) and %d video frames (~%d)", name, na, r.Duration, wantA, nv, wantV)
		if na < wantA*6/10 || na > wantA*11/10 {
			t.Errorf("%s recorded %d audio frames, want about %d", name, na, wantA)
		}
		if nv < wantV*5/10 || nv > wantV*12/10 {
			t.Errorf("%s recorded %d video frames, want about %d", name, nv, wantV)
		}
	}

	// Every state change reached OnEvent, in order, ending with ended.
	evs := a.ev.events()
	if len(evs) == 0 || evs[len(evs)-1].Call.State != StateEnded || evs[len(evs)-1].Call.Reason != ReasonHangup {
		t.Errorf("caller's events end with %+v", evs)
	}
}

// activeAudioCall places an audio-only call from a to b, which answers it
// automatically, and waits until it is active.
func activeAudioCall(t *testing.T) (n *fakeNet, a, b *tnode, ca *Call) {
	t.Helper()
	n = newFakeNet(t)
	a = newNode(t, n, nil)
	b = newNode(t, n, func(c *Config) {
		c.AutoAnswer = func() (bool, string) { return true, "" }
		c.AutoAnswerSource = media.Tone()
	})
	ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, ca, StateActive, 10*time.Second)
	return n, a, b, ca
}

// TestCalleeHangsUp: the callee ends an active call; the caller hears
// remote-hangup. An audio-only call, auto-answered.
func TestCalleeHangsUp(t *testing.T) {
	_, _, b, ca := activeAudioCall(t)
	check.Until(t, 5*time.Second, "audio both ways", func() bool { return ca.Stats().Setup > 0 })
	if err := b.svc.Hangup(ca.ID()); err != nil {
		t.Fatalf("callee Hangup: %v", err)
	}
	ended(t, ca, 10*time.Second)
	if ca.Reason() != ReasonRemoteHangup {
		t.Errorf("caller ended with %q, want remote-hangup", ca.Reason())
	}
	if r := b.record(t, ca.ID()); r.EndReason != ReasonHangup || r.Direction != DirectionIn {
		t.Errorf("callee record %+v", r)
	}
	if err := b.svc.Hangup(ca.ID()); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("Hangup of an ended call: %v, want ErrUnknownCall", err)
	}
}

// TestRemoteHangupRacesDTLSClose: the callee hangs up an active call, and
// its hangup signal races its DTLS close to the caller. Here the signal is
// lost, so the caller's engine detects the close alone: the call still
// ends remote-hangup, exactly once, without a hangup back, and the signal
// arriving late changes nothing. (TestCalleeHangsUp is the race as it
// usually goes.)
func TestRemoteHangupRacesDTLSClose(t *testing.T) {
	n, a, b, ca := activeAudioCall(t)
	var fromA []signal
	n.tap(func(from, _ identity.AccountID, sig signal) {
		if from == a.id {
			fromA = append(fromA, sig) // under n.mu
		}
	})
	n.loseSignals(func(from, _ identity.AccountID, sig signal) bool { return from == b.id && sig.typ == sigHangup })
	if err := b.svc.Hangup(ca.ID()); err != nil {
		t.Fatal(err)
	}
	h := ended(t, ca, 10*time.Second)
	lost := n.lostSignals()
	if len(lost) != 1 {
		t.Fatalf("%d hangups lost, want 1: the caller did not learn from the DTLS close alone", len(lost))
	}
	if ca.Reason() != ReasonRemoteHangup || states(h) != "ringing,connecting,active,ended" {
		t.Errorf("caller ended %q after %s, want remote-hangup after ringing,connecting,active", ca.Reason(), states(h))
	}
	a.svc.handle(inbound{from: b.id, payload: lost[0]}) // the hangup, late
	if r := a.record(t, ca.ID()); r.EndReason != ReasonRemoteHangup {
		t.Errorf("caller's record %+v, want remote-hangup", r)
	}
	records, endings := 0, 0
	for _, r := range a.log.records() {
		if r.ID == ca.ID() {
			records++
		}
	}
	for _, ev := range a.ev.events() {
		if ev.Call.ID == ca.ID() && ev.Call.State == StateEnded {
			endings++
		}
	}
	if records != 1 || endings != 1 || ca.Reason() != ReasonRemoteHangup {
		t.Errorf("after the late hangup: %d records, %d ended events, reason %q; want 1, 1, remote-hangup", records, endings, ca.Reason())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, sig := range fromA {
		if sig.typ == sigHangup {
			t.Errorf("the caller answered the DTLS close with a %s(%d)", sig.typ, sig.reason)
		}
	}
}

// TestDecline: the callee declines; the caller hears declined, and the
// callee never parsed the offer.
func TestDecline(t *testing.T) {
	n := newFakeNet(t)
	a, b := newNode(t, n, nil), newNode(t, n, nil)
	ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	cb := b.incoming(t)
	if err := b.svc.Decline(cb.ID()); err != nil {
		t.Fatal(err)
	}
	ended(t, ca, 5*time.Second)
	ended(t, cb, 5*time.Second)
	if ca.Reason() != ReasonDeclined || cb.Reason() != ReasonDeclined {
		t.Errorf("reasons: caller %q, callee %q; want declined", ca.Reason(), cb.Reason())
	}
	if b.eng.ParseCount() != 0 {
		t.Errorf("callee parsed %d SDPs for a declined call", b.eng.ParseCount())
	}
	if err := a.svc.Decline(ca.ID()); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("Decline of an ended call: %v", err)
	}
}

// TestCancelWhileRinging: the caller gives up before an answer; the
// callee's phone stops ringing, both log "cancelled", and the callee never
// parsed the offer.
func TestCancelWhileRinging(t *testing.T) {
	n := newFakeNet(t)
	a, b := newNode(t, n, nil), newNode(t, n, nil)
	ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	cb := b.incoming(t)
	waitState(t, ca, StateRinging, 5*time.Second)
	ca.Hangup()
	ha, hb := ended(t, ca, 5*time.Second), ended(t, cb, 5*time.Second)
	if ca.Reason() != ReasonCancelled || cb.Reason() != ReasonCancelled {
		t.Errorf("reasons: caller %q, callee %q; want cancelled", ca.Reason(), cb.Reason())
	}
	if states(ha) != "ringing,ended" || states(hb) != "ended" {
		t.Errorf("states: caller %s, callee %s", states(ha), states(hb))
	}
	if r := b.record(t, ca.ID()); r.EndReason != ReasonCancelled || r.Duration != 0 || r.Path != "" {
		t.Errorf("callee record %+v", r)
	}
	if b.eng.ParseCount() != 0 {
		t.Errorf("callee parsed %d SDPs", b.eng.ParseCount())
	}
	if err := b.svc.Answer(cb.ID(), AnswerOptions{}); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("Answer after cancel: %v, want ErrUnknownCall", err)
	}
}

// TestBusy: a second caller reaches someone already in a call and hears
// busy; the first call is untouched, and the callee's log shows the
// attempt. Dialling out while in a call fails too.
func TestBusy(t *testing.T) {
	n := newFakeNet(t)
	a, b, c := newNode(t, n, nil), newNode(t, n, nil), newNode(t, n, nil)
	ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	cb := b.incoming(t)
	cc, err := c.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	ended(t, cc, 5*time.Second)
	if cc.Reason() != ReasonBusy {
		t.Errorf("second caller ended with %q, want busy", cc.Reason())
	}
	if r := b.record(t, cc.ID()); r.EndReason != ReasonBusy || r.Peer != string(c.id) || r.Blocked {
		t.Errorf("callee's record of the busy attempt: %+v", r)
	}
	if cb.State() != StateRinging || ca.State() != StateRinging {
		t.Errorf("first call disturbed: callee %s, caller %s", cb.State(), ca.State())
	}
	if _, err := b.svc.Dial(dialCtx(t), c.id, DialOptions{}); !errors.Is(err, ErrInCall) {
		t.Errorf("Dial while ringing: %v, want ErrInCall", err)
	}
	if _, err := a.svc.Dial(dialCtx(t), a.id, DialOptions{}); !errors.Is(err, ErrSelf) {
		t.Errorf("Dial self: %v, want ErrSelf", err)
	}
	if len(b.svc.Calls()) != 1 {
		t.Errorf("callee lists %d calls, want 1", len(b.svc.Calls()))
	}
}

// TestMissed: nobody answers within the ring timeout, so both ends give up
// with "missed"; a callee whose node never answers is missed as well.
func TestMissed(t *testing.T) {
	n := newFakeNet(t)
	short := func(c *Config) { c.RingTimeout = 300 * time.Millisecond }
	a, b := newNode(t, n, short), newNode(t, n, func(c *Config) { c.RingTimeout = 400 * time.Millisecond })
	ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	cb := b.incoming(t)
	ended(t, ca, 5*time.Second)
	ended(t, cb, 5*time.Second)
	if ca.Reason() != ReasonMissed || cb.Reason() != ReasonMissed {
		t.Errorf("reasons: caller %q, callee %q; want missed", ca.Reason(), cb.Reason())
	}
	if r := b.record(t, ca.ID()); r.EndReason != ReasonMissed || r.Direction != DirectionIn {
		t.Errorf("callee record %+v", r)
	}
	if r := a.record(t, ca.ID()); r.EndReason != ReasonMissed || r.Direction != DirectionOut {
		t.Errorf("caller record %+v", r)
	}

	// The callee's side times out first: it tells the caller.
	a2, b2 := newNode(t, n, func(c *Config) { c.RingTimeout = 5 * time.Second }), newNode(t, n, short)
	ca2, err := a2.svc.Dial(dialCtx(t), b2.id, DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ended(t, ca2, 3*time.Second)
	if ca2.Reason() != ReasonMissed {
		t.Errorf("caller ended with %q after the callee's timeout, want missed", ca2.Reason())
	}

	// An account with no node online: the invite goes nowhere.
	ghost := newAccount(t)
	cg, err := a.svc.Dial(dialCtx(t), ghost, DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := ended(t, cg, 5*time.Second)
	if cg.Reason() != ReasonMissed || states(h) != "ended" {
		t.Errorf("call to an offline account: %q, states %s", cg.Reason(), states(h))
	}
}

// TestCloseEndsCalls: closing a node ends its calls and tells the other
// side, which hears remote-hangup.
func TestCloseEndsCalls(t *testing.T) {
	n := newFakeNet(t)
	a := newNode(t, n, nil)
	b := newNode(t, n, func(c *Config) { c.AutoAnswer = func() (bool, string) { return true, "" } })
	ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, ca, StateActive, 10*time.Second)
	var cb *Call
	check.Until(t, 5*time.Second, "callee call", func() bool {
		if cs := b.svc.Calls(); len(cs) == 1 {
			cb = cs[0]
			return true
		}
		return false
	})
	if err := b.svc.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cb.Done():
	default:
		t.Fatal("Close returned before the call ended")
	}
	if cb.Reason() != ReasonHangup {
		t.Errorf("callee ended with %q, want hangup", cb.Reason())
	}
	ended(t, ca, 5*time.Second)
	if ca.Reason() != ReasonRemoteHangup {
		t.Errorf("caller ended with %q, want remote-hangup", ca.Reason())
	}
	if _, err := b.svc.Dial(dialCtx(t), a.id, DialOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial after Close: %v, want ErrClosed", err)
	}
	_ = b.svc.Close() // idempotent
}
