package api

import (
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/callsign/callsign/web"
)

// getWeb asks s for path and returns the status and the body.
func getWeb(t *testing.T, s *Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var versioned = regexp.MustCompile(`/v/[0-9a-f]{12}/`)

// TestWebAppJoinsModules: the page's module script is served with every
// module it imports, statically or with import(), inside it, so a browser
// asks for one module; the preload tags of the modules it holds are gone,
// others stay; a source map names the original files; the sources are
// still served under their own names.
func TestWebAppJoinsModules(t *testing.T) {
	s := startWeb(t, fstest.MapFS{
		"index.html": {Data: []byte(`<script type="module" src="/js/app.js"></script>` + "\n" +
			`<link rel="modulepreload" href="/js/x.js">` + "\n" + `<link rel="modulepreload" href="/js/other.js">` + "\n")},
		"js/app.js":    {Data: []byte(`import { x } from "./x.js";` + "\nexport const later = () => import(\"./lazy/y.js\");\nconsole.log(x);\n")},
		"js/x.js":      {Data: []byte(`export const x = "x-mark";`)},
		"js/lazy/y.js": {Data: []byte(`import { x } from "../x.js"; export const y = "y-mark" + x;`)},
		"js/other.js":  {Data: []byte(`export const other = 1;`)},
	})
	_, page := getWeb(t, s, "/")
	v := versioned.FindString(page)
	if v == "" || !strings.Contains(page, `<script type="module" src="`+v+`js/app.js"></script>`) ||
		strings.Contains(page, "x.js") || !strings.Contains(page, `href="`+v+`js/other.js"`) {
		t.Fatalf("page:\n%s", page)
	}
	code, app := getWeb(t, s, v+"js/app.js")
	if code != 200 || !strings.Contains(app, `"x-mark"`) || !strings.Contains(app, `"y-mark"`) ||
		strings.Contains(app, "import") || !strings.Contains(app, "sourceMappingURL=app.js.map") {
		t.Fatalf("joined module: %d\n%s", code, app)
	}
	if strings.Count(app, `"x-mark"`) != 1 {
		t.Errorf("x.js joined more than once:\n%s", app)
	}
	if code, m := getWeb(t, s, v+"js/app.js.map"); code != 200 || !strings.Contains(m, `"app:/js/lazy/y.js"`) {
		t.Errorf("source map: %d %s", code, m)
	}
	if code, x := getWeb(t, s, v+"js/x.js"); code != 200 || x != `export const x = "x-mark";` {
		t.Errorf("source file: %d %q", code, x)
	}
}

// TestWebAppUnjoinable: a module that can't be joined (an import whose
// path is computed at run time, which would load a second copy of what
// the joined module holds; a syntax error) is served as it is, with the
// page's preload tags, and the server still starts.
func TestWebAppUnjoinable(t *testing.T) {
	for name, app := range map[string]string{
		"computed import": "const v = (n) => import(`./views/${n}.js`);",
		"syntax error":    "export const = 1;",
		"foreign import":  `import x from "https://example.com/x.js";`,
	} {
		t.Run(name, func(t *testing.T) {
			s := startWeb(t, fstest.MapFS{
				"index.html":    {Data: []byte(`<script type="module" src="/js/app.js"></script>` + "\n" + `<link rel="modulepreload" href="/js/views/a.js">` + "\n")},
				"js/app.js":     {Data: []byte(app)},
				"js/views/a.js": {Data: []byte(`export const a = 1;`)},
			})
			_, page := getWeb(t, s, "/")
			v := versioned.FindString(page)
			if !strings.Contains(page, `href="`+v+`js/views/a.js"`) {
				t.Errorf("preload dropped from the page:\n%s", page)
			}
			if code, got := getWeb(t, s, v+"js/app.js"); code != 200 || got != app {
				t.Errorf("module: %d %q, want it as it is", code, got)
			}
		})
	}
}

// TestWebAppJoinsEveryModule: the app the binary carries joins without an
// error or a warning, and the joined module holds every module of the app
// (all of js/ but early.js, a classic script the page loads beside it):
// an import the joining can't follow would otherwise load a module twice
// or fall back to fourteen requests.
func TestWebAppJoinsEveryModule(t *testing.T) {
	app := web.FS()
	j, err := joinModules(app, "js/main.js")
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, in := range j.inputs {
		held[in] = true
	}
	err = fs.WalkDir(app, "js", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && p != "js/early.js" && !held[p] {
			t.Errorf("%s is not in the joined module", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newWebHandler(app, slog.New(slog.DiscardHandler))
	page := string(h.index.raw)
	if n := len(moduleScript.FindAllString(page, -1)); n != 1 || strings.Contains(page, "modulepreload") {
		t.Errorf("the page names %d module scripts, want 1, and no preloads:\n%s", n, page)
	}
}
