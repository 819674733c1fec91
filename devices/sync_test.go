package devices

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
	"google.golang.org/protobuf/encoding/protowire"
)

func testOp() Op {
	origin := identity.DeviceIDOf(bytes.Repeat([]byte{1}, identity.X25519KeySize))
	return Op{Kind: KindContactName, Key: []byte("bob"), Stamp: Stamp{Clock: 300, Origin: origin}, Value: []byte("Bob")}
}

// TestBatchGolden pins a batch's bytes: siblings of different versions read
// one another's, so the form may only grow by additions.
func TestBatchGolden(t *testing.T) {
	b, err := MarshalBatch([]Op{testOp()})
	if err != nil {
		t.Fatal(err)
	}
	const want = "0a1908011203626f6218ac022208a39e30cd193892552a03426f62"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("batch = %s, want %s", got, want)
	}
	ops, err := UnmarshalBatch(b)
	if err != nil || len(ops) != 1 || !opEqual(ops[0], testOp()) {
		t.Fatalf("round trip = %s, %v", dump(ops), err)
	}
}

// TestBatchAdditions: a newer sibling's additions (fields 16 and up, in the
// batch and in an op) are skipped and the ops read.
func TestBatchAdditions(t *testing.T) {
	op := testOp().marshal()
	op = protowire.AppendTag(op, 16, protowire.BytesType)
	op = protowire.AppendBytes(op, []byte("a newer field"))
	var e wire.Encoder
	e.Bytes(1, op)
	e.B = protowire.AppendTag(e.B, 20, protowire.VarintType)
	e.B = protowire.AppendVarint(e.B, 5)
	ops, err := UnmarshalBatch(e.B)
	if err != nil || len(ops) != 1 || !opEqual(ops[0], testOp()) {
		t.Fatalf("batch with additions = %s, %v", dump(ops), err)
	}
}

// TestBatchHostile: every malformed batch is refused with ErrMalformed and
// a reason; a newer version or an unknown register kind also says so
// (wire.ErrNewerVersion), so the person sees "update callsign".
func TestBatchHostile(t *testing.T) {
	frame := func(ops ...[]byte) []byte {
		var e wire.Encoder
		for _, o := range ops {
			e.Bytes(1, o)
		}
		return e.B
	}
	with := func(f func(*Op)) []byte { op := testOp(); f(&op); return op.marshal() }
	x := bytes.Repeat([]byte{9}, identity.X25519KeySize)
	other := identity.DeviceIDOf(bytes.Repeat([]byte{8}, identity.X25519KeySize))
	entry := RosterEntry{PeerID: []byte("p"), X25519: x, Added: t0}.Marshal()
	newerVersion := frame(testOp().marshal())
	newerVersion = protowire.AppendTag(newerVersion, fieldVersion, protowire.VarintType)
	newerVersion = protowire.AppendVarint(newerVersion, 2)
	many := make([][]byte, MaxOps+1)
	for i := range many {
		many[i] = testOp().marshal()
	}
	cases := []struct {
		name  string
		b     []byte
		newer bool
	}{
		{"not protobuf", []byte("hello, sibling"), false},
		{"over 64 KiB", append(frame(testOp().marshal()), make([]byte, MaxBatch)...), false},
		{"257 ops", frame(many...), false},
		{"unknown core field", append(frame(testOp().marshal()), 0x10, 0x01), false},
		{"kind 0", frame(with(func(o *Op) { o.Kind = 0 })), false},
		{"a kind this version does not know", frame(with(func(o *Op) { o.Kind = newestKind + 1 })), true},
		{"a newer batch version", newerVersion, true},
		{"clock 0", frame(with(func(o *Op) { o.Stamp.Clock = 0 })), false},
		{"no origin", frame(with(func(o *Op) { o.Stamp.Origin = identity.DeviceID{} })), false},
		{"key over 128 bytes", frame(with(func(o *Op) { o.Key = bytes.Repeat([]byte("k"), MaxKey+1) })), false},
		{"call settings with a key", frame(with(func(o *Op) { o.Kind = KindCallSettings })), false},
		{"contact name without a key", frame(with(func(o *Op) { o.Key = nil })), false},
		{"roster entry under another device's id", frame(with(func(o *Op) { o.Kind, o.Key, o.Value = KindRoster, other[:], entry })), false},
		{"roster entry that does not parse", frame(with(func(o *Op) { id := identity.DeviceIDOf(x); o.Kind, o.Key, o.Value = KindRoster, id[:], []byte{0xff} })), false},
	}
	for _, c := range cases {
		ops, err := UnmarshalBatch(c.b)
		if !errors.Is(err, ErrMalformed) || errors.Is(err, wire.ErrNewerVersion) != c.newer {
			t.Errorf("%s: %d ops, err %v; want ErrMalformed (newer version: %v)", c.name, len(ops), err, c.newer)
			continue
		}
		if !strings.HasPrefix(err.Error(), "sync batch") {
			t.Errorf("%s: error %q does not say what was refused", c.name, err)
		}
	}
	if _, err := MarshalBatch(make([]Op, MaxOps+1)); err == nil {
		t.Error("MarshalBatch wrote 257 ops")
	}
}
