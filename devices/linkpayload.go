package devices

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
)

// The payloads of steps 5 and 6 (link.proto LinkAccount, LinkedDevice):
// the account E hands the new device, and the new device's certificate
// and roster entry it answers with. They travel sealed under the link key
// inside the Account and Linked frames, at most MaxLinkPayload bytes.

// LinkItem is one of the account's portable items (store.ExportPortable):
// a kind and the item in the store's own value form.
type LinkItem struct {
	Kind byte
	Body []byte
}

// LinkAccount is step 5's payload.
type LinkAccount struct {
	Items  []LinkItem // the account seed first
	Roster []Op       // E's KindRoster registers
}

// LinkedDevice is step 6's payload.
type LinkedDevice struct {
	Cert   identity.DeviceCert
	Bundle []byte // its E2E prekey bundle for the identity record, opaque here
	Roster Op     // the new device's KindRoster register
}

// MaxLinkBundle is the longest prekey bundle a LinkedDevice carries (the
// identity record's cap on one device's bundle).
const MaxLinkBundle = 1600

// maxLinkItems is the most items a LinkAccount carries.
const maxLinkItems = 4096

// ErrLinkTooLarge means the account does not fit one link payload: too
// many contacts or settings to hand over at once.
var ErrLinkTooLarge = errors.New("the account is too large to link in one payload")

// Marshal encodes a, or fails wrapping ErrLinkTooLarge when it would not
// fit MaxLinkPayload.
func (a LinkAccount) Marshal() ([]byte, error) {
	if len(a.Items) == 0 || len(a.Items) > maxLinkItems {
		return nil, fmt.Errorf("%w: %d items, want 1..%d", ErrLinkTooLarge, len(a.Items), maxLinkItems)
	}
	var e wire.Encoder
	putItems(&e, a.Items)
	if len(a.Roster) > 0 {
		b, err := MarshalBatch(a.Roster)
		if err != nil {
			return nil, err
		}
		e.Bytes(2, b)
	}
	if len(e.B) > MaxLinkPayload {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrLinkTooLarge, len(e.B), MaxLinkPayload)
	}
	return e.B, nil
}

// UnmarshalLinkAccount decodes step 5's payload: every roster op must be a
// KindRoster register. Errors wrap ErrLinkFrame.
func UnmarshalLinkAccount(b []byte) (LinkAccount, error) {
	d := wire.NewFrameDecoder(b, ErrLinkFrame, maxAdditions)
	raw := d.RepeatedBytes(1, maxLinkItems, 1, MaxLinkPayload)
	roster := d.Bytes(2, 1, MaxLinkPayload)
	if err := d.End(); err != nil {
		return LinkAccount{}, fmt.Errorf("account payload: %w", err)
	}
	var a LinkAccount
	var err error
	if a.Items, err = readItems(raw, MaxLinkPayload); err != nil {
		return LinkAccount{}, fmt.Errorf("account payload: %w", err)
	}
	if roster != nil {
		ops, err := rosterOps(roster)
		if err != nil {
			return LinkAccount{}, fmt.Errorf("account payload: %w", err)
		}
		a.Roster = ops
	}
	return a, nil
}

// Marshal encodes l.
func (l LinkedDevice) Marshal() ([]byte, error) {
	b, err := MarshalBatch([]Op{l.Roster})
	if err != nil {
		return nil, err
	}
	var e wire.Encoder
	if len(l.Bundle) == 0 || len(l.Bundle) > MaxLinkBundle {
		return nil, fmt.Errorf("linked payload: a bundle of %d bytes, want 1..%d", len(l.Bundle), MaxLinkBundle)
	}
	e.Bytes(1, l.Cert.Marshal())
	e.Bytes(2, b)
	e.Bytes(3, l.Bundle)
	return e.B, nil
}

