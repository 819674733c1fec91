package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

// TestMessageActions: in a one-to-one conversation, each side's page
// replies to, reacts to, edits and deletes messages from the menu beside a
// bubble (opened with the mouse, and with the keyboard), and the other
// side's page shows it live. Bob replies to Alice's "first" (Alice sees
// the quote above his answer, and a click on it highlights the original);
// Alice reacts 👍 to the answer, Bob adds his own 👍 (one chip, counted 2)
// and takes it back with a click on the chip; Alice edits "first" (Bob
// sees the new text marked "edited", in his quote too) and deletes it for
// everyone after a confirmation (Bob sees "This message was deleted", and
// its text is nowhere on his page). Bob's menu on Alice's message offers
// no Edit and no Delete for everyone. Reloaded, Bob's page shows the same,
// and no reaction, edit or deletion as a message of its own.
//
// With CALLSIGN_SCREENSHOTS set to a directory, it also saves Bob's view
// of a conversation with a quote, reactions, an edited and a deleted
// message there as chat-actions-desktop.png.
func TestMessageActions(t *testing.T) {
	n := testnet.New(t, 3, testnet.Options{Web: web.FS()})
	alice, bob := n.Nodes[1], n.Nodes[2]
	ctx := ctxT(t, 4*time.Minute)
	claimAndBefriend(t, ctx, alice, bob)
	a := browser.OpenApp(t, "alice", alice.Dir)
	b := browser.OpenApp(t, "bob", bob.Dir)
	for _, tab := range []*browser.Tab{a, b} {
		tab.Viewport(1280, 800, false)
		tab.Timeout = 60 * time.Second // messages cross between two nodes on a busy machine
	}

	// Alice writes from her page.
	a.Click("link", "Contacts")
	a.ClickLike("link", "Bob")
	a.Click("link", "Message")
	a.Fill("Message", "first")
	a.Press("Enter")
	b.ClickLike("link", "first")
	b.WaitJS("alice's message in bob's page", msgItem("first")+` !== null`)

	// Bob's menu on her message: reply and react, nothing of hers to
	// change. Reply shows the quote over the composer; Escape lets it go.
	openActions(t, b, "first")
	b.WaitFor("button", "Reply")
	b.WaitFor("button", "👍")
	for _, name := range []string{"Edit", "Delete for everyone"} {
		if b.Has("button", name) {
			t.Errorf("bob's menu on alice's message offers %q", name)
		}
	}
	b.Click("button", "Reply")
	b.WaitJS("the reply bar quoting alice", replyBar+` && `+replyBar+`.textContent.includes("first") && `+replyBar+`.textContent.includes("Alice")`)
	b.Press("Escape")
	b.WaitJS("the reply bar gone", `!`+replyBar)
	// From the keyboard: the button opens the menu on its first reaction,
	// the arrows move along it, Escape closes it and nothing else.
	browser.Eval[bool](b, `(`+msgItem("first")+`.querySelector(".msg-actions").focus(), true)`)
	b.Press("Enter")
	b.WaitJS("the menu open, its first reaction focused", `document.querySelector(".msg-menu") !== null && document.activeElement.textContent === "👍"`)
	b.Press("ArrowDown")
	b.WaitJS("the next reaction focused", `document.activeElement.textContent === "❤️"`)
	b.Press("Escape")
	b.WaitJS("the menu closed, the focus back on its button, the conversation still open",
		`document.querySelector(".msg-menu") === null && document.activeElement.classList.contains("msg-actions") && document.querySelector(".chat") !== null`)
	openActions(t, b, "first")
	b.Click("button", "Reply")
	b.WaitJS("the reply bar again", replyBar)
	b.Fill("Message", "answer")
	b.Press("Enter")
	b.WaitJS("the reply bar gone once sent", `!`+replyBar)

	// Alice sees the quote above the answer; a click on it goes to the
	// original and highlights it.
	quoted := fmt.Sprintf(`(() => {
		const li = %s;
		const q = li && li.querySelector(".msg-quote"), text = li && li.querySelector(".text");
		return !!q && q.textContent.includes(%%q) && q.getBoundingClientRect().bottom <= text.getBoundingClientRect().top + 1;
	})()`, msgItem("answer"))
	a.WaitJS("bob's answer quoting "+`"first"`+" in alice's page", fmt.Sprintf(quoted, "first"))
	first, answer := lastTwo(t, ctx, alice, "Bob")
	if first.Text != "first" || answer.Text != "answer" || answer.ReplyTo != first.ID || answer.Quote == nil || answer.Quote.Text != "first" {
		t.Errorf("alice's node has %+v and %+v, want the second a reply to the first", first, answer)
	}
	// (The highlight lasts a moment: a busy machine may look late.)
	browser.Eval[bool](a, `(() => {
		const li = `+msgItem("first")+`;
		new MutationObserver(() => { if (li.classList.contains("flash")) window.flashed = true; }).observe(li, { attributes: true });
		return true;
	})()`)
	clickIn(t, a, msgItem("answer")+`.querySelector(".msg-quote")`)
	a.WaitJS("the original highlighted", `window.flashed === true`)

	// Reactions: Alice's 👍 shows under the answer in Bob's page.
	openActions(t, a, "answer")
	a.Click("button", "👍")
	// chips reads the reactions under the message with text: "👍", "👍2".
	chips := func(text string) string {
		return fmt.Sprintf(`(() => {
			const li = %s;
			return li ? [...li.querySelectorAll(".reaction")].map((c) => c.querySelector(".reaction-emoji").textContent + (c.querySelector(".reaction-count") || { textContent: "" }).textContent).join(" ") : "";
		})()`, msgItem(text))
	}
	b.WaitJS("alice's 👍 on the answer in bob's page", chips("answer")+` === "👍"`)
	a.WaitJS("her own 👍 in alice's page", chips("answer")+` === "👍" && `+msgItem("answer")+`.querySelector(".reaction.mine") !== null`)
	// Bob chooses the same: one chip, counted; his click on it takes his back.
	openActions(t, b, "answer")
	b.Click("button", "👍")
	a.WaitJS("both 👍 counted in alice's page", chips("answer")+` === "👍2"`)
	b.WaitJS("both 👍 counted in bob's page", chips("answer")+` === "👍2"`)
	clickIn(t, b, msgItem("answer")+`.querySelector(".reaction.mine")`)
	a.WaitJS("bob's 👍 taken back, in alice's page", chips("answer")+` === "👍"`)

	// Alice edits "first": Bob sees the new text, marked, and his quote follows.
	openActions(t, a, "first")
	a.Click("button", "Edit")
	a.WaitJS("the text in the composer, with the editing bar", `document.getElementById("composer").value === "first" && !document.getElementById("edit-bar").hidden`)
	a.Fill("Message", "first, fixed")
	a.Press("Enter")
	b.WaitJS("the edit in bob's page", msgItem("first, fixed")+` !== null && `+msgItem("first, fixed")+`.querySelector(".msg-edited") !== null`)
	b.WaitJS("bob's quote of it edited too", fmt.Sprintf(quoted, "first, fixed"))
	a.WaitJS("the edit in alice's page", msgItem("first, fixed")+` !== null && `+msgItem("first, fixed")+`.querySelector(".msg-edited") !== null`)
	if got := browser.Eval[string](a, `document.getElementById("composer").value`); got != "" {
		t.Errorf("alice's composer holds %q after the edit, want it empty", got)
	}

	// Alice deletes it for everyone, after a confirmation in the app.
	openActions(t, a, "first, fixed")
	a.Click("button", "Delete for everyone")
	a.WaitFor("dialog", "Delete this message for everyone?")
	a.Click("button", "Delete")
	deleted := fmt.Sprintf(`document.querySelector(".messages .msg[data-id='%s'] .msg-deleted")`, first.ID)
	b.WaitJS("the deletion in bob's page", deleted+` !== null && `+deleted+`.textContent === "This message was deleted"`)
	b.WaitNoText("first, fixed")
	b.WaitJS("bob's quote says it was deleted", fmt.Sprintf(quoted, "This message was deleted"))
	if browser.Eval[bool](b, fmt.Sprintf(`document.querySelector(".messages .msg[data-id='%s'] .msg-actions") !== null`, first.ID)) {
		t.Errorf("bob's page offers a menu on a deleted message")
	}
	a.WaitJS("the deletion in alice's page", fmt.Sprintf(`document.querySelector(".messages .msg[data-id='%s'] .msg-deleted") !== null`, first.ID))
	if a.HasText("first, fixed") {
		t.Errorf("alice's page still shows the deleted text")
	}
	// The reactions, the edit and the deletion are messages of their own
	// between the nodes, folded into their target: no bubble, nor chat
	// list preview, shows one, and a page loaded afresh shows the same.
	b.Reload()
	for _, tab := range []*browser.Tab{a, b} {
		tab.WaitJS("the conversation as it stands, two messages", fmt.Sprintf(`document.querySelectorAll(".messages .msg").length === 2 && document.querySelector(".messages .msg[data-id='%s'] .msg-deleted") !== null`, first.ID))
		tab.WaitJS("the answer with its quote and reaction", fmt.Sprintf(quoted, "This message was deleted")+` && `+chips("answer")+` === "👍"`)
		tab.WaitJS("the chat list's preview: the answer", `[...document.querySelectorAll(".row-preview")].some((e) => e.textContent.includes("answer"))`)
	}
	for _, dialogs := range [][]string{a.Dialogs(), b.Dialogs()} {
		if len(dialogs) > 0 {
			t.Errorf("the page used the browser's own dialogs: %v", dialogs)
		}
	}

	if dir := os.Getenv("CALLSIGN_SCREENSHOTS"); dir != "" {
		screenshotActions(t, ctx, n.Nodes[0], alice, bob, b, filepath.Join(dir, "chat-actions-desktop.png"))
	}
	for _, tab := range []*browser.Tab{a, b} {
		if errs := tab.Errors(); len(errs) > 0 {
			t.Errorf("page errors: %v", errs)
		}
	}
}

