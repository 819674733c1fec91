package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
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
// an ETag so a reload costs a 304; paths without a file extension fall
// back to index.html (the app's own routes); a missing file is a 404.
type webHandler struct {
	fsys  fs.FS
	log   *slog.Logger
	once  sync.Once
	files map[string]*webFile
}

func newWebHandler(fsys fs.FS, log *slog.Logger) *webHandler {
	return &webHandler{fsys: fsys, log: log}
}

// load reads and compresses every file once, on the first request.
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
		h.files[p] = f
		return nil
	})
	if err != nil {
		h.log.Warn("web app files unreadable", "err", err)
	}
}

func (h *webHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(h.load)
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
	f, ok := h.files[p]
	if !ok {
		if p != "" && strings.Contains(path.Base(p), ".") {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		f = h.files["index.html"]
		if f == nil {
			http.Error(w, "no web app", http.StatusNotFound)
			return
		}
	}
	hd.Set("Content-Type", f.ctype)
	hd.Set("ETag", f.etag)
	hd.Set("Cache-Control", "no-cache") // revalidate: a new binary may serve a new app
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
