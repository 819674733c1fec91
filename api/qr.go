package api

import (
	"net/http"

	qrcode "github.com/skip2/go-qrcode"
)

// maxQRText bounds the text a QR code is made of: a handle, an account id
// or a safety number fit easily.
const maxQRText = 512

// qr answers GET /api/v1/qr?text=... with a PNG of text as a QR code
// (medium error correction, 256 pixels square), for the web app to show a
// handle or a safety number to another person's phone.
func (s *Server) qr(w http.ResponseWriter, r *http.Request) {
	text := r.URL.Query().Get("text")
	if text == "" || len(text) > maxQRText {
		writeError(w, Errorf(CodeBadRequest, "", "text must be 1 to %d bytes", maxQRText))
		return
	}
	png, err := qrcode.Encode(text, qrcode.Medium, 256)
	if err != nil {
		writeError(w, Errorf(CodeBadRequest, "", "cannot encode a QR code: %v", err))
		return
	}
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(png)
}
