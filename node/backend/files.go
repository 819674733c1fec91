package backend

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/files"
	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/groupchat"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// Files keeps the attachments of messages (the node's side of package
// files): sealing what is sent, fetching what arrives, reading what is
// held.
type Files interface {
	// Add seals a file into the store and returns its reference.
	Add(r io.Reader, name, typ string) (files.Ref, error)
	// State is ready, fetching or failed, and the sealed bytes held of all.
	State(ref files.Ref) (state string, have, total int64)
	// Read writes a held file's plaintext (files.ErrNotFound when it is
	// not held).
	Read(w io.Writer, ref files.Ref) error
	// Fetch starts fetching the attachment of a message, or hurries a
	// download waiting between tries.
	Fetch(at FileAt, ref files.Ref)
	// Limit is the largest file the node sends or fetches.
	Limit() int64
	// Remove deletes a file (one added for a message that was not sent).
	Remove(h files.Hash) error
	// Thumbnail is a thumbnail of a held photo, or nil.
	Thumbnail(ref files.Ref) []byte
}

// FileAt names the message an attachment came in: its conversation (an
// account id, or a group's id), its id, and the account whose devices
// hold the file (its sender, or this account for one it sent).
type FileAt struct {
	Peer, ID string
	Owner    identity.AccountID
}

// FileOf is where m's attachment is, for this account self.
func FileOf(m msg.Message, self identity.AccountID) FileAt {
	at := FileAt{Peer: m.Peer, ID: m.ID, Owner: identity.AccountID(m.Peer)}
	if m.Direction == msg.DirOut {
		at.Owner = self
	}
	return at
}

// mib is a size in MiB as a person reads it: "100 MiB", "1.5 MiB".
func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// FileEvent tells the API's subscribers how an attachment's download goes.
func (s *Service) FileEvent(st api.FileState) {
	s.events.publish(api.NewEvent(api.EventFile, st))
}

// fileInfo is m's attachment as the API shows it, or nil.
func (s *Service) fileInfo(m msg.Message) *api.FileInfo { return s.fileInfoOf(m.Peer, m.ID, m.File) }

// fileInfoOf is the attachment file of message id of conversation peer
// (an account's or a group's) as the API shows it, or nil.
func (s *Service) fileInfoOf(peer, id string, file []byte) *api.FileInfo {
	if file == nil || s.files == nil {
		return nil
	}
	ref, err := files.UnmarshalRef(file)
	if err != nil {
		// Shown as a file nobody can open, rather than hidden: the
		// sender did send something.
		return &api.FileInfo{Name: "attachment", Type: "application/octet-stream", State: api.FileFailed, URL: api.FileURL(peer, id)}
	}
	st, _, _ := s.files.State(ref)
	out := &api.FileInfo{Name: ref.Name, Type: ref.Type, Size: ref.Size, DurationMS: ref.DurationMS, State: st, URL: api.FileURL(peer, id)}
	if ref.Thumb != nil {
		out.Thumb = "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(ref.Thumb)
	}
	return out
}

// SendFile implements api.Backend: the file is sealed into the node's
// store, then its reference goes out in a message like any text.
func (s *Service) SendFile(ctx context.Context, up api.FileUpload) (_ api.Message, err error) {
	defer mapError(&err)
	if s.files == nil {
		return api.Message{}, api.Errorf(api.CodeUnavailable, "", "this node keeps no attachments")
	}
	g, toGroup, err := s.findGroup(up.To)
	if err != nil {
		return api.Message{}, err
	}
	if !utf8.ValidString(up.Caption) {
		return api.Message{}, api.Errorf(api.CodeBadRequest, "", "the caption is not valid UTF-8")
	}
	if len(up.Thumb) > files.MaxThumb {
		return api.Message{}, api.Errorf(api.CodeTooLarge, "", "a thumbnail of %d bytes; the limit is %d", len(up.Thumb), files.MaxThumb)
	}
	if err := files.CheckName(up.Name); err != nil {
		return api.Message{}, badRequest(err)
	}
	var t target
	if !toGroup {
		if t, err = s.recipient(ctx, up.To); err != nil {
			return api.Message{}, err
		}
	}
	ref, err := s.files.Add(up.Body, up.Name, up.Type)
	switch {
	case errors.Is(err, files.ErrTooLarge):
		return api.Message{}, api.Errorf(api.CodeTooLarge, "", "the file is over this node's limit of %s", mib(s.files.Limit()))
	case errors.Is(err, files.ErrMalformedRef):
		return api.Message{}, badRequest(err)
	case err != nil:
		return api.Message{}, err
	}
	ref.Thumb, ref.DurationMS = up.Thumb, up.DurationMS
	if ref.Thumb == nil {
		ref.Thumb = s.files.Thumbnail(ref) // a client that made none (the CLI)
	}
	if err := ref.Check(); err != nil {
		s.files.Remove(ref.Hash)
		return api.Message{}, badRequest(err)
	}
	if toGroup {
		m, err := s.sendGroupFile(ctx, g, up.Caption, ref.Marshal())
		if err != nil {
			s.files.Remove(ref.Hash) // nothing names it
		}
		return m, err
	}
	m, err := s.msgs.SendFile(ctx, t.id, []byte(up.Caption), ref.Marshal())
	if err != nil {
		s.files.Remove(ref.Hash) // nothing names it
		return api.Message{}, err
	}
	return s.sent(m, t), nil
}

