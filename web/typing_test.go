package web_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

// TestTypingIndicators: Alice and Bob, contacts, each with their chat
// open. With typing indicators off (the default), Alice types to Bob and
// his page never says "typing…", and her page tells her node nothing.
// Both turn the switch on in Settings → Notifications: when Alice types,
// Bob's page says "typing…" under her name in the chat's header and in
// her row of the chat list (italic, in the accent colour), and tells a
// screen reader once; she empties the box and it goes, well before it
// would go by itself; she types on for longer than an indicator lasts
// unrefreshed and it stays, told once; she sends, and Bob's page shows
// her message with the indicator gone.
func TestTypingIndicators(t *testing.T) {
	n := testnet.New(t, 3, testnet.Options{Web: web.FS()})
	alice, bob := n.Nodes[1], n.Nodes[2]
	ctx := ctxT(t, 4*time.Minute)
	claimAndBefriend(t, ctx, alice, bob)
	const first = "Are you free on Thursday?"
	if _, err := alice.Client.Send(ctx, "Bob", first); err != nil {
		t.Fatal(err)
	}
	a := browser.OpenApp(t, "alice", alice.Dir)
	b := browser.OpenApp(t, "bob", bob.Dir)
	for _, tab := range []*browser.Tab{a, b} {
		tab.GrantNotifications() // (no offer to turn them on over the list)
		tab.Reload()
		tab.Viewport(1280, 800, false)
		tab.Timeout = 60 * time.Second // messages cross between two nodes on a busy machine
		openChat(tab, first)
	}

	// Off on both: nothing shows, and Alice's page says nothing to her node.
	for nd, who := range map[*testnet.Node]string{alice: "alice", bob: "bob"} {
		if s, err := nd.Client.TypingSettings(ctx); err != nil || s.On {
			t.Fatalf("%s's typing indicators at first: %+v, %v; want off", who, s, err)
		}
	}
	b.RecordText()
	a.Fill("Message", "Thursday")
	time.Sleep(time.Second)
	a.Fill("Message", "Thursday works")
	time.Sleep(2 * time.Second) // time enough for a signal to cross, were one sent
	b.WaitJS("bob's page still has the conversation", msgItem(first)+` !== null`)
	if seen := browser.Eval[bool](b, `[...(window.__callsignSeen || [])].some((l) => l.includes("typing…")) || document.body.innerText.includes("typing…")`); seen {
		t.Errorf("bob's page showed \"typing…\" with typing indicators off")
	}
	if browser.Eval[bool](a, typingPosts) {
		t.Errorf("alice's page told her node she was typing with typing indicators off")
	}
	a.Fill("Message", "")

	// Both turn them on, in Settings.
	for tab, nd := range map[*browser.Tab]*testnet.Node{a: alice, b: bob} {
		tab.Click("link", "Settings")
		tab.Click("link", "Notifications")
		tab.WaitJS("the switch, off", `(() => { const e = document.getElementById("typing-switch"); return e && !e.disabled && !e.checked; })()`)
		tab.Click("switch", "Typing indicators")
		tab.WaitJS("the switch on", `(() => { const e = document.getElementById("typing-switch"); return e && !e.disabled && e.checked; })()`)
		check.Eventually(t, 10*time.Second, func() error {
			s, err := nd.Client.TypingSettings(ctx)
			if err == nil && !s.On {
				err = fmt.Errorf("still off")
			}
			return err
		})
		tab.Click("link", "Chats")
		openChat(tab, first)
	}

	// Alice types: Bob's page says so, in the header and the chat list,
	// and tells a screen reader.
	a.Fill("Message", "Thursday")
	b.WaitJS(`"typing…" in bob's header and chat list`, headerTyping+` && `+rowTyping)
	shown := time.Now()
	for what, sel := range map[string]string{"header's": ".chat-header .typing", "chat list's": ".row-preview .typing"} {
		style := browser.Eval[string](b, `((s) => s.fontStyle + " " + s.color)(getComputedStyle(document.querySelector("`+sel+`")))`)
		if accent := browser.Eval[string](b, `getComputedStyle(document.querySelector(".send-btn")).backgroundColor`); style != "italic "+accent {
			t.Errorf("the %s \"typing…\" is %q, want italic in the accent colour (%s)", what, style, accent)
		}
	}
	b.WaitJS("the screen reader told", liveRegion+`.textContent === "Alice is typing"`)
	if sub := browser.Eval[string](b, `document.querySelector(".chat-header .chat-sub").innerText`); strings.Contains(sub, "@alice") {
		t.Errorf("bob's header shows %q: the handle beside \"typing…\"", sub)
	}

	// She empties the box: her page says she stopped, at once, and Bob's
	// indicator goes, long before it would by itself.
	stopped(t, a, func() { a.Fill("Message", "") })
	b.WaitJS(`"typing…" gone from bob's page`, `!(`+headerTyping+`) && !(`+rowTyping+`) && document.querySelector(".chat-header .chat-sub").innerText.includes("@alice")`)
	if d := time.Since(shown); d > 6*time.Second {
		t.Errorf(`"typing…" went %v after alice emptied the box: it timed out, she never said she stopped`, d.Round(100*time.Millisecond))
	}

	// She types on for longer than an indicator lasts unrefreshed (8 s):
	// it stays, and the screen reader hears of it once.
	browser.Eval[bool](b, `(() => {
		const live = `+liveRegion+`;
		window.__told = 0;
		new MutationObserver(() => { if (live.textContent) window.__told++; }).observe(live, { childList: true, characterData: true, subtree: true });
		return true;
	})()`)
	const reply = "Thursday works, see you at the museum at 2"
	words := strings.Fields(reply)
	start := time.Now()
	for i := 1; i <= len(words); i++ {
		a.Fill("Message", strings.Join(words[:i], " "))
		if i == 1 {
			b.WaitJS(`"typing…" in bob's header again`, headerTyping)
		}
		time.Sleep(1200 * time.Millisecond) // her pace
	}
	if d := time.Since(start); d < 9*time.Second {
		t.Fatalf("alice typed for %v only, want more than 9 s", d)
	}
	b.WaitJS(`"typing…" still in bob's page`, headerTyping+` && `+rowTyping)
	if told := browser.Eval[int](b, `window.__told`); told != 1 {
		t.Errorf("the screen reader was told %d times that alice is typing, want once", told)
	}

	// She sends: her page says she stopped; her message shows in Bob's,
	// and the indicator is gone with it.
	stopped(t, a, func() { a.Press("Enter") })
	b.WaitJS("alice's message in bob's page", msgItem(reply)+` !== null`)
	if browser.Eval[bool](b, headerTyping+` || `+rowTyping) {
		t.Errorf(`bob's page shows alice's message and "typing…" still`)
	}
	b.WaitJS("the message in bob's chat list", preview(reply))
	if !browser.Eval[bool](a, typingPosts) {
		t.Errorf("alice's page never told her node she was typing")
	}

	for _, tab := range []*browser.Tab{a, b} {
		if errs := tab.Errors(); len(errs) > 0 {
			t.Errorf("%s's page errors: %v", tabName(tab, a), errs)
		}
	}
}

