package dht

import (
	"errors"
	"testing"

	"github.com/callsign/callsign/identity"
)

// TestSignedRecordsRefuseAdditions: records are signed, so they keep one
// byte form (docs/ARCHITECTURE.md, "Wire formats"). A record that a newer
// peer signed with a field in the additions range, which a frame between
// peers would skip, is refused, even with a good signature; so is a keep
// request that carries one.
func TestSignedRecordsRefuseAdditions(t *testing.T) {
	addition := build(fld{17, uint64(5)})
	k, id := goldenIdentity(t)
	w, err := id.toWire()
	if err != nil {
		t.Fatal(err)
	}
	payload := append(w.marshal(), addition...)
	env := (&wireEnvelope{Payload: payload, Signature: k.Sign(identity.LabelIdentityRecord, payload)}).marshal()
	if _, err := openIdentity(env); !errors.Is(err, ErrMalformed) {
		t.Errorf("identity record with an addition, signed: %v, want ErrMalformed", err)
	}
	if _, err := openIdentity(mustSealIdentity(t, k, id)); err != nil {
		t.Fatalf("the same record without the addition: %v", err)
	}
	// Kind 3 (IdentityPayloadV2) the same.
	_, id3 := goldenIdentityV2(t)
	if w, err = id3.toWire(); err != nil {
		t.Fatal(err)
	}
	payload = append(w.marshal(), addition...)
	env = (&wireEnvelope{Payload: payload, Signature: k.Sign(identity.LabelIdentityRecord, payload)}).marshal()
	if _, err := openIdentity(env); !errors.Is(err, ErrMalformed) {
		t.Errorf("kind-3 identity record with an addition, signed: %v, want ErrMalformed", err)
	}
	if _, err := openIdentity(mustSealIdentity(t, k, id3)); err != nil {
		t.Fatalf("the same kind-3 record without the addition: %v", err)
	}

	_, h := goldenHandle(t)
	hw, err := h.toWire()
	if err != nil {
		t.Fatal(err)
	}
	payload = append(hw.marshal(), addition...)
	env = (&wireEnvelope{Payload: payload, Signature: k.Sign(identity.LabelHandleRecord, payload)}).marshal()
	if _, err := openHandle(env); !errors.Is(err, ErrMalformed) {
		t.Errorf("handle record with an addition, signed: %v, want ErrMalformed", err)
	}

	req := &KeepRequest{Account: k.Public(), Created: goldenNow, Records: []KeptRecord{{Key: "/csname/golden", Raw: mustSealHandle(t, k, h)}}}
	p, err := req.payload()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeepRequest((&wireEnvelope{Payload: p, Signature: k.Sign(keepLabel, p)}).marshal()); err != nil {
		t.Fatalf("keep request: %v", err)
	}
	p = append(p, addition...)
	if _, err := OpenKeepRequest((&wireEnvelope{Payload: p, Signature: k.Sign(keepLabel, p)}).marshal()); !errors.Is(err, ErrMalformed) {
		t.Errorf("keep request with an addition, signed: %v, want ErrMalformed", err)
	}
}
