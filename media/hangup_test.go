package media

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestCalleeHangsUp: the callee hangs up; its node sends "hangup", the
// caller's node calls Hangup(ReasonRemoteHangup). Both end with the right
// reason whichever arrives first, the signal or the DTLS close.
func TestCalleeHangsUp(t *testing.T) {
	for _, waitForDTLS := range []bool{false, true} {
		name := "signal-races-dtls-close"
		if waitForDTLS {
			name = "dtls-close-first"
		}
		t.Run(name, func(t *testing.T) {
			eA, eB := newEngine(t, Config{}), newEngine(t, Config{})
			caller := newCall(t, eA, CallConfig{ID: "c", Outgoing: true, Source: Tone()})
			callee := newCall(t, eB, CallConfig{ID: "c", Source: Tone()})
			wA, wB := watch(t, caller), watch(t, callee)
			connect(t, caller, callee, nil)
			wA.wait(t, StateActive, 10*time.Second)
			wB.wait(t, StateActive, 10*time.Second)

			callee.Hangup(ReasonHangup)
			if waitForDTLS {
				// The caller learns from the DTLS close alone; the
				// signal arrives late and changes nothing.
				wA.wait(t, StateEnded, 10*time.Second)
			}
			caller.Hangup(ReasonRemoteHangup) // the node relays the hangup signal
			if got := wA.wait(t, StateEnded, 10*time.Second).Reason; got != ReasonRemoteHangup {
				t.Errorf("caller ended with %q, want %q", got, ReasonRemoteHangup)
			}
			if got := wB.wait(t, StateEnded, 10*time.Second).Reason; got != ReasonHangup {
				t.Errorf("callee ended with %q, want %q", got, ReasonHangup)
			}
			if caller.Reason() != ReasonRemoteHangup || callee.Reason() != ReasonHangup {
				t.Errorf("Reason() = %q / %q", caller.Reason(), callee.Reason())
			}
		})
	}
}

// TestEndBeforeAnswer covers the ends of a call that never connects:
// the callee declines or is busy, nobody answers, the caller cancels.
func TestEndBeforeAnswer(t *testing.T) {
	e := newEngine(t, Config{})
	for _, r := range []Reason{ReasonDeclined, ReasonBusy, ReasonMissed, ReasonCancelled} {
		t.Run(string(r), func(t *testing.T) {
			c := newCall(t, e, CallConfig{ID: "x", Outgoing: true, Source: Sources(Tone(), Pattern())})
			w := watch(t, c)
			if _, err := c.Offer(context.Background()); err != nil {
				t.Fatal(err)
			}
			c.Hangup(r)
			end := w.wait(t, StateEnded, 5*time.Second)
			if end.Reason != r || c.Reason() != r || c.State() != StateEnded {
				t.Errorf("ended with %q (Reason %q, State %s), want %q", end.Reason, c.Reason(), c.State(), r)
			}
			if got := statesOf(w.history()); !slices.Equal(got, []State{StateRinging, StateEnded}) {
				t.Errorf("states %v, want ringing, ended", got)
			}
			// The candidate channel is closed once the call ends.
			for range c.Candidates() {
			}
			if err := c.SetAnswer(golden(t, "answer.sdp")); !errors.Is(err, ErrEnded) {
				t.Errorf("SetAnswer after the end = %v, want ErrEnded", err)
			}
			if err := c.AddRemoteCandidate(`{"candidate":""}`); !errors.Is(err, ErrEnded) {
				t.Errorf("AddRemoteCandidate after the end = %v, want ErrEnded", err)
			}
		})
	}
}

func TestSignallingOrder(t *testing.T) {
	e := newEngine(t, Config{})
	caller := newCall(t, e, CallConfig{ID: "o", Outgoing: true})
	callee := newCall(t, e, CallConfig{ID: "o"})
	ctx := context.Background()
	if _, err := callee.Offer(ctx); !errors.Is(err, ErrWrongRole) {
		t.Errorf("callee Offer = %v, want ErrWrongRole", err)
	}
	if _, err := caller.Answer(ctx, golden(t, "offer.sdp")); !errors.Is(err, ErrWrongRole) {
		t.Errorf("caller Answer = %v, want ErrWrongRole", err)
	}
	if err := caller.SetAnswer(golden(t, "answer.sdp")); !errors.Is(err, ErrSignal) {
		t.Errorf("SetAnswer before Offer = %v, want ErrSignal", err)
	}
	if _, err := caller.Offer(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.Offer(ctx); !errors.Is(err, ErrSignal) {
		t.Errorf("second Offer = %v, want ErrSignal", err)
	}
	if _, err := e.NewCall(CallConfig{}); err == nil {
		t.Error("NewCall without an ID succeeded")
	}
}

// TestConnectTimeout: the remote vanishes after the answer; the call
// gives up instead of ringing forever.
func TestConnectTimeout(t *testing.T) {
	e := newEngine(t, Config{ConnectTimeout: 300 * time.Millisecond})
	eB := newEngine(t, Config{})
	caller := newCall(t, e, CallConfig{ID: "t", Outgoing: true})
	callee := newCall(t, eB, CallConfig{ID: "t"})
	w := watch(t, caller)
	offer, err := caller.Offer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	answer, err := callee.Answer(context.Background(), offer)
	if err != nil {
		t.Fatal(err)
	}
	callee.Hangup(ReasonHangup) // gone before any candidate was exchanged
	if err := caller.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
	if got := w.wait(t, StateEnded, 5*time.Second).Reason; got != ReasonTimeout {
		t.Errorf("ended with %q, want %q", got, ReasonTimeout)
	}
}

func TestEngineClose(t *testing.T) {
	e, err := NewEngine(Config{IPs: loopback})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.NewCall(CallConfig{ID: "a", Outgoing: true, Source: Tone()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Offer(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if c.State() != StateEnded || c.Reason() != ReasonHangup {
		t.Errorf("call after engine Close: %s/%s, want ended/hangup", c.State(), c.Reason())
	}
	if _, err := e.NewCall(CallConfig{ID: "b"}); !errors.Is(err, ErrClosed) {
		t.Errorf("NewCall after Close = %v, want ErrClosed", err)
	}
	_ = e.Close()
}

func TestNewEngineRejectsBadConfig(t *testing.T) {
	bad := map[string]Config{
		"half port range": {PortMin: 5000},
		"inverted range":  {PortMin: 6000, PortMax: 5000},
		"bad ice url":     {ICEServers: []ICEServer{{URLs: []string{"http://example.com"}}}},
		"no urls":         {ICEServers: []ICEServer{{}}},
		"negative wait":   {ConnectTimeout: -time.Second},
	}
	for name, cfg := range bad {
		if _, err := NewEngine(cfg); err == nil {
			t.Errorf("%s: NewEngine succeeded", name)
		}
	}
}
