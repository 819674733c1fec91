package web_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

// TestJoinOnFirstRun: a new machine joins Alice's account from the web
// app's welcome screen. A code that is no code is refused in words and the
// form stays. With the code her device shows (pasted with spaces around
// it), the new machine shows the six digits her device shows; "They don't
// match" stops the link and "Try again" brings the form back. With a new code and "They match" on both sides, the node starts
// again as a device of her account, named as typed, and the page loads
// again by itself as Alice: her handle, her contact, no welcome screen.
func TestJoinOnFirstRun(t *testing.T) {
	n := testnet.New(t, 3, testnet.Options{Web: web.FS()})
	alice, bob := n.Nodes[1], n.Nodes[2]
	ctx := ctxT(t, 4*time.Minute)
	if c, err := alice.Client.Claim(ctx, "alice"); err != nil || c.Status != "claimed" {
		t.Fatalf("claim: %+v %v", c, err)
	}
	bobID, err := bob.Client.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.AddContact(ctx, bobID.Account, "Bob"); err != nil {
		t.Fatal(err)
	}

	// The new machine: `callsign up` on a new data directory.
	run := n.Run(t)
	first := run.Next(t)
	cfg := run.Config

	p := browser.OpenApp(t, "new machine", cfg.DataDir)
	p.WaitText("Welcome to callsign")
	p.Click("button", "Link to an existing account")
	p.WaitText("then type the code it shows here")

	p.Fill("Code", "callsign:link/nonsense")
	p.Click("button", "Link")
	p.WaitJS("the refusal under the form", `(() => { const e = document.querySelector("#join-error [role=alert]"); return !!e && e.textContent.length > 0; })()`)
	p.WaitFor("button", "Link")
	if got := browser.Eval[string](p, `document.getElementById("join-code").value`); got != "callsign:link/nonsense" {
		t.Errorf("after the refusal the code field holds %q", got)
	}

	// "They don't match" stops the link.
	offer, err := alice.Client.StartLink(ctx, api.LinkRequest{})
	if err != nil {
		t.Fatal(err)
	}
	p.Fill("Code", "  "+offer.Code+" ")
	p.Click("button", "Link")
	sas := joinDigits(t, p, "")
	aliceDigits(ctx, t, alice, sas)
	p.Click("button", "They don't match")
	p.WaitJS("the failure, in words", `(() => { const e = document.getElementById("join-failed"); return !!e && e.getAttribute("role") === "alert" && e.textContent.includes("didn't match"); })()`)
	// Alice's device, still asking for the numbers, is told no more:
	// she cancels there too.
	_, _ = alice.Client.CancelLink(ctx)
	waitAliceLink(ctx, t, alice, "failed")
	p.Click("button", "Try again")
	p.WaitFor("button", "Link")

	// "They match": the node starts again as a device of Alice's account.
	offer, err = alice.Client.StartLink(ctx, api.LinkRequest{})
	if err != nil {
		t.Fatal(err)
	}
	p.Fill("Code", offer.Code)
	p.Fill("Name of this device (optional)", "laptop")
	p.Click("button", "Link")
	sas = joinDigits(t, p, sas)
	aliceDigits(ctx, t, alice, sas)
	if dir := os.Getenv("CALLSIGN_SCREENSHOTS"); dir != "" {
		p.Viewport(1280, 800, false)
		p.Screenshot(filepath.Join(dir, "firstrun-join-desktop.png"))
	}
	browser.Eval[bool](p, `(() => { window.beforeJoin = true; return true; })()`)
	if _, err := alice.Client.ConfirmLink(ctx, sas); err != nil {
		t.Fatalf("Alice confirms the digits: %v", err)
	}
	p.Click("button", "They match")
	nd := run.Next(t)
	if nd == first {
		t.Fatal("the node did not start again")
	}
	if nd.Account() != alice.Account() {
		t.Fatalf("the node started again as %s, want Alice's %s", nd.Account(), alice.Account())
	}
	waitAliceLink(ctx, t, alice, "linked")

	// The page loads again by itself, signed in, as Alice.
	p.WaitJS("the page loaded again", `window.beforeJoin === undefined`)
	p.WaitNoText("Link to an existing account")
	p.WaitNoText("Welcome to callsign")
	c, err := api.DialDataDir(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if id, err := c.ID(ctx); err != nil || id.Account != alice.Account().String() {
		t.Fatalf("the new machine's GET /api/v1/id: %+v %v, want Alice's account %s", id, err, alice.Account())
	}
	ds, err := alice.Client.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, d := range ds {
		named = named || d.Name == "laptop"
	}
	if len(ds) != 2 || !named {
		t.Errorf("Alice's devices: %+v, want hers and the laptop", ds)
	}
	p.Click("link", "Settings")
	p.Click("link", "Profile and handles")
	p.WaitText("@alice")
	p.Click("link", "Contacts")
	p.WaitText("Bob")
}

// joinDigits waits for the welcome screen to show six digits other than
// old, with Cancel and both answers, and returns them.
func joinDigits(t *testing.T, p *browser.Tab, old string) string {
	t.Helper()
	p.WaitJS("six digits", `(() => {
		const s = document.getElementById("join-sas");
		return !!s && s.textContent.replace(/\D/g, "").length === 6 && s.textContent !== `+jsString(old)+`;
	})()`)
	p.WaitFor("button", "They match")
	p.WaitFor("button", "They don't match")
	p.WaitFor("button", "Cancel")
	return browser.Eval[string](p, `document.getElementById("join-sas").textContent`)
}

// aliceDigits waits for Alice's device to show digits, which must be sas.
func aliceDigits(ctx context.Context, t *testing.T, alice *testnet.Node, sas string) {
	t.Helper()
	st := waitAliceLink(ctx, t, alice, "sas")
	if digitsOf(st.SAS) != digitsOf(sas) {
		t.Fatalf("Alice's device shows %q, the new machine %q", st.SAS, sas)
	}
}

// waitAliceLink waits for Alice's link to reach state.
func waitAliceLink(ctx context.Context, t *testing.T, alice *testnet.Node, state string) api.LinkStatus {
	t.Helper()
	var st api.LinkStatus
	var err error
	for {
		st, err = alice.Client.LinkStatus(ctx)
		if err == nil && st.State == state {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Alice's link: %+v %v, want %s", st, err, state)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// digitsOf keeps the digits of s.
func digitsOf(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b = append(b, s[i])
		}
	}
	return string(b)
}
