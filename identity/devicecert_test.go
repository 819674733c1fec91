package identity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

var (
	certCreated = time.Unix(1700000000, 0)
	certExpires = time.Unix(1700000000+30*86400, 0)
)

func x25519Test() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = 7 + byte(i)
	}
	return b
}

func testCert(t testing.TB) DeviceCert {
	t.Helper()
	c, err := IssueDeviceCert(seedKey(t, "alice"), []byte("peer-id-bytes"), x25519Test(), certCreated, certExpires)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// goldenCert is testCert's encoding: field 1 account, 2 peer id, 3 x25519, 4 created
// (1700000000), 5 expires, 6 signature (Ed25519 is deterministic).
const goldenCert = "0a20d5bf4a3fcce717b0388bcc2749ebc148ad9969b23f45ee1b605fd58778576ac4" +
	"120d706565722d69642d6279746573" +
	"1a200708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526" +
	"2080e2cfaa06" +
	"2880fcedab06" +
	"3240c54230cac22770c48ec3ffa55e1b4cf2378c558fd85110769edc249d49689d6d9f6a511ea0a2d68a6e259f2d92725e8527541ce7cefcb6f1448f59a263d9a604"

func TestDeviceCertGolden(t *testing.T) {
	c := testCert(t)
	want := goldenCert
	if got := hex.EncodeToString(c.Marshal()); got != want {
		t.Fatalf("encoding:\n got %s\nwant %s", got, want)
	}
	d, err := UnmarshalDeviceCert(unhex(t, want))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Account.Equal(c.Account) || !bytes.Equal(d.PeerID, c.PeerID) || !bytes.Equal(d.X25519, c.X25519) ||
		!d.Created.Equal(certCreated) || !d.Expires.Equal(certExpires) || !bytes.Equal(d.Sig, c.Sig) {
		t.Fatalf("decoded %+v, want %+v", d, c)
	}
	if err := d.Verify(certCreated.Add(time.Hour)); err != nil {
		t.Fatalf("decoded golden certificate does not verify: %v", err)
	}
}

func TestDeviceCertVerify(t *testing.T) {
	c := testCert(t)
	mid := certCreated.Add(24 * time.Hour)
	if err := c.Verify(mid); err != nil {
		t.Fatalf("valid certificate: %v", err)
	}
	if err := c.Verify(certCreated); err != nil {
		t.Fatalf("at created: %v", err)
	}
	if err := c.Verify(certCreated.Add(-ClockSkew + time.Second)); err != nil {
		t.Fatalf("within clock skew: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*DeviceCert)
		now  time.Time
		want error
	}{
		{"expired", nil, certExpires, ErrCertExpired},
		{"long expired", nil, certExpires.Add(time.Hour), ErrCertExpired},
		{"not yet valid", nil, certCreated.Add(-ClockSkew - time.Second), ErrCertNotYetValid},
		{"forged signature", func(c *DeviceCert) { c.Sig = bytes.Clone(c.Sig); c.Sig[5] ^= 1 }, mid, ErrCertSignature},
		{"other account", func(c *DeviceCert) { c.Account = seedKey(t, "bob").Public() }, mid, ErrCertSignature},
		{"other peer", func(c *DeviceCert) { c.PeerID = []byte("peer-id-bytez") }, mid, ErrCertSignature},
		{"other x25519", func(c *DeviceCert) { c.X25519 = bytes.Clone(c.X25519); c.X25519[0]++ }, mid, ErrCertSignature},
		{"extended expiry", func(c *DeviceCert) { c.Expires = c.Expires.Add(time.Second) }, mid, ErrCertSignature},
		{"short sig", func(c *DeviceCert) { c.Sig = c.Sig[:63] }, mid, ErrMalformedCert},
		{"no sig", func(c *DeviceCert) { c.Sig = nil }, mid, ErrMalformedCert},
		{"no account", func(c *DeviceCert) { c.Account = AccountPub{} }, mid, ErrMalformedCert},
		{"empty peer", func(c *DeviceCert) { c.PeerID = nil }, mid, ErrMalformedCert},
		{"long peer", func(c *DeviceCert) { c.PeerID = make([]byte, 65) }, mid, ErrMalformedCert},
		{"short x25519", func(c *DeviceCert) { c.X25519 = c.X25519[:31] }, mid, ErrMalformedCert},
		{"zero x25519", func(c *DeviceCert) { c.X25519 = make([]byte, 32) }, mid, ErrMalformedCert},
	}
	for _, tc := range cases {
		d := testCert(t)
		if tc.mod != nil {
			tc.mod(&d)
		}
		if err := d.Verify(tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestIssueDeviceCertErrors(t *testing.T) {
	k := seedKey(t, "alice")
	x := x25519Test()
	cases := map[string]func() (DeviceCert, error){
		"empty peer":      func() (DeviceCert, error) { return IssueDeviceCert(k, nil, x, certCreated, certExpires) },
		"65-byte peer":    func() (DeviceCert, error) { return IssueDeviceCert(k, make([]byte, 65), x, certCreated, certExpires) },
		"31-byte x25519":  func() (DeviceCert, error) { return IssueDeviceCert(k, []byte("p"), x[:31], certCreated, certExpires) },
		"expires=created": func() (DeviceCert, error) { return IssueDeviceCert(k, []byte("p"), x, certCreated, certCreated) },
		"expires<created": func() (DeviceCert, error) { return IssueDeviceCert(k, []byte("p"), x, certExpires, certCreated) },
		"before 1970":     func() (DeviceCert, error) { return IssueDeviceCert(k, []byte("p"), x, time.Unix(-5, 0), certExpires) },
	}
	for name, f := range cases {
		if _, err := f(); !errors.Is(err, ErrMalformedCert) {
			t.Errorf("%s: err = %v, want ErrMalformedCert", name, err)
		}
	}
	// 64-byte peer id is the maximum and round-trips.
	c, err := IssueDeviceCert(k, bytes.Repeat([]byte{0xff}, 64), x, certCreated.Add(time.Second/2), certExpires)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Created.Equal(certCreated) {
		t.Errorf("created not truncated to seconds: %v", c.Created)
	}
	d, err := UnmarshalDeviceCert(c.Marshal())
	if err != nil || d.Verify(certCreated) != nil {
		t.Fatalf("max-size certificate: unmarshal %v, verify %v", err, d.Verify(certCreated))
	}
	if n := len(c.Marshal()); n > MaxDeviceCertSize {
		t.Fatalf("largest certificate is %d bytes, over MaxDeviceCertSize", n)
	}
}

// field is one hand-built protowire field for the strictness tests.
func field(num protowire.Number, v any) []byte {
	switch v := v.(type) {
	case []byte:
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	case uint64:
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	panic("bug: field type")
}

func TestUnmarshalDeviceCertStrict(t *testing.T) {
	c := testCert(t)
	f1 := field(1, c.Account.Bytes())
	f2 := field(2, c.PeerID)
	f3 := field(3, c.X25519)
	f4 := field(4, uint64(c.Created.Unix()))
	f5 := field(5, uint64(c.Expires.Unix()))
	f6 := field(6, c.Sig)
	join := func(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
	if !bytes.Equal(join(f1, f2, f3, f4, f5, f6), c.Marshal()) {
		t.Fatal("hand-built encoding differs from Marshal")
	}
	overlong := func(num protowire.Number, v uint64) []byte { // varint padded with a 0x80 0x00 continuation
		b := protowire.AppendTag(nil, num, protowire.VarintType)
		enc := protowire.AppendVarint(nil, v)
		enc[len(enc)-1] |= 0x80
		return append(append(b, enc...), 0x00)
	}
	bad := map[string][]byte{
		"empty":              nil,
		"missing sig":        join(f1, f2, f3, f4, f5),
		"missing peer":       join(f1, f3, f4, f5, f6),
		"swapped fields":     join(f2, f1, f3, f4, f5, f6),
		"duplicate field":    join(f1, f1, f2, f3, f4, f5, f6),
		"unknown field":      join(f1, f2, f3, f4, f5, f6, field(7, uint64(1))),
		"trailing byte":      join(f1, f2, f3, f4, f5, f6, []byte{0}),
		"overlong varint":    join(f1, f2, f3, overlong(4, uint64(c.Created.Unix())), f5, f6),
		"overlong tag":       join([]byte{0x8a, 0x00}, f1[1:], f2, f3, f4, f5, f6),
		"wrong wire type":    join(f1, f2, f3, field(4, []byte{1}), f5, f6),
		"short account":      join(field(1, c.Account.Bytes()[:31]), f2, f3, f4, f5, f6),
		"small-order acct":   join(field(1, make([]byte, 32)), f2, f3, f4, f5, f6),
		"empty peer":         join(f1, field(2, []byte{}), f3, f4, f5, f6),
		"65-byte peer":       join(f1, field(2, make([]byte, 65)), f3, f4, f5, f6),
		"33-byte x25519":     join(f1, f2, field(3, make([]byte, 33)), f4, f5, f6),
		"zero created":       join(f1, f2, f3, field(4, uint64(0)), f5, f6),
		"expires before":     join(f1, f2, f3, field(4, uint64(c.Expires.Unix())), field(5, uint64(c.Created.Unix())), f6),
		"huge time":          join(f1, f2, f3, f4, field(5, uint64(1)<<63), f6),
		"short sig":          join(f1, f2, f3, f4, f5, field(6, c.Sig[:63])),
		"oversized":          join(c.Marshal(), make([]byte, MaxDeviceCertSize)),
		"length past end":    join(f1, f2, f3, f4, f5, []byte{0x32, 0x40}, c.Sig[:10]),
		"huge length prefix": join(f1, []byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f}),
	}
	for name, b := range bad {
		if _, err := UnmarshalDeviceCert(b); !errors.Is(err, ErrMalformedCert) {
			t.Errorf("%s: err = %v, want ErrMalformedCert", name, err)
		}
	}
	// Every truncation of a valid encoding is refused.
	enc := c.Marshal()
	for i := range len(enc) {
		if _, err := UnmarshalDeviceCert(enc[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", i)
		}
	}
	// Unmarshal copies: changing the input afterwards does not change the certificate.
	d, err := UnmarshalDeviceCert(enc)
	if err != nil {
		t.Fatal(err)
	}
	clear(enc)
	if err := d.Verify(certCreated); err != nil {
		t.Fatalf("certificate changed with its input buffer: %v", err)
	}
}
