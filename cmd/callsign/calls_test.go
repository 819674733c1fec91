package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
)

// callNode is a node whose contacts know bob, the callee.
func callNode() *fakeNode {
	f := newFakeNode()
	f.contacts = []api.Contact{{Account: "csa1bob", Petname: "bob"}}
	return f
}

// state moves call c1 to st, publishing the event the node would.
func (f *fakeNode) state(st, reason string) {
	f.mu.Lock()
	c := f.calls["c1"]
	f.mu.Unlock()
	c.State, c.EndReason = st, reason
	if st == "active" || st == "ended" {
		c.Path, c.SetupMS = "direct", 120
	}
	if st == "ended" {
		c.PacketsSent, c.PacketsReceived = 150, 148
	}
	f.setCall(c, true)
}

// TestCallFollowsEvents: call follows the call on the event stream, so it
// prints every state, ringing too, with the callee's petname; the
// figures come from the node once the call ended.
func TestCallFollowsEvents(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		f := callNode()
		dir := f.start(t)
		args := []string{"call", "bob", "--audio", "tone", "--data", dir}
		if asJSON {
			args = append(args, "--json")
		}
		b := startCLI(t, nil, args...)
		f.waitSubscribed(t)
		waitOutput(t, b.err, "calling bob\n")
		f.state("ringing", "")
		f.state("connecting", "")
		f.state("active", "")
		waitOutput(t, b.err, "connected (direct)\n")
		f.state("ended", "remote-hangup")
		if code := b.wait(t); code != exitOK {
			t.Fatalf("exit %d: %s", code, b.err)
		}
		if got, want := b.err.String(), "calling bob\nringing\nconnecting\nconnected (direct)\nended: remote-hangup\n"; got != want {
			t.Errorf("progress:\n%s\nwant:\n%s", got, want)
		}
		out := b.out.String()
		if asJSON {
			var res map[string]any
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
			}
			if res["id"] != "c1" || res["peer"] != "csa1bob" || res["peer_name"] != "bob" || res["state"] != "ended" ||
				res["end_reason"] != "remote-hangup" || res["path"] != "direct" || res["packets_sent"] != 150.0 || res["setup_ms"] != 120.0 {
				t.Errorf("call --json: %s", out)
			}
		} else if want := "call c1 with bob: ended (remote-hangup), path direct, setup 120 ms, packets sent 150, received 148\n"; out != want {
			t.Errorf("summary %q, want %q", out, want)
		}
		f.mu.Lock()
		gets, dialed := f.callInfoN, f.dialed
		f.mu.Unlock()
		if gets > 2 { // the path once active, the figures once ended
			t.Errorf("the CLI asked for the call %d times; it should follow events", gets)
		}
		if len(dialed) != 1 || dialed[0].To != "bob" || dialed[0].Audio != "tone" {
			t.Errorf("dialed %+v", dialed)
		}
	}
}

// TestCallHangsUp: --for hangs up that long after the call connects,
// Ctrl-C at once; either way the call is followed to its end.
func TestCallHangsUp(t *testing.T) {
	for _, byFor := range []bool{true, false} {
		f := callNode()
		f.onAction = func(id, action string) {
			if action == "hangup" {
				f.state("ended", "hangup")
			}
		}
		dir := f.start(t)
		args := []string{"call", "bob", "--data", dir}
		if byFor {
			args = append(args, "--for", "50ms")
		}
		b := startCLI(t, nil, args...)
		f.waitSubscribed(t)
		waitOutput(t, b.err, "calling bob\n")
		f.state("ringing", "")
		if byFor {
			f.state("active", "")
		} else {
			waitOutput(t, b.err, "ringing\n")
			b.cancel() // Ctrl-C
		}
		if code := b.wait(t); code != exitOK {
			t.Fatalf("exit %d: %s", code, b.err)
		}
		if got := f.actionsDone(); !reflect.DeepEqual(got, []string{"hangup c1"}) {
			t.Errorf("actions %v, want one hangup", got)
		}
		if !strings.HasSuffix(b.err.String(), "ended: hangup\n") || !strings.HasPrefix(b.out.String(), "call c1 with bob: ended (hangup)") {
			t.Errorf("stderr:\n%s\nstdout:\n%s", b.err, b.out)
		}
	}
}

