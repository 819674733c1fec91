package web_test

// Browser tests of the web app: real nodes (internal/testnet) serving the
// embedded app, driven in headless Chromium (internal/browser) the way a
// person uses it: controls found by their accessible names, text read off
// the rendered page.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newNet starts a hub and two nodes serving the app, alice and bob, with
// their handles claimed.
func newNet(t *testing.T) (alice, bob *testnet.Node) {
	t.Helper()
	n := testnet.New(t, 3, testnet.Options{Web: web.FS()})
	alice, bob = n.Nodes[1], n.Nodes[2]
	ctx := ctxT(t, 2*time.Minute)
	for nd, name := range map[*testnet.Node]string{alice: "alice", bob: "bob"} {
		c, err := nd.Client.Claim(ctx, name)
		if err != nil || c.Status != "claimed" {
			t.Fatalf("claim @%s: %+v, %v", name, c, err)
		}
	}
	return alice, bob
}

// msgState is the JavaScript that reads the state a person sees on the
// outgoing message with text: its label ("Read", "Delivered", ...).
func msgState(text string) string {
	return fmt.Sprintf(`(() => {
		const m = [...document.querySelectorAll(".messages .msg.out")].find((li) => li.querySelector(".text").textContent === %q);
		return m ? m.querySelector(".msg-state").textContent : "";
	})()`, text)
}

// TestMessaging: Bob adds Alice by her handle and writes; Alice's page
// shows the request without a reload; she accepts and replies from the
// page; Bob's page shows her reply, and his first message reaches "read".
func TestMessaging(t *testing.T) {
	alice, bob := newNet(t)
	a := browser.OpenApp(t, "alice", alice.Dir)
	b := browser.OpenApp(t, "bob", bob.Dir)

	// Bob: Contacts → Add contact → look alice up → add her → write.
	b.Click("link", "Contacts")
	b.Click("link", "Add contact")
	b.Fill("Handle", "@alice")
	b.Click("button", "Look up")
	b.WaitText("Found on the network")
	b.Click("button", "Add contact")
	b.WaitText("Safety number")
	b.Click("link", "Message")
	b.Fill("Message", "hello alice")
	b.Press("Enter")
	b.WaitJS("bob's message shown as sent", msgState("hello alice")+` !== "" && `+msgState("hello alice")+` !== "Queued"`)

	// Alice: the request shows up live, with a badge on Requests.
	a.WaitText("1 message request")
	a.WaitJS("the unread count in the title", `document.title.startsWith("(")`)
	a.Click("link", "Requests")
	a.ClickLike("link", "hello alice")
	a.WaitText("hello alice")
	if got := browser.Eval[string](a, msgState("hello alice")); got != "" {
		t.Errorf("alice's page shows a state on an incoming message: %q", got)
	}
	// Reading a request tells the sender nothing.
	if got := browser.Eval[string](b, msgState("hello alice")); got == "Read" {
		t.Errorf("bob sees his message read before alice accepted")
	}
	a.RecordText()
	a.Click("button", "Accept")
	a.WaitSeen("bob is now a contact")
	a.Fill("Message", "hi bob")
	a.Press("Enter")

	// Bob sees the reply and his message read, without a reload.
	b.WaitText("hi bob")
	b.WaitJS("bob's first message shown as read", msgState("hello alice")+` === "Read"`)
	if got := browser.Eval[string](b, `getComputedStyle(document.querySelector(".msg-state[data-state=read]")).color`); got == browser.Eval[string](b, `getComputedStyle(document.querySelector(".meta")).color`) {
		t.Errorf("read ticks have the same colour as the other ticks (%s): a person can't tell them apart", got)
	}
	// Alice's reply is delivered, and both lists show the conversation.
	// When her node's first attempt to reach Bob fails (it can under
	// -race on a busy machine), the reply waits at the hub's mailbox and
	// shows "Sent" until Bob's next drain or her next retry, up to 30 s
	// each: allow for both.
	a.Timeout = 90 * time.Second
	a.WaitJS("alice's reply delivered", msgState("hi bob")+` === "Delivered" || `+msgState("hi bob")+` === "Read"`)
	a.Timeout = browser.DefaultTimeout
	a.Click("link", "Chats")
	a.ClickLike("link", "hi bob")
	for _, tab := range []*browser.Tab{a, b} {
		if errs := tab.Errors(); len(errs) > 0 {
			t.Errorf("page errors: %v", errs)
		}
	}
}

