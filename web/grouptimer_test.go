package web_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

// TestGroupTimer: in a group of three (Alice, its admin; Bob and Carol),
// Alice sets disappearing messages from her page's header menu (30
// seconds there, which the test makes the node's shortest, 5 seconds, on
// its way). Every page shows the timer in the header and a line saying so
// ("Disappearing messages: 5 seconds"); only Alice's page has the timer
// button, and Bob's node, asked, has the group's timer too. Alice's next
// message shows in Bob's and Carol's pages, and her own, with a timer
// mark, then goes from all three pages by itself, not before its time,
// and from the three nodes. No page logs an error.
func TestGroupTimer(t *testing.T) {
	n := testnet.New(t, 4, testnet.Options{Web: web.FS()})
	alice, bob, carol := n.Nodes[1], n.Nodes[2], n.Nodes[3]
	ctx := ctxT(t, 5*time.Minute)
	threeFriends(t, ctx, alice, bob, carol)

	// The group, made and joined through the API (TestGroups does it in
	// the pages).
	const name = "Harbour trip"
	g := groupOfThree(t, ctx, name, alice, bob, carol)
	a := browser.OpenApp(t, "alice", alice.Dir)
	b := browser.OpenApp(t, "bob", bob.Dir)
	c := browser.OpenApp(t, "carol", carol.Dir)
	tabs := []*browser.Tab{a, b, c}
	names := map[*browser.Tab]string{a: "alice", b: "bob", c: "carol"}
	for _, tab := range tabs {
		tab.GrantNotifications()
		tab.Reload()
		tab.Viewport(1280, 800, false)
		tab.Timeout = 60 * time.Second // messages cross between three nodes on a busy machine
		// A list drawn again under the pointer would lose the click.
		tab.WaitJS("the groups read once the event stream is open", `performance.getEntriesByType("resource").some((e) => new URL(e.name).pathname === "/api/v1/groups")`)
		tab.ClickLike("link", name)
		tab.WaitJS("the group open", fmt.Sprintf(`document.querySelector(".chat-title")?.textContent === %q && document.getElementById("composer") !== null && !document.getElementById("composer").disabled`, name))
		if got := browser.Eval[string](tab, badge); got != "" {
			t.Errorf("%s's page shows a timer badge %q before any timer was set", names[tab], got)
		}
	}
	// The timer is the admin's to set.
	a.WaitFor("button", "Disappearing messages")
	for _, tab := range []*browser.Tab{b, c} {
		if browser.Eval[bool](tab, `document.getElementById("timer-button") !== null`) {
			t.Errorf("%s's page offers the timer button to a member who isn't an admin", names[tab])
		}
	}

	// The menu's shortest timer is 30 seconds; so that a message goes in
	// seconds, the test turns Alice's choice into the node's shortest, 5
	// seconds, on its way: the pages show what the node answered.
	browser.Eval[bool](a, `(() => {
		const f = window.fetch;
		window.fetch = (url, opts) => {
			if (String(url).endsWith("/timer") && opts && opts.method === "POST" && JSON.parse(opts.body).seconds === 30) opts = { ...opts, body: JSON.stringify({ seconds: 5 }) };
			return f(url, opts);
		};
		return true;
	})()`)
	a.Click("button", "Disappearing messages")
	a.WaitJS("the timer menu, Off checked", checked+` === "Off"`)
	if got := browser.Eval[string](a, `document.querySelector(".timer-menu-note").textContent`); got != "New messages disappear for everyone in the group after:" {
		t.Errorf("the group's timer menu says %q", got)
	}
	a.Click("menuitemradio", "30 seconds")
	a.WaitJS("the menu closed", `document.querySelector(".timer-menu") === null`)
	for _, tab := range tabs {
		tab.WaitJS("the badge in "+names[tab]+"'s header: 5 seconds", badge+`.includes("5 seconds")`)
		tab.WaitJS("the line about it in "+names[tab]+"'s page", systemLine("Disappearing messages: 5 seconds"))
	}
	if bg, err := bob.Client.Group(ctx, g.ID); err != nil || bg.Timer != 5 {
		t.Errorf("the group's timer at bob's node: %d, %v; want 5", bg.Timer, err)
	}
	if browser.Eval[bool](b, `document.getElementById("timer-button") !== null`) {
		t.Errorf("bob's page offers the timer button once the timer is on")
	}

	// Alice's next message disappears by itself, from every page.
	const text = "This one won't last"
	a.Fill("Message", text)
	a.Press("Enter")
	timed := msgItem(text) + `.querySelector(".msg-expires")`
	a.WaitJS("alice's message sent, with its timer mark", msgItem(text)+` !== null && !`+msgItem(text)+`.dataset.id.startsWith("tmp-") && `+timed+` !== null`)
	id := browser.Eval[string](a, msgItem(text)+`.dataset.id`)
	expires, err := time.Parse(time.RFC3339Nano, browser.Eval[string](a, timed+`.dataset.expires`))
	if err != nil {
		t.Fatalf("the message's expires_at: %v", err)
	}
	if left := time.Until(expires); left <= 0 || left > 6*time.Second {
		t.Errorf("the message expires in %v, want within 5 seconds of sending it", left)
	}
	for _, tab := range []*browser.Tab{b, c} {
		tab.WaitJS("alice's message in "+names[tab]+"'s page, with its timer mark", fmt.Sprintf(`document.querySelector('.msg.in[data-id=%q] .msg-expires') !== null`, id))
	}
	for _, tab := range tabs {
		tab.Timeout = 20 * time.Second // its 5 seconds, then the node's sweep
		tab.WaitJS("the message gone from "+names[tab]+"'s page", fmt.Sprintf(`document.querySelector('.messages .msg[data-id=%q]') === null && %s === null`, id, msgItem(text)))
		if now := time.Now(); now.Before(expires.Add(-time.Second)) {
			t.Errorf("%s's page dropped the message %v before its time", names[tab], expires.Sub(now))
		}
		tab.Timeout = 60 * time.Second
	}
	for nd, who := range map[*testnet.Node]string{alice: "alice", bob: "bob", carol: "carol"} {
		p, err := nd.Client.Messages(ctx, g.ID, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			if m.ID == id || m.Text == text {
				t.Errorf("%s's node still lists the expired message: %+v", who, m)
			}
		}
	}
	// The header still shows the timer, and the line stays.
	for _, tab := range tabs {
		if !browser.Eval[bool](tab, badge+`.includes("5 seconds") && `+systemLine("Disappearing messages: 5 seconds")) {
			t.Errorf("%s's page lost the timer's badge or line once the message went", names[tab])
		}
		if errs := tab.Errors(); len(errs) > 0 {
			t.Errorf("%s's page logged errors: %q", names[tab], errs)
		}
	}
}