// UnmarshalLinkedDevice decodes step 6's payload and checks what needs no
// clock: the roster op is the certified device's own KindRoster register,
// with the certificate's peer id and key, and not revoked. The caller
// checks the certificate (account, validity) and that its peer id is the
// link's. Errors wrap ErrLinkFrame.
func UnmarshalLinkedDevice(b []byte) (LinkedDevice, error) {
	d := wire.NewFrameDecoder(b, ErrLinkFrame, maxAdditions)
	cert := d.Bytes(1, 1, identity.MaxDeviceCertSize)
	roster := d.Bytes(2, 1, MaxLinkPayload)
	bundle := bytes.Clone(d.Bytes(3, 1, MaxLinkBundle))
	if err := d.End(); err != nil {
		return LinkedDevice{}, fmt.Errorf("linked payload: %w", err)
	}
	if cert == nil || roster == nil || bundle == nil {
		return LinkedDevice{}, fmt.Errorf("linked payload: %w: no certificate, roster entry or bundle", ErrLinkFrame)
	}
	c, err := identity.UnmarshalDeviceCert(cert)
	if err != nil {
		return LinkedDevice{}, fmt.Errorf("linked payload: %w: %w", ErrLinkFrame, err)
	}
	ops, err := rosterOps(roster)
	if err != nil {
		return LinkedDevice{}, fmt.Errorf("linked payload: %w", err)
	}
	if len(ops) != 1 {
		return LinkedDevice{}, fmt.Errorf("linked payload: %w: %d roster entries, want the new device's", ErrLinkFrame, len(ops))
	}
	e, _ := UnmarshalRosterEntry(ops[0].Value) // checked by rosterOps
	switch {
	case e.DeviceID() != c.DeviceID() || !bytes.Equal(e.PeerID, c.PeerID):
		return LinkedDevice{}, fmt.Errorf("linked payload: %w: the roster entry is not the certified device's", ErrLinkFrame)
	case e.Revoked():
		return LinkedDevice{}, fmt.Errorf("linked payload: %w: the new device calls itself revoked", ErrLinkFrame)
	case ops[0].Stamp.Origin != c.DeviceID():
		return LinkedDevice{}, fmt.Errorf("linked payload: %w: the roster entry was written by another device", ErrLinkFrame)
	}
	return LinkedDevice{Cert: c, Bundle: bundle, Roster: ops[0]}, nil
}

// rosterOps decodes a SyncBatch that may hold KindRoster registers only.
func rosterOps(b []byte) ([]Op, error) {
	ops, err := UnmarshalBatch(b)
	if err != nil {
		return nil, fmt.Errorf("%w: roster: %w", ErrLinkFrame, err)
	}
	for _, op := range ops {
		if op.Kind != KindRoster {
			return nil, fmt.Errorf("%w: roster: a %v register", ErrLinkFrame, op.Kind)
		}
	}
	return ops, nil
}

// putItems writes items as field 1, one LinkItem each.
func putItems(e *wire.Encoder, items []LinkItem) {
	for _, it := range items {
		var ie wire.Encoder
		ie.Uint(1, uint64(it.Kind))
		ie.Bytes(2, it.Body)
		e.Bytes(1, ie.B)
	}
}

// readItems decodes the LinkItems of field 1, at least one, each body at
// most max bytes.
func readItems(raw [][]byte, max int) ([]LinkItem, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: no items", ErrLinkFrame)
	}
	items := make([]LinkItem, 0, len(raw))
	for i, r := range raw {
		id := wire.NewFrameDecoder(r, ErrLinkFrame, maxAdditions)
		kind := id.Uint(1, math.MaxUint8)
		body := bytes.Clone(id.Bytes(2, 0, max))
		if err := id.End(); err != nil {
			return nil, fmt.Errorf("item %d: %w", i+1, err)
		}
		if kind == 0 {
			return nil, fmt.Errorf("item %d: %w: no kind", i+1, ErrLinkFrame)
		}
		items = append(items, LinkItem{Kind: byte(kind), Body: body})
	}
	return items, nil
}

// maxHistoryItems is the most items one history chunk carries.
const maxHistoryItems = 1 << 14

// LinkHistoryChunk gathers history items (msg.ExportLinkHistory's) into
// the chunks of step 7, each at most MaxLinkHistoryChunk bytes.
type LinkHistoryChunk struct {
	e     wire.Encoder
	items int
}

// Add appends the item; it reports false, adding nothing, when the chunk
// has no room for it (send the chunk, Reset, Add again). An item that
// would not fit even an empty chunk is an error.
func (c *LinkHistoryChunk) Add(it LinkItem) (bool, error) {
	var e wire.Encoder
	putItems(&e, []LinkItem{it})
	if len(e.B) > MaxLinkHistoryChunk {
		return false, fmt.Errorf("a history item of %d bytes does not fit a chunk", len(e.B))
	}
	if len(c.e.B)+len(e.B) > MaxLinkHistoryChunk || c.items == maxHistoryItems {
		return false, nil
	}
	c.e.Raw(e.B)
	c.items++
	return true, nil
}

// Len is how many items the chunk holds.
func (c *LinkHistoryChunk) Len() int { return c.items }

// Bytes is the encoded chunk (link.proto LinkHistory).
func (c *LinkHistoryChunk) Bytes() []byte { return c.e.B }

// Reset empties the chunk.
func (c *LinkHistoryChunk) Reset() { c.e.B, c.items = nil, 0 }

// UnmarshalLinkHistory decodes a history chunk: 1 or more items. Errors
// wrap ErrLinkFrame.
func UnmarshalLinkHistory(b []byte) ([]LinkItem, error) {
	d := wire.NewFrameDecoder(b, ErrLinkFrame, maxAdditions)
	raw := d.RepeatedBytes(1, maxHistoryItems, 1, MaxLinkHistoryChunk)
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("history chunk: %w", err)
	}
	items, err := readItems(raw, MaxLinkHistoryChunk)
	if err != nil {
		return nil, fmt.Errorf("history chunk: %w", err)
	}
	return items, nil
}
