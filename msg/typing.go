package msg

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/internal/wire"
)

// Typing indicators (issue 14) travel as signals (SendSignal), beside call
// signals and addresses signals, told apart by their first field:
//
//	field 18  typing  uint  1 typing, 2 stopped
//
// The node decides who sends and who is shown them; nothing of one is
// stored.
const typingField protowire.Number = 18

// errBadTyping is a typing signal that does not decode (never an API error:
// the node drops the signal).
var errBadTyping = errors.New("bad typing signal")

// TypingSignal is the signal saying that this person is typing (on), or
// stopped.
func TypingSignal(on bool) []byte {
	var e wire.Encoder
	v := uint64(2)
	if on {
		v = 1
	}
	e.Uint(typingField, v)
	return e.B
}

// IsTypingSignal reports whether a signal's payload starts as a typing
// signal.
func IsTypingSignal(b []byte) bool {
	n, _, l := protowire.ConsumeTag(b)
	return l > 0 && n == typingField
}

// ParseTypingSignal decodes a typing signal, skipping a newer version's
// additions.
func ParseTypingSignal(b []byte) (on bool, err error) {
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
