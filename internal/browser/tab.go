package browser

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/callsign/callsign/api"
)

// DefaultTimeout bounds each wait and lookup of a Tab: long enough for a
// busy two-core machine running the race detector, short enough to fail a
// broken page within a minute.
const DefaultTimeout = 30 * time.Second

// Tab is one page in a browser context of its own. Its methods fail the
// test that opened it (with a screenshot and the page's console) and must
// be called from that test's goroutine.
type Tab struct {
	t       testing.TB
	name    string
	ctx     context.Context
	cancel  context.CancelFunc
	Timeout time.Duration // for each wait and lookup; DefaultTimeout

	mu      sync.Mutex
	console []string         // console messages and uncaught exceptions
	errs    []string         // uncaught exceptions and console.error calls
	dialogs []string         // alert, confirm and prompt dialogs that opened
	status  map[string]int64 // HTTP status of each response, by URL
	urls    map[network.RequestID]string
	loads   []Load // finished loads, in order
	wg      sync.WaitGroup
	closed  bool
}

// Open opens url in a new tab of the test binary's browser, in a fresh
// browser context. name labels the tab in failure reports ("alice"). The
// tab closes at the end of the test.
func Open(t testing.TB, name, rawURL string) *Tab {
	t.Helper()
	b := Get(t)
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	return open(t, name, rawURL, ctx, cancel)
}

// OpenBeside opens url in a new tab of the same browser context as
// other, as a person opens a link in a new tab of the browser they have
// been using: the context's cache, cookies and connections are shared;
// sessionStorage is the new tab's own. The tab closes at the end of the
// test, or with other.
func OpenBeside(t testing.TB, other *Tab, name, rawURL string) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(other.ctx)
	return open(t, name, rawURL, ctx, cancel)
}

func open(t testing.TB, name, rawURL string, ctx context.Context, cancel context.CancelFunc) *Tab {
	t.Helper()
	tab := &Tab{t: t, name: name, ctx: ctx, cancel: cancel, Timeout: DefaultTimeout, status: map[string]int64{}, urls: map[network.RequestID]string{}}
	t.Cleanup(tab.Close)
	// The first Run creates the tab; it must not carry a deadline (see
	// chromedp.Run), so a watchdog cancels the tab if the browser hangs.
	watchdog := time.AfterFunc(2*DefaultTimeout, cancel)
	_, err := chromedp.Run(ctx, chromedp.Evaluate[int]("1"))
	if !watchdog.Stop() && err == nil {
		err = errors.New("the browser did not open it in time")
	}
	if err != nil {
		t.Fatalf("browser: open a tab for %s: %v", name, err)
	}
	if err := chromedp.Listen(ctx, tab.onEvent); err != nil {
		t.Fatalf("browser: listen to %s's tab: %v", name, err)
	}
	if _, err := chromedp.Call(ctx, accessibility.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("browser: accessibility in %s's tab: %v", name, err)
	}
	tab.Navigate(rawURL)
	return tab
}

// AppURL is the address of a node's web app with its token, as `callsign
// up` prints it, read from the node's data directory.
func AppURL(t testing.TB, dataDir string) string {
	t.Helper()
	addr, err := os.ReadFile(filepath.Join(dataDir, api.AddrFile))
	if err != nil {
		t.Fatalf("browser: the node's API address: %v", err)
	}
	token, err := os.ReadFile(filepath.Join(dataDir, api.TokenFile))
	if err != nil {
		t.Fatalf("browser: the node's API token: %v", err)
	}
	return "http://" + strings.TrimSpace(string(addr)) + "/#token=" + strings.TrimSpace(string(token))
}

// OpenApp opens the web app of the node whose data directory is dataDir.
func OpenApp(t testing.TB, name, dataDir string) *Tab {
	t.Helper()
	return Open(t, name, AppURL(t, dataDir))
}

// Close closes the tab and its browser context. It is idempotent.
func (tab *Tab) Close() {
	tab.mu.Lock()
	if tab.closed {
		tab.mu.Unlock()
		return
	}
	tab.closed = true
	tab.mu.Unlock()
	tab.cancel()
	tab.wg.Wait()
}

