package call

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

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
	reasonMax                   = reasonFailed
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
}

// Signal field numbers.
const (
	fType      protowire.Number = 1
	fCallID    protowire.Number = 2
	fSDP       protowire.Number = 3
	fCandidate protowire.Number = 4
	fReason    protowire.Number = 5
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
	if s.reason != reasonNone {
		b = protowire.AppendTag(b, fReason, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(s.reason))
	}
	return b
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
		if s.reason != reasonNone && s.reason != reasonMissed {
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

// decoder walks one strict protowire message: fields in ascending order,
// each at most once, only known field numbers with their wire type,
// minimal varints for tags, values and lengths, no zero or empty values.
type decoder struct {
	b    []byte
	last protowire.Number
}

func (d *decoder) done() bool { return len(d.b) == 0 }

// next reads the next tag and checks order and wire type against want.
func (d *decoder) next(want map[protowire.Number]protowire.Type) (protowire.Number, error) {
	num, typ, n := protowire.ConsumeTag(d.b)
	if n < 0 {
		return 0, malformed("bad tag")
	}
	if n != protowire.SizeTag(num) {
		return 0, malformed("non-minimal tag")
	}
	wt, ok := want[num]
	if !ok {
		return 0, malformed("unknown field %d", num)
	}
	if wt != typ {
		return 0, malformed("field %d: wrong wire type %d", num, typ)
	}
	if num <= d.last {
		return 0, malformed("field %d out of order or repeated", num)
	}
	d.last = num
	d.b = d.b[n:]
	return num, nil
}

// nextRepeated is next for a message whose field num may repeat
// (consecutively).
func (d *decoder) nextRepeated(want map[protowire.Number]protowire.Type, rep protowire.Number) (protowire.Number, error) {
	if d.last == rep {
		if num, _, n := protowire.ConsumeTag(d.b); n > 0 && num == rep {
			d.last = rep - 1
		}
	}
	return d.next(want)
}

func (d *decoder) varint(num protowire.Number) (uint64, error) {
	v, n := protowire.ConsumeVarint(d.b)
	if n < 0 {
		return 0, malformed("field %d: bad varint", num)
	}
	if n != protowire.SizeVarint(v) {
		return 0, malformed("field %d: non-minimal varint", num)
	}
	if v == 0 {
		return 0, malformed("field %d: explicit zero", num)
	}
	d.b = d.b[n:]
	return v, nil
}

// bytes reads a length-delimited field of 1 to max bytes. The result
// aliases the input.
func (d *decoder) bytes(num protowire.Number, max int) ([]byte, error) {
	l, n := protowire.ConsumeVarint(d.b)
	if n < 0 {
		return nil, malformed("field %d: bad length", num)
	}
	if n != protowire.SizeVarint(l) {
		return nil, malformed("field %d: non-minimal length", num)
	}
	if l == 0 {
		return nil, malformed("field %d: empty", num)
	}
	if l > uint64(max) {
		return nil, malformed("field %d: %d bytes, max %d", num, l, max)
	}
	if l > uint64(len(d.b)-n) {
		return nil, malformed("field %d: truncated", num)
	}
	v := d.b[n : n+int(l)]
	d.b = d.b[n+int(l):]
	return v, nil
}

var signalFields = map[protowire.Number]protowire.Type{
	fType: protowire.VarintType, fCallID: protowire.BytesType, fSDP: protowire.BytesType,
	fCandidate: protowire.BytesType, fReason: protowire.VarintType,
}

// decodeHeader reads only a signal's fixed header, the type and the call
// id, which must be its first two fields. It enforces MaxSignalSize but
// looks at nothing after the header: the callee's policy runs on the
// header before any of the body, let alone the SDP, is read.
func decodeHeader(b []byte) (sigType, callID, error) {
	var id callID
	if len(b) > MaxSignalSize {
		return 0, id, malformed("signal of %d bytes, max %d", len(b), MaxSignalSize)
	}
	d := decoder{b: b}
	if num, err := d.next(signalFields); err != nil {
		return 0, id, err
	} else if num != fType {
		return 0, id, malformed("signal starts with field %d, want the type", num)
	}
	t, err := d.varint(fType)
	if err != nil {
		return 0, id, err
	}
	if t > uint64(sigMax) {
		return 0, id, malformed("unknown signal type %d", t)
	}
	if num, err := d.next(signalFields); err != nil {
		return 0, id, err
	} else if num != fCallID {
		return 0, id, malformed("signal without a call id")
	}
	raw, err := d.bytes(fCallID, idLen)
	if err != nil {
		return 0, id, err
	}
	if len(raw) != idLen {
		return 0, id, malformed("call id of %d bytes, want %d", len(raw), idLen)
	}
	copy(id[:], raw)
	return sigType(t), id, nil
}

// decodeSignal decodes a whole signal strictly. It checks sizes and which
// fields the type carries; it never interprets the SDP or candidate text
// (media validates those when the call reaches them).
func decodeSignal(b []byte) (signal, error) {
	typ, id, err := decodeHeader(b)
	if err != nil {
		return signal{}, err
	}
	s := signal{typ: typ, id: id}
	d := decoder{b: b}
	// Skip the header decodeHeader has checked.
	for range 2 {
		_, _ = d.next(signalFields)
		if d.last == fType {
			_, _ = d.varint(fType)
		} else {
			_, _ = d.bytes(fCallID, idLen)
		}
	}
	for !d.done() {
		num, err := d.next(signalFields)
		if err != nil {
			return signal{}, err
		}
		switch num {
		case fSDP:
			v, err := d.bytes(num, media.MaxSDPSize)
			if err != nil {
				return signal{}, err
			}
			s.sdp = string(v)
		case fCandidate:
			v, err := d.bytes(num, media.MaxCandidateSize)
			if err != nil {
				return signal{}, err
			}
			s.cand = string(v)
		case fReason:
			v, err := d.varint(num)
			if err != nil {
				return signal{}, err
			}
			if v > uint64(reasonMax) {
				return signal{}, malformed("unknown reason %d", v)
			}
			s.reason = sigReason(v)
		}
	}
	if err := s.check(); err != nil {
		return signal{}, err
	}
	return s, nil
}
