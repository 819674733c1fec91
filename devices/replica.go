package devices

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/store"
)

// A Replica is one device's copy of its account's synced registers: it
// stamps the device's own changes and merges its siblings' ops, so that
// every device that has seen the same ops, in any order and any number of
// times, holds the same values. It keeps no state outside the store: every
// method works inside the caller's transaction, so an op and what it
// changes (a contact, a setting) commit together or not at all.
//
// Keys, in store.SpaceDevices:
//
//	dev/clock                 the Lamport clock: 8 bytes, big endian
//	dev/v/<kind:1><key>       a register: StoredRegister (devices.proto)
//	dev/out/<kind:1><key>     an op this device changed and has not handed on (pending.go)
type Replica struct {
	self     identity.DeviceID
	appliers map[Kind]Applier
}

// An Applier makes a winning op take effect in the caller's transaction (a
// contact renamed, a setting changed). Appliers of event kinds see every op
// and must insert their item once. An error aborts the whole batch.
type Applier func(tx *store.Tx, op Op) error

// ErrRevoked is returned by Change for a device already revoked: revocation
// is final.
var ErrRevoked = errors.New("device already revoked")

var (
	keyClock   = []byte("dev/clock")
	pfxReg     = []byte("dev/v/")
	maxRegSize = MaxBatch + 64
)

// NewReplica returns the replica of the device self; appliers are called
// for the ops that win, by kind (a kind without one is only kept).
func NewReplica(self identity.DeviceID, appliers map[Kind]Applier) *Replica {
	if self.IsZero() {
		panic("bug: devices: replica of the zero device")
	}
	return &Replica{self: self, appliers: appliers}
}

// Change writes a register on this device: it stamps the value above every
// op this replica has seen, keeps it, and returns the op to send to the
// siblings.
func (r *Replica) Change(tx *store.Tx, kind Kind, key, value []byte) (Op, error) {
	return r.change(tx, kind, key, value, true)
}

func (r *Replica) change(tx *store.Tx, kind Kind, key, value []byte, apply bool) (Op, error) {
	sp := tx.Space(store.SpaceDevices)
	clock, err := readClock(sp)
	if err != nil {
		return Op{}, err
	}
	op := Op{Kind: kind, Key: bytes.Clone(key), Stamp: Stamp{Clock: clock + 1, Origin: r.self}, Value: bytes.Clone(value)}
	if err := op.check(); err != nil {
		return Op{}, fmt.Errorf("change %v: %w", kind, err)
	}
	if kind == KindRoster {
		if old, ok, err := r.get(sp, kind, key); err != nil {
			return Op{}, err
		} else if ok && revoked(old.Value) && !revoked(op.Value) {
			return Op{}, fmt.Errorf("change %v %v: %w", kind, identity.DeviceID(key), ErrRevoked)
		}
	}
	if err := writeClock(sp, op.Stamp.Clock); err != nil {
		return Op{}, err
	}
	if _, err := r.merge(tx, sp, op, apply); err != nil {
		return Op{}, err
	}
	return op, nil
}

// Apply merges a batch of ops from a sibling and returns how many of them
// won. A batch holding an op stamped implausibly far ahead of this
// replica's clock is refused whole (ErrMalformed), nothing applied: one
// broken device must not freeze a register for everyone.
func (r *Replica) Apply(tx *store.Tx, ops []Op) (int, error) {
	sp := tx.Space(store.SpaceDevices)
	clock, err := readClock(sp)
	if err != nil {
		return 0, err
	}
	seen := clock
	for _, op := range ops {
		if err := op.check(); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if op.Stamp.Clock > clock+maxClockAhead {
			return 0, fmt.Errorf("%w: %v stamped %d, this device's clock is at %d", ErrMalformed, op.Kind, op.Stamp.Clock, clock)
		}
		seen = max(seen, op.Stamp.Clock)
	}
	won := 0
	for _, op := range ops {
		ok, err := r.merge(tx, sp, op, true)
		if err != nil {
			return 0, err
		}
		if ok {
			won++
		}
	}
	if seen > clock {
		if err := writeClock(sp, seen); err != nil {
			return 0, err
		}
	}
	return won, nil
}

// merge keeps op if it wins against the register's value and has the
// kind's Applier make it take effect.
func (r *Replica) merge(tx *store.Tx, sp *store.Space, op Op, apply bool) (bool, error) {
	rule := op.Kind.rule()
	if rule != ruleEvent {
		old, ok, err := r.get(sp, op.Kind, op.Key)
		if err != nil {
			return false, err
		}
		if ok && !wins(rule, op, old) {
			return false, nil
		}
		if err := sp.Set(regKey(op.Kind, op.Key), marshalRegister(op)); err != nil {
			return false, err
		}
	}
	if a := r.appliers[op.Kind]; a != nil && apply {
		if err := a(tx, op); err != nil {
			return false, fmt.Errorf("apply %v: %w", op.Kind, err)
		}
	}
	return true, nil
}

