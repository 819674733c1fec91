package web_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

// TestDisappearingMessages: Alice turns on disappearing messages in her
// conversation with Bob from the header's menu (30 seconds). Both pages
// say so in a line across the conversation ("You set …" in hers, "Alice
// set …" in Bob's) and show the timer in the header, and Bob's menu has
// it checked. Her next message shows in both pages with a timer mark, and
// then, once its time is up and not before, goes from both pages by
// itself, from the chat lists' previews too; neither node lists it any
// more. She turns the timer off: both pages say so, the badge goes, and
// the next message has no timer mark. She sets a day: Bob's messages
// carry the timer too, and her page reloaded shows it all the same.
//
// With CALLSIGN_SCREENSHOTS set to a directory, it also saves Alice's
// view of the conversation with the timer on there as
// chat-timer-desktop.png.
func TestDisappearingMessages(t *testing.T) {
	n := testnet.New(t, 3, testnet.Options{Web: web.FS()})
	alice, bob := n.Nodes[1], n.Nodes[2]
	ctx := ctxT(t, 5*time.Minute)
	claimAndBefriend(t, ctx, alice, bob)
	a := browser.OpenApp(t, "alice", alice.Dir)
	b := browser.OpenApp(t, "bob", bob.Dir)
	for _, tab := range []*browser.Tab{a, b} {
		tab.Viewport(1280, 800, false)
		tab.Timeout = 60 * time.Second // messages cross between two nodes on a busy machine
	}
	// Both open the conversation, empty yet, once the app has read its
	// lists again on the event stream's opening (a list drawn again under
	// the pointer would lose the click).
	for tab, peer := range map[*browser.Tab]string{a: "Bob", b: "Alice"} {
		tab.WaitJS("the lists read again once the event stream is open", `performance.getEntriesByType("resource").some((e) => new URL(e.name).pathname === "/api/v1/contacts")`)
		tab.Click("link", "Contacts")
		tab.ClickLike("link", peer)
		tab.Click("link", "Message")
		tab.WaitJS("the conversation open", `document.getElementById("timer-button") !== null`)
	}

	// Off at first: the menu checks "Off", the header has no badge.
	a.Click("button", "Disappearing messages")
	a.WaitJS("the timer menu, Off checked", checked+` === "Off"`)
	if browser.Eval[string](a, badge) != "" {
		t.Errorf("a timer badge in the header before any timer was set")
	}
	a.Click("menuitemradio", "30 seconds")
	a.WaitJS("the menu closed", `document.querySelector(".timer-menu") === null`)
	a.WaitJS("alice's line: she set the timer", systemLine("You set disappearing messages to 30 seconds"))
	b.WaitJS("bob's line: alice set the timer", systemLine("Alice set disappearing messages to 30 seconds"))
	for _, tab := range []*browser.Tab{a, b} {
		tab.WaitJS("the badge in the header: 30 seconds", badge+`.includes("30 seconds")`)
	}
	// The chat lists have the conversation now, the change as its last word.
	a.WaitJS("alice's chat list: the change", preview("You set disappearing messages to 30 seconds"))
	b.WaitJS("bob's chat list: the change", preview("Alice set disappearing messages to 30 seconds"))
	// Seen in the open conversation, it is read: no unread count.
	check.Eventually(t, 30*time.Second, func() error {
		cs, err := bob.Client.Conversations(ctx)
		for _, c := range cs {
			if c.Unread != 0 {
				err = fmt.Errorf("%d unread from %s", c.Unread, c.PeerName)
			}
		}
		return err
	})
	b.WaitJS("no unread count in bob's chat list", `document.querySelector(".row-link .badge") === null`)
	if k := browser.Eval[int](b, `document.querySelectorAll(".messages .msg-system .bubble, .messages .msg-system .msg-actions").length`); k != 0 {
		t.Errorf("the timer change shows as a bubble with a menu in bob's page")
	}
	// Bob's menu knows the timer the other side set.
	b.Click("button", "Disappearing messages")
	b.WaitJS("bob's timer menu, 30 seconds checked", checked+` === "30 seconds"`)
	b.Press("Escape")
	b.WaitJS("the menu closed, the focus back on its button", `document.querySelector(".timer-menu") === null && document.activeElement.id === "timer-button"`)

	// A message sent now disappears by itself, from both sides.
	a.Fill("Message", "vanishing")
	a.Press("Enter")
	timed := msgItem("vanishing") + `.querySelector(".msg-expires")`
	for _, tab := range []*browser.Tab{a, b} {
		tab.WaitJS("the message with its timer mark", msgItem("vanishing")+` !== null && `+timed+` !== null && !`+msgItem("vanishing")+`.dataset.id.startsWith("tmp-")`)
	}
	sent := time.Now()
	id := browser.Eval[string](a, msgItem("vanishing")+`.dataset.id`)
	expires, err := time.Parse(time.RFC3339Nano, browser.Eval[string](a, timed+`.dataset.expires`))
	if err != nil {
		t.Fatalf("the message's expires_at: %v", err)
	}
	if left := time.Until(expires); left <= 0 || left > 31*time.Second {
		t.Errorf("the message expires in %v, want within 30 seconds of sending it", left)
	}
	// The chat lists show it as the last message meanwhile.
	for _, tab := range []*browser.Tab{a, b} {
		tab.Click("link", "Chats")
		tab.WaitJS("the message in the chat list", preview("vanishing"))
		tab.ClickLike("link", "vanishing")
		tab.WaitJS("the conversation again", msgItem("vanishing")+` !== null`)
	}
	for _, tab := range []*browser.Tab{a, b} {
		tab.Timeout = 90 * time.Second // its 30 seconds, then the node's sweep
		tab.WaitJS("the message gone by itself", msgItem("vanishing")+` === null && document.querySelector(".messages .msg[data-id='`+id+`']") === null`)
		if now := time.Now(); now.Before(expires.Add(-time.Second)) {
			t.Errorf("%s's page dropped the message %v before its time", tabName(tab, a), expires.Sub(now))
		}
		tab.Timeout = 60 * time.Second
		tab.WaitJS("the chat list's preview: the timer change before it", preview("set disappearing messages to 30 seconds")+` && !`+preview("vanishing"))
	}
	t.Logf("the message went from both pages %v after it was sent", time.Since(sent).Round(time.Second))
	for nd, peer := range map[*testnet.Node]string{alice: "Bob", bob: "Alice"} {
		p, err := nd.Client.Messages(ctx, peer, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			if m.ID == id || m.Text == "vanishing" {
				t.Errorf("the node of %s still lists the expired message: %+v", peer, m)
			}
		}
	}
	// The lines about the timer stay.
	b.WaitJS("bob's line still there", systemLine("Alice set disappearing messages to 30 seconds"))

	// Off: both pages say so, the badge goes, new messages stay.
	a.Click("button", "Disappearing messages")
	a.WaitJS("alice's timer menu, 30 seconds checked", checked+` === "30 seconds"`)
	a.Click("menuitemradio", "Off")
	a.WaitJS("alice's line: she turned it off", systemLine("You turned off disappearing messages"))
	b.WaitJS("bob's line: alice turned it off", systemLine("Alice turned off disappearing messages"))
	for _, tab := range []*browser.Tab{a, b} {
		tab.WaitJS("no badge in the header", badge+` === ""`)
	}
	a.Fill("Message", "staying")
	a.Press("Enter")
	for _, tab := range []*browser.Tab{a, b} {
		tab.WaitJS("the next message", msgItem("staying")+` !== null && !`+msgItem("staying")+`.dataset.id.startsWith("tmp-")`)
		if browser.Eval[bool](tab, msgItem("staying")+`.querySelector(".msg-expires") !== null`) {
			t.Errorf("%s's page marks a message sent with the timer off as disappearing", tabName(tab, a))
		}
	}

	// A day, set from Alice's page: Bob's messages disappear too.
	a.Click("button", "Disappearing messages")
	a.Click("menuitemradio", "1 day")
	b.WaitJS("bob's line: a day", systemLine("Alice set disappearing messages to 1 day"))
	b.WaitJS("bob's badge: a day", badge+`.includes("1 day")`)
	a.Fill("Message", "This chat now clears itself after a day.")
	a.Press("Enter")
	b.WaitJS("alice's message in bob's page", msgItem("This chat now clears itself after a day.")+` !== null`)
	if _, err := bob.Client.Send(ctx, "Alice", "Good idea. See you at the museum at 2!"); err != nil {
		t.Fatal(err)
	}
	a.WaitJS("bob's message with its timer mark in alice's page", msgItem("Good idea. See you at the museum at 2!")+`.querySelector(".msg-expires") !== null`)
	a.WaitJS("alice's badge: a day", badge+`.includes("1 day")`)
	// Reloaded, the page has the same from the node: the timer in the
	// header, the lines about it, the marks on the timed messages.
	a.GrantNotifications() // (no offer to turn them on in the picture)
	a.Reload()
	a.WaitJS("alice's badge after a reload", badge+`.includes("1 day")`)
	a.WaitJS("the lines after a reload", systemLine("You set disappearing messages to 30 seconds")+` && `+systemLine("You turned off disappearing messages")+` && `+systemLine("You set disappearing messages to 1 day"))
	a.WaitJS("the timer marks after a reload", msgItem("Good idea. See you at the museum at 2!")+`.querySelector(".msg-expires") !== null && `+msgItem("staying")+`.querySelector(".msg-expires") === null`)

	if dir := os.Getenv("CALLSIGN_SCREENSHOTS"); dir != "" {
		a.WaitJS("fonts", `document.fonts.status === "loaded"`)
		browser.Eval[bool](a, `(document.querySelector(".messages-scroll").scrollTo(0, 1e6), document.activeElement.blur(), true)`)
		mouse(t, a, moved, 1, 1)
		time.Sleep(300 * time.Millisecond) // let the scroll settle before the picture
		a.Screenshot(filepath.Join(dir, "chat-timer-desktop.png"))
	}
	for _, tab := range []*browser.Tab{a, b} {
		if errs := tab.Errors(); len(errs) > 0 {
			t.Errorf("page errors: %v", errs)
		}
	}
}

// The JavaScript for the header's timer badge text ("" when none), the
// checked choice of the open timer menu, a line of the conversation about
// the timer, and whether a chat list row's preview has some text.
const (
	badge   = `((e) => e ? e.textContent : "")(document.getElementById("timer-badge"))`
	checked = `((e) => e ? e.textContent : "")(document.querySelector(".timer-menu [role=menuitemradio][aria-checked=true]"))`
)

func systemLine(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll(".messages .msg-system")].some((e) => e.textContent === %q)`, text)
}

func preview(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll(".row-preview")].some((e) => e.textContent.includes(%q))`, text)
}

func tabName(tab, alices *browser.Tab) string {
	if tab == alices {
		return "alice"
	}
	return "bob"
}
