package groupchat

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
)

// Message actions in a group, as between two people (msg/actions.go): a
// reply quotes a message of the group (plaintext addition 16); a
// reaction, an edit or a delete for everyone is a message of its own
// (plaintext addition 17: its kind, its target's id and a reaction's
// emoji), sealed and carried like any, which every member device folds
// into its target and never shows. A reaction is anyone's, one per
// member account; an edit or a delete only the target's sender's, within
// EditWindow of sending it. An action that comes before its target
// (another member's message still on its way: the members' carriers are
// not ordered among senders) waits for it, at most maxEarly per group for
// earlyKeep, and is applied when the target is stored; one whose target
// came and went (expired) changes nothing.

// ActionKind is what an action does to its target.
type ActionKind uint8

const (
	// ActionReact sets the sender's reaction (Emoji; "" removes it).
	ActionReact ActionKind = 1 + iota
	// ActionEdit replaces the target's text: the sender's own text.
	ActionEdit
	// ActionDelete deletes the target for everyone: the sender's own.
	ActionDelete
	maxActionKind = ActionDelete
)

// EditWindow is how long after sending a message its sender may edit or
// delete it for everyone (by SentAt).
const EditWindow = 24 * time.Hour

// MaxEmoji bounds a reaction.
const MaxEmoji = 32

// maxReactions bounds the reactions kept on one message (one per member
// account, and a group has at most group.MaxMembers).
const maxReactions = group.MaxMembers

// Action changes a message of a group.
type Action struct {
	Kind   ActionKind
	Target string // the id of the message it changes (hex)
	Emoji  string // ActionReact
}

// Reaction is one member's reaction to a message.
type Reaction struct {
	From  identity.AccountID
	Emoji string
}

// Errors of actions a person asks for.
var (
	// ErrNotYours: an edit or delete of someone else's message.
	ErrNotYours = errors.New("only its sender can change a message")
	// ErrTooLate: an edit or delete past EditWindow, an edit of a file,
	// or a change to a deleted message.
	ErrTooLate = errors.New("the message can no longer be changed")
	// ErrNoMessage: the target (or the message a reply quotes) is not in
	// the group here.
	ErrNoMessage = errors.New("no such message in the group")
	// ErrInvalid: an action that is not one (an unknown kind, an emoji
	// on an edit, a reaction that is not UTF-8 or is too long).
	ErrInvalid = errors.New("invalid message action")
)

// action is Action on the wire: kind, the target's 16 bytes, the emoji.
type action struct {
	kind   ActionKind
	target [16]byte
	emoji  string
}

func (a *action) marshal() []byte {
	return append(append([]byte{byte(a.kind)}, a.target[:]...), a.emoji...)
}

func unmarshalAction(b []byte) (*action, error) {
	if len(b) < 17 || len(b) > 17+MaxEmoji {
		return nil, fmt.Errorf("%w: an action of %d bytes", ErrMalformed, len(b))
	}
	a := &action{kind: ActionKind(b[0]), target: [16]byte(b[1:17]), emoji: string(b[17:])}
	switch {
	case a.kind < ActionReact || a.kind > maxActionKind:
		return nil, fmt.Errorf("%w: unknown action %d", ErrMalformed, a.kind)
	case a.kind != ActionReact && a.emoji != "":
		return nil, fmt.Errorf("%w: an emoji on an action other than a reaction", ErrMalformed)
	case !utf8.ValidString(a.emoji):
		return nil, fmt.Errorf("%w: a reaction that is not UTF-8", ErrMalformed)
	}
	return a, nil
}

// parseAction checks a person's action.
func parseAction(a Action) (*action, error) {
	id, err := parseMessageID(a.Target)
	if err != nil {
		return nil, err
	}
	out := &action{kind: a.Kind, target: id, emoji: a.Emoji}
	if _, err := unmarshalAction(out.marshal()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return out, nil
}

// parseMessageID reads a message id (hex of 16 bytes).
func parseMessageID(s string) ([16]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return [16]byte{}, fmt.Errorf("%w: %q", ErrNoMessage, s)
	}
	return [16]byte(b), nil
}

// allowedAction reports why action a, sent by from at sentAt with text,
// may not change t, or nil.
func allowedAction(a *action, from identity.AccountID, sentAt time.Time, text []byte, t *stored) error {
	if t.deleted {
		return fmt.Errorf("%w: it was deleted", ErrTooLate)
	}
	if a.kind == ActionReact {
		return nil
	}
	if t.from != from {
		return ErrNotYours
	}
	if sentAt.Sub(t.sentAt) > EditWindow {
		return fmt.Errorf("%w: sent more than %v before", ErrTooLate, EditWindow)
	}
	if a.kind == ActionEdit && (t.file != nil || len(text) == 0) {
		return fmt.Errorf("%w: only a text is edited, into a text", ErrTooLate)
	}
	return nil
}

