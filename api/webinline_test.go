package api

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// TestWebAppInlinesFirstLoad: the page carries its early script and its
// style sheet inline, and its CSP allows exactly those by hash: the
// script under script-src, the style under style-src; every other file
// keeps the plain policy. The joined module stays a file the browser
// keeps. What can't be carried safely stays a reference: a file that
// would end its element early, a script the page runs in order.
func TestWebAppInlinesFirstLoad(t *testing.T) {
	s := startWeb(t, fstest.MapFS{
		"index.html": {Data: []byte(`<script src="/js/early.js" async></script>` + "\n" +
			`<link rel="stylesheet" href="/style.css">` + "\n" +
			`<script type="module" src="/js/app.js"></script>` + "\n" +
			`<script src="/js/ends.js" async></script>` + "\n" +
			`<link rel="stylesheet" href="/ends.css">` + "\n" +
			`<script src="/js/inorder.js"></script>` + "\n")},
		"js/early.js":   {Data: []byte(`window.early = "early-mark";`)},
		"style.css":     {Data: []byte(`.shell { display: grid; }`)},
		"js/app.js":     {Data: []byte(`import { x } from "./x.js"; console.log(x);`)},
		"js/x.js":       {Data: []byte(`export const x = "x-mark";`)},
		"js/ends.js":    {Data: []byte(`document.write("</SCRIPT><script>alert(1)</script>");`)},
		"ends.css":      {Data: []byte(`p::after { content: "</style>"; }`)},
		"js/inorder.js": {Data: []byte(`window.inorder = 1;`)},
	})
	resp, err := http.Get("http://" + s.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	_, page := getWeb(t, s, "/")
	v := versioned.FindString(page)
	hashOf := func(body string) string {
		sum := sha256.Sum256([]byte(body))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	var scripts, styles []string
	for _, m := range regexp.MustCompile(`(?s)<(script|style)>(.*?)</(?:script|style)>`).FindAllStringSubmatch(page, -1) {
		if m[1] == "style" {
			styles = append(styles, hashOf(m[2]))
		} else {
			scripts = append(scripts, hashOf(m[2]))
		}
	}
	want := strings.Replace(ContentSecurityPolicy, "script-src 'self'", "script-src 'self' "+strings.Join(scripts, " "), 1)
	want = strings.Replace(want, "style-src 'self'", "style-src 'self' "+strings.Join(styles, " "), 1)
	if len(scripts) != 1 || len(styles) != 1 || csp != want {
		t.Errorf("%d inline scripts (want 1), %d styles (want 1); CSP\n%s\nwant\n%s", len(scripts), len(styles), csp, want)
	}
	for _, in := range []string{`<script>window.early = "early-mark";</script>`, `<style>.shell { display: grid; }</style>`,
		`<script type="module" src="` + v + `js/app.js"></script>`,
		`<script src="` + v + `js/ends.js" async></script>`, `<link rel="stylesheet" href="` + v + `ends.css">`,
		`<script src="` + v + `js/inorder.js"></script>`} {
		if !strings.Contains(page, in) {
			t.Errorf("page lacks %s:\n%s", in, page)
		}
	}
	if strings.Contains(page, "alert(1)") || strings.Contains(page, "content:") {
		t.Errorf("a file that would end its element was put inline:\n%s", page)
	}
	// An app route gets the page with its hashes; other files the plain
	// policy.
	if code, app := getWeb(t, s, v+"js/app.js"); code != 200 || !strings.Contains(app, `"x-mark"`) {
		t.Errorf("the joined module: %d %s", code, app)
	}
	for path, policy := range map[string]string{"/chats": want, "/style.css": ContentSecurityPolicy, v + "js/app.js": ContentSecurityPolicy} {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Content-Security-Policy"); got != policy {
			t.Errorf("GET %s: CSP %q, want %q", path, got, policy)
		}
	}
}