// TestMessageTextIsText: a message that looks like HTML shows as those
// characters and runs nothing, in the request, the chat list and the chat.
func TestMessageTextIsText(t *testing.T) {
	alice, bob := newNet(t)
	ctx := ctxT(t, 3*time.Minute)
	const evil = `<img src=x onerror=alert(1)>`
	const evil2 = `<script>alert(2)</script><b onmouseover=alert(3)>bold</b>`
	sent, err := bob.Client.Send(ctx, "alice", evil)
	if err != nil {
		t.Fatal(err)
	}
	// When Bob's first attempt to reach Alice fails on a busy machine, the
	// message waits at the hub's mailbox until her next drain (up to 30 s):
	// what this test is about is how the page shows it once it is there.
	check.Until(t, 90*time.Second, "bob's message at alice's node", func() bool {
		pg, err := bob.Client.Messages(ctx, "alice", "", 10)
		return err == nil && len(pg.Messages) > 0 && pg.Messages[0].ID == sent.ID &&
			(pg.Messages[0].State == "delivered" || pg.Messages[0].State == "read")
	})
	a := browser.OpenApp(t, "alice", alice.Dir)
	a.Click("link", "Requests")
	a.ClickLike("link", evil)
	a.WaitText(evil)
	a.RecordText()
	a.Click("button", "Accept")
	a.WaitSeen("bob is now a contact")
	a.WaitJS("the request became a chat", `document.querySelector(".chat:not(.request) .messages .msg.in") !== null`)
	// A second one arrives live, into the open chat.
	if _, err := bob.Client.Send(ctx, "alice", evil2); err != nil {
		t.Fatal(err)
	}
	a.WaitText(evil2)
	a.WaitJS("both messages in the chat list's order", `document.querySelectorAll(".messages .msg.in").length === 2`)
	texts := browser.Eval[[]string](a, `[...document.querySelectorAll(".messages .msg.in .text")].map((e) => e.textContent)`)
	if len(texts) != 2 || texts[0] != evil || texts[1] != evil2 {
		t.Errorf("message texts = %q, want %q and %q", texts, evil, evil2)
	}
	// No element came out of the text: the CSP would stop the script, but
	// the page must not even build the <img>.
	const made = `document.querySelectorAll("#app img:not(.qr), #app script, #app b").length`
	if n := browser.Eval[int](a, made); n != 0 {
		t.Errorf("the chat made %d elements out of message text", n)
	}
	a.Click("link", "Chats")
	a.WaitJS("the chat list preview", `[...document.querySelectorAll(".row-preview")].some((e) => e.textContent.includes("bold</b>"))`)
	if n := browser.Eval[int](a, made); n != 0 {
		t.Errorf("the chat list made %d elements out of message text", n)
	}
	if d := a.Dialogs(); len(d) > 0 {
		t.Errorf("message text ran script: dialogs %v", d)
	}
	if errs := a.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}

