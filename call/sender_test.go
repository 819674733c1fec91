package call

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/media"
)

// offlineSignaler fails every signal, as msg does for a callee whose
// device can't be reached.
type offlineSignaler struct{}

func (offlineSignaler) SendSignal(context.Context, identity.AccountID, identity.DeviceID, []byte) error {
	return errors.New("signal not delivered: the device is offline")
}

// TestInviteUndelivered: a call whose invite the Signaler can't deliver
// ends at once as unavailable, as one the callee's policy refused; nothing
// rings later.
func TestInviteUndelivered(t *testing.T) {
	n := newFakeNet(t)
	a := newNode(t, n, func(c *Config) { c.Signal = offlineSignaler{} })
	b := newNode(t, n, nil)
	ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	if h := ended(t, ca, 10*time.Second); states(h) != "ended" || ca.Reason() != ReasonUnavailable {
		t.Fatalf("call went %s and ended %q, want straight to ended as unavailable", states(h), ca.Reason())
	}
	var r Record
	check.Until(t, 10*time.Second, "the caller's call log", func() bool {
		recs := a.log.records()
		if len(recs) == 0 {
			return false
		}
		r = recs[0]
		return true
	})
	if r.EndReason != ReasonUnavailable || r.Direction != DirectionOut {
		t.Fatalf("caller's record %+v, want an outgoing call ended unavailable", r)
	}
	if n := len(b.ev.events()); n != 0 {
		t.Fatalf("the callee heard of the call: %d events", n)
	}
}

// stallSignaler holds candidate signals as a Signaler to a peer that
// stopped answering would: until the caller cancels (a deadline alone
// does not release them), or the test ends.
type stallSignaler struct {
	Signaler
	release chan struct{}
	stalled atomic.Int32
}

func (s *stallSignaler) SendSignal(ctx context.Context, to identity.AccountID, dev identity.DeviceID, p []byte) error {
	if sig, err := decodeSignal(p); err == nil && sig.typ == sigCandidate {
		s.stalled.Add(1)
		select {
		case <-s.release:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				<-s.release
			}
		}
		return errors.New("stalled")
	}
	return s.Signaler.SendSignal(ctx, to, dev, p)
}

// TestHangupNotHeldBySlowSignal: a signal stuck on its way to the peer
// holds up neither the call's state machine nor the final signal: the
// caller hangs up, the call is torn down, and the callee hears the cancel.
func TestHangupNotHeldBySlowSignal(t *testing.T) {
	n := newFakeNet(t)
	stall := &stallSignaler{release: make(chan struct{})}
	defer close(stall.release)
	a := newNode(t, n, func(c *Config) {
		stall.Signaler = c.Signal
		c.Signal = stall
	})
	b := newNode(t, n, nil)
	ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	cb := b.incoming(t)
	waitState(t, ca, StateRinging, 10*time.Second)
	check.Until(t, 10*time.Second, "a candidate stuck on its way", func() bool { return stall.stalled.Load() > 0 })
	ca.Hangup()
	ended(t, ca, 30*time.Second)
	ended(t, cb, 30*time.Second)
	if ca.Reason() != ReasonCancelled || cb.Reason() != ReasonCancelled {
		t.Fatalf("reasons: caller %q, callee %q; want cancelled", ca.Reason(), cb.Reason())
	}
}