func (tab *Tab) onEvent(ev any) {
	switch ev := ev.(type) {
	case *page.EventJavascriptDialogOpening:
		tab.mu.Lock()
		tab.dialogs = append(tab.dialogs, fmt.Sprintf("%s: %q", ev.Type, ev.Message))
		closed := tab.closed
		tab.mu.Unlock()
		if closed {
			return
		}
		// A dialog blocks the page until handled; dismiss it from outside
		// the event loop (commands can't run inside a listener).
		tab.wg.Go(func() {
			ctx, cancel := context.WithTimeout(tab.ctx, 10*time.Second)
			defer cancel()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		})
	case *network.EventResponseReceived:
		tab.mu.Lock()
		tab.status[ev.Response.URL] = ev.Response.Status
		tab.urls[ev.RequestID] = ev.Response.URL
		tab.mu.Unlock()
	case *network.EventLoadingFinished:
		tab.mu.Lock()
		tab.loads = append(tab.loads, Load{URL: tab.urls[ev.RequestID], Bytes: int64(ev.EncodedDataLength)})
		tab.mu.Unlock()
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			parts = append(parts, remoteString(a))
		}
		line := fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(parts, " "))
		tab.mu.Lock()
		tab.console = append(tab.console, line)
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			tab.errs = append(tab.errs, line)
		}
		tab.mu.Unlock()
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text = d.Exception.Description
		}
		line := fmt.Sprintf("uncaught: %s (%s:%d)", text, d.URL, d.LineNumber+1)
		tab.mu.Lock()
		tab.console = append(tab.console, line)
		tab.errs = append(tab.errs, line)
		tab.mu.Unlock()
	}
}

func remoteString(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if len(o.Value) > 0 {
		var s string
		if jsonv2.Unmarshal(o.Value, &s) == nil {
			return s
		}
		return string(o.Value)
	}
	if o.Description != "" {
		return o.Description
	}
	return string(o.Type)
}

// Dialogs lists the JavaScript dialogs (alert, confirm, prompt) that
// opened in the tab; each was dismissed at once.
func (tab *Tab) Dialogs() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.dialogs...)
}

// Status is the HTTP status of the last response the tab received from
// rawURL (as the network saw it, also when CORS kept it from the page),
// and whether there was one.
func (tab *Tab) Status(rawURL string) (int64, bool) {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	s, ok := tab.status[rawURL]
	return s, ok
}

// Load is one finished network load: its URL and the bytes transferred
// (headers and body as they came over the wire).
type Load struct {
	URL   string
	Bytes int64
}

// Loads lists the network loads the tab has finished, oldest first.
func (tab *Tab) Loads() []Load {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]Load(nil), tab.loads...)
}

// WaitStatus waits until the tab has received a response from rawURL and
// returns its HTTP status.
func (tab *Tab) WaitStatus(rawURL string) int64 {
	tab.t.Helper()
	var st int64
	tab.poll("a response from "+redact(rawURL), func(context.Context) (bool, error) {
		var ok bool
		st, ok = tab.Status(rawURL)
		return ok, nil
	})
	return st
}

// Errors lists the page's uncaught exceptions and console.error calls.
func (tab *Tab) Errors() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.errs...)
}

// Fatalf fails the test with a screenshot of the tab and its console.
func (tab *Tab) Fatalf(format string, args ...any) {
	tab.t.Helper()
	msg := fmt.Sprintf(format, args...)
	tab.t.Fatalf("%s's tab: %s%s", tab.name, msg, tab.report())
}

// report saves a screenshot and collects the console for a failure.
func (tab *Tab) report() string {
	var sb strings.Builder
	dir := artifactDir()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(tab.t.Name()+"-"+tab.name) + time.Now().Format("-150405.000") + ".png"
	ctx, cancel := context.WithTimeout(tab.ctx, 10*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err != nil {
		fmt.Fprintf(&sb, "\n(no screenshot: %v)", err)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(&sb, "\n(no screenshot: %v)", err)
	} else if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		fmt.Fprintf(&sb, "\n(no screenshot: %v)", err)
	} else {
		fmt.Fprintf(&sb, "\nscreenshot: %s", filepath.Join(dir, name))
	}
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
		fmt.Fprintf(&sb, "\naddress: %s", redact(loc))
	}
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''")); err == nil {
		if len(text) > 1500 {
			text = text[:1500] + "…"
		}
		fmt.Fprintf(&sb, "\npage text:\n%s", indent(text))
	}
	tab.mu.Lock()
	console := append([]string(nil), tab.console...)
	tab.mu.Unlock()
	if len(console) > 30 {
		console = console[len(console)-30:]
	}
	if len(console) > 0 {
		fmt.Fprintf(&sb, "\nconsole:\n%s", indent(strings.Join(console, "\n")))
	}
	return sb.String()
}