// replyBar is the composer's reply bar when it shows, else null.
const replyBar = `(() => { const e = document.getElementById("reply-bar"); return e && !e.hidden ? e : null; })()`

// msgItem is the JavaScript for the message item of the conversation
// whose text is text (null when none).
func msgItem(text string) string {
	return fmt.Sprintf(`([...document.querySelectorAll(".messages .msg")].find((li) => { const e = li.querySelector(".text:not(.msg-deleted)"); return e && e.textContent === %q; }) || null)`, text)
}

// openActions opens the menu of the message whose text is text as a
// person with a mouse does: the pointer over the bubble shows its
// "Message actions" button, and a click on that opens the menu.
func openActions(t *testing.T, tab *browser.Tab, text string) {
	t.Helper()
	tab.WaitJS(fmt.Sprintf("the message %q", text), msgItem(text)+` !== null`)
	type point struct{ X, Y float64 }
	bubble := browser.Eval[point](tab, fmt.Sprintf(`(() => {
		const li = %s;
		li.scrollIntoView({ block: "center" });
		const r = li.querySelector(".bubble").getBoundingClientRect();
		return { X: r.left + r.width / 2, Y: r.top + r.height / 2 };
	})()`, msgItem(text)))
	mouse(t, tab, moved, bubble.X, bubble.Y)
	btn := msgItem(text) + `.querySelector(".msg-actions")`
	tab.WaitJS(fmt.Sprintf("the actions button of %q shown on hover", text), `getComputedStyle(`+btn+`).opacity === "1"`)
	clickIn(t, tab, btn)
	tab.WaitJS("the menu open", `document.querySelector(".msg-menu") !== null`)
}

