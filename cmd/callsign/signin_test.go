package main

// Token hygiene: the CLI sends the API token to its own node only, `up`
// never prints it, the web app signs in with one-time tickets, and a data
// directory open to others is made private.

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
)

// recorder is a listener that is not a callsign node, on a port a node
// may have left behind: it records every request, whole, and answers each
// with a 200 and a made-up hello proof.
type recorder struct {
	ln   net.Listener
	mu   sync.Mutex
	seen []string
}

func startRecorder(t *testing.T, addr string) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		dump, _ := httputil.DumpRequest(req, true)
		r.mu.Lock()
		r.seen = append(r.seen, string(dump))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"proof":"`+strings.Repeat("00", 32)+`"}`)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return r
}

func (r *recorder) addr() string { return r.ln.Addr().String() }

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// checkNoToken fails if any request r saw carries token or anything but a
// hello.
func (r *recorder) checkNoToken(t *testing.T, token string) {
	t.Helper()
	for _, req := range r.requests() {
		if strings.Contains(req, token) || !strings.HasPrefix(req, "GET /api/v1/hello?nonce=") {
			t.Errorf("the foreign listener saw more than a hello:\n%s", req)
		}
	}
}

// TestStaleAddr: api.addr names a listener that is not the node. The CLI
// does not send the token there: with no node holding the data
// directory's lock it says no node runs and sends nothing; with the lock
// held, the listener can't prove it knows the token, and gets the hello
// alone.
func TestStaleAddr(t *testing.T) {
	token := api.NewToken()
	for _, locked := range []bool{false, true} {
		rec := startRecorder(t, "127.0.0.1:0")
		dir := t.TempDir()
		if err := api.WriteEndpoint(dir, rec.addr(), token); err != nil {
			t.Fatal(err)
		}
		if locked {
			holdLock(t, dir)
		}
		for _, args := range [][]string{{"status"}, {"messages", "alice", "--follow"}, {"web"}} {
			out, errs, code := runCLI(t, append(args, "--data", dir)...)
			want := "callsign: no node is running with data directory " + dir
			if locked {
				want = "callsign: the program at " + rec.addr() + " did not prove it is the node"
			}
			if code != exitError || out != "" || !strings.HasPrefix(errs, want) || !strings.Contains(errs, "token was not sent") ||
				!strings.Contains(errs, "\nhint: ") || !strings.Contains(errs, "callsign up --data "+dir) {
				t.Errorf("callsign %s, lock held %v: exit %d, stdout %q, stderr %q (want %q)", strings.Join(args, " "), locked, code, out, errs, want)
			}
		}
		if n := len(rec.requests()); locked && n == 0 || !locked && n != 0 {
			t.Errorf("lock held %v: the listener saw %d requests", locked, n)
		}
		rec.checkNoToken(t, token)
	}
}

// TestWebCommand: `callsign web` prints the web app's address with a
// one-time ticket, which the app exchanges once for the token.
func TestWebCommand(t *testing.T) {
	dir := newFakeNode().start(t)
	out, errs, code := runCLI(t, "web", "--data", dir)
	token := readToken(t, dir)
	if code != exitOK || errs != "" || strings.Contains(out, token) {
		t.Fatalf("callsign web: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	addr, ticket := parseWebLink(t, out)
	if got := exchangeTicket(t, addr, ticket); got != token {
		t.Fatalf("the ticket was exchanged for %q, want the token", got)
	}
	if got := exchangeTicket(t, addr, ticket); got != "" {
		t.Fatal("a ticket worked twice")
	}
}

func readToken(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

var webLink = regexp.MustCompile(`http://(127\.0\.0\.1:[0-9]+)/#ticket=([0-9a-f]{32})\b`)

// parseWebLink finds the web app's link in s.
func parseWebLink(t *testing.T, s string) (addr, ticket string) {
	t.Helper()
	m := webLink.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no web app link with a ticket in:\n%s", s)
	}
	return m[1], m[2]
}

// exchangeTicket does what the web app does with a ticket; it returns
// the token, or "" after checking the refusal says what to do.
func exchangeTicket(t *testing.T, addr, ticket string) string {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/api/v1/session", "application/json", strings.NewReader(`{"ticket":"`+ticket+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Token, Hint string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(v.Hint, "callsign web") {
			t.Errorf("refused ticket: %d, hint %q", resp.StatusCode, v.Hint)
		}
		return ""
	}
	return v.Token
}

// TestSignIn drives the real binary: a data directory open to everyone,
// with a token file anyone could read, is made private and gets a new
// token; `up` prints a one-time link and never the token; and after the
// node is killed, the CLI sends nothing to whoever takes its port.
func TestSignIn(t *testing.T) {
	if testing.Short() {
		t.Skip("process test: builds and runs the binary")
	}
	dir := filepath.Join(t.TempDir(), "node")
	leaked := strings.Repeat("ab", 32)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, api.TokenFile), []byte(leaked+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	d := up(t, dir, nil, loopback...)
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v %v, want 0700", fi.Mode(), err)
	}
	fi, err = os.Stat(filepath.Join(dir, api.TokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v %v, want 0600", fi.Mode(), err)
	}
	token := readToken(t, dir)
	if token == leaked {
		t.Error("the token others could read is still in use")
	}
	var logs string
	check.Until(t, 10*time.Second, "up's web app line", func() bool {
		logs = d.logs.String()
		return strings.Contains(logs, "stop with Ctrl-C")
	})
	for _, w := range []string{"data directory was open to other users", "API token was readable by other users"} {
		if !strings.Contains(logs, w) {
			t.Errorf("no warning %q in up's output:\n%s", w, logs)
		}
	}
	if strings.Contains(logs, token) {
		t.Errorf("up printed the API token:\n%s", logs)
	}
	addr, ticket := parseWebLink(t, logs)
	if got := exchangeTicket(t, addr, ticket); got != token {
		t.Fatalf("up's ticket was exchanged for %q, want the token", got)
	}
	if got := exchangeTicket(t, addr, ticket); got != "" {
		t.Fatal("up's ticket worked twice")
	}
	out, errs, code := cli(t, "web", "--data", dir)
	if code != exitOK {
		t.Fatalf("callsign web: %d %s", code, errs)
	}
	_, webTicket := parseWebLink(t, out)
	if exchangeTicket(t, addr, webTicket) != token {
		t.Fatal("callsign web's ticket did not sign in")
	}
	if logs := d.logs.String(); strings.Contains(logs, token) || strings.Contains(logs, webTicket) {
		t.Errorf("the node logged the token or a ticket:\n%s", logs)
	}

	// Killed, the node leaves api.addr behind; another program takes the
	// port. The CLI sends it nothing.
	d.kill()
	if _, err := os.Stat(filepath.Join(dir, api.AddrFile)); err != nil {
		t.Fatalf("api.addr after SIGKILL: %v", err)
	}
	rec := startRecorder(t, addr)
	_, errs, code = cli(t, "status", "--data", dir)
	if code != exitError || !strings.Contains(errs, "no node is running") || !strings.Contains(errs, "hint: start one with: callsign up --data "+dir) {
		t.Errorf("status after SIGKILL: exit %d, stderr %q", code, errs)
	}
	if seen := rec.requests(); len(seen) != 0 {
		t.Errorf("the program on the dead node's port got %d requests:\n%s", len(seen), strings.Join(seen, "\n"))
	}
}
