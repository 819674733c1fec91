package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

func ctxB(b *testing.B, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	b.Cleanup(cancel)
	return ctx
}

// benchNet is a hub and two nodes, @alice and @bob, each other's contacts.
func benchNet(b *testing.B) (alice, bob *testnet.Node) {
	n := testnet.New(b, 3, testnet.Options{Web: web.FS()})
	alice, bob = n.Nodes[1], n.Nodes[2]
	ctx := ctxB(b, 2*time.Minute)
	for nd, name := range map[*testnet.Node]string{alice: "alice", bob: "bob"} {
		if c, err := nd.Client.Claim(ctx, name); err != nil || c.Status != "claimed" {
			b.Fatalf("claim @%s: %+v, %v", name, c, err)
		}
	}
	if _, err := alice.Client.AddContact(ctx, "bob", ""); err != nil {
		b.Fatal(err)
	}
	if _, err := bob.Client.AddContact(ctx, "alice", ""); err != nil {
		b.Fatal(err)
	}
	return alice, bob
}

// The web app's benchmarks (docs/BENCHMARKS.md): real nodes on loopback,
// real headless Chromium pages, times taken in the pages themselves
// (performance.timeOrigin + performance.now(): the tabs share the
// machine's clock), each beside a baseline from the same run.
//
//	go test ./web -run '^$' -bench . -benchtime 20x

// probe is installed in a page: it stamps the last click and Enter key
// press (capture phase, before the app sees them), the first incoming-call
// dialog, the first decoded video frame of the live call, and when a
// message with a given text appears.
const probe = `(() => {
	const now = () => performance.timeOrigin + performance.now();
	const t = window.__t = { click: 0, key: 0, ring: 0, frame: 0, shown: {} };
	document.addEventListener("click", () => { t.click = now(); }, true);
	document.addEventListener("keydown", (e) => { if (e.key === "Enter") t.key = now(); }, true);
	new MutationObserver(() => {
		if (!t.ring && document.querySelector(".dialog.incoming")) t.ring = now();
		for (const el of document.querySelectorAll(".messages .msg .text")) {
			if (!(el.textContent in t.shown)) t.shown[el.textContent] = now();
		}
	}).observe(document.body, { childList: true, subtree: true });
	t.watchFrames = () => {
		t.frame = 0;
		const id = setInterval(async () => {
			const pc = window.callsign && window.callsign.pc;
			if (!pc) return;
			const at = now();
			let frames = 0;
			(await pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "video") frames = r.framesDecoded || 0; });
			if (frames > 0 && !t.frame) { t.frame = at; clearInterval(id); }
		}, 4);
	};
	return true;
})()`

