package devices

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
)

// Kind names what a synced register holds, and with it the rule that merges
// two of its values (docs/DEVICES.md §2.2).
type Kind uint64

// The kinds of register. The numbers are on the wire: never reuse one.
const (
	KindContactName    Kind = 1  // key: account id; value: the petname (empty: none)
	KindContactTrust   Kind = 2  // key: account id; value: pinned key and verified mark
	KindContactFlags   Kind = 3  // key: account id; value: blocked, following, accepted
	KindContactRemoved Kind = 4  // key: account id; value: empty
	KindCallSettings   Kind = 5  // no key; value: the stored call settings
	KindSetting        Kind = 6  // key: the setting's name; value: its stored form
	KindClaim          Kind = 7  // key: the handle; value: the claim (empty: released)
	KindRoster         Kind = 8  // key: a DeviceID; value: a RosterEntry
	KindRead           Kind = 9  // key: a conversation; value: last read, compared as bytes
	KindConvDeleted    Kind = 10 // key: a conversation; value: when it was deleted
	KindCopy           Kind = 11 // event, key: a message id; value: the message
	KindState          Kind = 12 // event, key: a message id; value: its states
	KindCallRecord     Kind = 13 // event, key: a call id; value: the call log entry
	KindRevokedNotice  Kind = 14 // event, key: a DeviceID; value: the signed notice

	newestKind = KindRevokedNotice
)

// rule is how a replica merges an incoming value with the one it holds.
type rule int

const (
	// ruleLWW: the value with the higher Stamp wins.
	ruleLWW rule = iota
	// ruleMax: the greater value (compared as bytes) wins, whatever the stamps.
	ruleMax
	// ruleRoster: a revoked entry beats one that is not, whatever the stamps
	// (a two-phase set: revocation is terminal); otherwise the higher Stamp.
	ruleRoster
	// ruleEvent: nothing is kept here; every op goes to the kind's Applier,
	// which inserts its item once (by its id).
	ruleEvent
)

func (k Kind) rule() rule {
	switch k {
	case KindRead:
		return ruleMax
	case KindRoster:
		return ruleRoster
	case KindCopy, KindState, KindCallRecord, KindRevokedNotice:
		return ruleEvent
	}
	return ruleLWW
}

func (k Kind) String() string {
	names := [...]string{"", "contact-name", "contact-trust", "contact-flags", "contact-removed",
		"call-settings", "setting", "claim", "roster", "read", "conv-deleted", "copy", "state",
		"call-record", "revoked-notice"}
	if k > 0 && k <= newestKind {
		return names[k]
	}
	return fmt.Sprintf("kind %d", uint64(k))
}

// Stamp orders the writes of one register across devices: a Lamport clock,
// then the DeviceID of the device that wrote it, so no two writes tie.
type Stamp struct {
	Clock  uint64
	Origin identity.DeviceID
}

// Compare returns -1, 0 or +1 as s is below, equal to or above t.
func (s Stamp) Compare(t Stamp) int {
	switch {
	case s.Clock < t.Clock:
		return -1
	case s.Clock > t.Clock:
		return 1
	}
	return bytes.Compare(s.Origin[:], t.Origin[:])
}

// Op is one write of a register, as siblings send it to each other.
type Op struct {
	Kind  Kind
	Key   []byte
	Stamp Stamp
	Value []byte
}

// Limits of a sync batch (docs/DEVICES.md §2.2).
const (
	// MaxBatch is the largest encoded batch.
	MaxBatch = 64 << 10
	// MaxOps is the most ops in one batch.
	MaxOps = 256
	// MaxKey is the longest register key.
	MaxKey = 128

	batchVersion   = 1
	fieldVersion   = 15
	maxAdditions   = 1 << 10 // bytes of unknown additions skipped per frame
	maxClockAhead  = 1 << 32 // how far past a replica's clock an op may be
	originFieldLen = identity.DeviceIDSize
)

// ErrMalformed is wrapped by every error of UnmarshalBatch and of a batch a
// replica refuses as a whole.
var ErrMalformed = errors.New("malformed sync batch")

