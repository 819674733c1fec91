package identity

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDeviceID(t *testing.T) {
	x := bytes.Repeat([]byte{7}, X25519KeySize)
	d := DeviceIDOf(x)
	// Golden: SHA-256("callsign/v1/device-id" || 0x00 || 0x07×32)[:8] in base32. A change
	// here renames every device of every account: it must never happen.
	if got, want := d.String(), "rsvxd6jbmzuck"; got != want {
		t.Fatalf("DeviceIDOf(07…) = %s, want %s", got, want)
	}
	if len(d.String()) != DeviceIDLen {
		t.Fatalf("text form %q is %d characters, want %d", d, len(d.String()), DeviceIDLen)
	}
	if DeviceIDOf(bytes.Repeat([]byte{8}, X25519KeySize)) == d {
		t.Fatal("two keys gave one device id")
	}
	for _, s := range []string{d.String(), strings.ToUpper(d.String()), "  " + d.String() + "\n"} {
		p, err := ParseDeviceID(s)
		if err != nil || p != d {
			t.Fatalf("ParseDeviceID(%q) = %v, %v; want %v", s, p, err, d)
		}
	}
	last := d.String()[DeviceIDLen-1]
	alt := "abcdefghijklmnopqrstuvwxyz234567"[(strings.IndexByte(base32Alphabet, last)+1)%32]
	bad := []string{"", d.String()[:12], d.String() + "a", d.String()[:12] + "1", d.String()[:12] + string(alt), strings.Repeat("a", 100)}
	for _, s := range bad {
		if _, err := ParseDeviceID(s); !errors.Is(err, ErrInvalidDeviceID) {
			t.Errorf("ParseDeviceID(%q) = %v, want ErrInvalidDeviceID", s, err)
		}
	}
	k, err := GenerateAccountKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := IssueDeviceCert(k, []byte("peer"), x, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if c.DeviceID() != d {
		t.Fatalf("cert's device id %v, want its key's %v", c.DeviceID(), d)
	}
}
