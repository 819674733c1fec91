package web_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
	"github.com/callsign/callsign/web"
)

// The words the app uses for a removed device (views/settings.js, main.js,
// views/chat.js).
const (
	removeConfirmText = "old-phone will get no new messages. Your contacts stop sending to it, and it is told it was removed. This can't be undone: to use it again, link it anew."
	revokedBanner     = "This device was removed from your account on another device. It no longer sends or receives new messages. To use it again, link it anew."
	revokedComposer   = "This device was removed from your account, so it can't send messages."
)

// composerOff is the JavaScript that says whether the open chat's
// composer, send button and header buttons (the disappearing-message timer
// and the two calls) are all disabled.
const composerOff = `(() => {
	const off = [document.getElementById("composer"), document.querySelector(".composer .send-btn"), ...document.querySelectorAll(".chat-actions button")];
	return off.length === 5 && off.every((e) => e && e.disabled);
})()`

// TestRevokeInSettings: Alice's account has three devices, her first one,
// a laptop and an old phone, each linked with `callsign up --link`. On her
// first device, Settings → Devices has a Remove button for the other two
// only; Remove asks first (Cancel keeps the phone), then revokes the phone,
// which the list shows struck through as removed while the laptop keeps
// its button; a removal that fails says why beside the list. The phone is
// told: its node says so, and its app, open in a chat with Bob, shows a
// banner across the app at once, with the composer and the call buttons
// off and the composer saying why; opened again, it still does, and its
// node refuses to send.
func TestRevokeInSettings(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{Web: web.FS(), Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second, CacheTTL: time.Second}})
	alice, bob := net.Nodes[1], net.Nodes[2]
	ctx := ctxT(t, 6*time.Minute)
	shots := os.Getenv("CALLSIGN_SCREENSHOTS")

	if c, err := alice.Client.Claim(ctx, "alice"); err != nil || c.Status != "claimed" {
		t.Fatalf("claim @alice: %+v, %v", c, err)
	}
	bobID, err := bob.Client.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.AddContact(ctx, bobID.Account, "Bob"); err != nil {
		t.Fatal(err)
	}
	laptop := net.StartOn(linkAs(ctx, t, net, alice, "laptop"))
	phone := net.StartOn(linkAs(ctx, t, net, alice, "old-phone"))
	for _, d := range []*testnet.Node{laptop, phone} {
		check.Until(t, 2*time.Minute, "the linked devices' records published", d.Published)
	}
	if shots != "" {
		// A conversation with Bob on the phone, for the screenshot.
		bobWrites(ctx, t, bob, phone, bobID.Account)
	}

	// The phone's app, in the chat with Bob, can write.
	q := browser.OpenApp(t, "old-phone", phone.Dir)
	q.Timeout = 90 * time.Second
	q.Click("link", "Contacts")
	q.ClickLike("link", "Bob")
	q.Click("link", "Message")
	q.WaitJS("the phone's composer on", `(() => { const c = document.getElementById("composer"); return c && !c.disabled; })()`)
	if q.HasText(revokedBanner) {
		t.Fatal("the phone says it was removed before it was")
	}

	// Alice's first device: Settings → Devices lists the three, with a
	// Remove button for the other two.
	p := browser.OpenApp(t, "alice", alice.Dir)
	p.Timeout = 90 * time.Second
	p.Click("link", "Settings")
	p.Click("link", "Devices")
	p.WaitJS("three devices listed, by name", `(() => {
		const names = [...document.querySelectorAll(".device-list .device-name")].map((e) => e.textContent);
		return names.length === 3 && names.includes("laptop") && names.includes("old-phone");
	})()`)
	p.WaitFor("button", "Remove laptop")
	p.WaitFor("button", "Remove old-phone")
	if n := browser.Eval[int](p, `document.querySelectorAll(".device-list button").length`); n != 2 {
		t.Errorf("%d Remove buttons, want 2 (none for this device)", n)
	}

	// Remove asks first; Cancel keeps the phone.
	p.Click("button", "Remove old-phone")
	p.WaitText(removeConfirmText)
	if d := p.Dialogs(); len(d) > 0 {
		t.Errorf("the browser's own dialogs opened: %q", d)
	}
	p.Click("button", "Cancel")
	p.WaitNoText(removeConfirmText)
	if ds, err := alice.Client.Devices(ctx); err != nil || slices.ContainsFunc(ds, func(d api.OwnDevice) bool { return d.Revoked }) {
		t.Fatalf("after Cancel Alice's devices are %+v %v, want none removed", ds, err)
	}

	// A removal that fails says why on the page, and removes nothing.
	browser.Eval[bool](p, `(() => {
		const f = window.fetch;
		window.fetch = (url, opts) => {
			if (String(url).endsWith("/revoke")) {
				window.fetch = f;
				return Promise.resolve(new Response(JSON.stringify({ code: "unavailable", error: "your node can't reach the network", hint: "try again in a minute" }),
					{ status: 503, headers: { "Content-Type": "application/json" } }));
			}
			return f(url, opts);
		};
		return true;
	})()`)
	p.Click("button", "Remove old-phone")
	p.WaitText(removeConfirmText)
	p.Click("button", "Remove")
	p.WaitText("Could not remove old-phone: Your node can't reach the network.")
	p.WaitText("Try again in a minute.")
	p.WaitFor("button", "Remove old-phone")

	p.Click("button", "Remove old-phone")
	p.WaitText(removeConfirmText)
	p.Click("button", "Remove")
	p.WaitNoText("Could not remove old-phone")
	p.WaitJS("old-phone listed as removed, without a button", `(() => {
		const r = [...document.querySelectorAll(".device-list li")].find((li) => li.querySelector(".device-name").textContent === "old-phone");
		return r && r.classList.contains("revoked") && r.querySelector(".tag.danger").textContent === "Removed" && !r.querySelector("button");
	})()`)
	p.WaitFor("button", "Remove laptop")
	if s := browser.Eval[string](p, `getComputedStyle([...document.querySelectorAll(".device-list li.revoked .device-name")][0]).textDecorationLine`); s != "line-through" {
		t.Errorf("the removed device's name is shown with text-decoration %q, want line-through", s)
	}
	ds, err := alice.Client.Devices(ctx)
	if err != nil || !slices.ContainsFunc(ds, func(d api.OwnDevice) bool { return d.Name == "old-phone" && d.Revoked }) ||
		slices.ContainsFunc(ds, func(d api.OwnDevice) bool { return d.Name != "old-phone" && d.Revoked }) {
		t.Fatalf("Alice's devices after Remove: %+v %v, want old-phone removed, only", ds, err)
	}

	// The phone is told: its node says so, and its open app at once.
	check.Eventually(t, 2*time.Minute, func() error {
		st, err := phone.Client.Status(ctx)
		if err == nil && !st.DeviceRevoked {
			err = errors.New("the phone's node does not say it was removed")
		}
		return err
	})
	q.WaitText(revokedBanner)
	q.WaitText(revokedComposer)
	q.WaitJS("the phone's composer and call buttons off", composerOff)

	// Opened again: the node's status says it.
	if shots != "" {
		q.GrantNotifications() // no offer to turn them on in the picture
		q.Viewport(1280, 800, false)
	}
	q.Reload()
	q.WaitText(revokedBanner)
	q.WaitText(revokedComposer)
	q.WaitJS("the phone's composer and call buttons off after a reload", composerOff)
	if _, err := phone.Client.Send(ctx, bobID.Account, "am I still here?"); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Errorf("a send from the removed phone: %v, want it refused", err)
	}
	if shots != "" {
		q.WaitText("Yes! I'll bring the cake.")
		q.Screenshot(filepath.Join(shots, "devices-revoked-desktop.png"))
	}
	for _, tab := range []*browser.Tab{p, q} {
		if errs := tab.Errors(); len(errs) > 0 {
			t.Errorf("page errors: %v", errs)
		}
	}
}

