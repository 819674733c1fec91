package call

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/media"
)

// Caps on signalling input (see the package doc).
const (
	// MaxSignalSize is the largest signal payload HandleSignal accepts: an
	// SDP of media.MaxSDPSize plus the header.
	MaxSignalSize = media.MaxSDPSize + 64
	// idLen is the length of a call id on the wire.
	idLen = 16
)

// ErrMalformed is wrapped by every error the signal and credential
// decoders return.
var ErrMalformed = errors.New("call: malformed message")

// sigType is a signal's type (wire field 1).
type sigType uint64

const (
	sigInvite    sigType = 1
	sigRinging   sigType = 2
	sigAccept    sigType = 3
	sigCandidate sigType = 4
	sigDecline   sigType = 5
	sigBusy      sigType = 6
	sigCancel    sigType = 7
	sigHangup    sigType = 8
	sigMax               = sigHangup
)

var sigNames = [...]string{"", "invite", "ringing", "accept", "candidate", "decline", "busy", "cancel", "hangup"}

func (t sigType) String() string {
	if t >= 1 && t <= sigMax {
		return sigNames[t]
	}
	return fmt.Sprintf("type(%d)", uint64(t))
}

// sigReason is a signal's reason (wire field 5).
type sigReason uint64

const (
	reasonNone        sigReason = 0
	reasonDeclined    sigReason = 1
	reasonUnavailable sigReason = 2
	reasonMissed      sigReason = 3
	reasonFailed      sigReason = 4
	// reasonElsewhere, in a cancel: another device of the callee's
	// account answered; the others stop ringing.
	reasonElsewhere sigReason = 5
	reasonMax                 = reasonElsewhere
)

// callID is a call's 16-byte random id; its text form is lowercase hex.
type callID [idLen]byte

func (id callID) String() string { return hex.EncodeToString(id[:]) }

func parseCallID(s string) (callID, bool) {
	var id callID
	if len(s) != 2*idLen || strings.ToLower(s) != s {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, false
	}
	return id, true
}

// signal is one decoded signalling message (the wire type; the service
// converts it at the edge).
type signal struct {
	typ    sigType
	id     callID
	sdp    string    // invite, accept
	cand   string    // candidate
	reason sigReason // decline (required), cancel, hangup (optional)
	// reason5 says an answered-elsewhere cancel came as reason 5 (builds of
	// 2026-12-06), not as addition 16: kept so s re-encodes as sent.
	reason5 bool
	skipped string // a newer peer's additions, kept so s re-encodes as sent (a string: signal stays comparable)
}

// Signal field numbers.
const (
	fType      protowire.Number = 1
	fCallID    protowire.Number = 2
	fSDP       protowire.Number = 3
	fCandidate protowire.Number = 4
	fReason    protowire.Number = 5
	fVersion   protowire.Number = 15
	// fElsewhere (addition 16, varint 1) marks a cancel as "answered on
	// another device" (reasonElsewhere) without a reason an older callee
	// does not know: it reads a plain cancel, stops ringing and logs the
	// call cancelled. Builds of 2026-12-06 sent reason 5 instead, which
	// is still read.
	fElsewhere protowire.Number = 16

	// signalVersion is the newest signal version this package reads
	// (field 15, absent meaning 1).
	signalVersion = 1
	// maxSignalAdditions caps the bytes of a newer peer's additions
	// (fields 16 and up) one signal may carry; they are skipped.
	maxSignalAdditions = 1 << 10
)