func redact(u string) string {
	for _, secret := range []string{"#token=", "#ticket="} {
		if i := strings.Index(u, secret); i >= 0 {
			return u[:i] + secret + "…"
		}
	}
	return u
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ")
}

// Navigate loads rawURL in the tab and waits for it to load.
func (tab *Tab) Navigate(rawURL string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(rawURL)); err != nil {
		tab.Fatalf("navigate to %s: %v", redact(rawURL), err)
	}
}

// Reload reloads the page and waits for it to load.
func (tab *Tab) Reload() {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		tab.Fatalf("reload: %v", err)
	}
}

// Context is the tab's chromedp context, for what the helpers don't cover.
func (tab *Tab) Context() context.Context { return tab.ctx }

// poll calls check until it reports done, the timeout passes (then the
// test fails with what and check's last error) or the tab closes.
func (tab *Tab) poll(what string, check func(ctx context.Context) (bool, error)) {
	tab.t.Helper()
	deadline := time.Now().Add(tab.Timeout)
	tick := time.NewTicker(40 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ctx, cancel := context.WithTimeout(tab.ctx, 10*time.Second)
		ok, err := check(ctx)
		cancel()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last != nil {
				tab.Fatalf("%s: not within %v: %v", what, tab.Timeout, last)
			}
			tab.Fatalf("%s: not within %v", what, tab.Timeout)
		}
		select {
		case <-tick.C:
		case <-tab.ctx.Done():
			tab.t.Fatalf("%s's tab closed while waiting for %s", tab.name, what)
		}
	}
}

// Eval evaluates a JavaScript expression in tab (awaiting a promise) and
// returns its value decoded into T.
func Eval[T any](tab *Tab, js string) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tab.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// WaitJS waits until the JavaScript expression cond is truthy (a promise
// is awaited); what says what the test waits for, in a person's words.
func (tab *Tab) WaitJS(what, cond string) {
	tab.t.Helper()
	expr := "(async () => { try { return !!(await (" + cond + ")); } catch (e) { return false; } })()"
	tab.poll(what, func(ctx context.Context) (bool, error) {
		return chromedp.Run(ctx, chromedp.Evaluate[bool](expr, chromedp.EvalAwaitPromise))
	})
}

// WaitText waits until text shows on the page (in its rendered text, so
// not in hidden elements).
func (tab *Tab) WaitText(text string) {
	tab.t.Helper()
	tab.WaitJS(fmt.Sprintf("the text %q", text), "document.body.innerText.includes("+jsString(text)+")")
}

// RecordText starts remembering every line of text the page shows from
// now on, for WaitSeen: a toast or a screen that shows for a few seconds
// is still seen by a test that looks late on a loaded machine.
func (tab *Tab) RecordText() {
	tab.t.Helper()
	Eval[bool](tab, `(() => {
		const seen = window.__callsignSeen = window.__callsignSeen || new Set();
		const note = () => { for (const l of document.body.innerText.split("\n")) if (l.trim()) seen.add(l.trim()); };
		note();
		new MutationObserver(note).observe(document.body, { subtree: true, childList: true, characterData: true });
		return true;
	})()`)
}

// WaitSeen waits until text shows on the page or, after RecordText, has
// shown at any moment since.
func (tab *Tab) WaitSeen(text string) {
	tab.t.Helper()
	q := jsString(text)
	expr := "(() => { const seen = [...(window.__callsignSeen || [])]; " +
		"if (document.body.innerText.includes(" + q + ") || seen.some((l) => l.includes(" + q + "))) return ''; " +
		"const gone = seen.filter((l) => !document.body.innerText.includes(l)); " +
		"return 'no longer shown: ' + (gone.slice(-30).join(' | ') || 'nothing'); })()"
	tab.poll(fmt.Sprintf("the text %q", text), func(ctx context.Context) (bool, error) {
		seen, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			return false, err
		}
		if seen != "" {
			return false, errors.New(seen)
		}
		return true, nil
	})
}

// WaitNoText waits until text is no longer shown.
func (tab *Tab) WaitNoText(text string) {
	tab.t.Helper()
	tab.WaitJS(fmt.Sprintf("the text %q to go", text), "!document.body.innerText.includes("+jsString(text)+")")
}

// HasText reports whether text shows on the page now.
func (tab *Tab) HasText(text string) bool {
	tab.t.Helper()
	return Eval[bool](tab, "document.body.innerText.includes("+jsString(text)+")")
}

