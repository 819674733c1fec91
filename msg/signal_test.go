package msg

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
)

type signalSink struct {
	mu  sync.Mutex
	got [][]byte
	src []identity.AccountID
}

func (s *signalSink) on(from identity.AccountID, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, append([]byte(nil), p...))
	s.src = append(s.src, from)
}

func (s *signalSink) snapshot() ([][]byte, []identity.AccountID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.got...), append([]identity.AccountID(nil), s.src...)
}

// TestSignals: call signals travel inside the session, in order, once each,
// reach OnSignal (never the conversation), and still reach it from a
// blocked sender so the call policy can refuse and log the call.
func TestSignals(t *testing.T) {
	var sink signalSink
	a, b := pair(t, func(c *Config) { c.OnSignal = sink.on })
	ctx := context.Background()
	a.send(b, "a text first") // the session exists; signals share its order
	payloads := [][]byte{[]byte("invite"), []byte("candidate-1"), []byte("candidate-2"), bytes.Repeat([]byte{7}, MaxSignal)}
	for _, p := range payloads {
		if err := a.svc.SendSignal(ctx, b.id(), p); err != nil {
			t.Fatal(err)
		}
	}
	check.Until(t, 20*time.Second, "every signal at b", func() bool { got, _ := sink.snapshot(); return len(got) >= len(payloads) })
	got, src := sink.snapshot()
	if len(got) != len(payloads) {
		t.Fatalf("%d signals arrived, want %d (a duplicate?)", len(got), len(payloads))
	}
	for i := range payloads {
		if !bytes.Equal(got[i], payloads[i]) || src[i] != a.id() {
			t.Fatalf("signal %d: %d bytes from %s", i, len(got[i]), src[i])
		}
	}
	if n := len(b.messages(a.id())); n != 1 {
		t.Fatalf("signals were stored as messages: %d messages", n)
	}
	check.Until(t, 10*time.Second, "a's outbox drained", func() bool { return len(a.outbox()) == 0 })

	if err := a.svc.SendSignal(ctx, b.id(), make([]byte, MaxSignal+1)); !errors.Is(err, ErrSignalTooLarge) {
		t.Fatalf("oversized signal: %v", err)
	}
	if err := a.svc.SendSignal(ctx, b.id(), nil); !errors.Is(err, ErrSignalTooLarge) {
		t.Fatalf("empty signal: %v", err)
	}

	// Blocked: texts are dropped, signals still reach OnSignal.
	b.pol.set(a.id(), Drop)
	a.send(b, "dropped text")
	if err := a.svc.SendSignal(ctx, b.id(), []byte("invite from a blocked caller")); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 20*time.Second, "the blocked caller's signal", func() bool { got, _ := sink.snapshot(); return len(got) == len(payloads)+1 })
	check.Until(t, 10*time.Second, "a's outbox drained", func() bool { return len(a.outbox()) == 0 })
	if n := len(b.messages(a.id())); n != 1 {
		t.Fatalf("a blocked sender's text was stored: %d messages", n)
	}
}
