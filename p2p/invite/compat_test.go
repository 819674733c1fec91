package invite

import (
	"errors"
	"strings"
	"testing"
)

// textOf is the invite text of payload, with its checksum.
func textOf(payload []byte) string {
	return format.Encode(payload)
}

// TestNewerInvite: an invite a newer callsign wrote, with a field in the
// additions range, leads this one to the same node and encodes back as it
// was; one with an unknown core field, or of version 2, is refused with a
// reason.
func TestNewerInvite(t *testing.T) {
	inv, err := Parse(golden)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := format.Decode(golden, ErrInvalid)
	if err != nil {
		t.Fatal(err)
	}
	newer := textOf(append(append([]byte(nil), payload...), 0x9a, 0x01, 0x03, 'r', 'l', 'y')) // field 19
	got, err := Parse(newer)
	if err != nil {
		t.Fatalf("newer invite: %v", err)
	}
	if got.Peer != inv.Peer || len(got.Addrs) != 2 || got.Name != "Harbour" {
		t.Fatalf("newer invite read as %+v", got)
	}
	if s, err := got.Encode(); err != nil || s != newer {
		t.Fatalf("newer invite encodes as %q, %v", s, err)
	}
	if _, err := Parse(textOf(append(append([]byte(nil), payload...), 0x28, 0x01))); !errors.Is(err, ErrInvalid) { // field 5
		t.Errorf("invite with an unknown core field: %v", err)
	}
	v2 := append([]byte{0x08, 0x02}, payload[2:]...)
	if _, err := Parse(textOf(v2)); err == nil || !strings.Contains(err.Error(), "a newer callsign may read it") {
		t.Errorf("version 2 invite: %v", err)
	}
}
