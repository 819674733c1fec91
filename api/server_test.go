package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeBackend struct {
	events   chan Event
	restored []byte // the last backup Restore took
	// subscribeDelay holds Subscribe up, as a busy node's goroutine might
	// be; subscribed is set once it returned.
	subscribeDelay time.Duration
	subscribed     atomic.Bool
}

func (f *fakeBackend) ID(context.Context) (ID, error) {
	return ID{Account: "csa1test", Peer: "12D3", API: "x"}, nil
}
func (f *fakeBackend) Status(context.Context) (Status, error) {
	return Status{Encryption: "keyfile"}, nil
}
func (f *fakeBackend) Peers(context.Context) ([]Peer, error) { return []Peer{}, nil }
func (f *fakeBackend) Handles(context.Context) ([]Handle, error) {
	return []Handle{{Name: "alice"}}, nil
}
func (f *fakeBackend) ClaimHandle(_ context.Context, name string) (Claim, error) {
	if name == "" {
		return Claim{}, Errorf(CodeInvalidName, "pick 3 to 32 letters or digits", "invalid handle %q: empty", name)
	}
	return Claim{Name: name, Status: "claimed", Owner: "csa1test"}, nil
}
func (f *fakeBackend) Whois(_ context.Context, name string) (Whois, error) {
	return Whois{Query: name, Status: "not_found"}, nil
}
func (f *fakeBackend) Contacts(context.Context) ([]Contact, error) { return nil, nil }
func (f *fakeBackend) AddContact(_ context.Context, n, p string) (Contact, error) {
	return Contact{Petname: p}, nil
}
func (f *fakeBackend) RemoveContact(context.Context, string) error { return nil }
func (f *fakeBackend) Send(_ context.Context, to, text string) (Message, error) {
	return Message{ID: "m1", To: to, Text: text, State: "queued", Direction: "out"}, nil
}
func (f *fakeBackend) SetTimer(_ context.Context, name string, seconds int64) (Message, error) {
	return Message{ID: "t1", TimerSet: &seconds, Direction: "out"}, nil
}
func (f *fakeBackend) Reply(_ context.Context, to, text, replyTo string) (Message, error) {
	return Message{ID: "m3", To: to, Text: text, ReplyTo: replyTo, State: "queued", Direction: "out"}, nil
}
func (f *fakeBackend) MessageInfo(_ context.Context, name, id string) (MessageInfo, error) {
	return MessageInfo{}, Errorf(CodeNotFound, "", "no message %s", id)
}

