package msg

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
)

// Wire constants. The frame layouts are in the package doc; each message
// type's fields are listed next to its codec below.
// errMalformed is wrapped by every decoding error of this package.
var errMalformed = errors.New("malformed frame")

const (
	// idSize is the size of a message id: 16 random bytes.
	idSize = 16

	// Deliver kinds.
	kindInitial = 1 // the ciphertext is an e2e initial message carrying a text message
	kindRatchet = 2 // the ciphertext is an e2e ratchet message carrying a text message
	kindReceipt = 3 // a control message (read receipt), initial or ratchet

	// Ack statuses.
	statusStored    = 1 // durable in the recipient's store (or dropped by its policy)
	statusDuplicate = 2 // already stored earlier; not stored again
	statusRefused   = 3 // not stored; reason says why
	statusStamp     = 4 // 1.1.0: not read; send it again with a stamp of stamp_bits

	// maxReason caps an Ack's reason text.
	maxReason = 128

	// reasonNewerContent refuses a Content of a version this one does not
	// read: the sender sees it on the failed message.
	reasonNewerContent = "content of a newer version: the recipient must update callsign"
	// reasonForeignSession refuses an initial message whose identity key is
	// not the one the sending device's certificate names.
	reasonForeignSession = "session started with another device's key"
	// reasonNotCopy refuses what a sibling (a device of this account)
	// sends other than a copy or a read; reasonSiblingOnly a copy or a
	// read from anyone else.
	reasonNotCopy     = "sender is this account"
	reasonSiblingOnly = "content only the recipient's own devices send"
	// reasonRevoked refuses what a device its account revoked sends; the
	// sender looks its own record up when it reads it.
	reasonRevoked = "this device was revoked by its account"
	// Refusals of frames the recipient could not open (refusal): after
	// these, the sender may start the session again (sessionBroken).
	reasonUnknownPrekey = "session: unknown prekey"
	reasonNoSession     = "session: no session"
	reasonUndecryptable = "session: decryption failed"

	// Content kinds (inside the ratchet).
	contentText    = 1
	contentReceipt = 2
	contentSignal  = 3 // a call signal: opaque bytes for Config.OnSignal, never stored
	// contentCopy is a copy of a text message this account sent, for a
	// sibling (another device of the account): the text's fields and to,
	// the account it went to. Its frame is a control frame whose id is
	// the message's (docs/DEVICES.md §2.1).
	contentCopy = 4
	// contentRead tells a sibling which messages of a conversation were
	// read here: ids and to, the conversation's account. A control frame.
	contentRead = 5
	// contentSync carries a sibling's changes to the account's shared
	// state (contacts, call settings, calls it made): body is a
	// devices.SyncBatch that Config.OnSync applies. A control frame,
	// sibling-only (docs/DEVICES.md §2.2).
	contentSync = 6
	// maxSyncBody caps a sync batch in one frame.
	maxSyncBody = 32 << 10
	// contentRelay is an incoming text a sibling relays to this device,
	// which the sender did not send here (it did not know this device
	// yet): the text's fields and to, the account that sent it. A control
	// frame whose id is the message's (docs/DEVICES.md §2.1, repair).
	contentRelay = 7
	// contentGroup carries a group's bytes (package groupchat: a
	// membership operation, a sender key, a group message), which msg
	// moves without reading: Config.OnGroup applies them. A control frame
	// to each device of each member (QueueGroup); unlike the other control
	// frames it goes to the recipient's mailboxes when the device can't be
	// reached (docs/GROUPS.md).
	contentGroup = 8
	// MaxGroupBody caps a group carrier's bytes.
	MaxGroupBody = 60 << 10
	// fieldDevices is Content addition 16 on a text: the devices of the
	// recipient the sender sent it to, 8 bytes each, concatenated.
	fieldDevices = 16
	// fieldFile is Content addition 17 on a text (and on a sibling's copy
	// or relay of one): an attachment's reference (files.Ref, opaque to
	// msg: the node reads it), at most MaxFileRef bytes. The text's body is
	// then the caption, possibly empty.
	fieldFile = 17
	// fieldReplyTo is Content addition 18 on a text (and its copy or
	// relay): the 16-byte id of the message it quotes.
	fieldReplyTo = 18
	// fieldAction is Content addition 19 on a text (and its copy or
	// relay): the text is an action on another message (actions.go): its
	// kind, the target's 16-byte id, a reaction's emoji.
	fieldAction = 19
	// fieldTimer is Content addition 20 on a text (and its copy or relay):
	// the sender's disappearing-message timer in seconds: the text expires
	// after it on every device (timer.go). fieldTimerSet (21, with a timer,
	// possibly 0, and no body) marks the text that changed the timer.
	fieldTimer    = 20
	fieldTimerSet = 21

	// maxReceiptIDs caps the message ids one read receipt names.
	maxReceiptIDs = 512

	// contentOverhead bounds what the Content encoding adds to a text body:
	// kind, seq, sent_at and the body's tag and length.
	contentOverhead = 64

	// maxReceiptContent is the largest receipt Content.
	maxReceiptContent = 8 + maxReceiptIDs*(2+idSize)

	// e2eOverhead is what e2e adds to a plaintext in the largest (initial)
	// message.
	e2eOverhead = e2e.MaxInitialMessageSize - e2e.MaxPlaintext

	// deliverOverhead bounds the Deliver fields around the ciphertext.
	deliverOverhead = 2 + idSize + 2 + identity.AccountPubSize + 3 + identity.MaxDeviceCertSize + 2 + 4

	// ackMax is the largest Ack frame (1.0.0); ackMax11 the largest
	// 1.1.0 one, whose additions are at most maxAdditions bytes.
	ackMax   = 2 + idSize + 2 + 2 + maxReason
	ackMax11 = ackMax + maxAdditions

	// Fields numbered wire.AdditionsFrom (16) and up are additions
	// (1.1.0, and Content): a decoder reads those it knows and skips the
	// rest (wire.NewFrameDecoder), so a peer that adds one keeps working
	// with older ones. maxAdditions caps the bytes of additions in one
	// Deliver or Ack; maxContentAdditions those in one Content (metadata
	// such as a group or device id: bulk needs a content kind of its own).
	maxAdditions        = 512
	maxContentAdditions = 1 << 10

	// contentVersion is the newest Content version this package reads
	// (field 15, absent meaning 1).
	contentVersion = 1
	fieldVersion   = 15

	// Additions, 1.1.0.
	fieldStamp     = 16 // Deliver: the first-contact stamp (stampSize bytes)
	fieldStampBits = 16 // Ack, with statusStamp: the bits of work asked for

	// DefaultMaxMessage is the default (and largest) plaintext a message may
	// carry: 64 KiB less the 64 bytes reserved for the encrypted envelope's
	// own fields, so the whole fits one e2e message.
	DefaultMaxMessage = e2e.MaxPlaintext - contentOverhead
)

