package devices

import (
	"fmt"

	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/store"
)

// Pending ops: what this device changed and has not yet handed to its
// siblings. One entry per register, so a register changed twice before
// the siblings are told is sent once, with its newest value; an event
// (ruleEvent) is keyed by its own id. Keys, in store.SpaceDevices:
//
//	dev/out/<kind:1><key>     the op, as in a SyncBatch
var pfxPending = []byte("dev/out/")

// Changed is Change for a change made on this device: it stamps and keeps
// value, without calling the kind's Applier (the caller has made the change
// itself, in tx), and adds the op to the pending ops TakePending hands on.
func (r *Replica) Changed(tx *store.Tx, kind Kind, key, value []byte) error {
	op, err := r.change(tx, kind, key, value, false)
	if err != nil {
		return err
	}
	return r.Queue(tx, op)
}

// Queue adds op, one this replica holds (a sibling's, taken in by
// Apply), to the pending ops, for the siblings that may not have it.
func (r *Replica) Queue(tx *store.Tx, op Op) error {
	if err := op.check(); err != nil {
		return err
	}
	return tx.Space(store.SpaceDevices).Set(pendingKey(op.Kind, op.Key), op.marshal())
}

func pendingKey(kind Kind, key []byte) []byte {
	k := make([]byte, 0, len(pfxPending)+1+len(key))
	k = append(k, pfxPending...)
	k = append(k, byte(kind))
	return append(k, key...)
}

// TakePending removes the pending ops from the store and returns them as
// sync batches of at most maxBytes each (a batch holds at least one op).
func (r *Replica) TakePending(tx *store.Tx, maxBytes int) ([][]byte, error) {
	sp := tx.Space(store.SpaceDevices)
	var keys [][]byte
	var ops []Op
	err := sp.Scan(pfxPending, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		v, err := val()
		if err != nil {
			return false, err
		}
		op, err := unmarshalOp(v)
		if err != nil {
			return false, fmt.Errorf("pending op %q: %w", k, err)
		}
		keys = append(keys, append([]byte(nil), k...))
		ops = append(ops, op)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := sp.Delete(k); err != nil {
			return nil, err
		}
	}
	return Batches(ops, maxBytes)
}

// Batches encodes ops as SyncBatch frames of at most maxBytes and MaxOps
// ops each, in order.
func Batches(ops []Op, maxBytes int) ([][]byte, error) {
	maxBytes = min(maxBytes, MaxBatch)
	var out [][]byte
	var e wire.Encoder
	n := 0
	for _, op := range ops {
		if err := op.check(); err != nil {
			return nil, err
		}
		b := op.marshal()
		var one wire.Encoder
		one.Bytes(1, b)
		if len(one.B) > maxBytes {
			return nil, fmt.Errorf("%v op of %d bytes, a batch holds at most %d", op.Kind, len(one.B), maxBytes)
		}
		if n == MaxOps || len(e.B)+len(one.B) > maxBytes {
			out = append(out, e.B)
			e, n = wire.Encoder{}, 0
		}
		e.B = append(e.B, one.B...)
		n++
	}
	if n > 0 {
		out = append(out, e.B)
	}
	return out, nil
}
