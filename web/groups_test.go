package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

// threeFriends has Alice, Bob and Carol claim their handles and makes Bob
// and Carol each Alice's contact (and she theirs), not each other's.
func threeFriends(t *testing.T, ctx context.Context, alice, bob, carol *testnet.Node) {
	t.Helper()
	claimAndBefriend(t, ctx, alice, bob)
	if c, err := carol.Client.Claim(ctx, "carol"); err != nil || c.Status != "claimed" {
		t.Fatalf("claim @carol: %+v, %v", c, err)
	}
	if _, err := alice.Client.AddContact(ctx, "carol", "Carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Client.AddContact(ctx, "alice", "Alice"); err != nil {
		t.Fatal(err)
	}
}

// groupOfThree is a group named name that Alice makes and Bob and Carol
// (her contacts, as threeFriends leaves them) join, all through the API.
func groupOfThree(t *testing.T, ctx context.Context, name string, alice, bob, carol *testnet.Node) api.Group {
	t.Helper()
	g, err := alice.Client.CreateGroup(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.GroupAction(ctx, g.ID, "invite", api.GroupAction{Members: []string{"Bob", "Carol"}}); err != nil {
		t.Fatal(err)
	}
	for _, nd := range []*testnet.Node{bob, carol} {
		check.Eventually(t, time.Minute, func() error {
			_, err := nd.Client.GroupAction(ctx, g.ID, "join", api.GroupAction{})
			return err
		})
	}
	return g
}

// TestGroups: Alice makes a group from her page ("New group": a name, Bob
// and Carol ticked among her contacts); the group opens with "3 members".
// Bob's and Carol's pages show the invitation in their chat lists live
// ("Alice invited you"), and each joins from it: the composer comes. Each
// of the three writes from their page, and every page shows all three
// messages, each incoming one under its sender's name, as that person
// knows them (Bob and Carol are not each other's contacts: their node
// looks the other's handle up); Alice's chat list previews the last one
// with its sender's name. Alice removes Carol from the members panel
// (Options for Carol → Remove from group, confirmed): her panel counts 2
// members, and Carol's page says she was removed, without a composer.
// Bob's next message reaches Alice's page and not Carol's, nor her node.
// Alice renames the group and makes Bob an admin from the panel: Bob's
// page shows the new name, and his panel offers Add members, live. Bob
// makes a group with Carol by typing her handle (neither is the other's
// contact): her page, in the background, notifies her of the invitation,
// which waits in her Requests tab (its badge counts it), not in her chat
// list, as a stranger's first message would; opened from there, it says it
// comes from a stranger; she declines, the invitation goes from her
// requests (and is in her chat list no more than before), and Bob's group
// counts 1 member. Bob invites her to another group: she joins it from her
// requests, and it opens in her chat list, where she can write, and leaves
// her requests. With Alice's tab in the
// background, Bob's next message notifies her under the group's name,
// counts in the tab's title and shows as unread on the group's row. Bob
// leaves from his panel: his page says he left, Alice's counts 1 member.
// No page logs an error.
//
// With CALLSIGN_SCREENSHOTS set to a directory, it also saves Alice's
// view of the group conversation (group-chat-desktop.png) and of its
// members panel (group-members-desktop.png) there, and Carol's of the
// stranger's invitation open in her requests (group-request-desktop.png).
func TestGroups(t *testing.T) {
	n := testnet.New(t, 4, testnet.Options{Web: web.FS()})
	alice, bob, carol := n.Nodes[1], n.Nodes[2], n.Nodes[3]
	ctx := ctxT(t, 6*time.Minute)
	threeFriends(t, ctx, alice, bob, carol)

	dir := os.Getenv("CALLSIGN_SCREENSHOTS")
	if dir != "" {
		// In the pictures, Alice's chat list has chats with one person too.
		for _, x := range []struct {
			from     *testnet.Node
			to, text string
		}{
			{alice, "Bob", "Did you see the museum has a new exhibition?"},
			{bob, "Alice", "Yes! We should all go."},
			{carol, "Alice", "Can you send me the museum's address?"},
		} {
			if _, err := x.from.Client.Send(ctx, x.to, x.text); err != nil {
				t.Fatal(err)
			}
		}
	}

	a := browser.OpenApp(t, "alice", alice.Dir)
	b := browser.OpenApp(t, "bob", bob.Dir)
	c := browser.OpenApp(t, "carol", carol.Dir)
	tabs := []*browser.Tab{a, b, c}
	names := map[*browser.Tab]string{a: "alice", b: "bob", c: "carol"}
	for _, tab := range tabs {
		tab.GrantNotifications() // no offer to turn them on over the list
		tab.Reload()
		tab.Viewport(1280, 800, false)
		tab.Timeout = 60 * time.Second // messages cross between three nodes on a busy machine
		// The groups are read once the event stream is open; a list drawn
		// again under the pointer would lose a click.
		tab.WaitJS("the groups read once the event stream is open", `performance.getEntriesByType("resource").some((e) => new URL(e.name).pathname === "/api/v1/groups")`)
	}

	// Alice makes the group, with two of her contacts in it.
	const name = "Harbour trip"
	a.Click("button", "New group")
	a.Fill("Group name", name)
	a.ClickLike("checkbox", "Bob")
	a.ClickLike("checkbox", "Carol")
	a.Click("button", "Create group")
	a.WaitJS("the group open in alice's page", fmt.Sprintf(`document.querySelector(".chat-title")?.textContent === %q`, name))
	a.WaitJS("3 members in the header", `document.querySelector(".chat-sub")?.textContent === "3 members"`)
	groups, err := alice.Client.Groups(ctx)
	if err != nil || len(groups) != 1 {
		t.Fatalf("alice's groups: %+v, %v", groups, err)
	}
	g := groups[0]
	if g.Name != name || !g.Admin || len(g.Members) != 3 {
		t.Errorf("alice's group at her node: %+v", g)
	}
	a.WaitJS("the group in alice's chat list", fmt.Sprintf(`document.querySelector(".row-link[data-peer='%s'] .avatar.group") !== null`, g.ID))

	// Bob and Carol see the invitation come, and join.
	for _, tab := range []*browser.Tab{b, c} {
		tab.WaitJS("the invitation in the chat list", fmt.Sprintf(`[...document.querySelectorAll(".row-link.invitation")].some((e) => e.textContent.includes(%q) && e.textContent.includes("Alice invited you"))`, name))
		tab.ClickLike("link", name)
		tab.WaitText("Alice invited you to join this group.")
		if tab.Has("textbox", "Message") {
			t.Errorf("%s's page: a composer before joining", names[tab])
		}
		tab.Click("button", "Join")
		tab.WaitJS("the composer once joined", `(() => { const e = document.getElementById("composer"); return e !== null && e.offsetParent !== null && !e.disabled; })()`)
		tab.WaitJS("no invitation bar", `document.querySelector("[aria-label=Invitation]") === null`)
	}

	// Each writes in turn, once the previous message is on every page.
	lines := []struct {
		tab  *browser.Tab
		text string
	}{
		{a, "Who's in for the harbour museum on Saturday?"},
		{b, "Me! I'll book the tickets."},
		{c, "Count me in. Shall we meet at the café at 1:30?"},
	}
	for _, l := range lines {
		l.tab.Fill("Message", l.text)
		l.tab.Press("Enter")
		for _, tab := range tabs {
			tab.WaitJS(fmt.Sprintf("%q on %s's page", l.text, names[tab]), msgItem(l.text)+` !== null && !`+msgItem(l.text)+`.dataset.id.startsWith("tmp-")`)
		}
	}
	// Every page: its own message outgoing, the others' under the name
	// the reader knows them by. Bob and Carol aren't each other's
	// contacts: the node names them by the handle it looked up.
	want := map[*browser.Tab][]groupMsg{
		a: {{"out", "", lines[0].text}, {"in", "Bob", lines[1].text}, {"in", "Carol", lines[2].text}},
		b: {{"in", "Alice", lines[0].text}, {"out", "", lines[1].text}, {"in", "carol", lines[2].text}},
		c: {{"in", "Alice", lines[0].text}, {"in", "bob", lines[1].text}, {"out", "", lines[2].text}},
	}
	for _, tab := range tabs {
		tab.WaitJS("the senders' names", `document.querySelectorAll(".messages .msg.in .sender").length === 2`)
		var got []groupMsg
		check.Eventually(t, 30*time.Second, func() error {
			got = groupMessages(tab)
			if !slices.Equal(got, want[tab]) {
				return fmt.Errorf("%s's page shows %+v, want %+v", names[tab], got, want[tab])
			}
			return nil
		})
	}
	// The chat list says who wrote the last word.
	a.WaitJS("alice's chat list: Carol's message, with her name", preview("Carol: Count me in."))
	b.WaitJS("bob's chat list: Carol's message, with her name", preview("carol: Count me in."))
	c.WaitJS("carol's chat list: her own message", preview("You: Count me in."))

	if dir != "" {
		screenshotGroup(t, ctx, a, bob, carol, g.ID, filepath.Join(dir, "group-chat-desktop.png"))
	}

	// Alice removes Carol from the members panel.
	a.ClickLike("button", "Group info for "+name)
	a.WaitJS("the members panel", `document.querySelectorAll(".group-panel .member").length === 3`)
	a.WaitJS("alice is the admin, and herself", `(() => { const you = document.querySelector(".group-panel .member"); return you.querySelector(".member-name").textContent === "You" && you.querySelector(".tag.admin") !== null; })()`)
	if dir != "" {
		shootGroup(t, a, filepath.Join(dir, "group-members-desktop.png"))
	}
	a.Click("button", "Options for Carol")
	a.Click("menuitem", "Remove from group")
	a.Click("button", "Remove") // the confirmation
	a.WaitJS("2 members in alice's panel", `document.querySelectorAll(".group-panel .member").length === 2 && document.querySelector(".group-members h3").textContent === "2 members"`)
	if browser.Eval[bool](a, `[...document.querySelectorAll(".group-panel .member-name")].some((e) => e.textContent === "Carol")`) {
		t.Errorf("Carol still in alice's members panel")
	}
	c.WaitText("You were removed from this group.")
	c.WaitJS("no composer in carol's page", `(() => { const e = document.getElementById("composer"); return e === null || e.offsetParent === null; })()`)
	c.WaitJS("carol's chat list: still the group", fmt.Sprintf(`document.querySelector(".row-link[data-peer='%s']") !== null`, g.ID))

	// Bob writes again: Alice reads it, Carol doesn't get it.
	const after = "Carol had to drop out, so it's the two of us."
	b.WaitJS("2 members in bob's header", `document.querySelector(".chat-sub")?.textContent === "2 members"`)
	b.Fill("Message", after)
	b.Press("Enter")
	a.WaitJS("bob's message after the removal on alice's page", msgItem(after)+` !== null`)
	// Given time to cross, had it been sent to her: what reached Alice
	// would have reached Carol by now.
	time.Sleep(3 * time.Second)
	if browser.Eval[bool](c, msgItem(after)+` !== null`) || c.HasText(after) {
		t.Errorf("carol's page shows bob's message sent after she was removed")
	}
	p, err := carol.Client.MessagePage(ctx, g.ID, api.PageRequest{Newest: true, Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range p.Messages {
		if m.Text == after {
			t.Errorf("carol's node has bob's message sent after she was removed")
		}
	}
	if k := len(p.Messages); k < 3 {
		t.Errorf("carol's node keeps %d messages of the group, want the 3 from before", k)
	}

	// Alice renames the group: Bob's page follows, header and list.
	a.Click("button", "Rename group")
	a.Fill("Group name", "Museum day")
	a.Click("button", "Save")
	b.WaitJS("the new name in bob's header", `document.querySelector(".chat-title")?.textContent === "Museum day"`)
	b.WaitJS("the new name in bob's chat list", fmt.Sprintf(`document.querySelector(".row-link[data-peer='%s'] .row-name")?.textContent.startsWith("Museum day")`, g.ID))

	// Alice makes Bob an admin: his panel offers to add members.
	b.ClickLike("button", "Group info for Museum day")
	b.WaitJS("bob's members panel", `document.querySelectorAll(".group-panel .member").length === 2`)
	if b.Has("button", "Add members") || b.Has("button", "Options for Alice") && b.Has("menuitem", "Remove from group") {
		t.Errorf("bob, no admin, is offered to add or remove members")
	}
	a.Click("button", "Options for Bob")
	a.Click("menuitem", "Make admin")
	b.WaitFor("button", "Add members")
	b.WaitJS("two admins in bob's panel", `document.querySelectorAll(".group-panel .tag.admin").length === 2`)

	// Bob makes a group of his own with Carol, not his contact, by the
	// handle he types; she, whose contact he isn't either, is notified
	// (her tab in the background) and declines.
	background(c)
	b.Click("button", "Close group info")
	b.Click("button", "New group")
	b.Fill("Group name", "Book club")
	b.Fill("Add members", "@carol")
	b.ClickLike("button", "Add @carol")
	b.WaitJS("carol among the chosen", `[...document.querySelectorAll(".chips .chip")].map((e) => e.textContent).join() === "@carol"`)
	b.Click("button", "Create group")
	b.WaitJS("bob's new group open, with carol in it", `document.querySelector(".chat-title")?.textContent === "Book club" && document.querySelector(".chat-sub")?.textContent === "2 members"`)
	c.WaitJS("the invitation from a stranger counted on carol's Requests tab", requestsBadge+` === "1"`)
	c.WaitJS("carol's chat list leading to the request", `document.querySelector(".requests-link:not([hidden])")?.textContent === "1 message request"`)
	c.WaitJS("a notification of the invitation", `window.shown.some((n) => n.startsWith("Book club: ") && n.endsWith("invited you to the group") || n === "Book club: You're invited to join the group")`)
	if !browser.Eval[bool](c, notInChatList("Book club")) {
		t.Errorf("the invitation from a stranger is in carol's chat list (or she has none on screen)")
	}
	c.Click("link", "Requests")
	c.WaitJS("the invitation from a stranger in carol's requests", inRequests("Book club", "bob invited you to a group"))
	c.ClickLike("link", "Book club")
	c.WaitText("bob isn't in your contacts")
	if dir != "" {
		c.WaitJS("fonts", `document.fonts.status === "loaded"`)
		c.Screenshot(filepath.Join(dir, "group-request-desktop.png"))
	}
	c.Click("button", "Decline")
	c.WaitJS("carol back on her requests, without the invitation", `location.pathname === "/requests" && !`+inRequests("Book club", "")+` && `+requestsBadge+` === ""`)
	b.WaitJS("carol gone from bob's group", `document.querySelector(".chat-sub")?.textContent === "1 member"`)
	c.Click("link", "Chats")
	c.WaitJS("carol's chat list", `location.pathname === "/chats" && document.querySelector("[aria-label=Conversations] .row-link") !== null`)
	if !browser.Eval[bool](c, notInChatList("Book club")) {
		t.Errorf("the declined invitation is in carol's chat list")
	}

	// Bob asks her again, to another group: she joins from her requests,
	// and the group is a chat of her chat list.
	chess, err := bob.Client.CreateGroup(ctx, "Chess")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.GroupAction(ctx, chess.ID, "invite", api.GroupAction{Members: []string{"@carol"}}); err != nil {
		t.Fatal(err)
	}
	c.WaitJS("the second invitation counted on carol's Requests tab", requestsBadge+` === "1"`)
	if !browser.Eval[bool](c, notInChatList("Chess")) {
		t.Errorf("the second invitation from a stranger is in carol's chat list")
	}
	c.Click("link", "Requests")
	c.ClickLike("link", "Chess")
	c.Click("button", "Join")
	c.WaitJS("the group open among carol's chats, with the composer", fmt.Sprintf(`location.pathname === "/chats/%s" && document.querySelector(".chat-title")?.textContent === "Chess" && document.getElementById("composer")?.offsetParent != null`, chess.ID))
	c.WaitJS("the group in carol's chat list, no more in her requests", inChatList("Chess")+` && `+requestsBadge+` === ""`)
	check.Eventually(t, time.Minute, func() error {
		g, err := bob.Client.Group(ctx, chess.ID)
		if err == nil && len(g.Members) != 2 {
			err = fmt.Errorf("bob's Chess has %d members, want carol in too", len(g.Members))
		}
		return err
	})

	// With Alice's tab in the background, Bob's next message notifies her,
	// under the group's name, and counts in the tab's title.
	background(a)
	unread := browser.Eval[int](a, `Number((/^\((\d+)\)/.exec(document.title) || [0, 0])[1])`)
	const late = "Shall I bring the map?"
	if _, err := bob.Client.Send(ctx, g.ID, late); err != nil {
		t.Fatal(err)
	}
	a.WaitJS("a notification of bob's message in the group", fmt.Sprintf(`window.shown.includes(%q)`, "Museum day: Bob: "+late))
	a.WaitJS("the unread count in the title", fmt.Sprintf(`document.title === "(%d) callsign"`, unread+1))
	a.WaitJS("the unread badge on the group's row", fmt.Sprintf(`document.querySelector(".row-link[data-peer='%s'] .badge")?.textContent.startsWith("1")`, g.ID))

	// Bob leaves: his page says so, Alice's counts 1 member.
	b.ClickLike("link", "Museum day")
	b.ClickLike("button", "Group info for Museum day")
	b.Click("button", "Leave group")
	b.Click("button", "Leave") // the confirmation
	b.WaitText("You left this group.")
	b.WaitJS("no composer in bob's page", `(() => { const e = document.getElementById("composer"); return e === null || e.offsetParent === null; })()`)
	a.WaitJS("1 member in alice's panel", `document.querySelector(".group-members h3")?.textContent === "1 member"`)

	for _, tab := range tabs {
		if errs := tab.Errors(); len(errs) > 0 {
			t.Errorf("%s's page logged errors: %q", names[tab], errs)
		}
	}
}

// TestGroupInviteBlock: Alice, no contact of Bob's, invites him to a
// group. Opened from his requests, the invitation offers Block beside Join
// and Decline, as a stranger's first message does; he blocks her, says
// yes when asked, and is back on his requests without the invitation. The
// invitation is declined (Alice's group counts 1 member) and Alice is
// blocked among his contacts.
func TestGroupInviteBlock(t *testing.T) {
	alice, bob := newNet(t)
	ctx := ctxT(t, 3*time.Minute)
	b := browser.OpenApp(t, "bob", bob.Dir)
	b.Timeout = 60 * time.Second
	b.WaitJS("the groups read once the event stream is open", `performance.getEntriesByType("resource").some((e) => new URL(e.name).pathname === "/api/v1/groups")`)

	g, err := alice.Client.CreateGroup(ctx, "Poker")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.GroupAction(ctx, g.ID, "invite", api.GroupAction{Members: []string{"@bob"}}); err != nil {
		t.Fatal(err)
	}
	b.WaitJS("the invitation from a stranger counted on bob's Requests tab", requestsBadge+` === "1"`)
	b.Click("link", "Requests")
	b.WaitJS("the invitation in bob's requests", inRequests("Poker", "invited you to a group"))
	b.ClickLike("link", "Poker")
	b.WaitFor("button", "Join")
	b.WaitFor("button", "Decline")
	b.Click("button", "Block alice")
	b.WaitText("Block alice?")
	b.Click("button", "Block") // the confirmation
	b.WaitJS("bob back on his requests, without the invitation", `location.pathname === "/requests" && !`+inRequests("Poker", "")+` && `+requestsBadge+` === ""`)

	cs, err := bob.Client.Contacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(cs, func(c api.Contact) bool { return c.Account == alice.Account().String() }); i < 0 || !cs[i].Blocked {
		t.Errorf("bob's contacts after Block: %+v, want alice blocked", cs)
	}
	if in, err := bob.Client.Group(ctx, g.ID); err != nil || in.Status != "left" {
		t.Errorf("bob's invitation to Poker after Block: %+v, %v; want declined (left)", in, err)
	}
	if reqs, err := bob.Client.Requests(ctx); err != nil || len(reqs) != 0 {
		t.Errorf("bob's requests after Block: %+v, %v; want none", reqs, err)
	}
	check.Eventually(t, time.Minute, func() error {
		in, err := alice.Client.Group(ctx, g.ID)
		if err == nil && len(in.Members) != 1 {
			err = fmt.Errorf("alice's Poker has %d members, want bob gone", len(in.Members))
		}
		return err
	})
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("bob's page logged errors: %q", errs)
	}
}

// background makes tab's page believe it is in the background, and
// records the desktop notifications it shows in window.shown, as
// "title: body".
func background(tab *browser.Tab) {
	browser.Eval[bool](tab, `(() => {
		Object.defineProperty(document, "hidden", { get: () => true });
		Object.defineProperty(document, "visibilityState", { get: () => "hidden" });
		window.shown = [];
		window.Notification = class { constructor(title, o) { window.shown.push(title + ": " + o.body); } static get permission() { return "granted"; } close() {} };
		return true;
	})()`)
}

// requestsBadge is, in a page's JavaScript, the count the Requests tab
// shows ("" when none).
const requestsBadge = `(() => { const b = document.querySelector(".rail-item[data-section=requests] .badge"); return b && !b.hidden ? b.textContent : ""; })()`

// inChatList is, in a page's JavaScript, whether the chat list has a row
// named name; notInChatList, whether the chat list is on the page without
// one.
func inChatList(name string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("[aria-label=Conversations] .row-link .row-name")].some((e) => e.textContent.startsWith(%q))`, name)
}

func notInChatList(name string) string {
	return `document.querySelector("[aria-label=Conversations]") !== null && !` + inChatList(name)
}

// inRequests is, in a page's JavaScript, whether the requests list has a
// row named name whose text has text.
func inRequests(name, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("[aria-label='Message requests'] .row-link")].some((e) => e.querySelector(".row-name")?.textContent.startsWith(%q) && e.textContent.includes(%q))`, name, text)
}