func (f *fakeBackend) Act(_ context.Context, name, id, action string, req ActionRequest) (Message, error) {
	if id != "m1" {
		return Message{}, Errorf(CodeNotFound, "", "no message %s", id)
	}
	m := Message{ID: id, Text: "hello"}
	switch action {
	case "react":
		m.Reactions = []Reaction{{Emoji: req.Emoji, From: "csa1test"}}
	case "edit":
		m.Text, m.Edited = req.Text, true
	case "delete":
		m.Text, m.Deleted = "", true
	}
	return m, nil
}
func (f *fakeBackend) SendFile(_ context.Context, up FileUpload) (Message, error) {
	n, err := io.Copy(io.Discard, up.Body)
	if err != nil {
		return Message{}, err
	}
	if n > 1000 {
		return Message{}, Errorf(CodeTooLarge, "", "over 1000 bytes")
	}
	return Message{ID: "m2", To: up.To, Text: up.Caption, State: "queued", Direction: "out",
		File: &FileInfo{Name: up.Name, Type: up.Type, Size: n, DurationMS: up.DurationMS, Thumb: fmt.Sprint(len(up.Thumb)), State: FileReady}}, nil
}
func (f *fakeBackend) File(_ context.Context, peer, id string) (FileInfo, func(io.Writer) error, error) {
	body := []byte("<script>alert(1)</script>")
	switch id {
	case "page":
		return FileInfo{Name: "x.html", Type: "text/html", Size: int64(len(body))}, func(w io.Writer) error { _, err := w.Write(body); return err }, nil
	case "photo":
		return FileInfo{Name: "p.png", Type: "image/png", Size: 3}, func(w io.Writer) error { _, err := w.Write([]byte("png")); return err }, nil
	case "away":
		return FileInfo{}, nil, Errorf(CodeUnavailable, "", "not here yet")
	}
	return FileInfo{}, nil, Errorf(CodeNotFound, "", "no such message")
}
func (f *fakeBackend) Conversations(context.Context) ([]Conversation, error) { return nil, nil }
func (f *fakeBackend) Messages(_ context.Context, name string, p PageRequest) (MessagePage, error) {
	return MessagePage{}, nil
}
func (f *fakeBackend) MarkRead(context.Context, string, []string) error { return nil }
func (f *fakeBackend) Requests(context.Context) ([]Conversation, error) { return nil, nil }
func (f *fakeBackend) Accept(context.Context, string) (Contact, error)  { return Contact{}, nil }
func (f *fakeBackend) SetContactFlag(_ context.Context, name, flag string, on bool) (Contact, error) {
	return Contact{Petname: name, Blocked: flag == "block" && on}, nil
}
func (f *fakeBackend) Safety(context.Context, string, bool) (Safety, error) { return Safety{}, nil }
func (f *fakeBackend) Dial(_ context.Context, req CallRequest) (Call, error) {
	return Call{ID: "c1", Peer: req.To, State: "calling"}, nil
}
func (f *fakeBackend) CallInfo(_ context.Context, id string) (Call, error) { return Call{ID: id}, nil }
func (f *fakeBackend) CallLog(context.Context, int) ([]Call, error)        { return nil, nil }
func (f *fakeBackend) CallAction(_ context.Context, id, action string, _ AnswerRequest) (Call, error) {
	return Call{ID: id, State: action}, nil
}
func (f *fakeBackend) AttachBrowser(context.Context, string, BrowserOffer) (BrowserAnswer, error) {
	return BrowserAnswer{}, nil
}
func (f *fakeBackend) CallSettings(context.Context) (CallSettings, error) { return CallSettings{}, nil }
func (f *fakeBackend) ChangeCallSettings(context.Context, CallSettingsChange) (CallSettings, error) {
	return CallSettings{}, nil
}
func (f *fakeBackend) Backup(_ context.Context, req BackupRequest) (*Download, error) {
	if req.Passphrase != "a good passphrase" {
		return nil, Errorf(CodeBadRequest, "try another", "bad passphrase")
	}
	return &Download{Name: "callsign-2026-12-05.backup", Data: []byte("CSBACKUP\x00\x01sealed")}, nil
}
func (f *fakeBackend) Restore(_ context.Context, req RestoreRequest) (Restoring, error) {
	if req.Passphrase != "a good passphrase" {
		return Restoring{}, Errorf(CodeBadRequest, "", "wrong passphrase")
	}
	f.restored = req.Backup
	return Restoring{Account: "csa1restored", Handles: []string{"alice"}}, nil
}
func (f *fakeBackend) StartLink(context.Context, LinkRequest) (LinkOffer, error) {
	return LinkOffer{Code: "callsign:link/abc", Expires: time.Unix(1_800_000_600, 0)}, nil
}
func (f *fakeBackend) LinkStatus(context.Context) (LinkStatus, error) {
	return LinkStatus{State: LinkSAS, SAS: "482 913"}, nil
}
func (f *fakeBackend) ConfirmLink(_ context.Context, req LinkConfirm) (LinkStatus, error) {
	if req.SAS != "482913" {
		return LinkStatus{}, Errorf(CodeConflict, "", "the numbers differ")
	}
	return LinkStatus{State: LinkHandover}, nil
}
func (f *fakeBackend) CancelLink(context.Context) (LinkStatus, error) {
	return LinkStatus{State: LinkFailed, Reason: "link canceled"}, nil
}
func (f *fakeBackend) JoinAccount(_ context.Context, req JoinRequest) (LinkStatus, error) {
	if req.Code != "callsign:link/abc" {
		return LinkStatus{}, Errorf(CodeBadRequest, "", "not a link code")
	}
	return LinkStatus{State: LinkConnecting}, nil
}
func (f *fakeBackend) JoinStatus(context.Context) (LinkStatus, error) {
	return LinkStatus{State: LinkSAS, SAS: "482 913"}, nil
}
func (f *fakeBackend) ConfirmJoin(_ context.Context, req JoinConfirm) (LinkStatus, error) {
	if !req.Match {
		return LinkStatus{State: LinkFailed}, nil
	}
	return LinkStatus{State: LinkHandover}, nil
}
func (f *fakeBackend) CancelJoin(context.Context) (LinkStatus, error) {
	return LinkStatus{State: LinkFailed, Reason: "cancelled"}, nil
}
func (f *fakeBackend) Devices(context.Context) ([]OwnDevice, error) {
	return []OwnDevice{{ID: "aaaaaaaaaaaaa", Name: "laptop", Current: true}}, nil
}
func (f *fakeBackend) RevokeDevice(_ context.Context, id string) (OwnDevice, error) {
	return OwnDevice{ID: id, Revoked: true}, nil
}
func (f *fakeBackend) Groups(context.Context) ([]Group, error) {
	return []Group{{ID: strings.Repeat("ab", 16), Name: "Friends", Status: "joined"}}, nil
}
func (f *fakeBackend) Group(_ context.Context, id string) (Group, error) {
	return Group{ID: id, Name: "Friends", Status: "joined"}, nil
}
func (f *fakeBackend) CreateGroup(_ context.Context, name string) (Group, error) {
	return Group{ID: strings.Repeat("cd", 16), Name: name, Status: "joined", Admin: true}, nil
}

