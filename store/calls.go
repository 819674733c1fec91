package store

import (
	"encoding/binary"
	"time"
)

// Call is one entry of the call log: a call made or received, or an
// incoming call the call policy refused (Blocked).
type Call struct {
	ID              string        `json:"id"`
	Peer            string        `json:"peer"`      // the other account's id
	Direction       string        `json:"direction"` // "in" or "out"
	Start           time.Time     `json:"start"`
	Duration        time.Duration `json:"duration"`
	EndReason       string        `json:"end_reason"`
	Path            string        `json:"path"` // "direct", "relay" or ""
	PacketsSent     uint64        `json:"packets_sent"`
	PacketsReceived uint64        `json:"packets_received"`
	BytesSent       uint64        `json:"bytes_sent"`
	BytesReceived   uint64        `json:"bytes_received"`
	Loss            float64       `json:"loss"`
	RTT             time.Duration `json:"rtt"`
	Blocked         bool          `json:"blocked,omitempty"`
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
	if err := tx.setJSON(callKey(c), c); err != nil {
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
		var c Call
		if err := tx.decode(k, val, &c); err != nil {
			return false, err
		}
		out = append(out, c)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}
