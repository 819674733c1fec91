package web_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/testnet"
)

// rtp is JavaScript that reads a counter of the live call's RTP stream of
// kind (audio, video) and type (inbound-rtp, outbound-rtp) from the tab's
// own peer connection (window.callsign.pc): what really goes over the wire.
func rtp(kind, typ, field string) string {
	return fmt.Sprintf(`(async () => {
		const pc = window.callsign.pc;
		if (!pc) return -1;
		let n = 0;
		(await pc.getStats()).forEach((r) => { if (r.type === %q && r.kind === %q) n = r[%q] || 0; });
		return n;
	})()`, typ, kind, field)
}

// growing is JavaScript that is true when the counter grows by more than
// min within ms milliseconds, measured in the page.
func growing(counter string, ms, min int) string {
	return fmt.Sprintf(`(async () => {
		const a = await %s;
		await new Promise((r) => setTimeout(r, %d));
		return (await %s) - a > %d;
	})()`, counter, ms, counter, min)
}

// contacts makes alice and bob each other's contacts, as calls between
// strangers go through a relay the test network has no need of.
func contacts(t *testing.T, alice, bob *testnet.Node) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	if _, err := alice.Client.AddContact(ctx, "bob", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.AddContact(ctx, "alice", ""); err != nil {
		t.Fatal(err)
	}
}

// TestCall: Bob calls Alice from his page and she answers from hers; sound
// flows both ways over each tab's connection to its node; muting stops
// Bob's outgoing audio packets (not just silences them); his camera turns
// on in the voice call and reaches Alice; the screen shows the duration,
// the path and the quality figures; hanging up ends it on both pages.
func TestCall(t *testing.T) {
	alice, bob := newNet(t)
	contacts(t, alice, bob)
	t.Cleanup(func() {
		if t.Failed() {
			cs, err := bob.Client.Calls(context.Background(), 3)
			t.Logf("bob's node's calls at the failure: %+v (%v)", cs, err)
		}
	})
	a := browser.OpenApp(t, "alice", alice.Dir)
	b := browser.OpenApp(t, "bob", bob.Dir)

	b.Click("link", "Contacts")
	b.ClickLike("link", "alice")
	b.Click("button", "Voice call")
	b.WaitJS("bob's call ringing", `document.querySelector(".call-status").textContent.startsWith("Ringing")`)

	a.WaitFor("dialog", "bob is calling")
	a.Click("button", "Answer voice only")
	for _, tab := range []*browser.Tab{a, b} {
		tab.WaitJS("the tab's connection to its node", `window.callsign.pc && window.callsign.pc.connectionState === "connected"`)
		tab.WaitJS("the call active, with its duration", `/^\d\d:\d\d$/.test(document.querySelector(".call-status").textContent)`)
		tab.WaitJS("sound from the other side", growing(rtp("audio", "inbound-rtp", "packetsReceived"), 1000, 10))
	}
	b.WaitText("Direct")
	if a.Has("dialog", "bob is calling") {
		t.Errorf("alice's page still rings after she answered")
	}

	// Mute: no more audio packets leave Bob's tab, and none reach Alice.
	b.Click("button", "Mute")
	b.WaitJS("the mute button pressed", `document.querySelector("[aria-label=Mute]").getAttribute("aria-pressed") === "true"`)
	b.WaitJS("no audio leaving bob's tab", `(async () => !(await `+growing(rtp("audio", "outbound-rtp", "packetsSent"), 1200, 2)+`))()`)
	a.WaitJS("no audio from bob reaching alice", `(async () => !(await `+growing(rtp("audio", "inbound-rtp", "packetsReceived"), 1200, 2)+`))()`)
	b.Click("button", "Mute")
	a.WaitJS("bob's audio back at alice", growing(rtp("audio", "inbound-rtp", "packetsReceived"), 1000, 10))

	// Camera on in a voice call: Bob sees his preview, Alice his video.
	b.Click("button", "Camera")
	b.WaitJS("bob's camera preview", `!document.querySelector(".local-video").hidden && document.querySelector(".local-video").videoWidth > 0`)
	a.WaitJS("bob's video at alice", `!document.querySelector(".remote-video").hidden && document.querySelector(".remote-video").videoWidth > 0`)
	b.Click("button", "Camera")
	b.WaitJS("bob's camera released", `document.querySelector(".local-video").hidden && !(window.callsign.pc.getSenders().some((s) => s.track && s.track.kind === "video"))`)
	b.WaitJS("no video leaving bob's tab", `(async () => !(await `+growing(rtp("video", "outbound-rtp", "packetsSent"), 1200, 2)+`))()`)

	// The quality graph shows the node's figures of the call.
	a.Click("button", "Call quality")
	a.WaitJS("the bitrate in the quality legend", `/↑\d+ ↓\d+ kbit\/s/.test(document.querySelector(".quality-legend").textContent)`)

	a.RecordText()
	b.RecordText()
	a.Click("button", "Hang up")
	b.WaitSeen("They hung up")
	a.WaitSeen("You hung up")
	for _, tab := range []*browser.Tab{a, b} {
		tab.WaitJS("the call's connection closed", `window.callsign.pc === null`)
	}
	if b.Has("button", "Close") {
		b.Click("button", "Close")
	}
	b.Click("link", "Calls")
	b.WaitText("Outgoing · 00:")
	for _, tab := range []*browser.Tab{a, b} {
		if errs := tab.Errors(); len(errs) > 0 {
			t.Errorf("page errors: %v", errs)
		}
	}
}

// TestCallDeclinedAndElsewhere: a declined call says so to the caller; a
// call answered in one of Alice's tabs stops ringing in her other one;
// closing the tab that took the call ends it for Bob.
func TestCallDeclinedAndElsewhere(t *testing.T) {
	alice, bob := newNet(t)
	contacts(t, alice, bob)
	a1 := browser.OpenApp(t, "alice", alice.Dir)
	a2 := browser.OpenApp(t, "alice's other tab", alice.Dir)
	b := browser.OpenApp(t, "bob", bob.Dir)
	b.Click("link", "Contacts")
	b.ClickLike("link", "alice")

	for _, tab := range []*browser.Tab{a1, a2, b} {
		tab.RecordText()
	}
	b.Click("button", "Video call")
	a1.WaitFor("dialog", "bob is calling")
	a2.WaitFor("dialog", "bob is calling")
	a1.Click("button", "Decline")
	b.WaitSeen("alice declined")
	a2.WaitJS("the other tab stops ringing", `!document.querySelector(".dialog.incoming")`)
	b.WaitJS("bob's call over", `window.callsign.pc === null`)
	if b.Has("button", "Close") {
		b.Click("button", "Close")
	}

	b.Click("button", "Video call")
	a1.WaitFor("dialog", "bob is calling")
	a2.WaitFor("dialog", "bob is calling")
	a2.Click("button", "Answer with video")
	a1.WaitSeen("Answered in another tab")
	if a1.Has("dialog", "bob is calling") {
		t.Errorf("alice's first tab still rings after her other tab answered")
	}
	b.WaitJS("bob sees alice's video", `document.querySelector(".remote-video").videoWidth > 0`)
	a2.Close()
	b.WaitJS("the call ends when alice's tab closes", `document.querySelector(".call-screen.ended") !== null`)
	b.WaitJS("bob's connection closed", `window.callsign.pc === null`)
}
