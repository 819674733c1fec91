package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
	"github.com/callsign/callsign/web"
)

// TestScreenshots regenerates docs/screenshots: the app at desktop
// (1280×800) and phone (390×844) sizes with a few conversations, a
// contact's safety number and a call log. It runs only when
// CALLSIGN_SCREENSHOTS names the output directory:
//
//	CALLSIGN_SCREENSHOTS=$PWD/docs/screenshots go test ./web -run Screenshots
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("CALLSIGN_SCREENSHOTS")
	if dir == "" {
		t.Skip("set CALLSIGN_SCREENSHOTS to a directory to regenerate the screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := testnet.New(t, 4, testnet.Options{Web: web.FS(), Network: node.Network{RingTimeout: 2 * time.Second}})
	dana, alice, bob, carol := n.Nodes[0], n.Nodes[1], n.Nodes[2], n.Nodes[3]
	ctx := ctxT(t, 3*time.Minute)
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for nd, name := range map[*testnet.Node]string{alice: "alice", bob: "bob", carol: "carol", dana: "dana"} {
		must(nd.Client.Claim(ctx, name))
	}
	for _, pair := range []struct {
		a, b *testnet.Node
		as   string
	}{{alice, bob, "Bob Marley"}, {bob, alice, "Alice"}, {alice, carol, "Carol (work)"}, {carol, alice, ""}} {
		who := map[*testnet.Node]string{alice: "alice", bob: "bob", carol: "carol"}[pair.b]
		must(pair.a.Client.AddContact(ctx, who, pair.as))
	}
	must(alice.Client.Safety(ctx, "carol", true))
	must(alice.Client.ContactAction(ctx, "bob", "follow"))

	// A call log: an answered call, a missed one and a declined one.
	call := func(from, to *testnet.Node, toName, outcome string) {
		c, err := from.Client.Dial(ctx, api.CallRequest{To: toName, Audio: "tone"})
		must(c, err)
		var in api.Call
		check.Eventually(t, 30*time.Second, func() error {
			cs, err := to.Client.Calls(ctx, 5)
			if err != nil {
				return err
			}
			for _, x := range cs {
				if x.Direction == "in" && x.State == "ringing" {
					in = x
					return nil
				}
			}
			return fmt.Errorf("no ringing call")
		})
		switch outcome {
		case "answer":
			must(to.Client.CallAction(ctx, in.ID, "answer", &api.AnswerRequest{Audio: "tone"}))
			check.Eventually(t, 30*time.Second, func() error {
				x, err := from.Client.Call(ctx, c.ID)
				if err == nil && x.State != "active" {
					err = fmt.Errorf("call %s", x.State)
				}
				return err
			})
			time.Sleep(3 * time.Second) // a call of a few seconds, for its duration
			must(from.Client.CallAction(ctx, c.ID, "hangup", nil))
		case "decline":
			must(to.Client.CallAction(ctx, in.ID, "decline", nil))
		}
		check.Eventually(t, 30*time.Second, func() error {
			x, err := to.Client.Call(ctx, in.ID)
			if err == nil && x.State != "ended" {
				err = fmt.Errorf("call %s", x.State)
			}
			return err
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			cs, err := alice.Client.Calls(context.Background(), 3)
			t.Logf("alice's node's last calls at the failure: %+v (%v)", cs, err)
		}
	})
	call(alice, bob, "Bob Marley", "answer")
	call(carol, alice, "alice", "decline")
	call(bob, alice, "Alice", "answer")
	call(carol, alice, "alice", "miss")

	// Conversations, oldest first.
	// say sends a message and waits for its delivery, so that the
	// conversation reads in the order it was written.
	say := func(from *testnet.Node, to, text string) {
		t.Helper()
		m, err := from.Client.Send(ctx, to, text)
		must(m, err)
		check.Eventually(t, 30*time.Second, func() error {
			p, err := from.Client.MessagePage(ctx, to, api.PageRequest{Newest: true, Limit: 5})
			if err != nil {
				return err
			}
			for _, x := range p.Messages {
				if x.ID == m.ID && (x.State == "delivered" || x.State == "read") {
					return nil
				}
			}
			return fmt.Errorf("message %q not delivered yet", text)
		})
	}
	say(carol, "alice", "Did you get the slides for Thursday?")
	say(alice, "carol", "Yes, thanks! I'll review them tonight.")
	say(bob, "alice", "Hey Alice! Are you around this weekend?")
	say(alice, "Bob Marley", "Hi Bob! Mostly, yes. Saturday afternoon works best for me.")
	say(bob, "alice", "Perfect. There's a new exhibition at the harbour museum,\nwant to go?")
	say(alice, "Bob Marley", "I'd love to. Shall we meet at the café next door at 2?")
	say(bob, "alice", "Deal. I'll book the tickets.")
	say(alice, "Bob Marley", "Great, see you there!")
	say(dana, "alice", "Hi! We met at the meetup last week. I'm Dana.")
	say(carol, "alice", "Also: can you call me when you have a minute?")
	check.Eventually(t, 30*time.Second, func() error {
		convs, err := alice.Client.Conversations(ctx)
		if err != nil {
			return err
		}
		for _, c := range convs {
			if c.Last != nil && c.Last.Direction == "out" && c.Last.State != "delivered" && c.Last.State != "read" {
				return fmt.Errorf("%s: last message %s", c.PeerName, c.Last.State)
			}
		}
		return nil
	})
	ids := map[string]string{}
	for nd, name := range map[*testnet.Node]string{bob: "bob", carol: "carol"} {
		id, err := nd.Client.ID(ctx)
		must(id, err)
		ids[name] = id.Account
	}
	// Bob reads Alice's messages, so her ticks turn blue.
	must(nil, bob.Client.MarkRead(ctx, "alice", nil))

	shoot := func(tab *browser.Tab, name string) {
		t.Helper()
		tab.WaitJS("fonts and images", `document.fonts.status === "loaded" && [...document.images].every((i) => i.complete)`)
		tab.Screenshot(filepath.Join(dir, name+".png"))
	}
	for _, size := range []struct {
		w, h   int
		mobile bool
		suffix string
	}{{1280, 800, false, "desktop"}, {390, 844, true, "phone"}} {
		a := browser.OpenApp(t, "alice", alice.Dir)
		a.GrantNotifications()
		a.Viewport(size.w, size.h, size.mobile)
		a.Navigate(browser.AppURL(t, alice.Dir))
		a.WaitText("Carol (work)")
		if size.mobile {
			shoot(a, "chats-"+size.suffix)
		}
		a.ClickLike("link", "Great, see you there!")
		a.WaitJS("bob's messages read", `document.querySelectorAll(".msg.out .msg-state[data-state=read]").length > 0`)
		a.WaitJS("alice's unread messages read", `!document.querySelector("[data-peer='`+ids["bob"]+`'] .badge")`)
		shoot(a, "chat-"+size.suffix)
		if size.mobile {
			a.Click("link", "Back to chats")
		}
		a.Click("link", "Contacts")
		a.ClickLike("link", "Bob Marley")
		a.WaitJS("the safety number's QR code", `(() => { const i = document.querySelector(".safety img"); return i && i.naturalWidth > 0; })()`)
		browser.Eval[bool](a, `(document.querySelector(".profile-name").scrollIntoView({ block: "start" }), true)`)
		shoot(a, "contact-"+size.suffix)
		if size.mobile {
			a.Click("link", "Back to contacts")
		}
		a.Click("link", "Calls")
		a.WaitText("Missed call")
		a.WaitJS("the missed calls seen", `document.querySelector(".rail-item[data-section=calls] .badge").hidden`)
		shoot(a, "calls-"+size.suffix)

		// A video call, ringing at Bob's, then on Alice's screen.
		b := browser.OpenApp(t, "bob", bob.Dir)
		b.GrantNotifications()
		b.Viewport(size.w, size.h, size.mobile)
		b.Reload()
		a.Click("link", "Contacts")
		a.ClickLike("link", "Bob Marley")
		a.Click("button", "Video call")
		b.WaitFor("dialog", "Alice is calling")
		shoot(b, "incoming-"+size.suffix)
		b.Click("button", "Answer with video")
		a.WaitJS("bob's video", `document.querySelector(".remote-video").videoWidth > 0 && !document.querySelector(".local-video").hidden`)
		a.Click("button", "Call quality")
		a.WaitJS("a few seconds of quality figures", `/↑\d+/.test(document.querySelector(".quality-legend").textContent) && document.querySelector(".call-status").textContent >= "00:06"`)
		shoot(a, "call-"+size.suffix)
		a.Click("button", "Hang up")
		b.WaitJS("the call over at bob's", `window.callsign.pc === null`)
		a.Close()
		b.Close()

		fresh := n.Add(false)
		f := browser.OpenApp(t, "newcomer", fresh.Dir)
		f.Viewport(size.w, size.h, size.mobile)
		f.WaitJS("the QR code", `(() => { const i = document.querySelector("img[alt*='QR code']"); return i && i.naturalWidth > 0; })()`)
		shoot(f, "firstrun-"+size.suffix)
		f.Close()
	}
}