func p50(ds []float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func reportMS(b *testing.B, name string, ds []float64) {
	if len(ds) == 0 {
		return
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	b.ReportMetric(s[len(s)/2], name+"-p50-ms")
	b.ReportMetric(s[len(s)-1], name+"-max-ms")
}

// BenchmarkBrowserCall: Call click in Bob's page → Alice's page rings, and
// Answer click → the first decoded video frame in both pages. Baselines
// from the same run: a call placed through the API (no browser) → the
// callee's node's incoming-call event, and two peer connections in one
// page (no node) → the first decoded frame.
func BenchmarkBrowserCall(b *testing.B) {
	alice, bob := benchNet(b)
	ta := browser.OpenApp(b, "alice", alice.Dir)
	tb := browser.OpenApp(b, "bob", bob.Dir)
	tb.Click("link", "Contacts")
	tb.ClickLike("link", "alice")
	tb.WaitFor("button", "Video call")
	var ring, caller, callee, both []float64
	b.ResetTimer()
	for range b.N {
		for _, p := range []*browser.Tab{ta, tb} {
			browser.Eval[bool](p, probe)
		}
		tb.Click("button", "Video call")
		ta.WaitFor("dialog", "bob is calling")
		ta.WaitJS("the ring stamped", `window.__t.ring > 0`)
		ring = append(ring, browser.Eval[float64](ta, `window.__t.ring`)-browser.Eval[float64](tb, `window.__t.click`))
		for _, p := range []*browser.Tab{ta, tb} {
			browser.Eval[bool](p, `(window.__t.watchFrames(), true)`)
		}
		ta.Click("button", "Answer with video")
		for _, p := range []*browser.Tab{ta, tb} {
			p.WaitJS("a decoded frame", `window.__t.frame > 0`)
		}
		click := browser.Eval[float64](ta, `window.__t.click`)
		fa, fb := browser.Eval[float64](ta, `window.__t.frame`)-click, browser.Eval[float64](tb, `window.__t.frame`)-click
		callee, caller, both = append(callee, fa), append(caller, fb), append(both, max(fa, fb))
		if testing.Verbose() {
			b.Log(browser.Eval[string](ta, `(() => { const c = window.__t.click - performance.timeOrigin; return performance.getEntriesByType("resource").filter((r) => r.name.includes("/calls/") && r.startTime > c - 5).map((r) => r.name.replace(/.*calls\//, "") + " " + Math.round(r.startTime - c) + "→" + Math.round(r.responseEnd - c)).join(", "); })()`))
		}
		tb.Click("button", "Hang up")
		for _, p := range []*browser.Tab{ta, tb} {
			p.WaitJS("the call over", `window.callsign.pc === null`)
			p.Click("button", "Close")
		}
	}
	b.StopTimer()

	// Baseline 1: the same invite without a browser on either side.
	evs, err := alice.Client.Events(ctxB(b, 10*time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	var ringBase []float64
	for range b.N {
		start := time.Now()
		c, err := bob.Client.Dial(ctxB(b, 10*time.Second), api.CallRequest{To: "alice", Audio: "tone"})
		if err != nil {
			b.Fatal(err)
		}
		for ev := range evs {
			if ev.Type == api.EventIncomingCall {
				break
			}
		}
		ringBase = append(ringBase, float64(time.Since(start))/float64(time.Millisecond))
		if _, err := bob.Client.CallAction(ctxB(b, 10*time.Second), c.ID, "hangup", nil); err != nil {
			b.Fatal(err)
		}
		waitEnded(b, bob, c.ID)
	}

	// Baseline 2: WebRTC alone in this browser, two connections in one
	// page on loopback with the fake camera: offer → first decoded frame.
	var rtcBase []float64
	for range b.N {
		rtcBase = append(rtcBase, browser.Eval[float64](ta, loopbackCall))
	}

	reportMS(b, "ring", ring)
	reportMS(b, "ring-api-baseline", ringBase)
	reportMS(b, "answer-frame-both", both)
	reportMS(b, "answer-frame-callee", callee)
	reportMS(b, "answer-frame-caller", caller)
	reportMS(b, "webrtc-baseline", rtcBase)
}

// loopbackCall connects two peer connections in the page, the fake camera
// on one, and resolves to the milliseconds from createOffer to the first
// frame the other decoded.
const loopbackCall = `(async () => {
	const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
	const a = new RTCPeerConnection(), b = new RTCPeerConnection();
	a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
	b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
	stream.getTracks().forEach((t) => a.addTrack(t, stream));
	const t0 = performance.now();
	await a.setLocalDescription(await a.createOffer());
	await b.setRemoteDescription(a.localDescription);
	await b.setLocalDescription(await b.createAnswer());
	await a.setRemoteDescription(b.localDescription);
	let t1 = 0;
	while (!t1 && performance.now() - t0 < 10000) {
		await new Promise((r) => setTimeout(r, 4));
		const at = performance.now();
		(await b.getStats()).forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "video" && r.framesDecoded > 0) t1 = at; });
	}
	stream.getTracks().forEach((t) => t.stop());
	a.close(); b.close();
	return t1 ? t1 - t0 : -1;
})()`

func waitEnded(b *testing.B, nd *testnet.Node, id string) {
	check.Eventually(b, 30*time.Second, func() error {
		c, err := nd.Client.Call(ctxB(b, 10*time.Second), id)
		if err != nil || c.State != "ended" {
			return fmt.Errorf("call %s: %+v %v", id, c, err)
		}
		return nil
	})
}

// BenchmarkBrowserMessage: Enter in Bob's page → the message shown in
// Alice's open conversation. Baseline from the same run: a message sent
// through the API → the event on Alice's node's event stream.
func BenchmarkBrowserMessage(b *testing.B) {
	alice, bob := benchNet(b)
	if _, err := bob.Client.Send(ctxB(b, 10*time.Second), "alice", "hello"); err != nil {
		b.Fatal(err)
	}
	check.Eventually(b, 30*time.Second, func() error {
		convs, err := alice.Client.Conversations(ctxB(b, 10*time.Second))
		if err != nil || len(convs) == 0 {
			return fmt.Errorf("alice has no conversation yet: %v", err)
		}
		return nil
	})
	ta := browser.OpenApp(b, "alice", alice.Dir)
	tb := browser.OpenApp(b, "bob", bob.Dir)
	ta.ClickLike("link", "bob")
	tb.ClickLike("link", "alice")
	ta.WaitText("hello")
	for _, p := range []*browser.Tab{ta, tb} {
		browser.Eval[bool](p, probe)
	}
	var shown []float64
	b.ResetTimer()
	for i := range b.N {
		text := fmt.Sprintf("message %d", i)
		tb.Fill("Message", text)
		tb.Press("Enter")
		ta.WaitJS("the message shown", fmt.Sprintf(`%q in window.__t.shown`, text))
		shown = append(shown, browser.Eval[float64](ta, fmt.Sprintf(`window.__t.shown[%q]`, text))-browser.Eval[float64](tb, `window.__t.key`))
		if testing.Verbose() {
			b.Log(shown[len(shown)-1], browser.Eval[string](tb, `(() => { const k = window.__t.key - performance.timeOrigin; const r = performance.getEntriesByType("resource").filter((r) => r.name.endsWith("/api/v1/messages")).pop(); return r ? Math.round(r.startTime - k) + "→" + Math.round(r.responseEnd - k) : "?"; })()`), browser.Eval[string](ta, `document.visibilityState`))
		}
	}
	b.StopTimer()

	evs, err := alice.Client.Events(ctxB(b, 10*time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	var base []float64
	for i := range b.N {
		text := fmt.Sprintf("api message %d", i)
		start := time.Now()
		if _, err := bob.Client.Send(ctxB(b, 10*time.Second), "alice", text); err != nil {
			b.Fatal(err)
		}
		for ev := range evs {
			if ev.Type == api.EventMessage && strings.Contains(string(ev.Data), strconv.Quote(text)) {
				break
			}
		}
		base = append(base, float64(time.Since(start))/float64(time.Millisecond))
	}
	reportMS(b, "typed-shown", shown)
	reportMS(b, "api-event-baseline", base)
}

// BenchmarkFirstLoad: a fresh tab's first load of the app (bytes over the
// wire) and the time from navigation until its lists are on screen: first
// opened, as a person opens the link `callsign up` prints, in a new tab of
// the browser they have been using (nothing of the app cached; "new-tab");
// cold in a brand-new browser context (its network context, storage and
// renderer start too; "cold"); on a reload; and opened again later.
// Baselines from the same run: the same kinds of tab loading one small
// static file of the app.
func BenchmarkFirstLoad(b *testing.B) {
	n := testnet.New(b, 2, testnet.Options{Web: web.FS()})
	alice := n.Nodes[1]
	var cold, warm, again, newTab, staticCold, staticWarm, staticNewTab, bytes []float64
	url := browser.AppURL(b, alice.Dir)
	file := url[:strings.Index(url, "/#")] + "/icon.svg"
	loaded := `(() => performance.getEntriesByType("navigation")[0].loadEventEnd)()`
	// The browser a person has been using: a page of another site loaded
	// in it, so its network context is up, but nothing of the app is kept.
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<!doctype html><title>elsewhere</title><p>another site")
	}))
	defer elsewhere.Close()
	used := func() *browser.Tab {
		home := browser.Open(b, "home", elsewhere.URL)
		home.WaitJS("the other site loaded", `document.readyState === "complete"`)
		return home
	}
	for range b.N {
		home := used()
		q := browser.OpenBeside(b, home, "alice", url)
		q.WaitJS("the app ready in a new tab", `window.callsign && window.callsign.readyAt > 0`)
		newTab = append(newTab, browser.Eval[float64](q, `window.callsign.readyAt`))
		home.Close()
		home = used()
		q = browser.OpenBeside(b, home, "file", file)
		q.WaitJS("the file loaded in a new tab", `document.readyState === "complete" && performance.getEntriesByType("navigation")[0].loadEventEnd > 0`)
		staticNewTab = append(staticNewTab, browser.Eval[float64](q, loaded))
		home.Close()

		p := browser.Open(b, "alice", url)
		p.WaitJS("the app ready", `window.callsign && window.callsign.readyAt > 0`)
		cold = append(cold, browser.Eval[float64](p, `window.callsign.readyAt`))
		var total int64
		for _, l := range p.Loads() {
			total += l.Bytes
		}
		bytes = append(bytes, float64(total))
		p.Reload()
		p.WaitJS("the app ready again", `window.callsign && window.callsign.readyAt > 0`)
		warm = append(warm, browser.Eval[float64](p, `window.callsign.readyAt`))
		// Opened again later (a new navigation, not a reload): the
		// versioned files come from the browser's cache unasked.
		p.Navigate("about:blank")
		p.Navigate(url)
		p.WaitJS("the app opened again", `window.callsign && window.callsign.readyAt > 0`)
		again = append(again, browser.Eval[float64](p, `window.callsign.readyAt`))
		p.Close()

		f := browser.Open(b, "file", file)
		f.WaitJS("the file loaded", `document.readyState === "complete"`)
		staticCold = append(staticCold, browser.Eval[float64](f, loaded))
		f.Reload()
		f.WaitJS("the file loaded again", `document.readyState === "complete" && performance.getEntriesByType("navigation")[0].loadEventEnd > 0`)
		staticWarm = append(staticWarm, browser.Eval[float64](f, loaded))
		f.Close()
	}
	reportMS(b, "ready-new-tab", newTab)
	reportMS(b, "static-file-new-tab-baseline", staticNewTab)
	reportMS(b, "ready-cold", cold)
	reportMS(b, "ready-reload", warm)
	reportMS(b, "ready-opened-again", again)
	reportMS(b, "static-file-cold-baseline", staticCold)
	reportMS(b, "static-file-reload-baseline", staticWarm)
	b.ReportMetric(p50(bytes)/1000, "first-load-kB")
}
