package devices

import (
	"bytes"
	"testing"

	"github.com/callsign/callsign/identity"
)

// FuzzUnmarshalBatch: no input panics; a batch that reads re-encodes to the
// bytes it came from when it has no additions, and every op it yields is
// one a replica would accept (Op.check).
func FuzzUnmarshalBatch(f *testing.F) {
	x := bytes.Repeat([]byte{9}, identity.X25519KeySize)
	id := identity.DeviceIDOf(x)
	for _, ops := range [][]Op{
		{testOp()},
		{testOp(), {Kind: KindRoster, Key: id[:], Stamp: testOp().Stamp, Value: RosterEntry{PeerID: []byte("p"), X25519: x, Name: "laptop", Added: t0}.Marshal()}},
		{{Kind: KindCallSettings, Stamp: testOp().Stamp, Value: []byte{8, 1}}},
	} {
		b, err := MarshalBatch(ops)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := UnmarshalBatch(b)
		if err != nil {
			return
		}
		for _, op := range ops {
			if err := op.check(); err != nil {
				t.Fatalf("accepted an op a replica refuses: %v", err)
			}
		}
		re, err := MarshalBatch(ops)
		if err != nil {
			t.Fatalf("accepted batch does not re-encode: %v", err)
		}
		if len(re) > len(b) {
			t.Fatalf("re-encoded batch is longer (%d) than its input (%d)", len(re), len(b))
		}
	})
}
