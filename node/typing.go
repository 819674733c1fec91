package node

import (
	"context"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
)

// Typing indicators (issue 14): when the person has turned them on, the
// web app tells the node while they type to a contact, and the node sends
// that contact a typing signal (msg.TypingSignal). A node shows a typing
// signal only from a contact, and only when its own person turned
// indicators on (as in Signal and WhatsApp, who does not send them sees
// nobody's).

// typingSignalLife bounds a typing signal's delivery: a late one is
// useless.
const typingSignalLife = 3 * time.Second

// SendTyping tells contact to that this person is typing to them, or
// stopped (backend.Typer).
func (n *Node) SendTyping(ctx context.Context, to identity.AccountID, on bool) error {
	ctx, cancel := context.WithTimeout(ctx, typingSignalLife)
	defer cancel()
	return n.msg.SendSignal(ctx, to, msg.TypingSignal(on))
}

// handleTyping takes a typing signal and reports whether payload was one.
func (n *Node) handleTyping(from identity.AccountID, payload []byte) bool {
	if !msg.IsTypingSignal(payload) {
		return false
	}
	on, err := msg.ParseTypingSignal(payload)
	if err != nil {
		n.log.Debug("dropped a typing signal", "from", from, "err", err)
		return true
	}
	if c, err := n.contacts.Get(from); err != nil || c.Blocked {
		return true // a stranger's, or a blocked contact's: not shown
	}
	if b := n.backend.Load(); b != nil {
		b.TypingEvent(from, on)
	}
	return true
}
