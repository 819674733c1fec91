package web_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

// TestLinkOnFirstRun: the welcome screen of a new node offers to link it
// to an account used on another device, and says how: the code from
// Settings → Devices there, typed into a form here; Back returns to the
// welcome. TestJoinOnFirstRun follows a link to its end.
func TestLinkOnFirstRun(t *testing.T) {
	n := testnet.New(t, 2, testnet.Options{Web: web.FS()})
	p := browser.OpenApp(t, "new machine", n.Nodes[1].Dir)
	p.WaitText("Welcome to callsign")
	p.Click("button", "Link to an existing account")
	p.WaitText("Settings → Devices → Link a new device")
	p.WaitText("then type the code it shows here")
	p.WaitJS("the code field, focused", `document.activeElement === document.getElementById("join-code")`)
	p.WaitFor("button", "Link")
	if dir := os.Getenv("CALLSIGN_SCREENSHOTS"); dir != "" {
		p.Viewport(1280, 800, false)
		p.Screenshot(filepath.Join(dir, "firstrun-link-desktop.png"))
	}
	p.Click("button", "Back")
	p.WaitText("Claim a short handle")
}