// GroupAction answers with the group, its name saying what was asked.
func (f *fakeBackend) GroupAction(_ context.Context, id, action string, req GroupAction) (Group, error) {
	return Group{ID: id, Name: fmt.Sprintf("%s %q %v %q", action, req.Members, req.Admin, req.Name), Status: "joined"}, nil
}
func (f *fakeBackend) Subscribe(ctx context.Context) (<-chan Event, func()) {
	time.Sleep(f.subscribeDelay)
	f.subscribed.Store(true)
	return f.events, func() {}
}

func startServer(t *testing.T) (*Server, *fakeBackend, string) {
	t.Helper()
	fb := &fakeBackend{events: make(chan Event, 4)}
	token := NewToken()
	s, err := NewServer(ServerConfig{Backend: fb, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, fb, token
}

func TestServerRefusesNonLoopback(t *testing.T) {
	_, err := NewServer(ServerConfig{Backend: &fakeBackend{}, Token: NewToken(), Addr: "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Fatalf("got %v, want a not-loopback error", err)
	}
	if _, err := NewServer(ServerConfig{Backend: &fakeBackend{}, Token: "short"}); err == nil {
		t.Fatal("short token accepted")
	}
}

func TestServerGuards(t *testing.T) {
	s, _, token := startServer(t)
	base := "http://" + s.Addr()
	cases := []struct {
		name       string
		path       string
		host       string
		origin     string
		auth       string
		wantStatus int
		wantCode   string
	}{
		{"ok", "/api/v1/id", "", "", "Bearer " + token, 200, ""},
		{"no token", "/api/v1/id", "", "", "", 401, CodeUnauthorized},
		{"wrong token", "/api/v1/id", "", "", "Bearer " + strings.Repeat("0", 64), 401, CodeUnauthorized},
		{"token prefix", "/api/v1/id", "", "", "Bearer " + token[:10], 401, CodeUnauthorized},
		{"rebinding host", "/api/v1/id", "evil.example:80", "", "Bearer " + token, 403, CodeForbidden},
		{"cross origin", "/api/v1/id", "", "http://evil.example", "Bearer " + token, 403, CodeForbidden},
		{"other local port origin", "/api/v1/id", "", "http://127.0.0.1:1", "Bearer " + token, 403, CodeForbidden},
		{"same origin", "/api/v1/id", "", "http://" + s.Addr(), "Bearer " + token, 200, ""},
		{"unknown route", "/api/v1/nope", "", "", "Bearer " + token, 404, CodeNotFound},
		{"unknown route without token", "/api/v1/nope", "", "", "", 401, CodeUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+tc.path, nil)
			if tc.host != "" {
				req.Host = tc.host
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantCode != "" {
				var e Error
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
					t.Fatal(err)
				}
				if e.Code != tc.wantCode || e.Message == "" {
					t.Fatalf("error %+v, want code %s", e, tc.wantCode)
				}
			}
		})
	}
}

func TestServerBodies(t *testing.T) {
	s, _, token := startServer(t)
	c := NewClient(s.Addr(), token)
	defer c.Close()
	ctx := context.Background()

	claim, err := c.Claim(ctx, "alice")
	if err != nil || claim.Status != "claimed" || claim.Name != "alice" {
		t.Fatalf("claim: %+v %v", claim, err)
	}
	_, err = c.Claim(ctx, "")
	if !IsCode(err, CodeInvalidName) {
		t.Fatalf("empty name: %v, want invalid_name", err)
	}
	var e *Error
	if ok := asError(err, &e); !ok || e.Hint == "" {
		t.Fatalf("want a hint, got %v", err)
	}

	post := func(body string) *http.Response {
		req, _ := http.NewRequest("POST", "http://"+s.Addr()+"/api/v1/handles", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := post(`{"name":`); r.StatusCode != 400 {
		t.Fatalf("truncated JSON: %d", r.StatusCode)
	}
	if r := post(`{"name":"a","evil":1}`); r.StatusCode != 400 {
		t.Fatalf("unknown field: %d", r.StatusCode)
	}
	if r := post(`{"name":"` + strings.Repeat("a", MaxBody) + `"}`); r.StatusCode != 413 {
		t.Fatalf("oversized body: %d", r.StatusCode)
	}
	// The server keeps serving after hostile input.
	if _, err := c.ID(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestJoinRoutes: the joining side of a link, through the client.
func TestJoinRoutes(t *testing.T) {
	s, _, token := startServer(t)
	c := NewClient(s.Addr(), token)
	defer c.Close()
	ctx := context.Background()
	if _, err := c.JoinAccount(ctx, JoinRequest{Code: "nonsense"}); !IsCode(err, CodeBadRequest) {
		t.Fatalf("a bad code: %v", err)
	}
	if st, err := c.JoinAccount(ctx, JoinRequest{Code: "callsign:link/abc", Name: "tab"}); err != nil || st.State != LinkConnecting {
		t.Fatalf("join: %+v %v", st, err)
	}
	if st, err := c.JoinStatus(ctx); err != nil || st.SAS != "482 913" {
		t.Fatalf("status: %+v %v", st, err)
	}
	if st, err := c.ConfirmJoin(ctx, true); err != nil || st.State != LinkHandover {
		t.Fatalf("confirm: %+v %v", st, err)
	}
	if st, err := c.ConfirmJoin(ctx, false); err != nil || st.State != LinkFailed {
		t.Fatalf("numbers that differ: %+v %v", st, err)
	}
	if st, err := c.CancelJoin(ctx); err != nil || st.Reason != "cancelled" {
		t.Fatalf("cancel: %+v %v", st, err)
	}
}

func asError(err error, e **Error) bool {
	x, ok := err.(*Error)
	*e = x
	return ok
}

func TestEvents(t *testing.T) {
	s, fb, token := startServer(t)
	c := NewClient(s.Addr(), token)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fb.events <- NewEvent("message", map[string]string{"id": "m1"})
	select {
	case ev := <-ch:
		if ev.Type != "message" || !strings.Contains(string(ev.Data), "m1") {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	// A client with a wrong token never sends it: the node can't prove
	// it knows that token.
	bad := NewClient(s.Addr(), "wrong")
	if _, err := bad.Events(ctx); !IsCode(err, CodeUnavailable) || !strings.Contains(err.Error(), "the token was not sent") {
		t.Fatalf("events with a wrong token: %v", err)
	}
	cancel()
	for range ch { // the stream closes once ctx ends
	}
}

// TestEventsSubscribedWhenOpen: once Client.Events returned, the node has
// subscribed the stream, however long that took: an event the client's
// next request causes is not lost (a call's ringing, right after Dial).
func TestEventsSubscribedWhenOpen(t *testing.T) {
	s, fb, token := startServer(t)
	fb.subscribeDelay = 300 * time.Millisecond
	c := NewClient(s.Addr(), token)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !fb.subscribed.Load() {
		t.Fatal("Events returned before the node subscribed the stream")
	}
	cancel()
	for range ch {
	}
}

func TestDialDataDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := DialDataDir(dir); !IsCode(err, CodeUnavailable) {
		t.Fatalf("empty dir: %v", err)
	}
	s, _, token := startServer(t)
	if err := WriteEndpoint(dir, s.Addr(), token); err != nil {
		t.Fatal(err)
	}
	holdLock(t, dir)
	fi, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v %v", fi.Mode(), err)
	}
	c, err := DialDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if id, err := c.ID(context.Background()); err != nil || id.Account != "csa1test" {
		t.Fatalf("%+v %v", id, err)
	}
	s.Close()
	_, err = c.ID(context.Background())
	if !IsCode(err, CodeUnavailable) || !strings.Contains(err.(*Error).Hint, "callsign up --data") {
		t.Fatalf("stopped node: %#v", err)
	}
}

func TestWebApp(t *testing.T) {
	big := strings.Repeat("console.log('callsign');\n", 400)
	s := startWeb(t, fstest.MapFS{"index.html": {Data: []byte(`<title>callsign</title><script src="/app.js"></script>`)}, "app.js": {Data: []byte("// app")}, "big.js": {Data: []byte(big)}})
	for path, want := range map[string]string{"/": "<title>callsign</title>", "/app.js": "// app", "/contacts/alice": "<title>callsign</title>"} {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
		}
	}
	// Every file carries the CSP; a missing file is a 404, not the app.
	for _, tc := range []struct {
		path, enc string
		status    int
		gzip      bool
	}{
		{"/big.js", "gzip", 200, true},
		{"/big.js", "", 200, false},
		{"/app.js", "gzip, deflate", 200, false}, // too small to pay
		{"/missing.js", "", 404, false},
	} {
		req, _ := http.NewRequest("GET", "http://"+s.Addr()+tc.path, nil)
		if tc.enc != "" {
			req.Header.Set("Accept-Encoding", tc.enc)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		gz := resp.Header.Get("Content-Encoding") == "gzip"
		if resp.StatusCode != tc.status || gz != tc.gzip || resp.Header.Get("Content-Security-Policy") != ContentSecurityPolicy {
			t.Errorf("GET %s (%s): %d gzip=%v csp=%q", tc.path, tc.enc, resp.StatusCode, gz, resp.Header.Get("Content-Security-Policy"))
		}
		if tc.status == 200 && !gz && string(body) != big && tc.path == "/big.js" {
			t.Errorf("GET %s: body differs", tc.path)
		}
		if tc.status == 200 && tc.path == "/big.js" && gz {
			if len(body) >= len(big)/4 {
				t.Errorf("gzip body %d bytes for %d", len(body), len(big))
			}
			req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation: %d, want 304", resp.StatusCode)
			}
		}
	}

	// The web app is public; the API behind it is not.
	resp, err := http.Get("http://" + s.Addr() + "/api/v1/id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("API without token from the web origin: %d", resp.StatusCode)
	}
}

// TestWebAppVersions: the page names its files under /v/<version>/, which
// the browser may keep without asking again; the page itself, and a file
// asked for under another version, are revalidated.
func TestWebAppVersions(t *testing.T) {
	s := startWeb(t, fstest.MapFS{"index.html": {Data: []byte(`<script src="/js/app.js"></script><link href="/style.css">`)},
		"js/app.js": {Data: []byte("import './x.js'")}, "js/x.js": {Data: []byte("// x")}, "style.css": {Data: []byte("p{}")}})
	get := func(path string) (int, string, string) {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header.Get("Cache-Control")
	}
	code, page, cc := get("/")
	m := regexp.MustCompile(`src="/v/([0-9a-f]{12})/js/app.js"`).FindStringSubmatch(page)
	if code != 200 || m == nil || !strings.Contains(page, `href="/v/`+m[1]+`/style.css"`) || cc != "no-cache" {
		t.Fatalf("GET /: %d %q, Cache-Control %q", code, page, cc)
	}
	v := m[1]
	for _, tc := range []struct{ path, body, cache string }{
		{"/v/" + v + "/js/app.js", "import './x.js'", "public, max-age=31536000, immutable"},
		{"/v/" + v + "/js/x.js", "// x", "public, max-age=31536000, immutable"}, // a relative import
		{"/js/x.js", "// x", "no-cache"},
		{"/v/000000000000/js/x.js", "// x", "no-cache"}, // a tab from before an upgrade
	} {
		if code, body, cc := get(tc.path); code != 200 || body != tc.body || cc != tc.cache {
			t.Errorf("GET %s: %d %q, Cache-Control %q; want %q, %q", tc.path, code, body, cc, tc.body, tc.cache)
		}
	}
	for _, p := range []string{"/v/" + v + "/index.html", "/v/" + v + "/", "/v/" + v + "/js/missing.js"} {
		if code, _, _ := get(p); code != 404 {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
}

// startWeb starts a server with a fake backend serving web; it closes with
// the test.
func startWeb(t *testing.T, web fstest.MapFS) *Server {
	t.Helper()
	s, err := NewServer(ServerConfig{Backend: &fakeBackend{}, Token: NewToken(), Web: web})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestMetricsBehindToken: /metrics answers with the token only, and is a
// 404 on a server without metrics.
func TestMetricsBehindToken(t *testing.T) {
	token := NewToken()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "callsign_up 1\n") })
	for _, tc := range []struct {
		metrics http.Handler
		token   string
		status  int
	}{
		{metrics, "", 401},
		{metrics, "wrong-" + token, 401},
		{metrics, token, 200},
		{nil, token, 404},
	} {
		s, err := NewServer(ServerConfig{Backend: &fakeBackend{}, Token: token, Metrics: tc.metrics})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", "http://"+s.Addr()+"/metrics", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s.Close()
		if resp.StatusCode != tc.status || (tc.status == 200) != strings.Contains(string(body), "callsign_up 1") {
			t.Errorf("metrics=%v token=%v: %d %q, want %d", tc.metrics != nil, tc.token != "", resp.StatusCode, body, tc.status)
		}
	}
}

// TestBackupDownload: POST /api/v1/backup answers with the file itself,
// as a download the browser saves under the backend's name and keeps in
// no cache; a refusal is the usual JSON error; the client returns the
// bytes.
func TestBackupDownload(t *testing.T) {
	s := startWeb(t, nil)
	post := func(body string) *http.Response {
		req, _ := http.NewRequest("POST", "http://"+s.Addr()+"/api/v1/backup", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := post(`{"passphrase":"a good passphrase"}`)
	body, _ := io.ReadAll(resp.Body)
	h := resp.Header
	if resp.StatusCode != 200 || string(body) != "CSBACKUP\x00\x01sealed" || h.Get("Content-Type") != "application/octet-stream" ||
		h.Get("Content-Disposition") != `attachment; filename=callsign-2026-12-05.backup` || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("backup: %d %q %v", resp.StatusCode, body, h)
	}
	for body, code := range map[string]string{`{"passphrase":"no"}`: CodeBadRequest, `{"pass":"x"}`: CodeBadRequest} {
		resp := post(body)
		var e Error
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != 400 || e.Code != code {
			t.Errorf("%s: %d %+v %v", body, resp.StatusCode, e, err)
		}
	}
	c := NewClient(s.Addr(), s.cfg.Token)
	if b, err := c.Backup(context.Background(), BackupRequest{Passphrase: "a good passphrase"}); err != nil || string(b) != "CSBACKUP\x00\x01sealed" {
		t.Errorf("client: %q %v", b, err)
	}
	if _, err := c.Backup(context.Background(), BackupRequest{Passphrase: "no"}); err == nil || !strings.Contains(err.Error(), "bad passphrase") {
		t.Errorf("client, refused: %v", err)
	}
}

// TestRestoreUpload: POST /api/v1/restore takes a backup far larger than
// any other request's cap, whole, and refuses one over MaxRestoreBody as
// too large, pointing to the CLI, before the backend sees it.
func TestRestoreUpload(t *testing.T) {
	s, fb, token := startServer(t)
	c := NewClient(s.Addr(), token)
	backup := bytes.Repeat([]byte("CSBACKUP sealed chunk "), (4*MaxBody)/22)
	r, err := c.Restore(context.Background(), backup, "a good passphrase")
	if err != nil || r.Account != "csa1restored" || !bytes.Equal(fb.restored, backup) {
		t.Fatalf("restore of %d bytes: %+v %v; the backend got %d bytes", len(backup), r, err, len(fb.restored))
	}
	if _, err := c.Restore(context.Background(), backup, "no"); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("refused: %v", err)
	}
	fb.restored = nil
	_, err = c.Restore(context.Background(), make([]byte, MaxRestoreBody), "a good passphrase")
	if e, ok := errors.AsType[*Error](err); !ok || e.Code != CodeTooLarge || !strings.Contains(e.Hint, "up --restore") || fb.restored != nil {
		t.Errorf("a backup of %d bytes: %v; the backend got %d bytes", MaxRestoreBody, err, len(fb.restored))
	}
}

func TestActionRoutes(t *testing.T) {
	s, _, token := startServer(t)
	c := NewClient(s.Addr(), token)
	defer c.Close()
	ctx := context.Background()
	if m, err := c.Reply(ctx, "bob", "answer", "m0"); err != nil || m.ReplyTo != "m0" || m.Text != "answer" {
		t.Fatalf("reply: %+v %v", m, err)
	}
	if m, err := c.Act(ctx, "bob", "m1", "react", ActionRequest{Emoji: "👍"}); err != nil || len(m.Reactions) != 1 || m.Reactions[0].Emoji != "👍" {
		t.Fatalf("react: %+v %v", m, err)
	}
	if m, err := c.Act(ctx, "bob", "m1", "edit", ActionRequest{Text: "fixed"}); err != nil || !m.Edited || m.Text != "fixed" {
		t.Fatalf("edit: %+v %v", m, err)
	}
	if m, err := c.Act(ctx, "bob", "m1", "delete", ActionRequest{}); err != nil || !m.Deleted {
		t.Fatalf("delete: %+v %v", m, err)
	}
	if _, err := c.Act(ctx, "bob", "m1", "forward", ActionRequest{}); !IsCode(err, CodeNotFound) {
		t.Errorf("an unknown action: %v", err)
	}
	if _, err := c.Act(ctx, "bob", "m9", "react", ActionRequest{Emoji: "👍"}); !IsCode(err, CodeNotFound) {
		t.Errorf("a message that is not there: %v", err)
	}
}

// TestGroupRoutes: each group route reaches the backend with what it
// needs, and a request that lacks it is refused before.
func TestGroupRoutes(t *testing.T) {
	s, _, token := startServer(t)
	c := NewClient(s.Addr(), token)
	defer c.Close()
	ctx := context.Background()
	if g, err := c.CreateGroup(ctx, "Book club"); err != nil || g.Name != "Book club" || !g.Admin {
		t.Fatalf("create: %+v %v", g, err)
	}
	if gs, err := c.Groups(ctx); err != nil || len(gs) != 1 || gs[0].Name != "Friends" {
		t.Fatalf("list: %+v %v", gs, err)
	}
	id := strings.Repeat("ab", 16)
	for _, tc := range []struct {
		action string
		req    GroupAction
		want   string
	}{
		{"invite", GroupAction{Members: []string{"@bob", "carol"}}, `invite ["@bob" "carol"] false ""`},
		{"join", GroupAction{}, `join [] false ""`},
		{"leave", GroupAction{}, `leave [] false ""`},
		{"remove", GroupAction{Members: []string{"@bob"}}, `remove ["@bob"] false ""`},
		{"admin", GroupAction{Members: []string{"carol"}, Admin: true}, `admin ["carol"] true ""`},
		{"rename", GroupAction{Name: "Readers"}, `rename [] false "Readers"`},
	} {
		g, err := c.GroupAction(ctx, id, tc.action, tc.req)
		if err != nil || g.Name != tc.want || g.ID != id {
			t.Errorf("%s: %+v %v, want %s", tc.action, g, err, tc.want)
		}
	}
	for action, req := range map[string]GroupAction{"invite": {}, "remove": {}, "admin": {}} {
		if _, err := c.GroupAction(ctx, id, action, req); !IsCode(err, CodeBadRequest) {
			t.Errorf("%s without a member: %v", action, err)
		}
	}
	if _, err := c.GroupAction(ctx, id, "promote", GroupAction{}); !IsCode(err, CodeNotFound) {
		t.Errorf("an unknown action: %v", err)
	}
}
func (f *fakeBackend) TypingSettings(context.Context) (TypingSettings, error) {
	return TypingSettings{}, nil
}
func (f *fakeBackend) SetTypingSettings(_ context.Context, s TypingSettings) (TypingSettings, error) {
	return s, nil
}
func (f *fakeBackend) Typing(context.Context, string, bool) error { return nil }
