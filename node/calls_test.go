package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/media/mediatest"
	"github.com/callsign/callsign/node"
)

func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

// waitCall polls a call until it reaches state.
func waitCall(t *testing.T, c *api.Client, id, state string) api.Call {
	t.Helper()
	var cur api.Call
	check.Eventually(t, 60*time.Second, func() error {
		var err error
		cur, err = c.Call(context.Background(), id)
		if err != nil {
			return err
		}
		if cur.State != state {
			return fmt.Errorf("call is %s (%s), want %s", cur.State, cur.EndReason, state)
		}
		return nil
	})
	return cur
}

// waitDirect waits for an active call to carry its media on a direct path.
// Two nodes side by side start direct, but on a busy machine the direct
// check can answer after the relay pair's acceptance wait (300 ms): the
// call then starts on the relay and moves to the direct pair within a few
// seconds (media/engine.go, renominationInterval). What a person would
// notice is a call that stays relayed.
func waitDirect(t *testing.T, c *api.Client, id string) api.Call {
	t.Helper()
	var cur api.Call
	check.Eventually(t, 20*time.Second, func() error {
		var err error
		if cur, err = c.Call(context.Background(), id); err != nil {
			return err
		}
		if cur.State != "active" || cur.Path != "direct" {
			return fmt.Errorf("call is %s on path %q, want active on the direct path", cur.State, cur.Path)
		}
		return nil
	})
	return cur
}

// TestCalls: a contact's call is answered automatically and recorded, with
// media both ways on a direct path; a caller outside the policy hears only
// "unavailable" and the callee's log shows the blocked call.
func TestCalls(t *testing.T) {
	net := testnet.New(t, 4, testnet.Options{})
	ctx := ctxT(t, 3*time.Minute)
	alice, bob := net.Nodes[1], net.Nodes[2]
	if _, err := alice.Client.AddContact(ctx, bob.Account().String(), "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.AddContact(ctx, alice.Account().String(), "alice"); err != nil {
		t.Fatal(err)
	}
	rec := t.TempDir()
	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{AutoAnswer: boolp(true), RecordDir: &rec}); err != nil {
		t.Fatal(err)
	}
	c, err := alice.Client.Dial(ctx, api.CallRequest{To: "bob", Audio: "tone", Video: "pattern"})
	if err != nil {
		t.Fatal(err)
	}
	waitCall(t, alice.Client, c.ID, "active")
	waitDirect(t, alice.Client, c.ID)
	// Media flows both ways: fifty packets each way and two seconds of
	// talk, however long a busy machine takes for them.
	activeAt := time.Now()
	check.Eventually(t, 60*time.Second, func() error {
		cur, err := alice.Client.Call(ctx, c.ID)
		if err != nil || cur.PacketsSent < 50 || cur.PacketsReceived < 50 || time.Since(activeAt) < 2*time.Second {
			return fmt.Errorf("call so far: %+v %v", cur, err)
		}
		return nil
	})
	if _, err := alice.Client.CallAction(ctx, c.ID, "hangup", nil); err != nil {
		t.Fatal(err)
	}
	end := waitCall(t, alice.Client, c.ID, "ended")
	if end.EndReason != "hangup" || end.PacketsSent < 50 || end.PacketsReceived < 50 || end.SetupMS <= 0 {
		t.Fatalf("caller's call: %+v", end)
	}
	var bobCall api.Call
	check.Eventually(t, 30*time.Second, func() error {
		log, err := bob.Client.Calls(ctx, 10)
		if err != nil || len(log) == 0 || log[0].State != "ended" {
			return fmt.Errorf("bob's log: %+v %v", log, err)
		}
		bobCall = log[0]
		return nil
	})
	if bobCall.ID != c.ID || bobCall.Direction != "in" || bobCall.EndReason != "remote-hangup" || bobCall.Path != "direct" {
		t.Fatalf("bob's log entry: %+v", bobCall)
	}
	audio, video := mediatest.Frames(t, rec+"/"+c.ID+".ogg", rec+"/"+c.ID+".ivf")
	// 20 ms Opus frames and 15 fps video for the talk time bob logged (at
	// least 2 s), give or take set-up.
	talk := bobCall.DurationS
	if wantA, wantV := talk*50, talk*15; float64(audio) < wantA*0.6 || float64(audio) > wantA*1.1 || float64(video) < wantV*0.5 || float64(video) > wantV*1.2 {
		t.Fatalf("recorded %d audio and %d video frames for %.1f s of talk", audio, video, talk)
	}

	// Bob takes calls from nobody: Alice hears only "unavailable".
	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{Policy: strp(node.CallsNobody)}); err != nil {
		t.Fatal(err)
	}
	c2, err := alice.Client.Dial(ctx, api.CallRequest{To: "bob", Audio: "tone"})
	if err != nil {
		t.Fatal(err)
	}
	if end := waitCall(t, alice.Client, c2.ID, "ended"); end.EndReason != "unavailable" {
		t.Fatalf("refused call ended %q", end.EndReason)
	}
	check.Eventually(t, 10*time.Second, func() error {
		log, err := bob.Client.Calls(ctx, 10)
		if err != nil || len(log) == 0 || !log[0].Blocked || log[0].Peer != alice.Account().String() {
			return fmt.Errorf("no blocked entry: %+v %v", log, err)
		}
		return nil
	})
	// A per-contact allow overrides "nobody".
	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{RuleName: "alice", Rule: "allow"}); err != nil {
		t.Fatal(err)
	}
	c3, err := alice.Client.Dial(ctx, api.CallRequest{To: "bob", Audio: "tone"})
	if err != nil {
		t.Fatal(err)
	}
	waitCall(t, alice.Client, c3.ID, "active")
	if _, err := bob.Client.CallAction(ctx, c3.ID, "hangup", nil); err != nil {
		t.Fatal(err)
	}
	if end := waitCall(t, alice.Client, c3.ID, "ended"); end.EndReason != "remote-hangup" {
		t.Fatalf("callee hangup: %+v", end)
	}
	// A stranger's call is let in by "everyone" but uses the public
	// node's TURN relay only, so the stranger never learns Bob's address.
	carol := net.Nodes[3]
	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{Policy: strp(node.CallsEveryone)}); err != nil {
		t.Fatal(err)
	}
	c4, err := carol.Client.Dial(ctx, api.CallRequest{To: bob.Account().String(), Audio: "tone"})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitCall(t, carol.Client, c4.ID, "active"); got.Path != "relay" {
		t.Fatalf("stranger's call path %q, want relay", got.Path)
	}
	if _, err := carol.Client.CallAction(ctx, c4.ID, "hangup", nil); err != nil {
		t.Fatal(err)
	}
	waitCall(t, carol.Client, c4.ID, "ended")

	// Bad input.
	if _, err := alice.Client.Dial(ctx, api.CallRequest{To: "bob", Audio: "/nonexistent.ogg"}); !api.IsCode(err, api.CodeBadRequest) {
		t.Fatalf("unreadable media: %v", err)
	}
	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{Policy: strp("friends")}); !api.IsCode(err, api.CodeBadRequest) {
		t.Fatalf("unknown policy: %v", err)
	}
	if _, err := bob.Client.CallAction(ctx, "ffffffffffffffffffffffffffffffff", "answer", nil); !api.IsCode(err, api.CodeNotFound) {
		t.Fatalf("unknown call: %v", err)
	}
}