func jsString(s string) string {
	b, err := jsonv2.Marshal(s)
	if err != nil {
		panic("bug: a Go string is not JSON: " + err.Error())
	}
	return string(b)
}

// Node is a control found in the accessibility tree.
type Node struct {
	Role, Name string
	backend    cdp.BackendNodeID
	disabled   bool
}

// find queries the accessibility tree for nodes with role (any role when
// "") whose accessible name is name (any when "").
func (tab *Tab) find(ctx context.Context, role, name string) ([]Node, error) {
	doc, err := chromedp.Call(ctx, dom.GetDocument, dom.GetDocumentParams{Depth: ptr[int64](0)})
	if err != nil {
		return nil, err
	}
	res, err := chromedp.Call(ctx, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{BackendNodeID: doc.Root.BackendNodeID, AccessibleName: name, Role: role})
	if err != nil {
		return nil, err
	}
	var out []Node
	for _, n := range res.Nodes {
		if n.Ignored || n.BackendDOMNodeID == 0 {
			continue
		}
		nd := Node{Role: axString(n.Role), Name: axString(n.Name), backend: n.BackendDOMNodeID}
		for _, p := range n.Properties {
			if p.Name == accessibility.PropertyNameDisabled && axString(p.Value) == "true" {
				nd.disabled = true
			}
		}
		out = append(out, nd)
	}
	return out, nil
}

func axString(v *accessibility.Value) string {
	if v == nil || len(v.Value) == 0 {
		return ""
	}
	var s string
	if jsonv2.Unmarshal(v.Value, &s) == nil {
		return s
	}
	return strings.Trim(string(v.Value), `"`)
}

func ptr[T any](v T) *T { return &v }

// waitNode waits for exactly one enabled control with role and name.
func (tab *Tab) waitNode(role, name string) Node {
	tab.t.Helper()
	var found Node
	tab.poll(fmt.Sprintf("a %s named %q", role, name), func(ctx context.Context) (bool, error) {
		nodes, err := tab.find(ctx, role, name)
		if err != nil {
			return false, err
		}
		switch {
		case len(nodes) == 0:
			return false, errors.New("none on the page")
		case len(nodes) > 1:
			return false, fmt.Errorf("%d of them on the page", len(nodes))
		case nodes[0].disabled:
			return false, errors.New("it is disabled")
		}
		found = nodes[0]
		return true, nil
	})
	return found
}

// Has reports whether a control with role and name is on the page now.
func (tab *Tab) Has(role, name string) bool {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.Timeout)
	defer cancel()
	nodes, err := tab.find(ctx, role, name)
	if err != nil {
		tab.Fatalf("look for a %s named %q: %v", role, name, err)
	}
	return len(nodes) > 0
}

// WaitFor waits until a control with role and name is on the page.
func (tab *Tab) WaitFor(role, name string) {
	tab.t.Helper()
	tab.waitNode(role, name)
}

// ClickLike clicks the one control with role whose accessible name
// contains part (a list row's name holds its whole text: "bob hello 10:42").
func (tab *Tab) ClickLike(role, part string) {
	tab.t.Helper()
	tab.click(role, "", part)
}

// Click clicks the one control with role (button, link, checkbox, ...) and
// accessible name, with real mouse events at its centre, once it exists,
// is enabled and is not covered by something else.
func (tab *Tab) Click(role, name string) {
	tab.t.Helper()
	tab.click(role, name, "")
}

func (tab *Tab) click(role, name, part string) {
	tab.t.Helper()
	what := fmt.Sprintf("click the %s named %q", role, name)
	if part != "" {
		what = fmt.Sprintf("click the %s whose name has %q", role, part)
	}
	tab.poll(what, func(ctx context.Context) (bool, error) {
		all, err := tab.find(ctx, role, name)
		if err != nil {
			return false, err
		}
		var nodes []Node
		for _, n := range all {
			if strings.Contains(n.Name, part) {
				nodes = append(nodes, n)
			}
		}
		if len(nodes) != 1 {
			return false, fmt.Errorf("%d such controls on the page", len(nodes))
		}
		n := nodes[0]
		if n.disabled {
			return false, errors.New("it is disabled")
		}
		x, y, err := tab.centre(ctx, n)
		if err != nil {
			return false, err
		}
		if err := tab.mouseClick(ctx, x, y); err != nil {
			return false, err
		}
		return true, nil
	})
}

