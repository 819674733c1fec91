package api

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// TestFileRoutes: a file goes up as a streamed multipart form and comes
// back with its name; a page is never served as one (only images, audio
// and video show inline, in a sandbox); bad forms and files still on
// their way get clear errors.
func TestFileRoutes(t *testing.T) {
	s, _, token := startServer(t)
	c := NewClient(s.Addr(), token)
	defer c.Close()
	ctx := context.Background()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()

	m, err := c.SendFile(ctx, FileUpload{To: "bob", Caption: "a note", Name: "voice.webm", Type: "audio/webm", DurationMS: 2500, Thumb: []byte("tiny"), Body: strings.NewReader("opus bytes")})
	if err != nil {
		t.Fatal(err)
	}
	if f := m.File; f == nil || f.Name != "voice.webm" || f.Type != "audio/webm" || f.Size != 10 || f.DurationMS != 2500 || f.Thumb != "4" || m.Text != "a note" || m.To != "bob" {
		t.Fatalf("sent: %+v %+v", m, m.File)
	}
	if _, err := c.SendFile(ctx, FileUpload{To: "bob", Name: "big.bin", Body: bytes.NewReader(make([]byte, 2000))}); !IsCode(err, CodeTooLarge) {
		t.Errorf("a file over the limit: %v", err)
	}

	raw := func(build func(*multipart.Writer)) *http.Response {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		build(mw)
		mw.Close()
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr()+"/api/v1/files", &b)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for name, c := range map[string]struct {
		build func(*multipart.Writer)
		want  int
	}{
		"no file part":    {func(mw *multipart.Writer) { mw.WriteField("to", "bob") }, http.StatusBadRequest},
		"an unknown part": {func(mw *multipart.Writer) { mw.WriteField("colour", "red") }, http.StatusBadRequest},
		"a file without a name": {func(mw *multipart.Writer) {
			w, _ := mw.CreateFormField("file")
			w.Write([]byte("x"))
		}, http.StatusBadRequest},
		"a thumbnail over 16 KiB": {func(mw *multipart.Writer) {
			w, _ := mw.CreateFormFile("thumb", "t.jpg")
			w.Write(make([]byte, MaxThumb+1))
		}, http.StatusRequestEntityTooLarge},
		"a duration that is no number": {func(mw *multipart.Writer) { mw.WriteField("duration_ms", "soon") }, http.StatusBadRequest},
	} {
		if resp := raw(c.build); resp.StatusCode != c.want {
			t.Errorf("%s: %s, want %d", name, resp.Status, c.want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr()+"/api/v1/files", strings.NewReader(`{"to":"bob"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := hc.Do(req); err != nil {
		t.Error(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a JSON body: %v", resp.Status)
	}

	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("/api/v1/files/bob/photo")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" || body != "png" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "inline") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("a photo: %s %v %q", resp.Status, resp.Header, body)
	}
	resp, _ = get("/api/v1/files/bob/photo?download=1")
	if resp.Header.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("a photo to download: %v", resp.Header)
	}
	resp, _ = get("/api/v1/files/bob/page")
	if resp.Header.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("an HTML file is served so a browser would show it: %v", resp.Header)
	}
	if resp, _ := get("/api/v1/files/away"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a file on its way: %s", resp.Status)
	}
	var b bytes.Buffer
	if name, typ, err := c.File(ctx, "bob", "photo", &b); err != nil || name != "p.png" || typ != "application/octet-stream" || b.String() != "png" {
		t.Errorf("client File: %q %q %q %v", name, typ, b.String(), err)
	}
	if _, _, err := c.File(ctx, "", "nothing", &b); !IsCode(err, CodeNotFound) {
		t.Errorf("client File of nothing: %v", err)
	}
	for _, typ := range []string{"image/svg+xml", "text/html", "application/pdf"} {
		if Inline(typ) {
			t.Errorf("%s would be shown inline", typ)
		}
	}
}