// clickIn clicks, with the mouse, the element the JavaScript el finds.
func clickIn(t *testing.T, tab *browser.Tab, el string) {
	t.Helper()
	type point struct {
		X, Y  float64
		Cover string
	}
	p := browser.Eval[point](tab, `(() => {
		const el = `+el+`;
		const r = el.getBoundingClientRect();
		const x = r.left + r.width / 2, y = r.top + r.height / 2;
		const hit = document.elementFromPoint(x, y);
		return { X: x, Y: y, Cover: hit && (hit === el || el.contains(hit)) ? "" : String(hit && hit.outerHTML).slice(0, 120) };
	})()`)
	if p.Cover != "" {
		t.Fatalf("something covers %s: %s", el, p.Cover)
	}
	mouse(t, tab, moved, p.X, p.Y)
	mouse(t, tab, pressed, p.X, p.Y)
	mouse(t, tab, released, p.X, p.Y)
}

// mouse sends one mouse event, at x, y in the viewport.
func mouse(t *testing.T, tab *browser.Tab, typ input.DispatchMouseEventType, x, y float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.Context(), 10*time.Second)
	defer cancel()
	p := input.DispatchMouseEventParams{Type: typ, X: x, Y: y}
	if typ != moved {
		p.Button, p.Buttons, p.ClickCount = input.MouseButtonLeft, 1, 1
	}
	if _, err := chromedp.Call(ctx, input.DispatchMouseEvent, p); err != nil {
		t.Fatalf("mouse %s at %.0f,%.0f: %v", typ, x, y, err)
	}
}

const (
	moved    = input.DispatchMouseEventTypeMouseMoved
	pressed  = input.DispatchMouseEventTypeMousePressed
	released = input.DispatchMouseEventTypeMouseReleased
)

// lastTwo returns the last two messages of nd's conversation with peer.
func lastTwo(t *testing.T, ctx context.Context, nd *testnet.Node, peer string) (api.Message, api.Message) {
	t.Helper()
	var ms []api.Message
	check.Eventually(t, 30*time.Second, func() error {
		p, err := nd.Client.MessagePage(ctx, peer, api.PageRequest{Newest: true, Limit: 2})
		if err != nil {
			return err
		}
		if len(p.Messages) < 2 {
			return fmt.Errorf("%d messages", len(p.Messages))
		}
		ms = p.Messages
		return nil
	})
	return ms[len(ms)-2], ms[len(ms)-1]
}

