package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// Limits of POST /api/v1/files beside the file itself, whose limit is the
// node's (the backend's CodeTooLarge).
const (
	// MaxUpload caps the whole request: the largest file a node may be
	// configured to take (4 GiB) and the other parts.
	MaxUpload  = 4<<30 + 1<<20
	maxToPart  = 1 << 10
	maxCaption = 64 << 10
	// MaxThumb caps a photo's thumbnail.
	MaxThumb = 16 << 10
)

// uploadFile is POST /api/v1/files: a multipart form whose parts are to,
// caption (optional), duration_ms (optional), thumb (optional, a JPEG)
// and, last, file (its file name and Content-Type name the attachment).
func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxUpload)
	m, err := s.readUpload(r)
	if err != nil {
		writeError(w, s.apiError(r, err))
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) readUpload(r *http.Request) (Message, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return Message{}, Errorf(CodeBadRequest, "send a multipart/form-data body", "bad upload: %v", err)
	}
	var up FileUpload
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return Message{}, Errorf(CodeBadRequest, "", "bad upload: no file part")
		}
		if err != nil {
			return Message{}, Errorf(CodeBadRequest, "", "bad upload: %v", err)
		}
		field := func(limit int) ([]byte, error) {
			b, err := io.ReadAll(io.LimitReader(part, int64(limit)+1))
			if err != nil {
				return nil, Errorf(CodeBadRequest, "", "bad upload: %s: %v", part.FormName(), err)
			}
			if len(b) > limit {
				return nil, Errorf(CodeTooLarge, "", "%s is over %d bytes", part.FormName(), limit)
			}
			return b, nil
		}
		var b []byte
		switch name := part.FormName(); name {
		case "to":
			b, err = field(maxToPart)
			up.To = string(b)
		case "caption":
			b, err = field(maxCaption)
			up.Caption = string(b)
		case "duration_ms":
			if b, err = field(16); err == nil {
				if up.DurationMS, err = strconv.ParseInt(string(b), 10, 64); err != nil || up.DurationMS < 0 {
					err = Errorf(CodeBadRequest, "", "duration_ms must be a whole number of milliseconds")
				}
			}
		case "thumb":
			b, err = field(MaxThumb)
			up.Thumb = b
		case "file":
			up.Name = part.FileName()
			if up.Name == "" {
				return Message{}, Errorf(CodeBadRequest, "", "the file part has no file name")
			}
			if t := part.Header.Get("Content-Type"); t != "" {
				mt, _, perr := mime.ParseMediaType(t)
				if perr != nil {
					return Message{}, Errorf(CodeBadRequest, "", "the file's Content-Type %q: %v", t, perr)
				}
				up.Type = mt
			}
			up.Body = part
			return s.cfg.Backend.SendFile(r.Context(), up)
		default:
			err = Errorf(CodeBadRequest, "the parts are to, caption, duration_ms, thumb and file", "bad upload: unknown part %q", name)
		}
		if err != nil {
			return Message{}, err
		}
	}
}

// getFile is GET /api/v1/files/{peer}/{id} (and /files/{id}): the
// attachment's bytes. Images, audio and video (not SVG, which can hold
// scripts) are served as their type for a page to show; anything else as
// a download. ?download=1 makes any file a download.
func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	info, write, err := s.cfg.Backend.File(r.Context(), r.PathValue("peer"), r.PathValue("id"))
	if err != nil {
		writeError(w, s.apiError(r, err))
		return
	}
	h := w.Header()
	inline := Inline(info.Type) && r.URL.Query().Get("download") == ""
	if inline {
		h.Set("Content-Type", info.Type)
		h.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": info.Name}))
	} else {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": info.Name}))
	}
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-store")
	if err := write(w); err != nil {
		// The status is sent: the client sees a short body.
		s.log.Warn("an attachment could not be read", "id", r.PathValue("id"), "err", err)
	}
}

// Inline reports whether a file of media type typ is one a page may show
// as it is: an image (not SVG), audio or video.
func Inline(typ string) bool {
	major, _, _ := strings.Cut(typ, "/")
	return (major == "image" || major == "audio" || major == "video") && typ != "image/svg+xml"
}

// FileURL is where GET reads the attachment of message id with peer.
func FileURL(peer, id string) string {
	return fmt.Sprintf("/api/v1/files/%s/%s", peer, id)
}