// applyActionLocked folds action p (from from) into its target in g and
// stores it. It returns the target as it is now and, for a delete, the
// attachment reference it dropped; ok is false (and nothing changed) when
// the target is not here or the action is not allowed on it.
func (s *Service) applyActionLocked(d data, g group.ID, from identity.AccountID, p *plain) (t stored, removed []byte, ok bool, err error) {
	t, found, err := d.message(g, p.action.target)
	if err != nil || !found {
		return stored{}, nil, false, err
	}
	if allowedAction(p.action, from, p.sentAt, p.text, &t) != nil {
		return t, nil, false, nil
	}
	switch p.action.kind {
	case ActionReact:
		t.reactions = slices.DeleteFunc(t.reactions, func(r Reaction) bool { return r.From == from })
		if p.action.emoji != "" && len(t.reactions) < maxReactions {
			t.reactions = append(t.reactions, Reaction{From: from, Emoji: p.action.emoji})
		}
	case ActionEdit:
		t.text, t.edited = p.text, true
	case ActionDelete:
		removed = t.file
		t.text, t.file, t.reactions, t.edited, t.deleted = nil, nil, nil, false, true
	}
	return t, removed, true, d.putMessage(g, t)
}

// Actions waiting for their target.
const (
	maxEarly  = 256
	earlyKeep = 7 * 24 * time.Hour
)

// early is an action kept until its target comes:
//
//	field 1  from   bytes  the sender's account id (text)
//	field 2  plain  bytes  the action's plaintext
//	field 3  at     sint   when it came
type early struct {
	from identity.AccountID
	p    []byte
	at   time.Time
}

func (e *early) marshal() []byte {
	var w wire.Encoder
	w.String(1, string(e.from))
	w.Bytes(2, e.p)
	w.Sint(3, e.at.UnixNano())
	return w.B
}

func unmarshalEarly(b []byte) (early, error) {
	d := wire.NewDecoder(b, errCorrupt)
	e := early{from: identity.AccountID(d.String(1, 1, 128)), p: d.Bytes(2, 1, maxCarrier)}
	e.at = time.Unix(0, d.Sint(3, 1, 1<<62))
	return e, d.End()
}

// holdActionLocked keeps action p from from until its target comes; kept
// actions older than earlyKeep go, and past maxEarly in g it is dropped.
func (s *Service) holdActionLocked(d data, g group.ID, from identity.AccountID, p *plain) error {
	now := s.cfg.Now()
	n := 0
	var stale [][]byte
	err := d.sp.Scan(key(pfxEarly, g[:]), nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		v, err := val()
		if err != nil {
			return false, err
		}
		if e, err := unmarshalEarly(v); err != nil || now.Sub(e.at) > earlyKeep {
			stale = append(stale, bytes.Clone(k))
		} else {
			n++
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := d.sp.Delete(k); err != nil {
			return err
		}
	}
	if n >= maxEarly {
		s.log.Info("a group action whose message has not come is dropped: too many wait", "group", g)
		return nil
	}
	e := early{from: from, p: p.marshal(), at: now}
	return d.sp.Set(key(pfxEarly, g[:], p.action.target[:], p.id[:]), e.marshal())
}

// earlyActionsLocked applies to m, just stored in g, the actions that came
// before it, in the order they were sent, and deletes them. It returns m
// as it is now, and the attachment a delete dropped.
func (s *Service) earlyActionsLocked(d data, g group.ID, m stored) (stored, []byte, error) {
	pfx := key(pfxEarly, g[:], m.id[:])
	var keys [][]byte
	var waiting []early
	err := d.sp.Scan(pfx, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		keys = append(keys, bytes.Clone(k))
		v, err := val()
		if err != nil {
			return false, err
		}
		if e, err := unmarshalEarly(v); err == nil {
			waiting = append(waiting, e)
		}
		return true, nil
	})
	if err != nil || len(keys) == 0 {
		return m, nil, err
	}
	for _, k := range keys {
		if err := d.sp.Delete(k); err != nil {
			return m, nil, err
		}
	}
	type act struct {
		from identity.AccountID
		p    plain
	}
	var acts []act
	for _, e := range waiting {
		if p, err := unmarshalPlain(e.p); err == nil && p.action != nil {
			acts = append(acts, act{e.from, p})
		}
	}
	slices.SortStableFunc(acts, func(a, b act) int { return a.p.sentAt.Compare(b.p.sentAt) })
	var removed []byte
	for _, a := range acts {
		t, r, ok, err := s.applyActionLocked(d, g, a.from, &a.p)
		if err != nil {
			return m, nil, err
		}
		if ok {
			m = t
			if r != nil {
				removed = r
			}
		}
	}
	return m, removed, nil
}

// marshalReactions and unmarshalReaction are a stored message's reactions:
// each field 1 the member's account id, field 2 the emoji.
func marshalReaction(r Reaction) []byte {
	var e wire.Encoder
	e.String(1, string(r.From))
	e.String(2, r.Emoji)
	return e.B
}

func unmarshalReaction(b []byte) (Reaction, error) {
	d := wire.NewDecoder(b, errCorrupt)
	r := Reaction{From: identity.AccountID(d.String(1, 1, 128)), Emoji: d.String(2, 1, MaxEmoji)}
	return r, d.End()
}

// Act applies a to a message of g and sends it to the members: a reaction
// to anyone's message, an edit (text) or a delete for everyone of this
// account's own within EditWindow. It returns the target as it is now.
func (s *Service) Act(ctx context.Context, g group.ID, a Action, text []byte) (Message, error) {
	pa, err := parseAction(a)
	if err != nil {
		return Message{}, err
	}
	if a.Kind != ActionEdit {
		text = nil
	} else if len(text) == 0 || len(text) > MaxText {
		return Message{}, fmt.Errorf("%w: an edit of %d bytes (1 to %d)", ErrTooLarge, len(text), MaxText)
	}
	return s.send(ctx, g, plain{text: text, action: pa})
}
