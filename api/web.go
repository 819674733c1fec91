package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
)

// webFile is one file of the web app, read once and kept with its gzip
// form.
type webFile struct {
	raw, gz []byte // gz is nil when compressing does not pay
	ctype   string
	etag    string
}

// webHandler serves the embedded web app: every file with its
// Content-Security-Policy, gzip-compressed when the browser takes it, with
// an ETag; paths without a file extension fall back to index.html (the
// app's own routes); a missing file is a 404.
//
// index.html is revalidated on every load (a new binary may serve a new
// app) and names the other files under /v/<version>/, version being a hash
// of them all: those the browser keeps for a year without asking again
// (immutable), so opening the app again costs one request for the page and
// one for its data, and the modules' relative imports stay inside the
// version they came with. A path under another version (a tab still open
// from before an upgrade) gets today's file, revalidated.
//
// Each module script the page names is served joined with everything it
// imports (webjoin.go), so a cold load asks for one module, not fourteen,
// and the page carries its early script and its style sheet inline
// (webinline.go), so a cold load asks for the module only.
type webHandler struct {
	fsys    fs.FS
	log     *slog.Logger
	files   map[string]*webFile
	version string
	index   *webFile // index.html with its references under /v/<version>/
	// indexCSP is ContentSecurityPolicy with the hashes of what the page
	// carries inline (webinline.go).
	indexCSP string
}

// newWebHandler reads, joins and compresses the app's files once, before
// the first request (about a tenth of a second).
func newWebHandler(fsys fs.FS, log *slog.Logger) *webHandler {
	h := &webHandler{fsys: fsys, log: log}
	h.load()
	return h
}

func (h *webHandler) load() {
	h.files = map[string]*webFile{}
	err := fs.WalkDir(h.fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(h.fsys, p)
		if err != nil {
			return err
		}
		h.files[p] = newWebFile(p, raw)
		return nil
	})
	if err != nil {
		h.log.Warn("web app files unreadable", "err", err)
	}
	var page string
	if f := h.files["index.html"]; f != nil {
		if page, err = joinPage(h.fsys, string(f.raw), h.files); err != nil {
			h.log.Error("web app: serving its modules one by one", "err", err)
		}
	}
	// The version covers every file but the page that names it.
	paths := make([]string, 0, len(h.files))
	for p := range h.files {
		if p != "index.html" {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	v := sha256.New()
	for _, p := range paths {
		fmt.Fprintf(v, "%s\x00%s\x00", p, h.files[p].etag)
	}
	h.version = hex.EncodeToString(v.Sum(nil)[:6])
	if page != "" {
		for _, p := range paths {
			page = strings.ReplaceAll(page, `"/`+p+`"`, `"/v/`+h.version+"/"+p+`"`)
		}
		var scripts, styles []string
		page, scripts, styles = inlinePage(page, h.files)
		h.indexCSP = withHashes(ContentSecurityPolicy, scripts, styles)
		h.index = newWebFile("index.html", []byte(page))
	}
}

// newWebFile is the file p with its ETag and, when it pays, its gzip form.
func newWebFile(p string, raw []byte) *webFile {
	sum := sha256.Sum256(raw)
	f := &webFile{raw: raw, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: mime.TypeByExtension(path.Ext(p))}
	if f.ctype == "" {
		f.ctype = http.DetectContentType(raw)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	if buf.Len() < len(raw)*9/10 {
		f.gz = buf.Bytes()
	}
	return f
}

func (h *webHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	p := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	cache := "no-cache" // revalidate: a new binary may serve a new app
	if rest, ok := strings.CutPrefix(p, "v/"); ok {
		version, file, _ := strings.Cut(rest, "/")
		if version == h.version {
			cache = "public, max-age=31536000, immutable"
		}
		if p = file; p == "" || p == "index.html" {
			p = "-" // no page under a version: a 404
		}
	}
	f, ok := h.files[p]
	switch {
	case p == "index.html" || p == "":
		f = h.index
	case !ok && strings.Contains(path.Base(p), "."), p == "-":
		http.Error(w, "not found", http.StatusNotFound)
		return
	case !ok:
		f = h.index // the app's own routes
	}
	if f == nil {
		http.Error(w, "no web app", http.StatusNotFound)
		return
	}
	if f == h.index {
		hd.Set("Content-Security-Policy", h.indexCSP)
	}
	hd.Set("Content-Type", f.ctype)
	hd.Set("ETag", f.etag)
	hd.Set("Cache-Control", cache)
	hd.Add("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && match == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.raw
	if f.gz != nil && acceptsGzip(r) {
		hd.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
