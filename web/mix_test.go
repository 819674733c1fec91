package web_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/media/mediatest"
	"github.com/callsign/callsign/node"
)

// flowing is JavaScript that is true when the page had received audio
// packets and decoded video frames already and, sampled once a second for
// three seconds, both grew every second: media flowed into the page for
// three seconds or more. (Without media at the first sample, the first
// second's growth could have begun just before its end, and tests that
// compare a call's length to it saw two seconds of media, not three.)
const flowing = `(async () => {
	const pc = window.callsign.pc;
	if (!pc) return false;
	const sample = async () => {
		let audio = 0, frames = 0;
		(await pc.getStats()).forEach((r) => {
			if (r.type !== "inbound-rtp") return;
			if (r.kind === "audio") audio = r.packetsReceived || 0;
			if (r.kind === "video") frames = r.framesDecoded || 0;
		});
		return [audio, frames];
	};
	let prev = await sample();
	if (!(prev[0] > 0 && prev[1] > 0)) return false;
	for (let i = 0; i < 3; i++) {
		await new Promise((r) => setTimeout(r, 1000));
		const cur = await sample();
		if (!(cur[0] > prev[0] && cur[1] > prev[1])) return false;
		prev = cur;
	}
	return true;
})()`

// lastCall is the newest entry of a node's call log.
func lastCall(t *testing.T, nd *testnet.Node) api.Call {
	t.Helper()
	var c api.Call
	check.Eventually(t, 30*time.Second, func() error {
		log, err := nd.Client.Calls(ctxT(t, 10*time.Second), 5)
		if err != nil || len(log) == 0 || log[0].State != "ended" {
			return fmt.Errorf("call log %+v, %v", log, err)
		}
		c = log[0]
		return nil
	})
	return c
}

// TestVideoCall: Bob starts a video call from his page; Alice's page
// rings; she answers with video; for three seconds both pages receive
// audio packets and decode video frames; Bob's mute stops his outbound
// audio; his hang-up ends the call on both pages; both call logs show it
// with its path.
func TestVideoCall(t *testing.T) {
	alice, bob := newNet(t)
	contacts(t, alice, bob)
	a := browser.OpenApp(t, "alice", alice.Dir)
	b := browser.OpenApp(t, "bob", bob.Dir)

	b.Click("link", "Contacts")
	b.ClickLike("link", "alice")
	b.Click("button", "Video call")
	a.WaitFor("dialog", "bob is calling")
	a.Click("button", "Answer with video")
	for _, tab := range []*browser.Tab{a, b} {
		tab.WaitJS("audio and video flowing into the page for three seconds", flowing)
	}

	b.Click("button", "Mute")
	b.WaitJS("no audio leaving bob's tab", `(async () => !(await `+growing(rtp("audio", "outbound-rtp", "packetsSent"), 1200, 2)+`))()`)

	a.RecordText()
	b.RecordText()
	b.Click("button", "Hang up")
	b.WaitSeen("You hung up")
	a.WaitSeen("They hung up")
	for _, tab := range []*browser.Tab{a, b} {
		tab.WaitJS("the call's connection closed", `window.callsign.pc === null`)
	}
	for nd, want := range map[*testnet.Node]string{alice: "remote-hangup", bob: "hangup"} {
		if c := lastCall(t, nd); c.Path != "direct" || c.DurationS < 2.5 || c.EndReason != want {
			t.Errorf("call log entry %+v, want a direct call of about 3 s or more that ended %s", c, want)
		}
	}
	b.Click("button", "Close")
	b.Click("link", "Calls")
	b.WaitText("Outgoing · 00:")
	b.WaitText("direct")
}

