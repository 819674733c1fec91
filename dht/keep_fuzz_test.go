package dht

import (
	"bytes"
	"testing"
	"time"
)

// FuzzKeepRequest: the keep request decoder never panics, never reads past
// its caps, and what it accepts has exactly one encoding: re-encoding the
// decoded request gives the same payload.
func FuzzKeepRequest(f *testing.F) {
	h, i := fuzzSeeds(f)
	k, _ := goldenIdentity(f)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	seed, err := SignKeepRequest(k, &KeepRequest{Created: now, Records: []KeptRecord{
		{Key: identityKey(k.Public().ID()), Raw: i}, {Key: identityKey(k.Public().ID()), Raw: fuzzSeedV2(f)},
		{Key: "/csname/x", Raw: h}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{0x0a, 0x00})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := OpenKeepRequest(b)
		if err != nil {
			return
		}
		if len(r.Records) == 0 || len(r.Records) > maxKeepRecords || r.Account.IsZero() {
			t.Fatalf("accepted %d records, account zero %v", len(r.Records), r.Account.IsZero())
		}
		env, err := unmarshalEnvelope(b, MaxKeepRequest)
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.payload()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p, env.Payload) {
			t.Fatal("keep request has a second encoding")
		}
	})
}
