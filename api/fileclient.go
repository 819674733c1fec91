package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
)

// SendFile sends up.Body as a file named up.Name of media type up.Type
// (empty: application/octet-stream) to up.To with up.Caption; the body is
// streamed, not held in memory. It returns once the message is durable.
func (c *Client) SendFile(ctx context.Context, up FileUpload) (Message, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeUpload(mw, up))
	}()
	defer func() {
		pr.Close() // a refusal before the body was read ends the writer
		<-done
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.addr+"/api/v1/files", pr)
	if err != nil {
		return Message{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.hc.Do(req)
	if err != nil {
		return Message{}, c.transportError(err)
	}
	defer resp.Body.Close()
	var m Message
	return m, readJSON(resp, &m)
}

func writeUpload(mw *multipart.Writer, up FileUpload) error {
	fields := [][2]string{{"to", up.To}}
	if up.Caption != "" {
		fields = append(fields, [2]string{"caption", up.Caption})
	}
	if up.DurationMS > 0 {
		fields = append(fields, [2]string{"duration_ms", strconv.FormatInt(up.DurationMS, 10)})
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return err
		}
	}
	if len(up.Thumb) > 0 {
		w, err := mw.CreateFormFile("thumb", "thumb.jpg")
		if err != nil {
			return err
		}
		if _, err := w.Write(up.Thumb); err != nil {
			return err
		}
	}
	typ := up.Type
	if typ == "" {
		typ = "application/octet-stream"
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": "file", "filename": up.Name}))
	h.Set("Content-Type", typ)
	w, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, up.Body); err != nil {
		return err
	}
	return mw.Close()
}

// File writes the attachment of message id (with peer, or in any
// conversation when peer is "") to w and returns its name and media type.
// A file the node is still fetching fails with CodeUnavailable.
func (c *Client) File(ctx context.Context, peer, id string, w io.Writer) (name, typ string, err error) {
	path := "/api/v1/files/" + url.PathEscape(id)
	if peer != "" {
		path = "/api/v1/files/" + url.PathEscape(peer) + "/" + url.PathEscape(id)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+path+"?download=1", nil)
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", "", c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", readJSON(resp, nil)
	}
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		name = params["filename"]
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return "", "", fmt.Errorf("read the file: %w", err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return "", "", fmt.Errorf("read the file: %d of %d bytes", n, resp.ContentLength)
	}
	return name, resp.Header.Get("Content-Type"), nil
}

// readJSON reads a JSON answer into out (or, for a *[]byte, the raw
// bytes), or the API's error.
func readJSON(resp *http.Response, out any) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("read API response: %w", err)
	}
	if len(data) > maxResponse {
		return fmt.Errorf("API response over %d bytes", maxResponse)
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Code, e.Message = CodeInternal, fmt.Sprintf("API answered %s", resp.Status)
		}
		return e
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok { // a Download
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode API response: %w", err)
	}
	return nil
}
