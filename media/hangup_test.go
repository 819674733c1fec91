package media

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestRemoteClose: the callee closes its connection; the caller's engine
// detects it from the DTLS close alone (RemoteClosed), reports nothing
// after it, and refuses further signalling. Whether that ends the call as
// remote-hangup, however it races the hangup signal, is package call's
// (call.TestRemoteHangupRacesDTLSClose).
func TestRemoteClose(t *testing.T) {
	eA, eB := newEngine(t, Config{}), newEngine(t, Config{})
	caller := newCall(t, eA, CallConfig{ID: "c", Outgoing: true, Source: Tone()})
	callee := newCall(t, eB, CallConfig{ID: "c", Source: Tone()})
	wA, wB := watch(t, caller), watch(t, callee)
	connect(t, caller, callee, nil)
	wA.wait(t, Connected, 10*time.Second)
	wB.wait(t, Connected, 10*time.Second)

	callee.Close()
	if got := wA.final(t, 10*time.Second); got.Kind != RemoteClosed {
		t.Errorf("caller detected %q, want %q", got.Kind, RemoteClosed)
	}
	if caller.Down() != RemoteClosed {
		t.Errorf("Down() = %q, want %q", caller.Down(), RemoteClosed)
	}
	if err := caller.AddRemoteCandidate(`{"candidate":""}`); !errors.Is(err, ErrEnded) {
		t.Errorf("AddRemoteCandidate after the remote closed = %v, want ErrEnded", err)
	}
	caller.Close()
	<-wA.done
	if got, want := kindsOf(wA.history()), []EventKind{Connected, RemoteClosed}; !slices.Equal(got, want) {
		t.Errorf("caller reported %v, want %v", got, want)
	}
	if got, want := kindsOf(wB.history()), []EventKind{Connected}; !slices.Equal(got, want) {
		t.Errorf("callee reported %v, want %v (its own close is no event)", got, want)
	}
}

// TestCloseBeforeAnswer: a connection closed before the remote answered
// (the call was declined, busy, missed or cancelled: package call decides
// which) reports nothing, closes its channels, and refuses the late
// answer and candidates.
func TestCloseBeforeAnswer(t *testing.T) {
	e := newEngine(t, Config{})
	c := newCall(t, e, CallConfig{ID: "x", Outgoing: true, Source: Sources(Tone(), Pattern())})
	w := watch(t, c)
	if _, err := c.Offer(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	<-w.done
	if h := w.history(); len(h) != 0 {
		t.Errorf("a connection closed before the answer reported %v", h)
	}
	for range c.Candidates() { // closed once Close has begun
	}
	if err := c.SetAnswer(golden(t, "answer.sdp")); !errors.Is(err, ErrEnded) {
		t.Errorf("SetAnswer after Close = %v, want ErrEnded", err)
	}
	if err := c.AddRemoteCandidate(`{"candidate":""}`); !errors.Is(err, ErrEnded) {
		t.Errorf("AddRemoteCandidate after Close = %v, want ErrEnded", err)
	}
	if st := c.Stats(); st.PacketsSent != 0 || st.Path != "" {
		t.Errorf("stats of a connection that never connected: %+v", st)
	}
	_ = c.Close() // idempotent
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

// TestConnectTimeout: the remote vanishes after the answer; the engine
// reports SetupTimeout instead of waiting forever.
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
	callee.Close() // gone before any candidate was exchanged
	if err := caller.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
	if got := w.final(t, 5*time.Second).Kind; got != SetupTimeout {
		t.Errorf("detected %q, want %q", got, SetupTimeout)
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
	if _, ok := <-c.Events(); ok {
		t.Error("an event after engine Close")
	}
	if err := c.AddRemoteCandidate(`{"candidate":""}`); !errors.Is(err, ErrEnded) {
		t.Errorf("AddRemoteCandidate after engine Close = %v, want ErrEnded", err)
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