// wins reports whether op replaces old under rule: the merge is a total
// order on (value, stamp), so replicas converge whatever order ops arrive in.
func wins(rule rule, op, old Op) bool {
	switch rule {
	case ruleMax:
		if c := bytes.Compare(op.Value, old.Value); c != 0 {
			return c > 0
		}
	case ruleRoster:
		if a, b := revoked(op.Value), revoked(old.Value); a != b {
			return a
		}
	}
	return op.Stamp.Compare(old.Stamp) > 0
}

// revoked reports whether a roster value (checked when it came in) is a
// revoked entry.
func revoked(v []byte) bool {
	e, err := UnmarshalRosterEntry(v)
	return err == nil && e.Revoked()
}

// Get returns the register (kind, key) as an op, and whether it is held.
func (r *Replica) Get(tx *store.Tx, kind Kind, key []byte) (Op, bool, error) {
	return r.get(tx.Space(store.SpaceDevices), kind, key)
}

func (r *Replica) get(sp *store.Space, kind Kind, key []byte) (Op, bool, error) {
	v, err := sp.Get(regKey(kind, key))
	if errors.Is(err, store.ErrNotFound) {
		return Op{}, false, nil
	}
	if err != nil {
		return Op{}, false, err
	}
	op, err := unmarshalRegister(kind, key, v)
	if err != nil {
		return Op{}, false, err
	}
	return op, true, nil
}

// All returns every register held, as the ops a device sends a sibling it
// has just learned of, so that changes made before it knew are not lost.
func (r *Replica) All(tx *store.Tx) ([]Op, error) { return scanRegisters(tx, pfxReg) }

// Roster returns the KindRoster registers held and their entries, in the
// same order: the devices of the account this device knows of.
func (r *Replica) Roster(tx *store.Tx) ([]Op, []RosterEntry, error) {
	ops, err := scanRegisters(tx, regKey(KindRoster, nil))
	if err != nil {
		return nil, nil, err
	}
	entries := make([]RosterEntry, len(ops))
	for i, op := range ops {
		if entries[i], err = UnmarshalRosterEntry(op.Value); err != nil {
			return nil, nil, err
		}
	}
	return ops, entries, nil
}

// scanRegisters reads the registers whose keys start with prefix.
func scanRegisters(tx *store.Tx, prefix []byte) ([]Op, error) {
	var ops []Op
	err := tx.Space(store.SpaceDevices).Scan(prefix, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		v, err := val()
		if err != nil {
			return false, err
		}
		rest := k[len(pfxReg):]
		if len(rest) == 0 {
			return false, fmt.Errorf("%w: register key %q without a kind", ErrMalformed, k)
		}
		op, err := unmarshalRegister(Kind(rest[0]), rest[1:], v)
		if err != nil {
			return false, err
		}
		ops = append(ops, op)
		return true, nil
	})
	return ops, err
}

// Clock returns the replica's Lamport clock: the highest stamp it has seen
// or written.
func (r *Replica) Clock(tx *store.Tx) (uint64, error) {
	return readClock(tx.Space(store.SpaceDevices))
}

func regKey(kind Kind, key []byte) []byte {
	k := make([]byte, 0, len(pfxReg)+1+len(key))
	k = append(k, pfxReg...)
	k = append(k, byte(kind))
	return append(k, key...)
}

// marshalRegister is StoredRegister: the op without its kind and key,
// which its store key holds.
func marshalRegister(op Op) []byte {
	var e wire.Encoder
	e.Uint(1, op.Stamp.Clock)
	e.Bytes(2, op.Stamp.Origin[:])
	e.Bytes(3, op.Value)
	return e.B
}

func unmarshalRegister(kind Kind, key, v []byte) (Op, error) {
	d := wire.NewDecoder(v, ErrMalformed)
	op := Op{Kind: kind, Key: bytes.Clone(key)}
	op.Stamp.Clock = d.Uint(1, 1<<63-1)
	copy(op.Stamp.Origin[:], d.Fixed(2, originFieldLen))
	op.Value = bytes.Clone(d.Bytes(3, 1, maxRegSize))
	if err := d.End(); err != nil {
		return Op{}, fmt.Errorf("stored %v register: %w", kind, err)
	}
	if err := op.check(); err != nil {
		return Op{}, fmt.Errorf("stored %v register: %w: %w", kind, ErrMalformed, err)
	}
	return op, nil
}

func readClock(sp *store.Space) (uint64, error) {
	v, err := sp.Get(keyClock)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stored clock of %d bytes", ErrMalformed, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func writeClock(sp *store.Space, c uint64) error {
	return sp.Set(keyClock, binary.BigEndian.AppendUint64(nil, c))
}
