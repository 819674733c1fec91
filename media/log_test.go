package media

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// recordingHandler keeps every record it is handed, at or above min.
type recordingHandler struct {
	min   slog.Level
	attrs []slog.Attr

	mu   *sync.Mutex
	recs *[]slog.Record
}

func newRecordingHandler(min slog.Level) *recordingHandler {
	return &recordingHandler{min: min, mu: new(sync.Mutex), recs: new([]slog.Record)}
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.min }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.mu.Lock()
	*h.recs = append(*h.recs, r)
	h.mu.Unlock()
	return nil
}

func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &h2
}

func (h *recordingHandler) WithGroup(string) slog.Handler { return h }

func (h *recordingHandler) records() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]slog.Record(nil), *h.recs...)
}

func attrsOf(r slog.Record) map[string]string {
	m := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	return m
}

// TestPionLogsAtDebug: pion's warnings and errors (a remote's bad DTLS,
// discarded SRTP) reach the node's log at debug level only, with pion's
// scope and level as attributes; at info level nothing of pion's shows.
func TestPionLogsAtDebug(t *testing.T) {
	debug := newRecordingHandler(slog.LevelDebug)
	l := slogFactory{log: slog.New(debug)}.NewLogger("srtp")
	l.Error("discarding packet")
	l.Errorf("Failed to %s", "handshake")
	l.Warn("ICE check failed")
	l.Warnf("Failed to %s", "read")
	l.Info("info")
	l.Infof("info %d", 2)
	l.Debug("debug")
	l.Debugf("debug %d", 2)
	l.Trace("per packet")
	l.Tracef("per packet %d", 2)
	want := []struct{ msg, level string }{
		{"discarding packet", "error"}, {"Failed to handshake", "error"},
		{"ICE check failed", "warn"}, {"Failed to read", "warn"},
		{"info", "info"}, {"info 2", "info"}, {"debug", "debug"}, {"debug 2", "debug"},
	}
	recs := debug.records()
	if len(recs) != len(want) {
		t.Fatalf("%d records at debug level, want %d (trace below debug): %v", len(recs), len(want), recs)
	}
	for i, r := range recs {
		a := attrsOf(r)
		if r.Level != slog.LevelDebug || r.Message != want[i].msg || a["pion"] != "srtp" || a["pion_level"] != want[i].level {
			t.Errorf("record %d: %v %q %v; want DEBUG %q pion=srtp pion_level=%s", i, r.Level, r.Message, a, want[i].msg, want[i].level)
		}
	}

	trace := newRecordingHandler(levelTrace)
	slogFactory{log: slog.New(trace)}.NewLogger("sctp").Tracef("chunk %d", 1)
	if recs := trace.records(); len(recs) != 1 || recs[0].Level != levelTrace || attrsOf(recs[0])["pion_level"] != "trace" {
		t.Errorf("trace records %v, want one at %v", recs, levelTrace)
	}

	info := newRecordingHandler(slog.LevelInfo)
	l = slogFactory{log: slog.New(info)}.NewLogger("ice")
	l.Error("x")
	l.Errorf("x %d", 1)
	l.Warn("x")
	l.Warnf("x %d", 1)
	l.Info("x")
	if recs := info.records(); len(recs) != 0 {
		t.Errorf("pion logged at info level and above: %v", recs)
	}
}

// TestCallPionLogsAtDebug: a whole call, with pion's DTLS and SRTP
// teardown noise, logs nothing of pion's above debug level.
func TestCallPionLogsAtDebug(t *testing.T) {
	h := newRecordingHandler(slog.LevelDebug)
	log := slog.New(h)
	eA := newEngine(t, Config{Logger: log})
	eB := newEngine(t, Config{Logger: log})
	caller := newCall(t, eA, CallConfig{ID: "log-1", Outgoing: true, Source: Tone()})
	callee := newCall(t, eB, CallConfig{ID: "log-1", Source: Tone()})
	wA, wB := watch(t, caller), watch(t, callee)
	connect(t, caller, callee, nil)
	wA.wait(t, Connected, 10*time.Second)
	wB.wait(t, Connected, 10*time.Second)
	caller.Close()
	wB.wait(t, RemoteClosed, 10*time.Second)
	callee.Close()
	pion, warned := 0, 0
	for _, r := range h.records() {
		a := attrsOf(r)
		if _, ok := a["pion"]; !ok {
			continue
		}
		pion++
		if a["pion_level"] == "warn" || a["pion_level"] == "error" {
			warned++
		}
		if r.Level > slog.LevelDebug {
			t.Errorf("pion logged at %v: %q %v", r.Level, r.Message, attrsOf(r))
		}
	}
	if pion == 0 {
		t.Error("no pion log lines at all: the engine does not route pion's logs")
	}
	t.Logf("%d pion lines, %d of them pion warnings or errors, all at debug", pion, warned)
}
