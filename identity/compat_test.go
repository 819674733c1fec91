package identity

import (
	"errors"
	"testing"
)

// TestDeviceCertRefusesAdditions: a certificate is signed, so it keeps one
// byte form (docs/ARCHITECTURE.md, "Wire formats"): a field in the
// additions range, which a frame between peers would skip, is refused
// after the signature and among the signed fields alike.
func TestDeviceCertRefusesAdditions(t *testing.T) {
	c := testCert(t)
	if _, err := UnmarshalDeviceCert(c.Marshal()); err != nil {
		t.Fatal(err)
	}
	addition := []byte{0x88, 0x01, 0x05} // field 17, varint 5
	if _, err := UnmarshalDeviceCert(append(c.Marshal(), addition...)); !errors.Is(err, ErrMalformedCert) {
		t.Errorf("certificate with an addition after the signature: %v", err)
	}
	tbs := append(c.appendTBS(nil), addition...)
	signed := append(tbs, c.Marshal()[len(c.appendTBS(nil)):]...)
	if _, err := UnmarshalDeviceCert(signed); !errors.Is(err, ErrMalformedCert) {
		t.Errorf("certificate with an addition before the signature: %v", err)
	}
}