// groupMsg is one message of a group conversation as a page shows it:
// its direction, the sender's name over it (none on your own) and text.
type groupMsg struct{ Dir, From, Text string }

// groupMessages reads the messages on tab's screen, oldest first.
func groupMessages(tab *browser.Tab) []groupMsg {
	return browser.Eval[[]groupMsg](tab, `[...document.querySelectorAll(".messages .msg:not(.msg-system)")].map((li) => ({
		Dir: li.classList.contains("out") ? "out" : "in",
		From: li.querySelector(".sender")?.textContent || "",
		Text: li.querySelector(".text")?.textContent || "",
	}))`)
}

// screenshotGroup adds a few messages to the group id through Bob's and
// Carol's nodes, so that the picture shows runs of messages and three
// senders, and saves Alice's page at path.
func screenshotGroup(t *testing.T, ctx context.Context, a *browser.Tab, bob, carol *testnet.Node, id, path string) {
	t.Helper()
	for _, x := range []struct {
		nd   *testnet.Node
		text string
	}{
		{bob, "1:30 works. The tickets are for 2 pm."},
		{bob, "They have a new exhibition on old harbour maps 🗺️"},
		{carol, "Perfect, see you both there!"},
	} {
		if _, err := x.nd.Client.Send(ctx, id, x.text); err != nil {
			t.Fatal(err)
		}
		a.WaitJS(fmt.Sprintf("%q on alice's page", x.text), msgItem(x.text)+` !== null`)
	}
	shootGroup(t, a, path)
}

// shootGroup saves tab's page at path once it has settled.
func shootGroup(t *testing.T, tab *browser.Tab, path string) {
	t.Helper()
	tab.WaitJS("fonts and images", `document.fonts.status === "loaded" && [...document.images].every((i) => i.complete)`)
	browser.Eval[bool](tab, `(document.querySelector(".messages-scroll").scrollTo(0, 1e6), true)`)
	mouse(t, tab, moved, 1, 1)
	time.Sleep(300 * time.Millisecond) // let the scroll settle before the picture
	tab.Screenshot(path)
}