// TestCallPollsWithoutStream: when the event stream drops, the call is
// followed by polling.
func TestCallPollsWithoutStream(t *testing.T) {
	defer func(d, g time.Duration) { callPollFallback, callPollGuard = d, g }(callPollFallback, callPollGuard)
	callPollFallback, callPollGuard = 20*time.Millisecond, time.Hour
	f := callNode()
	dir := f.start(t)
	b := startCLI(t, nil, "call", "bob", "--data", dir)
	f.waitSubscribed(t)
	waitOutput(t, b.err, "calling bob\n")
	f.state("ringing", "")
	waitOutput(t, b.err, "ringing\n")
	f.dropStreams()
	f.mu.Lock()
	c := f.calls["c1"]
	f.mu.Unlock()
	c.State, c.Path = "active", "relay"
	f.setCall(c, false)
	waitOutput(t, b.err, "connected (relay)\n")
	c.State, c.EndReason = "ended", "remote-hangup"
	f.setCall(c, false)
	if code := b.wait(t); code != exitOK {
		t.Fatalf("exit %d: %s", code, b.err)
	}
	if got, want := b.err.String(), "calling bob\nringing\nconnected (relay)\nended: remote-hangup\n"; got != want {
		t.Errorf("progress:\n%s\nwant:\n%s", got, want)
	}
}

// TestCallsList: calls shows each call's full ID, which answer, decline
// and hangup take, and the contact's petname.
func TestCallsList(t *testing.T) {
	f := callNode()
	f.log = []api.Call{
		{ID: "0123456789abcdef0123456789abcdef", Peer: "csa1bob", Direction: "in", State: "ringing", Start: t0},
		{ID: "fedcba9876543210fedcba9876543210", Peer: "csa1stranger", Direction: "out", State: "ended", EndReason: "hangup", Path: "relay", Start: t0, DurationS: 3},
	}
	f.calls["0123456789abcdef0123456789abcdef"] = f.log[0]
	dir := f.start(t)
	out, errs, code := runCLI(t, "calls", "--data", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || errs != "" || len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") ||
		!strings.HasPrefix(lines[1], "0123456789abcdef0123456789abcdef  ") || !strings.Contains(lines[1], " bob ") ||
		!strings.HasPrefix(lines[2], "fedcba9876543210fedcba9876543210  ") || !strings.Contains(lines[2], " csa1stranger ") {
		t.Errorf("calls: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	out, errs, code = runCLI(t, "calls", "--json", "--data", dir)
	var calls []api.Call
	if code != exitOK || json.Unmarshal([]byte(out), &calls) != nil || len(calls) != 2 || calls[0].PeerName != "bob" || calls[1].PeerName != "" {
		t.Errorf("calls --json: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	// answer without an ID picks the ringing call and names the caller.
	out, errs, code = runCLI(t, "answer", "--data", dir)
	if code != exitOK || out != "answered 0123456789abcdef0123456789abcdef (bob)\n" {
		t.Errorf("answer: exit %d, stderr %q, stdout %q", code, errs, out)
	}
}

// TestCallStateNeverGoesBack: a late event does not take the call back to
// an earlier state.
func TestCallStateNeverGoesBack(t *testing.T) {
	f := callNode()
	dir := f.start(t)
	b := startCLI(t, nil, "call", "bob", "--data", dir)
	f.waitSubscribed(t)
	waitOutput(t, b.err, "calling bob\n")
	f.state("active", "")
	waitOutput(t, b.err, "connected (direct)\n")
	f.state("ringing", "")
	f.state("ended", "remote-hangup")
	if code := b.wait(t); code != exitOK {
		t.Fatalf("exit %d: %s", code, b.err)
	}
	if got, want := b.err.String(), "calling bob\nconnected (direct)\nended: remote-hangup\n"; got != want {
		t.Errorf("progress:\n%s\nwant:\n%s", got, want)
	}
}
