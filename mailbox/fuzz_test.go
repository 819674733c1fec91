package mailbox

import (
	"bytes"
	"testing"
)

func FuzzRequest(f *testing.F) {
	for _, r := range []request{
		{op: opRegister, account: bytes.Repeat([]byte{1}, 32), cert: []byte{1, 2, 3}, time: 1700000000, signature: bytes.Repeat([]byte{2}, 64)},
		{op: opDeposit, token: bytes.Repeat([]byte{3}, TokenSize), envelopes: [][]byte{{1}, {2, 3}}},
		{op: opDrain, max: 256},
		{op: opAck, seqs: []uint64{1, 2, 300}},
		{op: opUpload, prekeys: [][]byte{{1}, {2, 3}}, pqPrekeys: [][]byte{{4}}},
		{op: opUpload, pqPrekeys: [][]byte{bytes.Repeat([]byte{4}, 1258)}},
		{op: opFetch, token: bytes.Repeat([]byte{3}, TokenSize)},
		// A device token (DeviceToken) travels in the same field.
		{op: opDeposit, token: DeviceToken(bytes.Repeat([]byte{1}, 32), []byte("mb"), [8]byte{1}, 20000), envelopes: [][]byte{{4}}},
		{op: opFetch, token: DeviceToken(bytes.Repeat([]byte{1}, 32), []byte("mb"), [8]byte{1}, 20000)},
	} {
		f.Add(r.marshal())
	}
	f.Add([]byte{0xff, 0xff})
	f.Add(append((&request{op: opDrain, max: 7}).marshal(), later...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := unmarshalRequest(b)
		if err != nil {
			return
		}
		if len(r.envelopes) > maxPerDeposit || len(r.seqs) > maxPerDrain ||
			len(r.prekeys) > maxPrekeysWire || len(r.pqPrekeys) > maxPrekeysWire {
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
		{status: StatusOK, prekey: []byte{1, 2}, pqPrekey: bytes.Repeat([]byte{3}, 1258)},
		{status: StatusOK, waiting: 4, prekeys: 100, pqPrekeys: 7},
		{status: StatusOK, waiting: 4, prekeys: 3, pqPrekeys: 2, perDevice: true}, // register, addition 16
	} {
		f.Add(r.marshal())
	}
	f.Add(append((&response{status: StatusOK, waiting: 2}).marshal(), later...))
	f.Add(append((&response{status: StatusOK, waiting: 2, perDevice: true}).marshal(), later...))
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
	x, kem, to := recipient(f, 5)
	b, err := Seal(to, []byte("frame"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(sealV1Box(f, x.PublicKey(), []byte("frame")))
	f.Add([]byte{1})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, box []byte) {
		pt, err := Open(x, kem, box)
		if err != nil {
			return
		}
		if want := len(box) - SealOverhead; box[0] == sealV2 && len(pt) != want {
			t.Fatalf("opened %d bytes from a %d-byte box", len(pt), len(box))
		}
		if want := len(box) - sealV1Overhead; box[0] == sealV1 && len(pt) != want {
			t.Fatalf("opened %d bytes from a %d-byte version 1 box", len(pt), len(box))
		}
	})
}

// FuzzParkFrames: the park protocol's request and response decoders (the
// mailbox reads the first from any peer, a sender the second from any
// mailbox) take what they were made for and nothing else, and what they
// take encodes back to the same bytes.
func FuzzParkFrames(f *testing.F) {
	f.Add(parkRequest{token: bytes.Repeat([]byte{3}, TokenSize), hash: [32]byte{1}, size: 1 << 20}.marshal())
	f.Add(parkResponse{status: StatusOK, have: 12345}.marshal())
	f.Add(parkResponse{status: StatusOverQuota, reason: "no room for this file here"}.marshal())
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := unmarshalParkRequest(b); err == nil {
			if len(r.token) != TokenSize || r.size <= 0 {
				t.Fatalf("decoded %+v", r)
			}
			if got := r.marshal(); !bytes.Equal(got, b) {
				t.Fatalf("request round trip: %x became %x", b, got)
			}
		}
		if r, err := unmarshalParkResponse(b); err == nil {
			if r.status == 0 || r.status > maxStatus || len(r.reason) > maxReason || r.have < 0 {
				t.Fatalf("decoded %+v", r)
			}
			if got := r.marshal(); !bytes.Equal(got, b) {
				t.Fatalf("response round trip: %x became %x", b, got)
			}
		}
	})
}