// centre scrolls n into view and returns its centre, checking that a
// click there reaches it.
func (tab *Tab) centre(ctx context.Context, n Node) (x, y float64, err error) {
	if _, err := chromedp.Call(ctx, dom.ScrollIntoViewIfNeeded, dom.ScrollIntoViewIfNeededParams{BackendNodeID: n.backend}); err != nil {
		return 0, 0, fmt.Errorf("scroll into view: %w", err)
	}
	q, err := chromedp.Call(ctx, dom.GetContentQuads, dom.GetContentQuadsParams{BackendNodeID: n.backend})
	if err != nil || len(q.Quads) == 0 || len(q.Quads[0]) < 8 {
		return 0, 0, fmt.Errorf("it has no box on the page (%v)", err)
	}
	quad := q.Quads[0]
	for i := 0; i < 8; i += 2 {
		x += quad[i] / 4
		y += quad[i+1] / 4
	}
	obj, err := chromedp.Call(ctx, dom.ResolveNode, dom.ResolveNodeParams{BackendNodeID: n.backend})
	if err != nil {
		return 0, 0, err
	}
	hit, err := chromedp.Call(ctx, runtime.CallFunctionOn, runtime.CallFunctionOnParams{
		ObjectID:            obj.Object.ObjectID,
		FunctionDeclaration: `function(x, y) { const e = document.elementFromPoint(x, y); return e === null ? "nothing" : (this === e || this.contains(e)) ? "" : (e.outerHTML || "").slice(0, 120); }`,
		Arguments:           []*runtime.CallArgument{{Value: jsonv2.Value(fmt.Sprint(x))}, {Value: jsonv2.Value(fmt.Sprint(y))}},
		ReturnByValue:       ptr(true),
	})
	if err != nil {
		return 0, 0, err
	}
	var cover string
	if hit.Result != nil {
		_ = jsonv2.Unmarshal(hit.Result.Value, &cover)
	}
	if cover != "" {
		return 0, 0, fmt.Errorf("something covers it: %s", cover)
	}
	return x, y, nil
}

func (tab *Tab) mouseClick(ctx context.Context, x, y float64) error {
	for _, typ := range []input.DispatchMouseEventType{input.DispatchMouseEventTypeMouseMoved, input.DispatchMouseEventTypeMousePressed, input.DispatchMouseEventTypeMouseReleased} {
		p := input.DispatchMouseEventParams{Type: typ, X: x, Y: y}
		if typ != input.DispatchMouseEventTypeMouseMoved {
			p.Button, p.Buttons, p.ClickCount = input.MouseButtonLeft, 1, 1
		}
		if _, err := chromedp.Call(ctx, input.DispatchMouseEvent, p); err != nil {
			return fmt.Errorf("mouse %s: %w", typ, err)
		}
	}
	return nil
}

var editable = map[string]bool{"textbox": true, "searchbox": true, "combobox": true, "spinbutton": true}

// Fill types text into the field whose accessible name is label (its
// <label>, aria-label or placeholder), replacing what is in it, as typing
// does (input events fire).
func (tab *Tab) Fill(label, text string) {
	tab.t.Helper()
	tab.poll(fmt.Sprintf("type into the field %q", label), func(ctx context.Context) (bool, error) {
		nodes, err := tab.find(ctx, "", label)
		if err != nil {
			return false, err
		}
		var fields []Node
		for _, n := range nodes {
			if editable[n.Role] {
				fields = append(fields, n)
			}
		}
		if len(fields) != 1 {
			return false, fmt.Errorf("%d fields with that name", len(fields))
		}
		f := fields[0]
		if f.disabled {
			return false, errors.New("it is disabled")
		}
		if _, err := chromedp.Call(ctx, dom.Focus, dom.FocusParams{BackendNodeID: f.backend}); err != nil {
			return false, err
		}
		obj, err := chromedp.Call(ctx, dom.ResolveNode, dom.ResolveNodeParams{BackendNodeID: f.backend})
		if err != nil {
			return false, err
		}
		if _, err := chromedp.Call(ctx, runtime.CallFunctionOn, runtime.CallFunctionOnParams{
			ObjectID: obj.Object.ObjectID, FunctionDeclaration: `function() { if (this.select) this.select(); }`,
		}); err != nil {
			return false, err
		}
		if text == "" {
			return true, tab.key(ctx, "Backspace")
		}
		if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: text}); err != nil {
			return false, err
		}
		return true, nil
	})
}

