package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
	"github.com/callsign/callsign/web"
)

// TestLinkInSettings: in Settings → Devices, Alice links a laptop to her
// account from her page. "Link a new device" shows the code (the command
// to run, a QR code, when it expires); the laptop uses it, her page shows
// the six digits the laptop shows, she types them and confirms, and her
// page says "laptop is linked" and lists two devices. A second link, where
// she types other digits than the new device shows, is declined: her page
// says the numbers differ and the new device's link fails. Cancel ends a
// link that waits, and one started elsewhere can be replaced.
func TestLinkInSettings(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{Web: web.FS()})
	alice := net.Nodes[1]
	ctx := ctxT(t, 4*time.Minute)
	shots := os.Getenv("CALLSIGN_SCREENSHOTS")

	p := browser.OpenApp(t, "alice", alice.Dir)
	p.WaitText("Welcome to callsign")
	p.Click("button", "Later")
	p.Click("link", "Settings")
	p.Click("link", "Devices")
	p.WaitText("This device")
	p.WaitJS("one device listed", `document.querySelectorAll(".device-list li").length === 1`)

	p.Click("button", "Link a new device")
	code := linkCode(p, "")
	p.WaitText("On the new device run:")
	p.WaitText("callsign up --link " + code)
	p.WaitText("The code works once and expires in")
	p.WaitJS("the QR code of the code loaded", `(() => { const i = document.querySelector(".link-offer img.qr"); return i && i.complete && i.naturalWidth > 0; })()`)

	// The page follows the link while it is shown, and stops when the
	// person leaves it; back on the page, the code shows again.
	browser.Eval[bool](p, `(() => {
		window.linkPolls = 0;
		const f = window.fetch;
		window.fetch = (url, opts) => {
			if (String(url).endsWith("/api/v1/devices/link") && !(opts && opts.method && opts.method !== "GET")) window.linkPolls++;
			return f(url, opts);
		};
		return true;
	})()`)
	p.WaitJS("the page asking how the link goes", `window.linkPolls > 0`)
	p.Click("link", "Profile and handles")
	p.WaitText("Your handles")
	p.WaitJS("no more asking once the page is left", `new Promise((done) => { const n = window.linkPolls; setTimeout(() => done(window.linkPolls === n), 2500); })`)
	p.Click("link", "Devices")
	p.WaitText("callsign up --link " + code)

	// The laptop: `callsign up --link CODE` on a new data directory.
	sas, done := linkFrom(ctx, t, net, code)
	p.WaitText(sas)
	if got := browser.Eval[string](p, `document.getElementById("link-sas-digits").textContent`); got != sas {
		t.Fatalf("Alice's page shows %q, the laptop %q", got, sas)
	}
	if shots != "" {
		p.Viewport(1280, 800, false)
		p.Screenshot(filepath.Join(shots, "devices-link-desktop.png"))
	}
	p.Fill("Type the numbers the new device shows", sas)
	p.Click("button", "Confirm")
	p.WaitText("laptop is linked")
	if err := waitLink(ctx, t, done); err != nil {
		t.Fatalf("the laptop's link: %v", err)
	}
	p.WaitJS("two devices listed, the laptop one of them", `(() => {
		const rows = [...document.querySelectorAll(".device-list li")];
		return rows.length === 2 && rows.some((r) => r.textContent.includes("laptop")) && rows.some((r) => r.textContent.includes("This device"));
	})()`)
	if shots != "" {
		p.Viewport(390, 844, true)
		p.WaitText("laptop is linked")
		p.Screenshot(filepath.Join(shots, "devices-phone.png"))
		p.Viewport(1280, 800, false)
	}

	// A second link: Alice types digits that differ from the new device's.
	p.Click("button", "Link another device")
	code2 := linkCode(p, code)
	sas2, done2 := linkFrom(ctx, t, net, code2)
	p.WaitText(sas2)
	p.Fill("Type the numbers the new device shows", wrongDigits(sas2))
	p.Click("button", "Confirm")
	p.WaitText("The numbers differ from this device's")
	if err := waitLink(ctx, t, done2); !errors.Is(err, devices.ErrLinkDeclined) {
		t.Fatalf("the second device's link: %v, want %v", err, devices.ErrLinkDeclined)
	}
	p.WaitFor("button", "Start again")
	p.WaitJS("still two devices", `document.querySelectorAll(".device-list li").length === 2`)
	if st, err := alice.Client.LinkStatus(ctx); err != nil || st.State != "failed" {
		t.Errorf("after the declined link Alice's node says %+v %v, want failed", st, err)
	}

	// Cancel ends a waiting link; a link started elsewhere (the CLI) is
	// offered to be replaced.
	p.Click("button", "Start again")
	code3 := linkCode(p, code2)
	p.Click("button", "Cancel")
	p.WaitFor("button", "Link a new device")
	if st, err := alice.Client.LinkStatus(ctx); err != nil || st.State != "failed" {
		t.Errorf("after Cancel Alice's node says %+v %v, want the link over", st, err)
	}
	if _, err := alice.Client.StartLink(ctx, api.LinkRequest{}); err != nil {
		t.Fatal(err)
	}
	p.Click("button", "Link a new device")
	p.WaitText("Another link is already waiting for a new device")
	p.Click("button", "Cancel it and start again")
	linkCode(p, code3)
	p.Click("button", "Cancel")
	p.WaitFor("button", "Link a new device")
	if errs := p.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}

// linkCode waits for the page to show a link code other than old and
// returns it.
func linkCode(p *browser.Tab, old string) string {
	p.WaitJS("a link code", `(() => { const c = document.getElementById("link-code"); return c && c.textContent.startsWith("callsign:link/") && c.textContent !== `+jsString(old)+`; })()`)
	return browser.Eval[string](p, `document.getElementById("link-code").textContent`)
}

// linkFrom runs `callsign up --link code` for a new device called laptop
// on a new data directory, in a goroutine: it returns the digits the new
// device shows, once it shows them (its person says they match), and
// where Link's error comes.
func linkFrom(ctx context.Context, t *testing.T, net *testnet.Net, code string) (string, <-chan error) {
	t.Helper()
	shown := make(chan string, 1)
	done := make(chan error, 1)
	cfg := net.NodeConfig()
	go func() {
		_, err := node.Link(ctx, cfg, node.LinkOptions{Code: code, Name: "laptop", ConfirmSAS: func(ctx context.Context, sas string) (bool, error) {
			shown <- sas
			return true, nil
		}})
		done <- err
	}()
	select {
	case sas := <-shown:
		return sas, done
	case err := <-done:
		t.Fatalf("the new device's link ended before it showed numbers: %v", err)
	case <-ctx.Done():
		t.Fatal("the new device showed no numbers")
	}
	return "", nil
}

// waitLink waits for a link from linkFrom to end.
func waitLink(ctx context.Context, t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		t.Fatal("the new device's link did not end")
		return nil
	}
}

// wrongDigits is sas with its first digit changed.
func wrongDigits(sas string) string {
	return string('0'+(sas[0]-'0'+1)%10) + sas[1:]
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
