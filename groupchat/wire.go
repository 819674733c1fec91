package groupchat

import (
	"errors"
	"fmt"
	"time"

	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
)

// A carrier is what one member device sends the others' (msg's content
// kind 8, which msg moves without reading). Its encoding, protobuf wire
// format under the compatibility rule of docs/ARCHITECTURE.md:
//
//	field 1  kind      uint   1 operations, 2 a sender key, 3 a message, 4 a sender key request,
//	                          5 a receipt (receipts.go)
//	field 2  group     bytes  16, the group's id
//	field 3  ops       bytes  repeated, operations (group.Op), in chain order   (kind 1)
//	field 4  epoch     uint   the sender's epoch (group.State.Epoch)            (kinds 2, 3, 4)
//	field 5  gen       uint   the sender key's generation, ≥ 1                  (kind 2)
//	field 6  share     bytes  the sender key's share (e2e)                      (kind 2)
//	field 7  sealed    bytes  the message, sealed under the sender key          (kind 3)
//	field 8  ids       bytes  16 × 1..256: ids of the sender's messages         (kind 5)
//	field 9  read      bool   the ids were read (else: delivered)               (kind 5)
//
// A message's plaintext (sealed, so bound to the group, the epoch and the
// sending device by the associated data):
//
//	field 1  id        bytes  16, the message's id, the same at every member
//	field 2  sent_at   sint   unix nanoseconds, the sender's clock
//	field 3  text      bytes  the text, at most MaxText
//	field 4  file      bytes  an attachment's reference (files.Ref), which the node reads
//	field 5  expires   uint   seconds: the group's disappearing-message timer when it was sent
//	field 16 reply_to  bytes  16, the id of the message this one quotes (addition)
//	field 17 action    bytes  a reaction, edit or delete (addition; actions.go): kind (1) ||
//	                          the target's id (16) || a reaction's emoji; with an edit, text
//	                          is the new text; a reaction or a delete has no text, no file
const (
	kindOps     = 1
	kindKey     = 2
	kindMessage = 3
	// kindKeyRequest asks a member for its sender key again: a device of
	// a member account that missed it (linked since) sends it to the
	// sender of a message it can't open.
	kindKeyRequest = 4
	// kindReceipt tells a message's sender that a member account has it
	// (delivered), or read it.
	kindReceipt = 5
	// maxReceiptIDs caps the ids of one receipt.
	maxReceiptIDs = 256

	// MaxText caps a group message's text.
	MaxText = 16 << 10
	// MaxFileRef caps an attachment's reference in a group message.
	MaxFileRef = 20 << 10
	// maxCarrier is the largest carrier (msg.MaxGroupBody).
	maxCarrier = 60 << 10
	// opsPerCarrier is how many operations one carrier takes.
	opsPerCarrier = (maxCarrier - 64) / (group.MaxOpSize + 3)
	// maxSkipped caps the additions a newer version's carrier may add.
	maxSkipped = 512
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed group carrier")

type carrier struct {
	kind   uint64
	group  group.ID
	ops    [][]byte
	epoch  uint64
	gen    uint64
	share  []byte
	sealed []byte
	ids    []byte // kindReceipt: 16-byte ids
	read   bool
}

func (c *carrier) marshal() []byte {
	var e wire.Encoder
	e.Uint(1, c.kind)
	e.Bytes(2, c.group[:])
	for _, o := range c.ops {
		e.Bytes(3, o)
	}
	e.Uint(4, c.epoch)
	e.Uint(5, c.gen)
	e.Bytes(6, c.share)
	e.Bytes(7, c.sealed)
	e.Bytes(8, c.ids)
	e.Bool(9, c.read)
	return e.B
}

func unmarshalCarrier(b []byte) (carrier, error) {
	var c carrier
	if len(b) > maxCarrier {
		return c, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	d := wire.NewFrameDecoder(b, ErrMalformed, maxSkipped)
	c.kind = d.Uint(1, kindReceipt)
	copy(c.group[:], d.Fixed(2, len(c.group)))
	c.ops = d.RepeatedBytes(3, opsPerCarrier, 1, group.MaxOpSize)
	c.epoch = d.Uint(4, 1<<32)
	c.gen = d.Uint(5, 1<<32)
	c.share = d.Bytes(6, 1, 256)
	c.sealed = d.Bytes(7, 1, maxCarrier)
	c.ids = d.Bytes(8, 16, 16*maxReceiptIDs)
	c.read = d.Bool(9)
	if err := d.End(); err != nil {
		return carrier{}, err
	}
	ok := false
	none := c.ids == nil && !c.read
	switch c.kind {
	case kindOps:
		ok = len(c.ops) > 0 && c.epoch == 0 && c.gen == 0 && c.share == nil && c.sealed == nil && none
	case kindKey:
		ok = c.ops == nil && c.gen > 0 && c.share != nil && c.sealed == nil && none
	case kindMessage:
		ok = c.ops == nil && c.gen == 0 && c.share == nil && c.sealed != nil && none
	case kindKeyRequest:
		ok = c.ops == nil && c.gen == 0 && c.share == nil && c.sealed == nil && none
	case kindReceipt:
		ok = c.ops == nil && c.epoch == 0 && c.gen == 0 && c.share == nil && c.sealed == nil && len(c.ids) > 0 && len(c.ids)%16 == 0
	}
	if !ok {
		return carrier{}, fmt.Errorf("%w: kind %d with the fields of another", ErrMalformed, c.kind)
	}
	return c, nil
}

// plain is a group message's plaintext.
type plain struct {
	id      [16]byte
	sentAt  time.Time
	text    []byte
	file    []byte
	expires time.Duration
	replyTo []byte  // 16 bytes, or nil
	action  *action // nil: a message to show
}

func (p *plain) marshal() []byte {
	var e wire.Encoder
	e.Bytes(1, p.id[:])
	e.Sint(2, p.sentAt.UnixNano())
	e.Bytes(3, p.text)
	e.Bytes(4, p.file)
	e.Uint(5, uint64(p.expires/time.Second))
	e.Bytes(16, p.replyTo)
	if p.action != nil {
		e.Bytes(17, p.action.marshal())
	}
	return e.B
}

func unmarshalPlain(b []byte) (plain, error) {
	var p plain
	d := wire.NewFrameDecoder(b, ErrMalformed, maxSkipped)
	copy(p.id[:], d.Fixed(1, 16))
	sent := d.Sint(2, 1, 1<<62)
	p.sentAt = time.Unix(0, sent)
	p.text = d.Bytes(3, 1, MaxText)
	p.file = d.Bytes(4, 1, MaxFileRef)
	p.expires = time.Duration(d.Uint(5, uint64(group.MaxTimer/time.Second))) * time.Second
	p.replyTo = d.OptFixed(16, 16)
	ab := d.Bytes(17, 17, 17+MaxEmoji)
	if err := d.End(); err != nil {
		return plain{}, err
	}
	if ab != nil {
		a, err := unmarshalAction(ab)
		if err != nil {
			return plain{}, err
		}
		p.action = a
	}
	switch {
	case sent == 0:
		return plain{}, fmt.Errorf("%w: a message without its time", ErrMalformed)
	case p.action == nil && p.text == nil && p.file == nil:
		return plain{}, fmt.Errorf("%w: a message with neither text nor file", ErrMalformed)
	case p.action != nil && (p.file != nil || p.replyTo != nil || (p.text == nil) != (p.action.kind != ActionEdit)):
		return plain{}, fmt.Errorf("%w: an action with a file, a quote, or a text it does not take", ErrMalformed)
	}
	return p, nil
}

// messageAD binds a sealed message to its group, epoch and sending device.
func messageAD(g group.ID, epoch uint64, from identity.AccountID, dev identity.DeviceID) []byte {
	b := make([]byte, 0, 16+8+len(from)+len(dev))
	b = append(b, g[:]...)
	b = append(b, byte(epoch>>56), byte(epoch>>48), byte(epoch>>40), byte(epoch>>32), byte(epoch>>24), byte(epoch>>16), byte(epoch>>8), byte(epoch))
	b = append(b, from...)
	return append(b, dev[:]...)
}

// opsCarriers splits ops into carriers of at most opsPerCarrier each.
func opsCarriers(g group.ID, ops []group.Op) [][]byte {
	var out [][]byte
	for len(ops) > 0 {
		n := min(len(ops), opsPerCarrier)
		c := carrier{kind: kindOps, group: g}
		for _, o := range ops[:n] {
			c.ops = append(c.ops, o.Marshal())
		}
		out = append(out, c.marshal())
		ops = ops[n:]
	}
	return out
}
