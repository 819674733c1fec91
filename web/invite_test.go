package web_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

// TestInviteInSettings: a community node's settings show its invite, a
// button to copy it and a QR code of it, for a newcomer to scan.
func TestInviteInSettings(t *testing.T) {
	n := testnet.New(t, 2, testnet.Options{Web: web.FS()})
	hub := n.Nodes[0]
	st, err := hub.Client.Status(ctxT(t, time.Minute))
	if err != nil || st.Invite == nil || !strings.HasPrefix(st.Invite.Invite, "callsign:join/") {
		t.Fatalf("the hub's invite: %+v, %v", st.Invite, err)
	}
	p := openNodeSettings(t, "hub", hub.Dir)
	p.WaitText("Invite someone")
	p.WaitText(st.Invite.Invite)
	p.WaitJS("the QR code of the invite loaded", `(() => { const i = document.querySelector("img[alt='QR code of the invite']"); return i && i.complete && i.naturalWidth > 0; })()`)
	p.Click("button", "Copy the invite")
	if errs := p.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}

// TestMailboxesInSettings: a member's settings show the community node
// that holds its messages and that it is registered there; the community
// node's show what it holds, including a message waiting for a member who
// is offline.
func TestMailboxesInSettings(t *testing.T) {
	n := testnet.New(t, 3, testnet.Options{Web: web.FS()})
	hub, alice, carol := n.Nodes[0], n.Nodes[1], n.Nodes[2]
	n.WaitConnected(t, 2*time.Minute)
	hubID, err := hub.Client.ID(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	carolID, err := carol.Client.ID(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	p := openNodeSettings(t, "alice", alice.Dir)
	p.WaitText("Mailboxes")
	p.WaitJS("the hub listed as a registered mailbox", `[...document.querySelectorAll(".mailbox")].some((li) =>
		li.querySelector("[title]").title === `+strconv.Quote(hubID.Peer)+` && li.textContent.includes("Registered"))`)
	p.WaitJS("one-time prekeys waiting at the hub for first contacts", `[...document.querySelectorAll(".mailbox")].some((li) => /· [1-9][0-9]* keys for first contacts/.test(li.textContent))`)

	// Carol goes offline; Alice's message to her waits at the hub.
	if err := carol.Node.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.Send(ctxT(t, time.Minute), carolID.Account, "for later"); err != nil {
		t.Fatal(err)
	}
	h := openNodeSettings(t, "hub", hub.Dir)
	h.WaitText("This community node holds 1 message")
	h.WaitText("for 2 members while they are offline")
	for _, tab := range []*browser.Tab{p, h} {
		if errs := tab.Errors(); len(errs) > 0 {
			t.Errorf("page errors: %v", errs)
		}
	}
}

// openNodeSettings opens the app of the node with the data directory dir,
// past the first-run screen, at Settings → Your node.
func openNodeSettings(t *testing.T, name, dir string) *browser.Tab {
	t.Helper()
	p := browser.OpenApp(t, name, dir)
	p.WaitText("Welcome to callsign")
	p.Click("button", "Later")
	p.Click("link", "Settings")
	p.Click("link", "Your node")
	return p
}
