// Package browser drives a real headless Chromium for the web app's tests:
// one browser per test binary, started on first use and shared by the
// package's tests, each test in tabs of its own (separate browser contexts,
// so storage and permissions never leak between them). Tests find controls
// by their accessible role and name, as a person (or a screen reader) does,
// type into labelled fields, wait for text with a deadline, evaluate
// JavaScript and take screenshots.
//
// Chromium must be on PATH as chromium (or chromium-browser, google-chrome);
// ./test.sh installs Debian's package. Without it the tests fail: they never
// skip.
//
// A test binary that uses the package closes the browser in TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		browser.Close()
//		if code == 0 { ...goleak.Find()... }
//		os.Exit(code)
//	}
//
// Failure reports: when a wait or a lookup fails, the tab takes a
// screenshot into $CALLSIGN_BROWSER_ARTIFACTS (else a directory under
// os.TempDir) and logs its path with the page's console messages and
// uncaught exceptions.
//
// Production code never imports this package.
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Flags are the command-line flags Chromium runs with (besides
// --user-data-dir, a fresh temporary directory, and the DevTools pipe
// chromedp adds): headless, no first-run or background chatter, and fake
// camera and microphone that need no permission prompt, so WebRTC calls
// work between tabs on loopback.
var Flags = []string{
	"--headless=new",
	"--no-sandbox",
	"--disable-gpu",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--disable-default-apps",
	"--use-fake-device-for-media-stream",
	"--use-fake-ui-for-media-stream",
	"--allow-loopback-in-peer-connection",
	"--autoplay-policy=no-user-gesture-required",
}

// MissingMessage is how a test fails when no Chromium is installed.
const MissingMessage = "chromium not found: run ./test.sh, which installs it"

// Browser is a running headless Chromium.
type Browser struct {
	ctx    context.Context // the browser's first tab; every Tab derives from it
	cancel context.CancelFunc
	alloc  context.CancelFunc
	dir    string
}

var (
	mu     sync.Mutex
	shared *Browser
)

// execPath finds Chromium on PATH.
func execPath() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New(MissingMessage)
}

// Get returns the test binary's browser, starting it on first use. It
// fails the test (never skips it) when Chromium is missing or does not
// start.
func Get(t testing.TB) *Browser {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		return shared
	}
	b, err := start()
	if err != nil {
		t.Fatal(err)
	}
	shared = b
	return b
}

func start() (*Browser, error) {
	path, err := execPath()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "callsign-chromium-")
	if err != nil {
		return nil, fmt.Errorf("browser profile directory: %w", err)
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.UserDataDir(dir)}
	for _, f := range Flags {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if hasValue {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// The first Run starts the process; give a busy machine time.
	sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
	defer scancel()
	startErr := make(chan error, 1)
	go func() { // owned here: Run returns once the browser is up or sctx ends
		_, err := chromedp.Run(ctx, chromedp.Evaluate[int]("1"))
		startErr <- err
	}()
	select {
	case err = <-startErr:
	case <-sctx.Done():
		err = sctx.Err()
		cancel()
		<-startErr
	}
	if err != nil {
		cancel()
		acancel()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start chromium (%s): %w", path, err)
	}
	return &Browser{ctx: ctx, cancel: cancel, alloc: acancel, dir: dir}, nil
}

// Close stops the shared browser, waits for its process and removes its
// profile. It is idempotent; TestMain calls it after m.Run.
func Close() {
	mu.Lock()
	b := shared
	shared = nil
	mu.Unlock()
	if b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	_ = chromedp.Cancel(ctx)
	cancel()
	b.cancel()
	b.alloc()
	os.RemoveAll(b.dir)
}

// artifactDir is where failure screenshots go.
func artifactDir() string {
	if d := os.Getenv("CALLSIGN_BROWSER_ARTIFACTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "callsign-browser-failures")
}