// maxCiphertext is the largest Deliver ciphertext for a text cap of
// maxMessage bytes.
func maxCiphertext(maxMessage int) int {
	return e2eOverhead + max(maxMessage+contentOverhead, maxReceiptContent)
}

// The signal lane's caps: a signal's ciphertext and the whole frame (with
// 1.1.0 additions), about 35 KiB.
const (
	maxSignalCiphertext = e2eOverhead + MaxSignal + contentOverhead
	maxSignalFrame      = maxSignalCiphertext + deliverOverhead + maxAdditions
)

// The signal lane's frame budget per peer: frames per second and burst.
// A call sends a few dozen signals; beyond it the recipient stops reading
// the peer's lane.
const (
	signalRate  = 50
	signalBurst = 100
)

// maxDeliverFrame is the frame cap a recipient applies.
func maxDeliverFrame(maxMessage int) int {
	return maxCiphertext(maxMessage) + deliverOverhead + maxAdditions
}

// version is the msg protocol version a stream speaks.
type version int

const (
	v10 version = iota // /callsign/msg/1.0.0: no additions
	v11                // /callsign/msg/1.1.0: additions, stamps
)

// msgID is a message id on the wire.
type msgID [idSize]byte

func (id msgID) String() string { return hex.EncodeToString(id[:]) }

