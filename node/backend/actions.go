package backend

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/files"
	"github.com/callsign/callsign/groupchat"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// quoteLen is how much of a quoted message's text a reply shows.
const quoteLen = 200

// Reply implements api.Backend; Send is Reply quoting nothing.
func (s *Service) Reply(ctx context.Context, to, text, replyTo string) (_ api.Message, err error) {
	defer mapError(&err)
	if err := checkText(text); err != nil {
		return api.Message{}, err
	}
	if g, ok, err := s.findGroup(to); err != nil || ok {
		if err != nil {
			return api.Message{}, err
		}
		if replyTo != "" {
			return s.replyGroup(ctx, g, text, replyTo)
		}
		return s.sendGroup(ctx, g, text)
	}
	t, err := s.recipient(ctx, to)
	if err != nil {
		return api.Message{}, err
	}
	m, err := s.msgs.SendMessage(ctx, t.id, msg.Outgoing{Text: []byte(text), ReplyTo: replyTo})
	if errors.Is(err, store.ErrInvalid) {
		return api.Message{}, badRequest(err)
	}
	if err != nil {
		return api.Message{}, err
	}
	return s.sent(m, t), nil
}

// SetTimer implements api.Backend.
func (s *Service) SetTimer(ctx context.Context, name string, seconds int64) (_ api.Message, err error) {
	defer mapError(&err)
	if seconds != 0 && (seconds < int64(msg.MinTimer/time.Second) || seconds > int64(msg.MaxTimer/time.Second)) {
		return api.Message{}, api.Errorf(api.CodeBadRequest, "", "a timer is 0 (off) or %d to %d seconds", int64(msg.MinTimer/time.Second), int64(msg.MaxTimer/time.Second))
	}
	if g, ok, err := s.findGroup(name); err != nil || ok {
		if err != nil {
			return api.Message{}, err
		}
		return s.setGroupTimer(ctx, g, seconds)
	}
	t, err := s.recipient(ctx, name)
	if err != nil {
		return api.Message{}, err
	}
	m, err := s.msgs.SetTimer(ctx, t.id, time.Duration(seconds)*time.Second)
	if err != nil {
		return api.Message{}, err
	}
	return s.sent(m, t), nil
}

// Act implements api.Backend: the action goes to the peer and this
// account's other devices, and the message is returned as it is here now
// (a "message-updated" event follows for every client).
func (s *Service) Act(ctx context.Context, name, id, action string, req api.ActionRequest) (_ api.Message, err error) {
	defer mapError(&err)
	a := msg.Action{Target: id}
	var text []byte
	switch action {
	case "react":
		if len(req.Emoji) > msg.MaxEmoji || !utf8.ValidString(req.Emoji) {
			return api.Message{}, api.Errorf(api.CodeBadRequest, "", "a reaction is one emoji")
		}
		a.Kind, a.Emoji = msg.ActionReact, req.Emoji
	case "edit":
		if err := checkText(req.Text); err != nil {
			return api.Message{}, err
		}
		a.Kind, text = msg.ActionEdit, []byte(req.Text)
	case "delete":
		a.Kind = msg.ActionDelete
	default:
		return api.Message{}, api.Errorf(api.CodeNotFound, "the actions are react, edit and delete", "no action %q", action)
	}
	if g, ok, err := s.findGroup(name); err != nil || ok {
		if err != nil {
			return api.Message{}, err
		}
		// The kinds are the same numbers in both packages.
		return s.actGroup(ctx, g, groupchat.Action{Kind: groupchat.ActionKind(a.Kind), Target: id, Emoji: a.Emoji}, text)
	}
	t, err := s.target(ctx, name, false)
	if err != nil {
		return api.Message{}, err
	}
	if _, err := s.msgs.SendAction(ctx, t.id, a, text); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return api.Message{}, api.Errorf(api.CodeNotFound, "", "no message %s with %s", id, name)
		}
		return api.Message{}, err
	}
	var m msg.Message
	var q *api.Quote
	if err := s.db.View(func(tx *store.Tx) error {
		data := msg.In(tx)
		var err error
		if m, err = data.Message(t.id.String(), id); err != nil {
			return err
		}
		q = s.quoteIn(data, m)
		return nil
	}); err != nil {
		return api.Message{}, err
	}
	peerName := ""
	if t.contact != nil {
		peerName = t.contact.Petname
	}
	out := s.toAPIMessage(m, peerName)
	out.Quote = q
	return out, nil
}

func checkText(text string) error {
	switch {
	case text == "":
		return api.Errorf(api.CodeBadRequest, "", "empty message")
	case !utf8.ValidString(text):
		return api.Errorf(api.CodeBadRequest, "", "message is not valid UTF-8")
	case len(text) > msg.DefaultMaxMessage:
		return api.Errorf(api.CodeTooLarge, "split it into several messages", "message is %d bytes; the limit is %d bytes", len(text), msg.DefaultMaxMessage)
	}
	return nil
}

// quoteIn is the message m quotes, read in data, or nil.
func (s *Service) quoteIn(data *msg.Data, m msg.Message) *api.Quote {
	if m.ReplyTo == "" {
		return nil
	}
	q, err := data.Message(m.Peer, m.ReplyTo)
	if err != nil {
		return nil
	}
	return quoteOf(q.ID, s.sender(q), q.Body, q.File, q.Deleted)
}

// quoteOf is how a reply shows the message id it quotes, sent by from:
// the start of its text and its file's name, or nothing once deleted (a
// one-to-one message or a group's).
func quoteOf(id, from string, text, file []byte, deleted bool) *api.Quote {
	out := &api.Quote{ID: id, From: from}
	if !deleted {
		out.Text = cutText(string(text), quoteLen)
		if ref, err := files.UnmarshalRef(file); file != nil && err == nil {
			out.FileName = ref.Name
		}
	}
	return out
}

// cutText is text's first n bytes at most, cut between characters.
func cutText(text string, n int) string {
	if len(text) <= n {
		return text
	}
	for n > 0 && !utf8.RuneStart(text[n]) {
		n--
	}
	return text[:n]
}

// quote is quoteIn in a transaction of its own.
func (s *Service) quote(m msg.Message) *api.Quote {
	if m.ReplyTo == "" {
		return nil
	}
	var q *api.Quote
	s.db.View(func(tx *store.Tx) error {
		q = s.quoteIn(msg.In(tx), m)
		return nil
	})
	return q
}

// sender is the account id of whoever sent m.
func (s *Service) sender(m msg.Message) string {
	if m.Direction == msg.DirOut {
		return s.self.ID().String()
	}
	return m.Peer
}

// reactions are m's reactions as the API shows them.
func (s *Service) reactions(m msg.Message) []api.Reaction {
	var out []api.Reaction
	for _, r := range m.Reactions {
		from := m.Peer
		if r.Dir == msg.DirOut {
			from = s.self.ID().String()
		}
		out = append(out, api.Reaction{Emoji: r.Emoji, From: from})
	}
	return out
}

// shown reports whether m is a message a person sees: not an action,
// which is folded into the message it changes.
func shown(m msg.Message) bool { return m.Action == nil }