// TestBrowserAndHeadless: a page calls a headless node that answers by
// itself and records: the recording decodes and holds about the frames
// its duration should; the headless node calls the page: it rings and,
// answered, shows the test pattern.
func TestBrowserAndHeadless(t *testing.T) {
	alice, bob := newNet(t)
	contacts(t, alice, bob)
	rec := t.TempDir()
	on := true
	if _, err := bob.Client.ChangeCallSettings(ctxT(t, 10*time.Second), api.CallSettingsChange{AutoAnswer: &on, RecordDir: &rec}); err != nil {
		t.Fatal(err)
	}
	a := browser.OpenApp(t, "alice", alice.Dir)
	a.Click("link", "Contacts")
	a.ClickLike("link", "bob")
	a.Click("button", "Video call")
	a.WaitJS("bob's tone and pattern in alice's page", flowing)
	a.Click("button", "Hang up")
	a.WaitJS("the call's connection closed", `window.callsign.pc === null`)
	c := lastCall(t, bob)
	// Media flowed into the page for three seconds or more, all of it
	// inside bob's call: his clock starts when his media path is up, before
	// anything reached the page, and stops when alice's hang-up reaches him.
	if c.Direction != "in" || c.DurationS < 2.9 {
		t.Fatalf("bob's log entry %+v", c)
	}
	audio, video := mediatest.Frames(t, filepath.Join(rec, c.ID+".ogg"), filepath.Join(rec, c.ID+".ivf"))
	// 20 ms Opus packets; Chromium's fake camera gives up to 30 frames per
	// second and fewer on a loaded machine; set-up takes a little.
	if want := c.DurationS * 50; float64(audio) < want*0.6 || float64(audio) > want*1.2 {
		t.Errorf("recorded %d audio packets of a %.1f s call, want about %.0f", audio, c.DurationS, want)
	}
	if float64(video) < c.DurationS*3 || float64(video) > c.DurationS*31 {
		t.Errorf("recorded %d video frames of a %.1f s call", video, c.DurationS)
	}

	// The headless node calls the page with its test pattern.
	off := false
	if _, err := bob.Client.ChangeCallSettings(ctxT(t, 10*time.Second), api.CallSettingsChange{AutoAnswer: &off}); err != nil {
		t.Fatal(err)
	}
	a.Click("button", "Close")
	if _, err := bob.Client.Dial(ctxT(t, 10*time.Second), api.CallRequest{To: "alice", Audio: "tone", Video: "pattern"}); err != nil {
		t.Fatal(err)
	}
	a.WaitFor("dialog", "bob is calling")
	a.Click("button", "Answer voice only")
	a.WaitJS("the test pattern decoded in the page", flowing)
	// The pattern is 320×240: the page shows what the headless node sent.
	a.WaitJS("the pattern's size", `document.querySelector(".remote-video").videoWidth === 320 && document.querySelector(".remote-video").videoHeight === 240`)
	a.Click("button", "Hang up")
	a.WaitJS("the call's connection closed", `window.callsign.pc === null`)
}

// TestStrangerCall: a stranger's call does not ring the page while Alice
// takes calls from contacts only (the stranger hears "unavailable"); once
// she takes calls from everyone, it rings, and answered it goes through
// the community node's relay, which the page shows.
func TestStrangerCall(t *testing.T) {
	alice, carol := newNet(t) // carol is not alice's contact
	a := browser.OpenApp(t, "alice", alice.Dir)
	a.WaitFor("link", "Chats")

	c, err := carol.Client.Dial(ctxT(t, 10*time.Second), api.CallRequest{To: "alice", Audio: "tone", Video: "pattern"})
	if err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, 30*time.Second, func() error {
		got, err := carol.Client.Call(ctxT(t, 10*time.Second), c.ID)
		if err != nil || got.State != "ended" {
			return fmt.Errorf("the stranger's refused call: %+v %v", got, err)
		}
		if got.EndReason != "unavailable" {
			t.Fatalf("the stranger's call ended %q, want unavailable", got.EndReason)
		}
		return nil
	})
	if a.Has("dialog", "bob is calling") || browser.Eval[bool](a, `document.querySelector(".dialog.incoming") !== null`) {
		t.Fatal("a stranger's call rang although alice takes calls from contacts only")
	}

	everyone := node.CallsEveryone
	if _, err := alice.Client.ChangeCallSettings(ctxT(t, 10*time.Second), api.CallSettingsChange{Policy: &everyone}); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Client.Dial(ctxT(t, 10*time.Second), api.CallRequest{To: "alice", Audio: "tone", Video: "pattern"}); err != nil {
		t.Fatal(err)
	}
	a.WaitJS("the stranger's call ringing", `document.querySelector(".dialog.incoming") !== null`)
	a.Click("button", "Answer voice only")
	a.WaitJS("the stranger's media in the page", flowing)
	a.WaitText("Relay")
	a.Click("button", "Hang up")
	a.WaitJS("the call's connection closed", `window.callsign.pc === null`)
	if got := lastCall(t, carol); got.Path != "relay" {
		t.Errorf("the stranger's call took the %q path, want relay", got.Path)
	}
}