// ChooseFiles chooses files in the file field whose accessible name is
// label, as a person picking them in the file dialog would: the field's
// change event fires.
func (tab *Tab) ChooseFiles(label string, files ...string) {
	tab.t.Helper()
	tab.poll(fmt.Sprintf("choose files in the field %q", label), func(ctx context.Context) (bool, error) {
		nodes, err := tab.find(ctx, "", label)
		if err != nil {
			return false, err
		}
		// The accessibility tree names a file field's button, inside the
		// input; its element is the input itself, or the one it belongs to.
		var inputs []runtime.RemoteObjectID
		for _, n := range nodes {
			obj, err := chromedp.Call(ctx, dom.ResolveNode, dom.ResolveNodeParams{BackendNodeID: n.backend})
			if err != nil {
				return false, err
			}
			res, err := chromedp.Call(ctx, runtime.CallFunctionOn, runtime.CallFunctionOnParams{
				ObjectID: obj.Object.ObjectID, FunctionDeclaration: `function() {
					const el = this.nodeType === 1 ? this : this.parentElement;
					const f = el && (el.closest("input[type=file]") || el.control);
					return f && f.type === "file" && !f.disabled ? f : null; }`,
			})
			if err != nil {
				return false, err
			}
			if res.Result.ObjectID != "" {
				inputs = append(inputs, res.Result.ObjectID)
			}
		}
		if len(inputs) != 1 {
			return false, fmt.Errorf("%d enabled file fields with that name", len(inputs))
		}
		_, err = chromedp.Call(ctx, dom.SetFileInputFiles, dom.SetFileInputFilesParams{Files: files, ObjectID: inputs[0]})
		return err == nil, err
	})
}

type keyDef struct {
	code string
	vk   int64
	text string
}

var keys = map[string]keyDef{
	"Enter":     {"Enter", 13, "\r"},
	"Escape":    {"Escape", 27, ""},
	"Tab":       {"Tab", 9, ""},
	"Backspace": {"Backspace", 8, ""},
	"ArrowUp":   {"ArrowUp", 38, ""},
	"ArrowDown": {"ArrowDown", 40, ""},
}

func (tab *Tab) key(ctx context.Context, key string) error {
	k, ok := keys[key]
	if !ok {
		return fmt.Errorf("no key %q", key)
	}
	down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: key, Code: k.code, WindowsVirtualKeyCode: k.vk, NativeVirtualKeyCode: k.vk, Text: k.text, UnmodifiedText: k.text}
	if k.text == "" {
		down.Type = input.DispatchKeyEventTypeRawKeyDown
	}
	if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, down); err != nil {
		return err
	}
	up := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Key: key, Code: k.code, WindowsVirtualKeyCode: k.vk, NativeVirtualKeyCode: k.vk}
	_, err := chromedp.Call(ctx, input.DispatchKeyEvent, up)
	return err
}

// Press presses key (Enter, Escape, Tab, Backspace, ArrowUp, ArrowDown) in
// whatever has the focus.
func (tab *Tab) Press(key string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.Timeout)
	defer cancel()
	if err := tab.key(ctx, key); err != nil {
		tab.Fatalf("press %s: %v", key, err)
	}
}

// Viewport sets the tab's viewport in CSS pixels; mobile emulates a phone
// (touch, mobile viewport meta).
func (tab *Tab) Viewport(width, height int, mobile bool) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.Timeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: int64(width), Height: int64(height), DeviceScaleFactor: 1, Mobile: mobile,
	}); err != nil {
		tab.Fatalf("set the viewport: %v", err)
	}
}

// Screenshot saves the visible viewport as a PNG at path.
func (tab *Tab) Screenshot(path string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.Timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tab.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tab.t.Fatalf("save screenshot: %v", err)
	}
}

// GrantNotifications lets the page's origin show desktop notifications
// without asking.
func (tab *Tab) GrantNotifications() {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.Timeout)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		tab.Fatalf("location: %v", err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		tab.Fatalf("location %q: %v", redact(loc), err)
	}
	c := chromedp.FromContext(tab.ctx)
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission:       &cdpbrowser.PermissionDescriptor{Name: "notifications"},
		Setting:          cdpbrowser.PermissionSettingGranted,
		Origin:           u.Scheme + "://" + u.Host,
		BrowserContextID: c.BrowserContextID,
	}); err != nil {
		tab.Fatalf("grant notifications: %v", err)
	}
}
