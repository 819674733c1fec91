package mailbox

import (
	"bytes"
	"crypto/ecdh"
	"testing"
)

func FuzzRequest(f *testing.F) {
	for _, r := range []request{
		{op: opRegister, account: bytes.Repeat([]byte{1}, 32), cert: []byte{1, 2, 3}, time: 1700000000, signature: bytes.Repeat([]byte{2}, 64)},
		{op: opDeposit, token: bytes.Repeat([]byte{3}, TokenSize), envelopes: [][]byte{{1}, {2, 3}}},
		{op: opDrain, max: 256},
		{op: opAck, seqs: []uint64{1, 2, 300}},
	} {
		f.Add(r.marshal())
	}
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := unmarshalRequest(b)
		if err != nil {
			return
		}
		if len(r.envelopes) > maxPerDeposit || len(r.seqs) > maxPerDrain {
			t.Fatalf("decoded %d envelopes, %d seqs", len(r.envelopes), len(r.seqs))
		}
		if got := r.marshal(); !bytes.Equal(got, b) {
			t.Fatalf("round trip: %x became %x", b, got)
		}
	})
}

func FuzzResponse(f *testing.F) {
	for _, r := range []response{
		{status: StatusOK, results: []Status{StatusOK, StatusDuplicate, StatusTooLarge}},
		{status: StatusOK, entries: []Entry{{Seq: 1, Data: []byte("x")}, {Seq: 9, Data: []byte("yz")}}, waiting: 3},
		{status: StatusOverQuota, reason: "over quota"},
	} {
		f.Add(r.marshal())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := unmarshalResponse(b)
		if err != nil {
			return
		}
		if got := r.marshal(); !bytes.Equal(got, b) {
			t.Fatalf("round trip: %x became %x", b, got)
		}
	})
}

func FuzzOpen(f *testing.F) {
	k, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		f.Fatal(err)
	}
	b, _ := Seal(k.PublicKey(), []byte("frame"))
	f.Add(b)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, box []byte) {
		pt, err := Open(k, box)
		if err == nil && len(pt) != len(box)-SealOverhead {
			t.Fatalf("opened %d bytes from a %d-byte box", len(pt), len(box))
		}
	})
}
