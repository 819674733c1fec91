package msg

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/callsign/callsign/store"
)

// Message actions: a reaction, an edit or a delete for everyone travels as
// a text of its own (Content addition 19: its kind, its target's id and a
// reaction's emoji), through the outbox, acks, mailboxes and dedup like any
// text, to the peer's devices and this account's others. Where it lands it
// is folded into its target (ApplyAction) and never shown itself; its body
// is what an older version shows instead ("reacted 👍 to a message", the
// edited text, "deleted a message"). A reply is a plain text naming the
// message it quotes (Content addition 18, Message.ReplyTo).

// ActionKind is what an action does to its target.
type ActionKind uint8

const (
	// ActionReact sets the sender's reaction to the target (Emoji; empty
	// removes it).
	ActionReact ActionKind = 1 + iota
	// ActionEdit replaces the target's text with the action's body: the
	// sender's own text, within EditWindow of sending it.
	ActionEdit
	// ActionDelete deletes the target for everyone: the sender's own
	// message, within EditWindow.
	ActionDelete
	maxActionKind = ActionDelete
)

// EditWindow is how long after sending a message its sender may edit or
// delete it for everyone (by the sender's clock, as SentAt says).
const EditWindow = 24 * time.Hour

// MaxEmoji bounds a reaction.
const MaxEmoji = 32

// Action makes a message a change to another one.
type Action struct {
	Kind   ActionKind
	Target string // the id of the message it changes, in the same conversation
	Emoji  string // ActionReact
}

// Reaction is one side's reaction to a message.
type Reaction struct {
	Dir   string // DirIn: the peer's; DirOut: this account's
	Emoji string
}

// Errors of actions a person asks for.
var (
	// ErrNotYours: an edit or delete of a message the other side sent.
	ErrNotYours = errors.New("only its sender can change a message")
	// ErrTooLate: an edit or delete past EditWindow, or an edit of a
	// file or of a deleted message.
	ErrTooLate = errors.New("the message can no longer be changed")
)

// actionBytes is Content addition 19: kind, the target's 16 bytes, emoji.
func (a *Action) marshal() ([]byte, error) {
	id, err := parseMsgID(a.Target)
	if err != nil {
		return nil, err
	}
	b := append([]byte{byte(a.Kind)}, id[:]...)
	return append(b, a.Emoji...), nil
}

func unmarshalAction(b []byte) (*Action, error) {
	if len(b) < 1+idSize || len(b) > 1+idSize+MaxEmoji {
		return nil, fmt.Errorf("an action of %d bytes", len(b))
	}
	a := &Action{Kind: ActionKind(b[0]), Target: msgID(b[1 : 1+idSize]).String(), Emoji: string(b[1+idSize:])}
	if err := a.check(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Action) check() error {
	switch {
	case a.Kind < ActionReact || a.Kind > maxActionKind:
		return fmt.Errorf("unknown action %d", a.Kind)
	case a.Kind != ActionReact && a.Emoji != "":
		return errors.New("an emoji on an action other than a reaction")
	case len(a.Emoji) > MaxEmoji || !utf8.ValidString(a.Emoji):
		return fmt.Errorf("a reaction of %d bytes", len(a.Emoji))
	}
	_, err := parseMsgID(a.Target)
	return err
}

// fallback is the text an older version shows for action a.
func (a *Action) fallback(text []byte) []byte {
	switch a.Kind {
	case ActionReact:
		if a.Emoji == "" {
			return []byte("removed a reaction")
		}
		return []byte("reacted " + a.Emoji + " to a message")
	case ActionEdit:
		return text
	}
	return []byte("deleted a message")
}

// allowed reports why action m may not change target, or nil: m and
// target are in the same conversation; m.Direction says who sent the
// action (DirIn: the peer).
func allowed(m, target *Message) error {
	if target.Action != nil {
		return fmt.Errorf("%w: an action is changed by nothing", ErrTooLate)
	}
	if target.Deleted {
		return fmt.Errorf("%w: it was deleted", ErrTooLate)
	}
	if m.Action.Kind == ActionReact {
		return nil
	}
	if target.Direction != m.Direction {
		return ErrNotYours
	}
	if m.SentAt.Sub(target.SentAt) > EditWindow {
		return fmt.Errorf("%w: sent more than %v before", ErrTooLate, EditWindow)
	}
	if m.Action.Kind == ActionEdit && (target.File != nil || len(m.Body) == 0) {
		return fmt.Errorf("%w: only a text is edited, into a text", ErrTooLate)
	}
	return nil
}

// ApplyAction folds action m into its target and stores the target; it
// returns the target as it is now and whether m changed it. An action the
// target's side did not allow (an edit of someone else's message, past the
// window) or whose target is not here changes nothing. m itself is not
// stored.
func (d *Data) ApplyAction(m Message) (Message, bool, error) {
	if m.Action == nil {
		return Message{}, false, fmt.Errorf("%w: not an action", store.ErrInvalid)
	}
	t, err := d.Message(m.Peer, m.Action.Target)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, err
	}
	if allowed(&m, &t) != nil {
		return t, false, nil
	}
	switch m.Action.Kind {
	case ActionReact:
		t.Reactions = slices.DeleteFunc(t.Reactions, func(r Reaction) bool { return r.Dir == m.Direction })
		if m.Action.Emoji != "" {
			t.Reactions = append(t.Reactions, Reaction{Dir: m.Direction, Emoji: m.Action.Emoji})
		}
	case ActionEdit:
		t.Body, t.Edited = m.Body, true
	case ActionDelete:
		t.Body, t.File, t.Reactions, t.Edited, t.Deleted = nil, nil, nil, false, true
	}
	return t, true, d.PutMessage(t)
}

// CheckAction reports why this account may not apply action a to message
// target of the conversation with peer now, or nil (store.ErrNotFound when
// there is no such message).
func (d *Data) CheckAction(peer string, a Action, body []byte, now time.Time) (Message, error) {
	if err := a.check(); err != nil {
		return Message{}, fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	t, err := d.Message(peer, a.Target)
	if err != nil {
		return Message{}, err
	}
	m := Message{Direction: DirOut, Action: &a, Body: body, SentAt: now}
	return t, allowed(&m, &t)
}

// wireExtras are m's quote and action as Content additions 18 and 19;
// ids a person could not have made (Send checks them) are left out.
func (m *Message) wireExtras() (replyTo, action []byte) {
	if m.ReplyTo != "" {
		if id, err := parseMsgID(m.ReplyTo); err == nil {
			replyTo = id[:]
		}
	}
	if m.Action != nil {
		action, _ = m.Action.marshal()
	}
	return replyTo, action
}

// wireTimer is m's timer as Content additions 20 and 21.
func (m *Message) wireTimer() (*uint64, bool) {
	if m.TimerSet != nil {
		v := uint64(*m.TimerSet / time.Second)
		return &v, true
	}
	return timerOf(m.Expires), false
}

// extrasOf sets m's quote, action and timer from c's additions, which
// unmarshalContent checked.
func (m *Message) extrasOf(c *content) {
	if c.timer != nil {
		d := time.Duration(*c.timer) * time.Second
		if c.timerSet {
			m.TimerSet = &d
		} else {
			m.Expires = d
		}
	}
	if c.replyTo != nil {
		m.ReplyTo = msgID(c.replyTo).String()
	}
	if c.action != nil {
		m.Action, _ = unmarshalAction(c.action)
	}
}
