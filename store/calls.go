package store

import (
	"encoding/binary"
	"time"
)

// Call is one entry of the call log: a call made or received, or an
// incoming call the call policy refused (Blocked).
type Call struct {
	ID              string
	Peer            string // the other account's id
	Direction       string // "in" or "out"
	Start           time.Time
	Duration        time.Duration
	EndReason       string
	Path            string // "direct", "relay" or ""
	PacketsSent     uint64
	PacketsReceived uint64
	BytesSent       uint64
	BytesReceived   uint64
	Loss            float64
	RTT             time.Duration
	Blocked         bool
}

// MaxCalls is how many call log entries the store keeps; PutCall drops
// the oldest beyond it.
const MaxCalls = 1000

// Call log keys: call/<start, big-endian unix nanoseconds>/<id>, so a scan
// is in time order.
var pfxCall = []byte("call/")

func callKey(c Call) []byte {
	return key(pfxCall, binary.BigEndian.AppendUint64(nil, uint64(c.Start.UnixNano())), []byte(c.ID))
}

// PutCall adds or replaces a call log entry and trims the log to MaxCalls.
func (tx *Tx) PutCall(c Call) error {
	if err := checkID("call id", c.ID); err != nil {
		return err
	}
	if err := checkTime("call start", c.Start); err != nil {
		return err
	}
	if err := setValue(tx, callKey(c), &c, marshalCall); err != nil {
		return err
	}
	var old [][]byte
	n := 0
	err := tx.scan(pfxCall, nil, true, func(k []byte, _ func() ([]byte, error)) (bool, error) {
		n++
		if n > MaxCalls {
			old = append(old, append([]byte(nil), k...))
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range old {
		if err := tx.del(k); err != nil {
			return err
		}
	}
	return nil
}

// Calls returns up to limit call log entries, newest first (limit <= 0:
// all).
func (tx *Tx) Calls(limit int) ([]Call, error) {
	var out []Call
	err := tx.scan(pfxCall, nil, true, func(k []byte, val func() ([]byte, error)) (bool, error) {
		b, err := val()
		if err != nil {
			return false, err
		}
		c, err := decodeValue(k, b, unmarshalCall)
		if err != nil {
			return false, err
		}
		out = append(out, c)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}
