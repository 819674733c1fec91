package devices

// The frames of /callsign/link/1.0.0 (link.proto). Every frame is one
// message whose field 1 is its type; its other fields depend on the type:
//
//	type         dir   fields
//	1 Hello      N→E   2 proof (32)      3 commit (32)
//	2 Offer      E→N   2 eE (32)
//	3 Reveal     N→E   2 eN (32)         3 nN (16)
//	4 Confirm    both  2 mac (32)
//	5 Account    E→N   2 sealed (17..MaxLinkFrame-64)
//	6 Linked     N→E   2 payload (1..MaxLinkFrame-64)
//	7 History    E→N   2 sealed (17..MaxLinkHistoryFrame-64)
//	8 Done       E→N   2 chunks (varint, the History frames sent; absent = 0)
//	9 Refusal    both  2 reason (varint, a RefusalReason)  3 text (≤ 200 bytes)
//
// Fields 16 and up are additions, skipped (wire.NewFrameDecoder). A frame
// of another type than the step expects is refused, except Refusal, which
// either side may send instead of its next frame before it ends the stream.

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/callsign/callsign/internal/wire"
)

// Frame size caps of the link protocol.
const (
	MaxLinkFrame        = 64 << 10 // every frame but History
	MaxLinkHistoryFrame = 1 << 20  // a History frame
	// MaxLinkPayload is the most an Account or Linked payload (the caller's
	// bytes) may hold.
	MaxLinkPayload = MaxLinkFrame - 64
	// MaxLinkHistoryChunk is the most one history chunk may hold.
	MaxLinkHistoryChunk = MaxLinkHistoryFrame - 64
	maxLinkChunks       = 1 << 16
	maxRefusalText      = 200
	sealOverhead        = 16
)

type frameType uint64

const (
	frameHello frameType = iota + 1
	frameOffer
	frameReveal
	frameConfirm
	frameAccount
	frameLinked
	frameHistory
	frameDone
	frameRefusal
)

func (t frameType) String() string {
	names := [...]string{"", "Hello", "Offer", "Reveal", "Confirm", "Account", "Linked", "History", "Done", "Refusal"}
	if t > 0 && int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("frame type %d", uint64(t))
}

// RefusalReason says why a side ends a link with a Refusal frame.
type RefusalReason uint64

// The reasons. The numbers are on the wire.
const (
	RefusedSpent    RefusalReason = 1 // E: no pending link for this code (expired, used or unknown)
	RefusedWrong    RefusalReason = 2 // E: the proof does not match the pending link's secret
	RefusedDeclined RefusalReason = 3 // either: the user declined the SAS
	RefusedAccount  RefusalReason = 4 // E: its caller refused to hand the account over (step 5)
	RefusedLinked   RefusalReason = 5 // E: its caller refused N's Linked payload (step 6)
	RefusedFailed   RefusalReason = 6 // N: it could not store the account (step 6)
	maxRefusal                    = RefusedFailed
)

// ErrLinkFrame is wrapped by every error of a frame that is malformed or
// not the one the step expects.
var ErrLinkFrame = errors.New("malformed link frame")

// linkFrame is any frame; which fields mean what depends on typ.
type linkFrame struct {
	typ    frameType
	a, b   []byte // field 2 and 3 when bytes
	n      uint64 // field 2 when a varint (Done: chunks; Refusal: reason)
	text   string // Refusal: field 3
	extra  []byte // skipped additions
	length int    // bytes of the frame as read
}

func (f linkFrame) marshal() []byte {
	var e wire.Encoder
	e.Uint(1, uint64(f.typ))
	switch f.typ {
	case frameDone, frameRefusal:
		e.Uint(2, f.n)
		e.String(3, f.text)
	default:
		e.Bytes(2, f.a)
		e.Bytes(3, f.b)
	}
	e.Raw(f.extra)
	return e.B
}

// unmarshalLinkFrame reads a frame of any type, checking its fields'
// presence and lengths.
func unmarshalLinkFrame(buf []byte) (linkFrame, error) {
	d := wire.NewFrameDecoder(buf, ErrLinkFrame, maxAdditions)
	f := linkFrame{typ: frameType(d.Uint(1, uint64(frameRefusal))), length: len(buf)}
	switch f.typ {
	case frameHello:
		f.a = d.Fixed(2, sha256Size)
		f.b = d.Fixed(3, sha256Size)
	case frameOffer, frameConfirm:
		f.a = d.Fixed(2, 32)
	case frameReveal:
		f.a = d.Fixed(2, 32)
		f.b = d.Fixed(3, linkNonceSize)
	case frameAccount:
		f.a = d.Bytes(2, sealOverhead+1, MaxLinkPayload+sealOverhead)
	case frameLinked:
		f.a = d.Bytes(2, 1, MaxLinkPayload)
	case frameHistory:
		f.a = d.Bytes(2, sealOverhead+1, MaxLinkHistoryChunk+sealOverhead)
	case frameDone:
		f.n = d.Uint(2, maxLinkChunks)
	case frameRefusal:
		f.n = d.Uint(2, uint64(maxRefusal))
		f.text = d.String(3, 1, maxRefusalText)
	default:
		if d.Err() == nil {
			d.Fail("no frame type")
		}
	}
	if err := d.End(); err != nil {
		return linkFrame{}, err
	}
	if (f.typ == frameAccount || f.typ == frameLinked || f.typ == frameHistory) && f.a == nil {
		return linkFrame{}, fmt.Errorf("%w: %v without its payload", ErrLinkFrame, f.typ)
	}
	if f.typ == frameRefusal && f.n == 0 {
		return linkFrame{}, fmt.Errorf("%w: refusal without a reason", ErrLinkFrame)
	}
	if strings.IndexFunc(f.text, unicode.IsControl) >= 0 {
		return linkFrame{}, fmt.Errorf("%w: control characters in a refusal", ErrLinkFrame)
	}
	f.extra = d.Skipped()
	return f, nil
}

const sha256Size = 32

// RefusedError is a Refusal frame the other side sent: the link ended
// there. Its Error is what the person should read.
type RefusedError struct {
	Reason RefusalReason
	Text   string // the other side's words, untrusted: shown, never parsed
}

func (e *RefusedError) Error() string {
	msg := map[RefusalReason]string{
		RefusedSpent:    "code expired or used: run devices link again",
		RefusedWrong:    "wrong link code: check it, or run devices link again",
		RefusedDeclined: "the SAS was declined on the other device",
		RefusedAccount:  "the other device would not hand the account over",
		RefusedLinked:   "the other device refused this device",
		RefusedFailed:   "the new device could not store the account",
	}[e.Reason]
	if msg == "" {
		msg = fmt.Sprintf("refused (reason %d)", uint64(e.Reason))
	}
	if e.Text != "" {
		msg += ": " + e.Text
	}
	return "link refused: " + msg
}

// Is makes errors.Is(err, ErrLinkDeclined) and the like work on a refusal.
func (e *RefusedError) Is(target error) bool {
	switch target {
	case ErrLinkDeclined:
		return e.Reason == RefusedDeclined
	case ErrLinkSpent:
		return e.Reason == RefusedSpent
	case ErrLinkWrongCode:
		return e.Reason == RefusedWrong
	}
	return false
}

func refusalText(err error) string {
	if err == nil {
		return ""
	}
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, err.Error())
	if len(s) > maxRefusalText {
		s = s[:maxRefusalText]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}
