package node

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
)

// Typing indicators (issue 14): when the person has turned them on, the
// web app tells the node while they type to a contact, and the node sends
// that contact a typing signal through msg.SendSignal, beside call
// signals and addresses signals, told apart by its first field:
//
//	field 18  typing  uint  1 typing, 2 stopped
//
// Nothing of it is stored. A node shows a typing signal only from a
// contact, and only when its own person turned indicators on (as in
// Signal and WhatsApp, who does not send them sees nobody's).
const typingField protowire.Number = 18

// typingSignalLife bounds a typing signal's delivery: a late one is
// useless.
const typingSignalLife = 3 * time.Second

var errBadTyping = errors.New("bad typing signal")

func encodeTyping(on bool) []byte {
	var e wire.Encoder
	v := uint64(2)
	if on {
		v = 1
	}
	e.Uint(typingField, v)
	return e.B
}

// isTypingSignal reports whether b starts as a typing signal.
func isTypingSignal(b []byte) bool {
	n, _, l := protowire.ConsumeTag(b)
	return l > 0 && n == typingField
}

// decodeTyping decodes a typing signal, skipping a newer version's
// additions.
func decodeTyping(b []byte) (on bool, err error) {
	if len(b) > 256 {
		return false, errBadTyping
	}
	d := wire.NewFrameDecoder(b, errBadTyping, 200)
	v := d.Uint(typingField, 2)
	if err := d.End(); err != nil {
		return false, err
	}
	if v == 0 {
		return false, errBadTyping
	}
	return v == 1, nil
}

// SendTyping tells contact to that this person is typing to them, or
// stopped (backend.Typer).
func (n *Node) SendTyping(ctx context.Context, to identity.AccountID, on bool) error {
	ctx, cancel := context.WithTimeout(ctx, typingSignalLife)
	defer cancel()
	return n.msg.SendSignal(ctx, to, encodeTyping(on))
}

// handleTyping takes a typing signal and reports whether payload was one.
func (n *Node) handleTyping(from identity.AccountID, payload []byte) bool {
	if !isTypingSignal(payload) {
		return false
	}
	on, err := decodeTyping(payload)
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