// parseMsgID parses the store form (32 lowercase hex digits) of an id.
func parseMsgID(s string) (msgID, error) {
	var id msgID
	if len(s) != 2*idSize {
		return id, fmt.Errorf("message id %q: want %d hex digits", s, 2*idSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil || hex.EncodeToString(id[:]) != s {
		return id, fmt.Errorf("message id %q: not lowercase hex", s)
	}
	return id, nil
}

// deliverFrame is sender → recipient:
//
//	field 1   id          bytes   16 random bytes, the message id
//	field 2   sender      bytes   32 bytes, the sender's Ed25519 account key
//	field 3   cert        bytes   the sender's device certificate (identity.DeviceCert)
//	field 4   kind        varint  1 initial, 2 ratchet, 3 receipt
//	field 5   ciphertext  bytes   the e2e message
//	field 16  stamp       bytes   1.1.0: 8 bytes, the first-contact stamp
type deliverFrame struct {
	id         msgID
	sender     []byte
	cert       []byte
	kind       uint64
	ciphertext []byte
	stamp      []byte // 1.1.0
	skipped    []byte // 1.1.0: additions this version does not know
}

func (f *deliverFrame) marshal() []byte { return f.appendTo(nil) }

// sealedEnvelope returns the outbox envelope for f (envSealed || frame)
// and the frame, which aliases it: one buffer for both.
func (f *deliverFrame) sealedEnvelope() (env, frame []byte) {
	env = f.appendTo(append(make([]byte, 0, 1+deliverOverhead+len(f.ciphertext)), envSealed))
	return env, env[1:]
}

func (f *deliverFrame) appendTo(b []byte) []byte {
	if b == nil {
		b = make([]byte, 0, deliverOverhead+len(f.ciphertext))
	}
	e := wire.Encoder{B: b}
	e.Bytes(1, f.id[:])
	e.Bytes(2, f.sender)
	e.Bytes(3, f.cert)
	e.Uint(4, f.kind)
	e.Bytes(5, f.ciphertext)
	e.Bytes(fieldStamp, f.stamp)
	e.Raw(f.skipped)
	return e.B
}

// withStamp returns the 1.1.0 frame that carries a sealed Deliver frame
// (which has no additions) with stamp.
func withStamp(frame, stamp []byte) []byte {
	b := make([]byte, 0, len(frame)+3+len(stamp))
	e := wire.Encoder{B: append(b, frame...)}
	e.Bytes(fieldStamp, stamp)
	return e.B
}

// newFrameDecoder is the decoder of a frame of version v: strict for
// 1.0.0, which knows no additions; skipping unknown additions from 1.1.0.
func newFrameDecoder(b []byte, v version) *wire.Decoder {
	if v == v10 {
		return wire.NewDecoder(b, errMalformed)
	}
	return wire.NewFrameDecoder(b, errMalformed, maxAdditions)
}

// unmarshalSignalFrame decodes a Deliver frame read on the signal lane: a
// 1.1.0 frame of at most maxSignalFrame bytes whose kind is 3 (a control
// frame) and whose ciphertext fits a signal. Returned slices alias b.
func unmarshalSignalFrame(b []byte) (deliverFrame, error) {
	if len(b) > maxSignalFrame {
		return deliverFrame{}, fmt.Errorf("signal: %w: %d bytes, max %d", errMalformed, len(b), maxSignalFrame)
	}
	f, err := unmarshalDeliver(b, maxSignalCiphertext, v11)
	if err != nil {
		return deliverFrame{}, fmt.Errorf("signal: %w", err)
	}
	if f.kind != kindReceipt {
		return deliverFrame{}, fmt.Errorf("signal: %w: kind %d, not a control frame", errMalformed, f.kind)
	}
	return f, nil
}

// unmarshalDeliver decodes a Deliver frame of version v; the ciphertext
// may be at most maxCT bytes. Returned slices alias b.
func unmarshalDeliver(b []byte, maxCT int, v version) (deliverFrame, error) {
	var f deliverFrame
	d := newFrameDecoder(b, v)
	copy(f.id[:], d.Fixed(1, idSize))
	f.sender = d.Fixed(2, identity.AccountPubSize)
	f.cert = d.Bytes(3, 1, identity.MaxDeviceCertSize)
	if f.cert == nil {
		d.Fail("field 3 missing")
	}
	f.kind = d.Uint(4, kindReceipt)
	if f.kind == 0 {
		d.Fail("field 4 missing")
	}
	f.ciphertext = d.Bytes(5, 1, maxCT)
	if f.ciphertext == nil {
		d.Fail("field 5 missing")
	}
	if v == v11 {
		f.stamp = d.OptFixed(fieldStamp, stampSize)
	}
	if err := d.End(); err != nil {
		return deliverFrame{}, fmt.Errorf("deliver: %w", err)
	}
	f.skipped = d.Skipped()
	return f, nil
}

// ackFrame is recipient → sender, one per Deliver, in the same order:
//
//	field 1   id          bytes   16 bytes, the Deliver's id
//	field 2   status      varint  1 stored, 2 duplicate, 3 refused, 4 stamp (1.1.0)
//	field 3   reason      bytes   UTF-8, at most 128 bytes; only with refused
//	field 16  stamp_bits  varint  1.1.0, with stamp only (and then required):
//	                              the bits of work the stamp must show, 1..64
type ackFrame struct {
	id        msgID
	status    uint64
	reason    string
	stampBits uint64 // 1.1.0
	skipped   []byte // 1.1.0: additions this version does not know
}

func (a *ackFrame) marshal() []byte {
	e := wire.Encoder{B: make([]byte, 0, ackMax+16)}
	e.Bytes(1, a.id[:])
	e.Uint(2, a.status)
	r := a.reason
	if len(r) > maxReason {
		r = r[:maxReason]
		for !utf8.ValidString(r) {
			r = r[:len(r)-1]
		}
	}
	e.Bytes(3, []byte(r))
	e.Uint(fieldStampBits, a.stampBits)
	e.Raw(a.skipped)
	return e.B
}

// unmarshalAck decodes an Ack frame of version v.
func unmarshalAck(b []byte, v version) (ackFrame, error) {
	var a ackFrame
	top := uint64(statusRefused)
	if v == v11 {
		top = statusStamp
	}
	d := newFrameDecoder(b, v)
	copy(a.id[:], d.Fixed(1, idSize))
	a.status = d.Uint(2, top)
	if a.status == 0 {
		d.Fail("field 2 missing")
	}
	r := d.Bytes(3, 1, maxReason)
	if v == v11 {
		a.stampBits = d.Uint(fieldStampBits, maxWorkBits)
	}
	if err := d.End(); err != nil {
		return ackFrame{}, fmt.Errorf("ack: %w", err)
	}
	if r != nil && (a.status != statusRefused || !utf8.Valid(r)) {
		return ackFrame{}, fmt.Errorf("ack: %w: reason on a non-refusal or not UTF-8", errMalformed)
	}
	if (a.status == statusStamp) != (a.stampBits != 0) {
		return ackFrame{}, fmt.Errorf("ack: %w: stamp_bits without the stamp status, or missing", errMalformed)
	}
	a.reason = string(r)
	a.skipped = d.Skipped()
	return a, nil
}

// content is the plaintext inside the ratchet:
//
//	field 1  kind     varint  1 text, 2 read receipt, 3 signal, 4 copy,
//	                          5 read, 6 sync, 7 relay (4 to 7: to a
//	                          sibling only)
//	field 2  seq      varint  text, copy: the sender's per-conversation sequence
//	field 3  sent_at  varint  text, copy: the sender's clock, unix nanoseconds
//	field 4  body     bytes   text, copy: the message (absent when empty);
//	                          signal: the payload, 1..MaxSignal bytes
//	field 5  ids      bytes   receipt, read, repeated 1..512 times: 16-byte
//	                          ids read
//	field 6  to       bytes   copy: the account the message was sent to; read:
//	                          the account whose messages were read; the
//	                          20 bytes of its id (identity.AccountID.Hash);
//	                          a copy's fields add at most 48 bytes to its
//	                          body, within contentOverhead, so every text
//	                          can be copied
//	field 15 version  varint  absent: 1, the only version so far; a later
//	                          one is refused ("the sender runs a newer
//	                          callsign")
//	field 16 devices  bytes   text: the recipient's devices the sender
//	                          sent it to, 8 bytes each (at most 8), so
//	                          that a device that sees a sibling missing
//	                          relays it (kind 7, with to: the sender);
//	                          left out of a text too large for it
//	fields 16 and up          additions: skipped when unknown (at most
//	                          1 KiB of them), kept so the content re-encodes
//	                          to its bytes
type content struct {
	kind     uint64
	seq      uint64
	sentAt   int64
	body     []byte
	ids      []msgID
	to       []byte              // copy: the account the message went to (AccountID.Hash)
	devices  []identity.DeviceID // text, addition 16: the recipient's devices the sender sent it to
	file     []byte              // text, copy or relay, addition 17: an attachment's reference
	replyTo  []byte              // text, copy or relay, addition 18: the id of the message quoted
	action   []byte              // text, copy or relay, addition 19: an action (actions.go)
	timer    *uint64             // text, copy or relay, addition 20: its timer, seconds
	timerSet bool                // addition 21: the text sets the conversation's timer
	skipped  []byte              // additions this version does not know
}

func (c *content) marshal() []byte {
	e := wire.Encoder{B: make([]byte, 0, contentOverhead+len(c.body)+len(c.ids)*(idSize+2))}
	e.Uint(1, c.kind)
	e.Uint(2, c.seq)
	e.Uint(3, uint64(max(c.sentAt, 0)))
	e.Bytes(4, c.body)
	for _, id := range c.ids {
		e.Bytes(5, id[:])
	}
	e.Bytes(6, c.to)
	if len(c.devices) > 0 {
		b := make([]byte, 0, len(c.devices)*identity.DeviceIDSize)
		for _, d := range c.devices {
			b = append(b, d[:]...)
		}
		e.Bytes(fieldDevices, b)
	}
	e.Bytes(fieldFile, c.file)
	e.Bytes(fieldReplyTo, c.replyTo)
	e.Bytes(fieldAction, c.action)
	if c.timer != nil {
		e.Varint(fieldTimer, *c.timer)
	}
	e.Bool(fieldTimerSet, c.timerSet)
	e.Raw(c.skipped)
	return e.B
}

// unmarshalContent decodes a Content; a text body may be at most maxBody
// bytes. The body is copied.
func unmarshalContent(b []byte, maxBody int) (content, error) {
	var c content
	d := wire.NewFrameDecoder(b, errMalformed, maxContentAdditions)
	c.kind = d.Uint(1, contentGroup)
	c.seq = d.Uint(2, math.MaxInt64)
	c.sentAt = int64(d.Uint(3, math.MaxInt64))
	if body := d.Bytes(4, 1, maxBody); body != nil {
		c.body = append([]byte(nil), body...)
	}
	for d.More(5) {
		v := d.Fixed(5, idSize)
		if d.Err() != nil {
			break
		}
		if len(c.ids) == maxReceiptIDs {
			d.Fail("more than %d receipt ids", maxReceiptIDs)
			break
		}
		c.ids = append(c.ids, msgID(v))
	}
	if to := d.OptFixed(6, identity.AccountIDHashSize); to != nil {
		c.to = bytes.Clone(to)
	}
	d.Version(fieldVersion, contentVersion)
	if devs := d.Bytes(fieldDevices, identity.DeviceIDSize, maxTargets*identity.DeviceIDSize); devs != nil {
		if len(devs)%identity.DeviceIDSize != 0 {
			d.Fail("devices of %d bytes, not a multiple of %d", len(devs), identity.DeviceIDSize)
		}
		for i := 0; i+identity.DeviceIDSize <= len(devs); i += identity.DeviceIDSize {
			c.devices = append(c.devices, identity.DeviceID(devs[i:i+identity.DeviceIDSize]))
		}
	}
	if f := d.Bytes(fieldFile, 1, MaxFileRef); f != nil {
		c.file = bytes.Clone(f)
	}
	if r := d.OptFixed(fieldReplyTo, idSize); r != nil {
		c.replyTo = bytes.Clone(r)
	}
	if a := d.Bytes(fieldAction, 1+idSize, 1+idSize+MaxEmoji); a != nil {
		if _, err := unmarshalAction(a); err != nil {
			d.Fail("action: %v", err)
		}
		c.action = bytes.Clone(a)
	}
	if v, ok := d.Varint(fieldTimer); ok {
		if v > uint64(MaxTimer/time.Second) {
			d.Fail("a timer of %d s", v)
		}
		c.timer = &v
	}
	c.timerSet = d.Bool(fieldTimerSet)
	if err := d.End(); err != nil {
		return content{}, fmt.Errorf("content: %w", err)
	}
	c.skipped = d.Skipped()
	if c.devices != nil && c.kind != contentText {
		return content{}, fmt.Errorf("content: %w: devices on content of kind %d", errMalformed, c.kind)
	}
	if (c.file != nil || c.replyTo != nil || c.action != nil) && c.kind != contentText && c.kind != contentCopy && c.kind != contentRelay {
		return content{}, fmt.Errorf("content: %w: an attachment, a quote or an action on content of kind %d", errMalformed, c.kind)
	}
	if c.action != nil && (c.file != nil || c.replyTo != nil) {
		return content{}, fmt.Errorf("content: %w: an action with an attachment or a quote", errMalformed)
	}
	if c.timer != nil && c.kind != contentText && c.kind != contentCopy && c.kind != contentRelay {
		return content{}, fmt.Errorf("content: %w: a timer on content of kind %d", errMalformed, c.kind)
	}
	if c.timerSet && (c.timer == nil || c.body != nil || c.file != nil || c.action != nil) {
		return content{}, fmt.Errorf("content: %w: a timer change without its timer, or with a text", errMalformed)
	}
	switch c.kind {
	case contentText:
		if len(c.ids) != 0 || c.to != nil {
			return content{}, fmt.Errorf("content: %w: text with receipt ids or a recipient", errMalformed)
		}
	case contentRelay:
		if len(c.ids) != 0 || c.to == nil {
			return content{}, fmt.Errorf("content: %w: relay with receipt ids or without its sender", errMalformed)
		}
	case contentCopy:
		if len(c.ids) != 0 || c.to == nil {
			return content{}, fmt.Errorf("content: %w: copy with receipt ids or without its recipient", errMalformed)
		}
	case contentRead:
		if len(c.ids) == 0 || c.to == nil || c.seq != 0 || c.sentAt != 0 || c.body != nil {
			return content{}, fmt.Errorf("content: %w: read without ids or its conversation, or with text fields", errMalformed)
		}
	case contentReceipt:
		if len(c.ids) == 0 || c.seq != 0 || c.sentAt != 0 || c.body != nil || c.to != nil {
			return content{}, fmt.Errorf("content: %w: receipt without ids or with text fields", errMalformed)
		}
	case contentSync:
		if len(c.body) == 0 || len(c.body) > maxSyncBody || len(c.ids) != 0 || c.seq != 0 || c.sentAt != 0 || c.to != nil {
			return content{}, fmt.Errorf("content: %w: sync without a batch, over %d bytes, or with other fields", errMalformed, maxSyncBody)
		}
	case contentGroup:
		if len(c.body) == 0 || len(c.body) > MaxGroupBody || len(c.ids) != 0 || c.seq != 0 || c.sentAt != 0 || c.to != nil {
			return content{}, fmt.Errorf("content: %w: group carrier without bytes, over %d bytes, or with other fields", errMalformed, MaxGroupBody)
		}
	case contentSignal:
		if len(c.body) == 0 || len(c.body) > MaxSignal || len(c.ids) != 0 || c.seq != 0 || c.sentAt != 0 || c.to != nil {
			return content{}, fmt.Errorf("content: %w: signal without a payload, over %d bytes, or with other fields", errMalformed, MaxSignal)
		}
	default:
		return content{}, fmt.Errorf("content: %w: missing kind", errMalformed)
	}
	return c, nil
}

// prekeyRequest asks a device for a bundle with one-time prekeys:
//
//	field 1  account  bytes  32 bytes, the account key the requester expects
type prekeyRequest struct {
	account []byte
	skipped []byte // additions this version does not know
}

func (r *prekeyRequest) marshal() []byte {
	var e wire.Encoder
	e.Bytes(1, r.account)
	e.Raw(r.skipped)
	return e.B
}

func unmarshalPrekeyRequest(b []byte) (prekeyRequest, error) {
	d := wire.NewFrameDecoder(b, errMalformed, maxAdditions)
	r := prekeyRequest{account: d.Fixed(1, identity.AccountPubSize)}
	if err := d.End(); err != nil {
		return prekeyRequest{}, fmt.Errorf("prekey request: %w", err)
	}
	r.skipped = d.Skipped()
	return r, nil
}

// prekeyResponse answers a prekeyRequest:
//
//	field 1  bundle  bytes  the e2e bundle (e2e.MarshalBundle), at most e2e.MaxBundleSize
type prekeyResponse struct {
	bundle  []byte
	skipped []byte // additions this version does not know
}

func (r *prekeyResponse) marshal() []byte {
	var e wire.Encoder
	e.Bytes(1, r.bundle)
	e.Raw(r.skipped)
	return e.B
}

func unmarshalPrekeyResponse(b []byte) (prekeyResponse, error) {
	d := wire.NewFrameDecoder(b, errMalformed, maxAdditions)
	r := prekeyResponse{bundle: d.Bytes(1, 1, e2e.MaxBundleSize)}
	if r.bundle == nil {
		d.Fail("field 1 missing")
	}
	if err := d.End(); err != nil {
		return prekeyResponse{}, fmt.Errorf("prekey response: %w", err)
	}
	r.skipped = d.Skipped()
	return r, nil
}

// maxPrekeyResponse caps a prekeyResponse frame.
const maxPrekeyResponse = e2e.MaxBundleSize + 8
