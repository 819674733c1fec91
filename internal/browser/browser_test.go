package browser

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const harnessPage = `<!doctype html><title>harness</title>
<h1>Harness</h1>
<label for="name">Your name</label><input id="name">
<button id="greet" type="button">Greet</button>
<button type="button" aria-label="Close the door">×</button>
<button type="button" disabled>Never</button>
<ul><li><a href="#a">alice hello 10:42</a></li><li><a href="#b">bob bye 11:00</a></li></ul>
<p id="out"></p>
<div id="cover" hidden style="position:fixed;inset:0;background:#fff"></div>
<script>
document.getElementById("greet").onclick = () => {
  document.getElementById("out").textContent = "Hello, " + document.getElementById("name").value + "!";
};
document.querySelector("[aria-label='Close the door']").onclick = () => alert("closed");
document.addEventListener("keydown", (e) => { if (e.key === "Enter") document.getElementById("out").textContent = "entered"; });
</script>`

func serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, harnessPage)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return "http://" + ln.Addr().String()
}

// TestTab drives a small page through every helper: fields and buttons
// found by their accessible names, keys, text waits, list rows by part of
// their name, dialogs, statuses and screenshots.
func TestTab(t *testing.T) {
	base := serve(t)
	tab := Open(t, "harness", base+"/")
	tab.Fill("Your name", "Ada")
	tab.Click("button", "Greet")
	tab.WaitText("Hello, Ada!")
	tab.Fill("Your name", "Grace")
	tab.Click("button", "Greet")
	tab.WaitText("Hello, Grace!")
	tab.WaitNoText("Hello, Ada!")
	if !tab.Has("button", "Close the door") || tab.Has("button", "Open the door") {
		t.Errorf("Has does not find buttons by their aria-label")
	}
	tab.Click("button", "Close the door")
	tab.WaitJS("the alert recorded", "true")
	if d := tab.Dialogs(); len(d) != 1 || !strings.Contains(d[0], "closed") {
		t.Errorf("dialogs = %q, want the alert", d)
	}
	tab.Press("Enter")
	tab.WaitText("entered")
	tab.ClickLike("link", "bye")
	if got := Eval[string](tab, "location.hash"); got != "#b" {
		t.Errorf("after clicking bob's row the address ends in %q", got)
	}
	if n := Eval[int](tab, "1 + 2"); n != 3 {
		t.Errorf("Eval(1 + 2) = %d", n)
	}
	if st := tab.WaitStatus(base + "/"); st != http.StatusOK {
		t.Errorf("status of the page = %d", st)
	}
	Eval[bool](tab, `fetch("/missing").then(() => true)`)
	if st := tab.WaitStatus(base + "/missing"); st != http.StatusNotFound {
		t.Errorf("status of /missing = %d", st)
	}
	if len(tab.Loads()) == 0 {
		t.Errorf("no loads recorded")
	}
	tab.Viewport(390, 844, true)
	png := filepath.Join(t.TempDir(), "shot.png")
	tab.Screenshot(png)
	if b, err := os.ReadFile(png); err != nil || !strings.HasPrefix(string(b), "\x89PNG") {
		t.Errorf("screenshot is not a PNG: %v", err)
	}
	if errs := tab.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}

// TestReport: a failure leaves a screenshot and the page's text and
// console where the log says.
func TestReport(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CALLSIGN_BROWSER_ARTIFACTS", dir)
	tab := Open(t, "harness", serve(t)+"/")
	Eval[bool](tab, `(console.error("something broke"), true)`)
	tab.WaitJS("the console message recorded", "true")
	rep := tab.report()
	for _, want := range []string{"screenshot: " + dir, "Harness", "console.error: something broke"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	shots, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	if len(shots) != 1 {
		t.Errorf("%d screenshots in the artifact directory, want 1", len(shots))
	}
}

// TestCovered: a click does not go through something that covers the
// control, and a disabled control is not clicked.
func TestCovered(t *testing.T) {
	tab := Open(t, "harness", serve(t)+"/")
	ctx := tab.ctx
	nodes, err := tab.find(ctx, "button", "Greet")
	if err != nil || len(nodes) != 1 {
		t.Fatalf("find Greet: %v, %d nodes", err, len(nodes))
	}
	Eval[bool](tab, `(document.getElementById("cover").hidden = false, true)`)
	if _, _, err := tab.centre(ctx, nodes[0]); err == nil || !strings.Contains(err.Error(), "covers it") {
		t.Errorf("centre of a covered button: %v, want it reported covered", err)
	}
	never, err := tab.find(ctx, "button", "Never")
	if err != nil || len(never) != 1 || !never[0].disabled {
		t.Errorf("the disabled button: %+v, %v", never, err)
	}
}

// TestMissingChromium: without Chromium on PATH the message says how to
// get it.
func TestMissingChromium(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := execPath(); err == nil || err.Error() != MissingMessage {
		t.Errorf("execPath without chromium: %v, want %q", err, MissingMessage)
	}
}