// MarshalBatch encodes ops as a SyncBatch frame (devices.proto).
func MarshalBatch(ops []Op) ([]byte, error) {
	if len(ops) > MaxOps {
		return nil, fmt.Errorf("sync batch of %d ops, at most %d", len(ops), MaxOps)
	}
	var e wire.Encoder
	for _, op := range ops {
		if err := op.check(); err != nil {
			return nil, err
		}
		e.Bytes(1, op.marshal())
	}
	if len(e.B) > MaxBatch {
		return nil, fmt.Errorf("sync batch of %d bytes, at most %d", len(e.B), MaxBatch)
	}
	return e.B, nil
}

func (op Op) marshal() []byte {
	var e wire.Encoder
	e.Uint(1, uint64(op.Kind))
	e.Bytes(2, op.Key)
	e.Uint(3, op.Stamp.Clock)
	e.Bytes(4, op.Stamp.Origin[:])
	e.Bytes(5, op.Value)
	return e.B
}

// UnmarshalBatch decodes a SyncBatch from a sibling. Additions (fields 16
// and up) are skipped; a batch or an op of a newer version, or an op of a
// kind this version does not know, is refused with an error that also
// wraps wire.ErrNewerVersion.
func UnmarshalBatch(b []byte) ([]Op, error) {
	if len(b) > MaxBatch {
		return nil, fmt.Errorf("sync batch: %w: %d bytes, at most %d", ErrMalformed, len(b), MaxBatch)
	}
	d := wire.NewFrameDecoder(b, ErrMalformed, maxAdditions)
	raw := d.RepeatedBytes(1, MaxOps, 1, MaxBatch)
	d.Version(fieldVersion, batchVersion)
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("sync batch: %w", err)
	}
	ops := make([]Op, 0, len(raw))
	for i, r := range raw {
		op, err := unmarshalOp(r)
		if err != nil {
			return nil, fmt.Errorf("sync batch: op %d: %w", i+1, err)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

func unmarshalOp(b []byte) (Op, error) {
	d := wire.NewFrameDecoder(b, ErrMalformed, maxAdditions)
	var op Op
	op.Kind = Kind(d.Uint(1, math.MaxUint32))
	op.Key = bytes.Clone(d.Bytes(2, 1, MaxKey))
	op.Stamp.Clock = d.Uint(3, math.MaxInt64)
	copy(op.Stamp.Origin[:], d.Fixed(4, originFieldLen))
	op.Value = bytes.Clone(d.Bytes(5, 1, MaxBatch))
	if err := d.End(); err != nil {
		return Op{}, err
	}
	if op.Kind > newestKind {
		return Op{}, fmt.Errorf("%w: %w: %v", ErrMalformed, wire.ErrNewerVersion, op.Kind)
	}
	if err := op.check(); err != nil {
		return Op{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return op, nil
}

// check is what every op must hold, sent or received.
func (op Op) check() error {
	switch {
	case op.Kind == 0 || op.Kind > newestKind:
		return fmt.Errorf("unknown register kind %d", uint64(op.Kind))
	case op.Stamp.Clock == 0 || op.Stamp.Clock > math.MaxInt64:
		return fmt.Errorf("%v: clock %d out of range", op.Kind, op.Stamp.Clock)
	case op.Stamp.Origin.IsZero():
		return fmt.Errorf("%v: no origin device", op.Kind)
	case len(op.Key) > MaxKey:
		return fmt.Errorf("%v: key of %d bytes, at most %d", op.Kind, len(op.Key), MaxKey)
	case (op.Kind == KindCallSettings) != (len(op.Key) == 0):
		return fmt.Errorf("%v: a key where none belongs, or none where one does", op.Kind)
	case op.Kind == KindRoster && len(op.Key) != identity.DeviceIDSize:
		return fmt.Errorf("%v: key of %d bytes, want a device id", op.Kind, len(op.Key))
	}
	if op.Kind == KindRoster {
		e, err := UnmarshalRosterEntry(op.Value)
		if err != nil {
			return err
		}
		if e.DeviceID() != identity.DeviceID(op.Key) {
			return fmt.Errorf("%v: entry for device %v under key %x", op.Kind, e.DeviceID(), op.Key)
		}
	}
	return nil
}