// stopped runs do, which should end alice's typing, and checks that her
// page tells her node at once (not after five seconds without a key, as
// it would by itself).
func stopped(t *testing.T, a *browser.Tab, do func()) {
	t.Helper()
	browser.Eval[bool](a, `(window.__mark = performance.now(), true)`)
	do()
	after := `performance.getEntriesByType("resource").filter((e) => ` + isTypingPost + ` && e.startTime >= window.__mark).map((e) => e.startTime - window.__mark)`
	a.WaitJS("alice's page says she stopped", after+`.length > 0`)
	if ms := browser.Eval[float64](a, after+`[0]`); ms > 1500 {
		t.Errorf("alice's page said she stopped typing %.0f ms later, want at once", ms)
	}
}

// openChat opens the conversation whose last message is last from the
// chat list, once the app has read its lists again on the event stream's
// opening (a list drawn again under the pointer would lose the click).
func openChat(tab *browser.Tab, last string) {
	tab.WaitJS("the lists read again once the event stream is open", `performance.getEntriesByType("resource").some((e) => new URL(e.name).pathname === "/api/v1/contacts")`)
	tab.ClickLike("link", last)
	tab.WaitJS("the conversation open", `document.getElementById("composer") !== null && `+msgItem(last)+` !== null`)
}

// The JavaScript for: "typing…" under the name in the chat's header; in
// Alice's row of the chat list; the chat's live region for screen
// readers; and whether the page has told its node of typing.
const (
	headerTyping = `((e) => !!e && e.innerText.includes("typing…"))(document.querySelector(".chat-header .chat-sub"))`
	rowTyping    = `[...document.querySelectorAll("#list-pane .row-link")].some((a) => a.querySelector(".row-name").textContent === "Alice" && a.querySelector(".row-preview").innerText === "typing…")`
	liveRegion   = `document.querySelector(".chat > p[role=status]")`
	isTypingPost = `/^\/api\/v1\/conversations\/[^/]+\/typing$/.test(new URL(e.name).pathname)`
	typingPosts  = `performance.getEntriesByType("resource").some((e) => ` + isTypingPost + `)`
)
