package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

// TestGroupActions: in a group of three (Alice, its admin; Bob and Carol,
// each Alice's contact and not each other's), the menu beside a bubble
// works as in a one-to-one chat. Alice's menu on Bob's message offers
// Reply and the reactions, and no Edit, Info nor Delete for everyone; she
// replies to it from her page (the reply bar, then her bubble, quote Bob
// by name) and reacts 👍. Bob's page shows her reply quoting "You" (his
// own message) and the 👍 under his message, said to be Alice's; Carol's
// 👍, through the API, joins it (one chip, counted 2, "Alice and carol":
// Bob knows Carol by her handle), and Carol's reply to Alice's message
// quotes "Alice" in Bob's page. Alice edits her message from the menu: Bob
// sees the new text marked "edited", and Carol's quote of it follows. She
// deletes another for everyone after a confirmation that names the
// group: Bob sees "This message was deleted" and its text nowhere. Bob's
// node refuses his edit of Alice's message (403). Reloaded, Bob's page
// shows the same. Once Bob and Carol read Alice's reply, its ticks are
// blue and its menu's Info names them both under "Read by". No page logs
// an error.
//
// With CALLSIGN_SCREENSHOTS set to a directory, it also saves Alice's
// view of the group, with replies and reactions, as
// group-actions-desktop.png there.
func TestGroupActions(t *testing.T) {
	n := testnet.New(t, 4, testnet.Options{Web: web.FS()})
	alice, bob, carol := n.Nodes[1], n.Nodes[2], n.Nodes[3]
	ctx := ctxT(t, 5*time.Minute)
	threeFriends(t, ctx, alice, bob, carol)
	const name = "Harbour trip"
	g := groupOfThree(t, ctx, name, alice, bob, carol)

	a := browser.OpenApp(t, "alice", alice.Dir)
	b := browser.OpenApp(t, "bob", bob.Dir)
	tabs := []*browser.Tab{a, b}
	names := map[*browser.Tab]string{a: "alice", b: "bob"}
	for _, tab := range tabs {
		tab.GrantNotifications()
		tab.Reload()
		tab.Viewport(1280, 800, false)
		tab.Timeout = 60 * time.Second // messages cross between three nodes on a busy machine
		// A list drawn again under the pointer would lose the click.
		tab.WaitJS("the groups read once the event stream is open", `performance.getEntriesByType("resource").some((e) => new URL(e.name).pathname === "/api/v1/groups")`)
		tab.ClickLike("link", name)
		tab.WaitJS("the group open", fmt.Sprintf(`document.querySelector(".chat-title")?.textContent === %q && document.getElementById("composer") !== null && !document.getElementById("composer").disabled`, name))
	}

	// Alice writes twice from her page; Bob asks, through his node.
	const (
		plan    = "We meet at the museum at 2"
		planFix = "We meet at the museum at 2:30"
		wrong   = "Bring your old ticket stubs"
		ask     = "Who's bringing the snacks?"
		answer  = "I will! Cookies for everyone 🍪"
	)
	for _, text := range []string{plan, wrong} {
		a.Fill("Message", text)
		a.Press("Enter")
		sent := msgItem(text) + ` !== null && !` + msgItem(text) + `.dataset.id.startsWith("tmp-")`
		a.WaitJS(fmt.Sprintf("%q sent from alice's page", text), sent)
		b.WaitJS(fmt.Sprintf("%q in bob's page", text), msgItem(text)+` !== null`)
	}
	planID := browser.Eval[string](a, msgItem(plan)+`.dataset.id`)
	wrongID := browser.Eval[string](a, msgItem(wrong)+`.dataset.id`)
	askMsg, err := bob.Client.Send(ctx, g.ID, ask)
	if err != nil {
		t.Fatal(err)
	}
	a.WaitJS("bob's question in alice's page, under his name", msgItem(ask)+`?.querySelector(".sender")?.textContent === "Bob"`)

	// Alice's menu on Bob's message: reply and react, nothing of his to
	// change.
	openActions(t, a, ask)
	a.WaitFor("button", "Reply")
	a.WaitFor("button", "👍")
	for _, item := range []string{"Edit", "Delete for everyone"} {
		if a.Has("button", item) {
			t.Errorf("alice's menu on bob's message offers %q", item)
		}
	}
	a.Click("button", "Reply")
	a.WaitJS("the reply bar quoting bob", replyBar+` && `+replyBar+`.querySelector(".quote-from")?.textContent === "Bob" && `+replyBar+`.textContent.includes(`+jsString(ask)+`)`)
	a.Fill("Message", answer)
	a.Press("Enter")
	a.WaitJS("the reply bar gone once sent", `!`+replyBar)
	// quoteOf is, in a page, the quote over the message with text: who
	// wrote the quoted message, a colon, its text ("" when none).
	quoteOf := func(text string) string {
		return fmt.Sprintf(`(() => {
			const q = %s?.querySelector(".msg-quote");
			return q ? q.querySelector(".quote-from").textContent + ": " + q.querySelector(".quote-text").textContent : "";
		})()`, msgItem(text))
	}
	a.WaitJS("alice's reply quoting bob, sent", quoteOf(answer)+` === `+jsString("Bob: "+ask)+` && !`+msgItem(answer)+`.dataset.id.startsWith("tmp-")`)
	b.WaitJS("alice's reply in bob's page, quoting his own message", quoteOf(answer)+` === `+jsString("You: "+ask))
	b.WaitJS("alice's name over her reply in bob's page", msgItem(answer)+`.querySelector(".sender")?.textContent === "Alice"`)
	answerID := browser.Eval[string](a, msgItem(answer)+`.dataset.id`)
	check.Eventually(t, 30*time.Second, func() error {
		p, err := bob.Client.MessagePage(ctx, g.ID, api.PageRequest{Newest: true, Limit: 10})
		if err != nil {
			return err
		}
		for _, m := range p.Messages {
			if m.ID == answerID {
				if m.ReplyTo != askMsg.ID || m.Quote == nil || m.Quote.Text != ask || m.Quote.From != askMsg.From {
					return fmt.Errorf("alice's reply at bob's node: %+v, quote %+v; want it quoting %q of %s", m, m.Quote, ask, askMsg.From)
				}
				return nil
			}
		}
		return fmt.Errorf("alice's reply not at bob's node yet")
	})

	// Alice reacts 👍 to Bob's question; Bob sees it is hers.
	openActions(t, a, ask)
	a.Click("button", "👍")
	b.WaitJS("alice's 👍 under bob's message", chipsOf(ask)+` === "👍"`)
	b.WaitJS("the 👍 said to be alice's", chipWho(ask, "👍")+` === "Alice reacted 👍"`)
	a.WaitJS("her own 👍 in alice's page", chipsOf(ask)+` === "👍" && `+msgItem(ask)+`.querySelector(".reaction.mine") !== null && `+chipWho(ask, "👍")+` === "You reacted 👍"`)
	// Carol chooses the same, through her node (once it has the message).
	check.Eventually(t, 30*time.Second, func() error {
		_, err := carol.Client.Act(ctx, g.ID, askMsg.ID, "react", api.ActionRequest{Emoji: "👍"})
		return err
	})
	b.WaitJS("both 👍 counted in bob's page", chipsOf(ask)+` === "👍2"`)
	b.WaitJS("named by member, as they came", chipWho(ask, "👍")+` === "Alice and carol reacted 👍"`)
	a.WaitJS("both 👍 counted in alice's page, hers first", chipsOf(ask)+` === "👍2" && `+chipWho(ask, "👍")+` === "You and Carol reacted 👍"`)
	if title := browser.Eval[string](b, msgItem(ask)+`.querySelector(".reaction").title`); title != "Alice and carol reacted 👍" {
		t.Errorf("the chip's tooltip in bob's page: %q", title)
	}

	// Carol replies to Alice's plan, through her node: Bob's page names
	// whom she quotes.
	var carolReply api.Message
	check.Eventually(t, 30*time.Second, func() error {
		carolReply, err = carol.Client.Reply(ctx, g.ID, "Perfect, see you there", planID)
		return err
	})
	b.WaitJS("carol's reply quoting alice in bob's page", quoteOf(carolReply.Text)+` === `+jsString("Alice: "+plan))
	b.WaitJS("carol's name over her reply in bob's page", msgItem(carolReply.Text)+`.querySelector(".sender")?.textContent === "carol"`)

	// Alice edits her plan from the menu: Bob sees the new text, marked,
	// and Carol's quote of it follows.
	openActions(t, a, plan)
	a.Click("button", "Edit")
	a.WaitJS("the text in the composer, with the editing bar", `document.getElementById("composer").value === `+jsString(plan)+` && !document.getElementById("edit-bar").hidden`)
	a.Fill("Message", planFix)
	a.Press("Enter")
	edited := func(text string) string {
		return msgItem(text) + ` !== null && ` + msgItem(text) + `.querySelector(".msg-edited")?.textContent === "edited"`
	}
	b.WaitJS("the edit in bob's page, marked", edited(planFix))
	b.WaitJS("carol's quote of it edited too", quoteOf(carolReply.Text)+` === `+jsString("Alice: "+planFix))
	a.WaitJS("the edit in alice's page", edited(planFix))
	if browser.Eval[bool](b, msgItem(plan)+` !== null`) {
		t.Errorf("bob's page still shows the text before the edit")
	}

	// Alice deletes the other for everyone, after a confirmation in the
	// app that says who sees it go.
	openActions(t, a, wrong)
	a.Click("button", "Delete for everyone")
	a.WaitFor("dialog", "Delete this message for everyone?")
	a.WaitText(`It will show as "This message was deleted" for everyone in "` + name + `".`)
	a.Click("button", "Delete")
	deleted := func(id, text string) string {
		return fmt.Sprintf(`document.querySelector(".messages .msg[data-id='%s'] .msg-deleted")?.textContent === %s`, id, jsString(text))
	}
	b.WaitJS("the deletion in bob's page", deleted(wrongID, "This message was deleted"))
	// (Under her edited message, it is the second of her run: only a
	// screen reader says her name.)
	b.WaitJS("alice's deleted message said to be hers", fmt.Sprintf(`document.querySelector(".messages .msg[data-id='%s'] .bubble > .sr-only")?.textContent === "Alice: "`, wrongID))
	b.WaitNoText(wrong)
	a.WaitJS("the deletion in alice's page", deleted(wrongID, "You deleted this message"))
	for _, tab := range tabs {
		if browser.Eval[bool](tab, fmt.Sprintf(`document.querySelector(".messages .msg[data-id='%s'] .msg-actions") !== null`, wrongID)) {
			t.Errorf("%s's page offers a menu on a deleted message", names[tab])
		}
	}

	// Bob's node refuses what his page doesn't offer: to edit Alice's.
	_, err = bob.Client.Act(ctx, g.ID, planID, "edit", api.ActionRequest{Text: "Not yours"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Errorf("bob's edit of alice's message: %v, want 403 forbidden", err)
	}

	// Loaded afresh, Bob's page shows the group as it stands.
	b.Reload()
	b.WaitJS("the edit after a reload", edited(planFix))
	b.WaitJS("the deletion after a reload", deleted(wrongID, "This message was deleted"))
	b.WaitJS("the quotes after a reload", quoteOf(answer)+` === `+jsString("You: "+ask)+` && `+quoteOf(carolReply.Text)+` === `+jsString("Alice: "+planFix))
	b.WaitJS("the reactions after a reload", chipsOf(ask)+` === "👍2" && `+chipWho(ask, "👍")+` === "Alice and carol reacted 👍"`)
	if got := browser.Eval[int](b, `document.querySelectorAll(".messages .msg").length`); got != 5 {
		t.Errorf("bob's page shows %d messages after a reload, want 5 (no reaction, edit or deletion of its own)", got)
	}

	// Bob's page has the group open, so it read Alice's messages; once
	// Carol reads it too, Alice's page shows her reply read by everyone
	// (blue ✓✓), as one-to-one.
	if err := carol.Client.MarkRead(ctx, g.ID, nil); err != nil {
		t.Fatal(err)
	}
	a.WaitJS("alice's reply read by bob and carol", msgItem(answer)+`?.querySelector(".msg-state")?.dataset.state === "read"`)
	// Her menu's Info says who, by name; on Bob's message there is none.
	openActions(t, a, answer)
	a.Click("button", "Info")
	a.WaitJS("the reply's info: read by bob and carol, waiting for no one", `(() => {
		const i = document.querySelector(".msg-info");
		const read = [...(i?.querySelectorAll(".info-section.read li") || [])].map((li) => li.textContent);
		return read.length === 2 && read.includes("Bob") && !i.textContent.includes("Waiting for") && !i.textContent.includes("Delivered to");
	})()`)
	if dir := os.Getenv("CALLSIGN_SCREENSHOTS"); dir != "" {
		a.Screenshot(filepath.Join(dir, "group-info-desktop.png"))
	}
	a.Press("Escape")
	a.WaitJS("the menu closed", `document.querySelector(".msg-menu") === null`)
	openActions(t, a, ask)
	a.WaitFor("button", "Reply")
	if a.Has("button", "Info") {
		t.Errorf("alice's menu on bob's message offers Info")
	}
	a.Press("Escape")

	if dir := os.Getenv("CALLSIGN_SCREENSHOTS"); dir != "" {
		screenshotGroupActions(t, ctx, a, alice, bob, carol, g.ID, answerID, filepath.Join(dir, "group-actions-desktop.png"))
	}
	for _, tab := range tabs {
		if d := tab.Dialogs(); len(d) > 0 {
			t.Errorf("%s's page used the browser's own dialogs: %v", names[tab], d)
		}
		if errs := tab.Errors(); len(errs) > 0 {
			t.Errorf("%s's page logged errors: %q", names[tab], errs)
		}
	}
}

// chipsOf reads, in a page, the reactions under the message with text:
// "👍", "👍2 ❤️".
func chipsOf(text string) string {
	return fmt.Sprintf(`(() => {
		const li = %s;
		return li ? [...li.querySelectorAll(".reaction")].map((c) => c.querySelector(".reaction-emoji").textContent + (c.querySelector(".reaction-count") || { textContent: "" }).textContent).join(" ") : "";
	})()`, msgItem(text))
}

// chipWho reads, in a page, what the chip of emoji under the message with
// text tells a screen reader: who reacted, without the offer to remove
// one's own.
func chipWho(text, emoji string) string {
	return fmt.Sprintf(`(() => {
		const c = [...(%s?.querySelectorAll(".reaction") || [])].find((c) => c.querySelector(".reaction-emoji").textContent === %s);
		return c ? c.querySelector(".sr-only").textContent.replace(/\. Remove your reaction$/, "") : "";
	})()`, msgItem(text), jsString(emoji))
}

// screenshotGroupActions adds to the group id, through the nodes, a
// reply of Carol's to Bob and reactions from all three, and saves Alice's
// page at path.
func screenshotGroupActions(t *testing.T, ctx context.Context, a *browser.Tab, alice, bob, carol *testnet.Node, id, answerID, path string) {
	t.Helper()
	p, err := carol.Client.MessagePage(ctx, id, api.PageRequest{Newest: true, Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	var ask api.Message
	for _, m := range p.Messages {
		if m.Text == "Who's bringing the snacks?" {
			ask = m
		}
	}
	r, err := carol.Client.Reply(ctx, id, "And I'll bring tea for the café 🍵", ask.ID)
	if err != nil {
		t.Fatal(err)
	}
	a.WaitJS("carol's reply on alice's page", msgItem(r.Text)+` !== null`)
	for _, x := range []struct {
		nd        *testnet.Node
		msg, emoj string
	}{
		{bob, answerID, "❤️"},
		{carol, answerID, "❤️"},
		{alice, r.ID, "🙏"},
		{bob, r.ID, "😂"},
	} {
		check.Eventually(t, 30*time.Second, func() error {
			_, err := x.nd.Client.Act(ctx, id, x.msg, "react", api.ActionRequest{Emoji: x.emoj})
			return err
		})
	}
	a.WaitJS("the last reactions on alice's page", chipsOf(r.Text)+` === "🙏 😂" && `+fmt.Sprintf(`document.querySelector(".messages .msg[data-id='%s'] .reaction-count")?.textContent === "2"`, answerID))
	shootGroup(t, a, path)
}