// marshal encodes s in the one canonical form. It panics on a signal the
// service should never build (a programmer bug).
func (s signal) marshal() []byte {
	if err := s.check(); err != nil {
		panic("bug: marshal invalid signal: " + err.Error())
	}
	b := make([]byte, 0, 24+len(s.sdp)+len(s.cand))
	b = protowire.AppendTag(b, fType, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(s.typ))
	b = protowire.AppendTag(b, fCallID, protowire.BytesType)
	b = protowire.AppendBytes(b, s.id[:])
	if s.sdp != "" {
		b = protowire.AppendTag(b, fSDP, protowire.BytesType)
		b = protowire.AppendString(b, s.sdp)
	}
	if s.cand != "" {
		b = protowire.AppendTag(b, fCandidate, protowire.BytesType)
		b = protowire.AppendString(b, s.cand)
	}
	switch {
	case s.typ == sigCancel && s.reason == reasonElsewhere && !s.reason5:
		b = protowire.AppendTag(b, fElsewhere, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	case s.reason != reasonNone:
		b = protowire.AppendTag(b, fReason, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(s.reason))
	}
	return append(b, s.skipped...)
}

// check enforces which fields each type carries and their sizes.
func (s signal) check() error {
	needSDP := s.typ == sigInvite || s.typ == sigAccept
	switch {
	case s.typ < 1 || s.typ > sigMax:
		return malformed("unknown signal type %d", uint64(s.typ))
	case needSDP && s.sdp == "":
		return malformed("%s without an SDP", s.typ)
	case !needSDP && s.sdp != "":
		return malformed("%s with an SDP", s.typ)
	case len(s.sdp) > media.MaxSDPSize:
		return malformed("SDP of %d bytes, max %d", len(s.sdp), media.MaxSDPSize)
	case s.typ == sigCandidate && s.cand == "":
		return malformed("candidate signal without a candidate")
	case s.typ != sigCandidate && s.cand != "":
		return malformed("%s with a candidate", s.typ)
	case len(s.cand) > media.MaxCandidateSize:
		return malformed("candidate of %d bytes, max %d", len(s.cand), media.MaxCandidateSize)
	case s.reason > reasonMax:
		return malformed("unknown reason %d", uint64(s.reason))
	}
	switch s.typ {
	case sigDecline:
		if s.reason != reasonDeclined && s.reason != reasonUnavailable && s.reason != reasonMissed {
			return malformed("decline with reason %d", uint64(s.reason))
		}
	case sigCancel:
		if s.reason != reasonNone && s.reason != reasonMissed && s.reason != reasonDeclined && s.reason != reasonElsewhere {
			return malformed("cancel with reason %d", uint64(s.reason))
		}
	case sigHangup:
		if s.reason != reasonNone && s.reason != reasonFailed {
			return malformed("hangup with reason %d", uint64(s.reason))
		}
	default:
		if s.reason != reasonNone {
			return malformed("%s with a reason", s.typ)
		}
	}
	return nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// newDecoder reads a frame from a peer (a signal, a credential request or
// answer): strict about the fields this version knows, skipping a newer
// peer's additions (fields 16 and up, at most maxSignalAdditions bytes; see
// docs/ARCHITECTURE.md, "Wire formats"). Its errors wrap ErrMalformed.
func newDecoder(b []byte) *wire.Decoder {
	return wire.NewFrameDecoder(b, ErrMalformed, maxSignalAdditions)
}

// readHeader reads a signal's type and call id, its first two fields.
func readHeader(d *wire.Decoder) (sigType, callID) {
	var id callID
	t := d.Uint(fType, uint64(sigMax))
	if t == 0 {
		d.Fail("signal does not start with its type")
	}
	copy(id[:], d.Fixed(fCallID, idLen))
	return sigType(t), id
}

// decodeHeader reads only a signal's fixed header, the type and the call
// id, which must be its first two fields. It enforces MaxSignalSize but
// looks at nothing after the header: the callee's policy runs on the
// header before any of the body, let alone the SDP, is read.
func decodeHeader(b []byte) (sigType, callID, error) {
	if len(b) > MaxSignalSize {
		return 0, callID{}, malformed("signal of %d bytes, max %d", len(b), MaxSignalSize)
	}
	d := newDecoder(b)
	t, id := readHeader(d)
	if err := d.Err(); err != nil {
		return 0, callID{}, err
	}
	return t, id, nil
}

// decodeSignal decodes a whole signal: strict about the fields it knows,
// it skips a newer peer's additions and refuses a newer version (field
// 15). It checks sizes and which fields the type carries; it never
// interprets the SDP or candidate text (media validates those when the
// call reaches them).
func decodeSignal(b []byte) (signal, error) {
	if len(b) > MaxSignalSize {
		return signal{}, malformed("signal of %d bytes, max %d", len(b), MaxSignalSize)
	}
	d := newDecoder(b)
	var s signal
	s.typ, s.id = readHeader(d)
	s.sdp = string(d.Bytes(fSDP, 1, media.MaxSDPSize))
	s.cand = string(d.Bytes(fCandidate, 1, media.MaxCandidateSize))
	s.reason = sigReason(d.Uint(fReason, uint64(reasonMax)))
	s.reason5 = s.reason == reasonElsewhere
	d.Version(fVersion, signalVersion)
	elsewhere := d.Uint(fElsewhere, 1) == 1
	if err := d.End(); err != nil {
		return signal{}, err
	}
	if elsewhere {
		if s.typ != sigCancel || s.reason != reasonNone {
			return signal{}, malformed("answered elsewhere on a %s with reason %d", s.typ, uint64(s.reason))
		}
		s.reason = reasonElsewhere
	}
	s.skipped = string(d.Skipped())
	if err := s.check(); err != nil {
		return signal{}, err
	}
	return s, nil
}