// File implements api.Backend.
func (s *Service) File(ctx context.Context, peer, id string) (_ api.FileInfo, _ func(io.Writer) error, err error) {
	defer mapError(&err)
	if s.files == nil {
		return api.FileInfo{}, nil, api.Errorf(api.CodeNotFound, "", "this node keeps no attachments")
	}
	at, file, err := s.findFile(ctx, peer, id)
	if err != nil {
		return api.FileInfo{}, nil, err
	}
	info := s.fileInfoOf(at.Peer, at.ID, file)
	if info == nil {
		return api.FileInfo{}, nil, api.Errorf(api.CodeNotFound, "", "message %s has no attachment", id)
	}
	ref, err := files.UnmarshalRef(file)
	if err != nil {
		return api.FileInfo{}, nil, api.Errorf(api.CodeNotFound, "", "the attachment of message %s is malformed: %v", id, err)
	}
	if info.State != api.FileReady {
		// Asking for it (re)starts its download.
		s.files.Fetch(at, ref)
		return api.FileInfo{}, nil, api.Errorf(api.CodeUnavailable, "wait for the \"file\" event, then ask again", "%s is not on this node yet: fetching it", ref.Name)
	}
	return *info, func(w io.Writer) error { return s.files.Read(w, ref) }, nil
}

// findFile finds message id of conversation peer (a name, an account id
// or a group), or of any conversation or group when peer is "", and
// returns where its attachment is and its reference.
func (s *Service) findFile(ctx context.Context, peer, id string) (FileAt, []byte, error) {
	if s.groups != nil {
		var gs []group.ID
		if peer != "" {
			g, ok, err := s.findGroup(peer)
			if err != nil {
				return FileAt{}, nil, err
			}
			if ok {
				gs = []group.ID{g}
			}
		} else {
			all, err := s.groups.Groups()
			if err != nil {
				return FileAt{}, nil, err
			}
			for _, in := range all {
				gs = append(gs, in.ID)
			}
		}
		for _, g := range gs {
			m, err := s.groups.Message(g, id)
			if errors.Is(err, groupchat.ErrNotFound) {
				continue
			}
			if err != nil {
				return FileAt{}, nil, err
			}
			return groupFileAt(m, s.self.ID()), m.File, nil
		}
		if len(gs) == 1 && peer != "" {
			return FileAt{}, nil, api.Errorf(api.CodeNotFound, "", "no message %s", id)
		}
	}
	m, err := s.findMessage(ctx, peer, id)
	if err != nil {
		return FileAt{}, nil, err
	}
	return FileOf(m, s.self.ID()), m.File, nil
}

// groupFileAt is where a group message's attachment is.
func groupFileAt(m groupchat.Message, self identity.AccountID) FileAt {
	at := FileAt{Peer: m.Group.String(), ID: m.ID, Owner: m.From}
	if m.Out {
		at.Owner = self
	}
	return at
}

// findMessage finds message id with peer (a name or an account id), or in
// any conversation when peer is "".
func (s *Service) findMessage(ctx context.Context, peer, id string) (msg.Message, error) {
	var peers []string
	if peer != "" {
		t, err := s.target(ctx, peer, false)
		if err != nil {
			return msg.Message{}, err
		}
		peers = []string{t.id.String()}
	}
	var found *msg.Message
	err := s.db.View(func(tx *store.Tx) error {
		data := msg.In(tx)
		if peers == nil {
			cs, err := data.Conversations()
			if err != nil {
				return err
			}
			for _, c := range cs {
				peers = append(peers, c.Peer)
			}
		}
		for _, p := range peers {
			m, err := data.Message(p, id)
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
				continue
			}
			if err != nil {
				return err
			}
			found = &m
			return nil
		}
		return nil
	})
	if err != nil {
		return msg.Message{}, err
	}
	if found == nil {
		return msg.Message{}, api.Errorf(api.CodeNotFound, "", "no message %s", id)
	}
	return *found, nil
}
