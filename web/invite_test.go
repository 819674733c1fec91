package web_test

import (
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
	p := browser.OpenApp(t, "hub", hub.Dir)
	p.WaitText("Welcome to callsign")
	p.Click("button", "Later")
	p.Click("link", "Settings")
	p.Click("link", "Your node")
	p.WaitText("Invite someone")
	p.WaitText(st.Invite.Invite)
	p.WaitJS("the QR code of the invite loaded", `(() => { const i = document.querySelector("img[alt='QR code of the invite']"); return i && i.complete && i.naturalWidth > 0; })()`)
	p.Click("button", "Copy the invite")
	if errs := p.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}