// screenshotActions writes a short conversation between Bob and Carol (on
// the node nd) through the API, with replies, reactions from both sides,
// an edit and a deletion, and saves Bob's page showing it at path. In his
// chat list, Alice's last message was deleted.
func screenshotActions(t *testing.T, ctx context.Context, nd, alice, bob *testnet.Node, b *browser.Tab, path string) {
	t.Helper()
	must := func(m api.Message, err error) api.Message {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// Each message reaches the other side before the next, so that the
	// conversation reads in the order it was written.
	delivered := func(from *testnet.Node, to string, m api.Message) api.Message {
		t.Helper()
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
			return fmt.Errorf("%q not delivered yet", m.Text)
		})
		return m
	}
	// Bob's view is the screenshot: "to" names each side as the other knows it.
	send := func(from *testnet.Node, to, text string) api.Message {
		t.Helper()
		return delivered(from, to, must(from.Client.Send(ctx, to, text)))
	}
	reply := func(from *testnet.Node, to, text string, m api.Message) api.Message {
		t.Helper()
		return delivered(from, to, must(from.Client.Reply(ctx, to, text, m.ID)))
	}
	act := func(nd *testnet.Node, to string, m api.Message, action string, req api.ActionRequest) {
		t.Helper()
		must(nd.Client.Act(ctx, to, m.ID, action, req))
	}
	if c, err := nd.Client.Claim(ctx, "carol"); err != nil || c.Status != "claimed" {
		t.Fatalf("claim @carol: %+v, %v", c, err)
	}
	if _, err := nd.Client.AddContact(ctx, "bob", "Bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.AddContact(ctx, "carol", "Carol"); err != nil {
		t.Fatal(err)
	}
	carol := nd
	// Alice's last word to Bob, taken back.
	act(alice, "Bob", send(alice, "Bob", "Wait, wrong chat!"), "delete", api.ActionRequest{})
	// Bob's page has her conversation open: it came and went before his eyes.
	check.Eventually(t, 30*time.Second, func() error {
		cs, err := bob.Client.Conversations(ctx)
		for _, c := range cs {
			if c.PeerName == "Alice" && c.Unread != 0 {
				err = fmt.Errorf("%d unread from alice", c.Unread)
			}
		}
		return err
	})

	send(bob, "Carol", "Hey! How was the trip back?")
	trip := send(carol, "Bob", "Long, but fine. I slept the whole train ride.")
	act(bob, "Carol", trip, "react", api.ActionRequest{Emoji: "😂"})
	q := send(carol, "Bob", "Are we still on for the harbour museum on Saturday?")
	r := reply(bob, "Carol", "Yes! I booked the tickets for 2 pm.", q)
	act(carol, "Bob", r, "react", api.ActionRequest{Emoji: "❤️"})
	act(bob, "Carol", r, "react", api.ActionRequest{Emoji: "❤️"})
	e := send(carol, "Bob", "Great, see you at the café next door at 1:30")
	act(carol, "Bob", e, "edit", api.ActionRequest{Text: "Great, see you at the café next door at 1:45"})
	act(bob, "Carol", e, "react", api.ActionRequest{Emoji: "👍"})
	d := send(bob, "Carol", "Bring your old ticket stubs, they give a discount")
	act(bob, "Carol", d, "delete", api.ActionRequest{})
	nm := send(bob, "Carol", "Never mind, that offer ended.")
	last := reply(carol, "Bob", "Ha, no problem. I'll bring snacks instead 🍪", nm)
	act(bob, "Carol", last, "react", api.ActionRequest{Emoji: "🙏"})
	if err := carol.Client.MarkRead(ctx, "bob", nil); err != nil {
		t.Fatal(err)
	}

	b.GrantNotifications() // no offer to turn them on in the picture
	b.Reload()             // Carol became a contact through the API
	b.ClickLike("link", "I'll bring snacks instead")
	b.WaitJS("alice's deleted message in bob's chat list", `[...document.querySelectorAll(".row-preview")].some((e) => e.textContent === "This message was deleted")`)
	b.WaitJS("the last reaction in bob's page", fmt.Sprintf(`document.querySelectorAll(".messages .msg[data-id='%s'] .reaction").length === 1`, last.ID))
	b.WaitJS("fonts and images", `document.fonts.status === "loaded" && [...document.images].every((i) => i.complete)`)
	browser.Eval[bool](b, `(document.querySelector(".messages-scroll").scrollTo(0, 1e6), document.activeElement.blur(), true)`)
	mouse(t, b, moved, 1, 1)
	time.Sleep(300 * time.Millisecond) // let the scroll settle before the picture
	b.Screenshot(path)
}