// linkAs links a new device called name to e's account, as `callsign up
// --link CODE` on a new data directory does, the person confirming on e
// the digits the new device shows; it returns the new device's
// configuration, to start it with net.StartOn.
func linkAs(ctx context.Context, t *testing.T, net *testnet.Net, e *testnet.Node, name string) node.Config {
	t.Helper()
	offer, err := e.Client.StartLink(ctx, api.LinkRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := net.NodeConfig()
	shown := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		_, err := node.Link(ctx, cfg, node.LinkOptions{Code: offer.Code, Name: name, ConfirmSAS: func(ctx context.Context, sas string) (bool, error) {
			shown <- sas
			return true, nil
		}})
		done <- err
	}()
	var sas string
	select {
	case sas = <-shown:
	case err := <-done:
		t.Fatalf("%s's link ended before it showed numbers: %v", name, err)
	case <-ctx.Done():
		t.Fatalf("%s showed no numbers", name)
	}
	check.Eventually(t, time.Minute, func() error {
		st, err := e.Client.LinkStatus(ctx)
		if err == nil && st.State != api.LinkSAS {
			err = fmt.Errorf("link state %s, want sas", st.State)
		}
		return err
	})
	if _, err := e.Client.ConfirmLink(ctx, sas); err != nil {
		t.Fatalf("confirm %s's link: %v", name, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s's link: %v", name, err)
		}
	case <-ctx.Done():
		t.Fatalf("%s's link did not end", name)
	}
	// Over on e too, so that the next link may start.
	check.Eventually(t, time.Minute, func() error {
		st, err := e.Client.LinkStatus(ctx)
		if err == nil && st.State != api.LinkLinked {
			err = fmt.Errorf("link state %s, want linked", st.State)
		}
		return err
	})
	return cfg
}

// bobWrites has Bob write to @alice and the phone answer, for a
// conversation on the phone's screen.
func bobWrites(ctx context.Context, t *testing.T, bob, phone *testnet.Node, bobAccount string) {
	t.Helper()
	if _, err := bob.Client.AddContact(ctx, "@alice", "Alice"); err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, 2*time.Minute, func() error {
		w, err := bob.Client.Whois(ctx, "@alice")
		if err == nil && len(w.Devices) != 3 {
			err = fmt.Errorf("@alice has %d devices", len(w.Devices))
		}
		return err
	})
	if _, err := bob.Client.Send(ctx, "@alice", "Are we still on for Saturday?"); err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, 2*time.Minute, func() error {
		pg, err := phone.Client.MessagePage(ctx, bobAccount, api.PageRequest{Newest: true, Limit: 5})
		if err == nil && len(pg.Messages) == 0 {
			err = errors.New("Bob's message has not reached the phone")
		}
		return err
	})
	m, err := phone.Client.Send(ctx, bobAccount, "Yes! I'll bring the cake.")
	if err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, 2*time.Minute, func() error {
		pg, err := phone.Client.MessagePage(ctx, bobAccount, api.PageRequest{Newest: true, Limit: 5})
		if err != nil {
			return err
		}
		for _, x := range pg.Messages {
			if x.ID == m.ID && (x.State == "delivered" || x.State == "read") {
				return nil
			}
		}
		return errors.New("the phone's answer is not delivered")
	})
}