// TestFirstRun: a node with no handle yet shows its self-certifying handle
// and its QR code, and claims a handle from the page.
func TestFirstRun(t *testing.T) {
	n := testnet.New(t, 2, testnet.Options{Web: web.FS()})
	nd := n.Nodes[1]
	id, err := nd.Client.ID(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	p := browser.OpenApp(t, "carol", nd.Dir)
	p.WaitText("Welcome to callsign")
	p.WaitText(id.Handle)
	p.WaitJS("the QR code of the handle loaded", `(() => { const i = document.querySelector("img[alt*='QR code of your handle']"); return i && i.complete && i.naturalWidth > 0; })()`)
	if alt := browser.Eval[string](p, `document.querySelector("img[alt*='QR code']").alt`); !strings.Contains(alt, id.Handle) {
		t.Errorf("the QR code's alt text %q does not name the handle %s", alt, id.Handle)
	}
	// An invalid name is refused with the node's hint.
	p.Fill("Handle", "a")
	p.Click("button", "Claim")
	p.WaitText("handles are 3 to 32 letters")
	p.Fill("Handle", "carol")
	p.Click("button", "Claim")
	p.WaitText("@carol")
	p.WaitText("You're on the network")
	p.Click("button", "Start messaging")
	p.WaitNoText("Welcome to callsign")
	hs, err := nd.Client.Handles(ctxT(t, time.Minute))
	if err != nil || len(hs) != 2 || hs[1].Name != "carol" {
		t.Fatalf("the node's handles after the claim: %+v, %v", hs, err)
	}
	// Settings show it, and a reload no longer offers the welcome.
	p.Click("link", "Settings")
	p.Click("link", "Profile and handles")
	p.WaitText("@carol")
	if errs := p.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}

// TestForeignOrigin: a page from another origin on the same machine can't
// use the API, not even with the token: the node answers 403, and the
// event stream refuses the WebSocket.
func TestForeignOrigin(t *testing.T) {
	n := testnet.New(t, 2, testnet.Options{Web: web.FS()})
	nd := n.Nodes[1]
	apiURL := "http://" + nd.Client.Addr()
	token := strings.TrimPrefix(browser.AppURL(t, nd.Dir), apiURL+"/#token=")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><title>elsewhere</title><p>another site</p>`)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })

	p := browser.Open(t, "foreign", "http://"+ln.Addr().String()+"/")
	got := browser.Eval[string](p, fmt.Sprintf(`(async () => {
		let http = "";
		try { const r = await fetch(%q, { headers: { Authorization: "Bearer " + %q } }); http = "read " + r.status; }
		catch (e) { http = "blocked"; }
		const ws = await new Promise((resolve) => {
			const s = new WebSocket(%q);
			s.onopen = () => { s.close(); resolve("open"); };
			s.onerror = () => resolve("refused");
		});
		let simple = "";
		try { await fetch(%q + "/api/v1/id"); simple = "read"; } catch (e) { simple = "blocked"; }
		return http + " " + ws + " " + simple;
	})()`, apiURL+"/api/v1/id", token, "ws://"+nd.Client.Addr()+"/api/v1/events?token="+token, apiURL))
	if got != "blocked refused blocked" {
		t.Errorf("from another origin: %s, want the API blocked and the WebSocket refused", got)
	}
	if st := p.WaitStatus(apiURL + "/api/v1/id"); st != http.StatusForbidden {
		t.Errorf("the node answered %d to another origin, want 403", st)
	}
	// The same node serves its own app: the check is the origin, not the route.
	var id api.ID
	own := browser.OpenApp(t, "own", nd.Dir)
	own.WaitText("Chats")
	id, err = nd.Client.ID(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got := browser.Eval[string](own, `fetch("/api/v1/id", { headers: { Authorization: "Bearer " + sessionStorage.getItem("callsign.token") } }).then((r) => r.json()).then((j) => j.account)`); got != id.Account {
		t.Errorf("the app's own origin read account %q, want %q", got, id.Account)
	}
}

// TestFirstLoad holds the app to its budget: at most 150 KB over the
// network for everything a first visit loads (a hard limit), and the
// page's own work to get the lists on screen (parsing, running, drawing:
// the time to ready when no request was in flight) well under a second. The 200 ms
// target for the whole first load on an idle machine is measured by
// BenchmarkFirstLoad; a test on a shared two-core machine can only guard
// against regressions of the app's own making.
func TestFirstLoad(t *testing.T) {
	n := testnet.New(t, 2, testnet.Options{Web: web.FS()})
	alice := n.Nodes[1]
	if _, err := alice.Client.Claim(ctxT(t, time.Minute), "alice"); err != nil {
		t.Fatal(err)
	}
	p := browser.OpenApp(t, "alice", alice.Dir)
	type timing struct{ Ready, Network float64 }
	best := timing{Ready: 1e9}
	for i := range 5 {
		if i > 0 {
			p.Reload()
		}
		p.WaitJS("the app ready", `window.callsign && window.callsign.readyAt > 0 && [...document.images].every((i) => i.complete)`)
		tm := browser.Eval[timing](p, `(() => {
			const ready = window.callsign.readyAt;
			const nav = performance.getEntriesByType("navigation")[0];
			// The time some request was in flight: the union of their intervals.
			const iv = [[0, nav.responseEnd], ...performance.getEntriesByType("resource").filter((e) => e.responseEnd <= ready).map((e) => [e.startTime, e.responseEnd])];
			iv.sort((a, b) => a[0] - b[0]);
			let net = 0, end = 0;
			for (const [a, b] of iv) { if (b > end) { net += b - Math.max(a, end); end = b; } }
			return { Ready: ready, Network: net };
		})()`)
		if tm.Ready-tm.Network < best.Ready-best.Network {
			best = tm
		}
		if i == 0 {
			// The first screen's data came from early.js's request, made
			// while the modules loaded and asked once, and the screen did
			// not wait for the conversation module. The page carried its
			// early script and style sheet inline (no request for them)
			// and the CSP let them run by their hashes: the early request
			// came and the style is applied.
			type boot struct {
				Early      bool
				AppLoads   int
				ChatBefore bool
				Fetched    []string
				Styled     bool
			}
			b := browser.Eval[boot](p, `(() => {
				const r = performance.getEntriesByType("resource");
				return {
					Early: window.callsign.early === true,
					AppLoads: r.filter((e) => new URL(e.name).pathname === "/api/v1/app").length,
					ChatBefore: r.some((e) => e.name.endsWith("/views/chat.js") && e.startTime < window.callsign.readyAt),
					Fetched: r.map((e) => new URL(e.name).pathname).filter((p) => /\/(early\.js|style\.css)$/.test(p)),
					Styled: getComputedStyle(document.querySelector(".shell")).display === "grid",
				};
			})()`)
			if !b.Early || b.AppLoads != 1 || b.ChatBefore {
				t.Errorf("first load: data from the early request %v (want true), GET /api/v1/app %d times (want 1), chat.js loaded before ready %v (want false)", b.Early, b.AppLoads, b.ChatBefore)
			}
			if len(b.Fetched) > 0 || !b.Styled {
				t.Errorf("first load: asked for %v (want them inline in the page), style applied %v", b.Fetched, b.Styled)
			}
			var total int64
			var lines []string
			seen := map[string]bool{}
			for _, l := range p.Loads() {
				total += l.Bytes
				u := strings.SplitN(l.URL, "?", 2)[0]
				lines = append(lines, fmt.Sprintf("%7d %s", l.Bytes, u))
				// A preload the tag can't use (a modulepreload of a
				// file no module imports the same way) is a second
				// request. (Chromium may ask for a favicon twice.)
				if seen[u] && !strings.HasSuffix(u, ".svg") {
					t.Errorf("first load asked for %s twice", u)
				}
				seen[u] = true
			}
			t.Logf("first load: %d bytes in %d requests", total, len(lines))
			if total > 150_000 {
				t.Errorf("first load transferred %d bytes, over the 150 KB budget:\n%s", total, strings.Join(lines, "\n"))
			}
		}
	}
	limit := 500.0
	if raceEnabled {
		limit = 1500
	}
	own := best.Ready - best.Network
	t.Logf("ready %.0f ms after navigation, %.0f ms of it the page's own work (best of 5)", best.Ready, own)
	if own > limit {
		t.Errorf("the page's own work to be ready took %.0f ms (ready at %.0f ms, %.0f ms waiting for the network), over %.0f ms", own, best.Ready, best.Network, limit)
	}
}

// TestNotifications: with the tab in the background, a message from a
// contact raises a desktop notification with the sender and the text, and
// the tab's title counts it; a stranger's message notifies as a request.
func TestNotifications(t *testing.T) {
	alice, bob := newNet(t)
	ctx := ctxT(t, time.Minute)
	if _, err := alice.Client.AddContact(ctx, "bob", "Bob"); err != nil {
		t.Fatal(err)
	}
	a := browser.OpenApp(t, "alice", alice.Dir)
	a.GrantNotifications()
	a.Reload()
	a.WaitJS("the app ready", `window.callsign && window.callsign.readyAt > 0`)
	if a.HasText("Get notified of new messages") {
		t.Errorf("the page offers notifications that are already allowed")
	}
	// The tab goes to the background; notifications are recorded.
	browser.Eval[bool](a, `(() => {
		Object.defineProperty(document, "hidden", { get: () => true });
		Object.defineProperty(document, "visibilityState", { get: () => "hidden" });
		window.shown = [];
		window.Notification = class { constructor(title, o) { window.shown.push(title + ": " + o.body); } static get permission() { return "granted"; } close() {} };
		return true;
	})()`)
	if _, err := bob.Client.Send(ctx, "alice", "are you there?"); err != nil {
		t.Fatal(err)
	}
	a.WaitJS("a notification of bob's message", `window.shown.includes("Bob: are you there?")`)
	a.WaitJS("the unread count in the title", `document.title === "(1) callsign"`)
	// Someone who isn't a contact: a request.
	if err := alice.Client.RemoveContact(ctx, "Bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.Send(ctx, "alice", "hello?"); err != nil {
		t.Fatal(err)
	}
	a.WaitJS("a notification of the request", `window.shown.some((n) => n.startsWith("New message request"))`)
}

// TestPhoneLayout: at phone width the chat list and a conversation are two
// screens, with a way back.
func TestPhoneLayout(t *testing.T) {
	alice, bob := newNet(t)
	if _, err := bob.Client.Send(ctxT(t, time.Minute), "alice", "small screens"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.Accept(ctxT(t, time.Minute), "bob"); err != nil {
		t.Fatal(err)
	}
	a := browser.OpenApp(t, "alice", alice.Dir)
	// Bob's message may reach Alice's node after the first screen's data
	// was read and before the event stream opened: the app reads its lists
	// again once the stream is open, so the message is in one or the other.
	a.WaitJS("the lists read again once the event stream is open", `performance.getEntriesByType("resource").some((e) => new URL(e.name).pathname === "/api/v1/conversations")`)
	a.Viewport(390, 844, true)
	const shown = `(sel) => { const e = document.querySelector(sel); return !!e && e.getBoundingClientRect().width > 0; }`
	a.WaitJS("the chat list on the whole screen", `((shown) => shown("#list-pane") && !shown("#main") && document.querySelector("#list-pane").getBoundingClientRect().width >= 380)(`+shown+`)`)
	a.ClickLike("link", "small screens")
	a.WaitJS("the conversation instead of the list", `((shown) => shown("#main") && !shown("#list-pane") && !shown(".rail"))(`+shown+`)`)
	a.WaitText("small screens")
	a.Click("link", "Back to chats")
	a.WaitJS("the list again", `((shown) => shown("#list-pane") && !shown("#main"))(`+shown+`)`)
	if w := browser.Eval[float64](a, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the page is %v px wide on a 390 px screen: it scrolls sideways", w)
	}
}

// TestSignIn: without a token the app explains how to open it; a wrong
// token is refused with the node's words; the right one opens the app, and
// the address bar never keeps it.
func TestSignIn(t *testing.T) {
	n := testnet.New(t, 2, testnet.Options{Web: web.FS()})
	nd := n.Nodes[1]
	full := browser.AppURL(t, nd.Dir)
	base, token, _ := strings.Cut(full, "#token=")
	p := browser.Open(t, "visitor", base)
	p.WaitText("Open your node's address")
	p.WaitText("api.token")
	p.Fill("API token", strings.Repeat("0", 64))
	p.Click("button", "Open")
	p.WaitText("missing or wrong API token")
	p.WaitText("the token is in the node's data directory")
	p.Fill("API token", token)
	p.Click("button", "Open")
	p.WaitText("Welcome to callsign")
	if loc := browser.Eval[string](p, "location.href"); strings.Contains(loc, token) {
		t.Errorf("the address bar shows the token: %s", loc)
	}
	o := browser.OpenApp(t, "opener", nd.Dir)
	o.WaitText("Welcome to callsign")
	if loc := browser.Eval[string](o, "location.href"); strings.Contains(loc, "token") {
		t.Errorf("the address bar kept the token after opening: %s", loc)
	}
}
