package dht

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protowire"
)

// Kind-3 identity records (IdentityPayloadV2, docs/DEVICES.md §0.3): a
// bundle per device and the devices the account revoked.

// testDevice is a certificate of k for the device named n (its peer id, of
// an Ed25519 peer id's 38 bytes, and X25519 key derived from n), valid from
// an hour before now for a year.
func testDevice(tb testing.TB, k *identity.AccountKey, n string, now time.Time) identity.DeviceCert {
	tb.Helper()
	x := sha256.Sum256([]byte("x25519/" + n))
	p := sha256.Sum256([]byte("peer/" + n))
	return issueDevice(tb, k, append([]byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}, p[:]...), x[:], now)
}

// issueDevice is a certificate of k for peer and x25519, valid from an hour
// before now for a year.
func issueDevice(tb testing.TB, k *identity.AccountKey, peer, x25519 []byte, now time.Time) identity.DeviceCert {
	tb.Helper()
	c, err := identity.IssueDeviceCert(k, peer, x25519, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// revokedID is the DeviceID of the device named n, as testDevice derives it.
func revokedID(n string) identity.DeviceID {
	x := sha256.Sum256([]byte("x25519/" + n))
	return identity.DeviceIDOf(x[:])
}

// sortDevices puts r's devices (with their bundles) and revoked ids in
// ascending DeviceID order, the one order a kind-3 record has.
func sortDevices(r *IdentityRecord) {
	idx := make([]int, len(r.Devices))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		da, db := r.Devices[a].DeviceID(), r.Devices[b].DeviceID()
		return bytes.Compare(da[:], db[:])
	})
	devs, bundles := make([]identity.DeviceCert, len(idx)), make([][]byte, len(idx))
	for i, j := range idx {
		devs[i], bundles[i] = r.Devices[j], r.Bundles[j]
	}
	r.Devices, r.Bundles = devs, bundles
	slices.SortFunc(r.Revoked, func(a, b identity.DeviceID) int { return bytes.Compare(a[:], b[:]) })
}

// identityV2 is a kind-3 record of k issued at now, with the named
// devices, each with a bundle of bundleLen bytes, and the named devices
// revoked.
func identityV2(tb testing.TB, k *identity.AccountKey, now time.Time, bundleLen int, devices, revoked []string) *IdentityRecord {
	tb.Helper()
	r := testIdentity(tb, k, now)
	r.Prekeys, r.Devices = nil, nil
	r.Bundles = [][]byte{}
	for i, n := range devices {
		r.Devices = append(r.Devices, testDevice(tb, k, n, now))
		r.Bundles = append(r.Bundles, bytes.Repeat([]byte{byte(0x51 + i)}, bundleLen))
	}
	for _, n := range revoked {
		r.Revoked = append(r.Revoked, revokedID(n))
	}
	sortDevices(r)
	return r
}

// goldenIdentityV2 is goldenIdentity as a kind-3 record: two devices,
// two revoked.
func goldenIdentityV2(tb testing.TB) (*identity.AccountKey, *IdentityRecord) {
	k, g := goldenIdentity(tb)
	r := identityV2(tb, k, goldenNow, 40, []string{"laptop", "phone"}, []string{"old-phone", "tablet"})
	r.Seq, r.Mailboxes, r.Relays, r.Handles, r.Attestations = 9, g.Mailboxes, g.Relays, g.Handles, g.Attestations
	return k, r
}

// signPayload signs payload bytes as an identity record of k, whatever
// they hold: for records sealIdentity would refuse.
func signPayload(k *identity.AccountKey, p []byte) []byte {
	return (&wireEnvelope{Payload: p, Signature: k.Sign(identity.LabelIdentityRecord, p)}).marshal()
}

// signRecord encodes r as it is and signs it, skipping sealIdentity's
// checks.
func signRecord(tb testing.TB, k *identity.AccountKey, r *IdentityRecord) []byte {
	tb.Helper()
	w, err := r.toWire()
	if err != nil {
		tb.Fatal(err)
	}
	return signPayload(k, w.marshal())
}

const goldenIdentityV2Hex = "0af1040803122066d1440bf47c23f83a97762da35aa5891d80734947dfbac2f7bc1694a4611690180920809494caca33" +
	"2880bce0c5cb3332e7010aba010a2066d1440bf47c23f83a97762da35aa5891d80734947dfbac2f7bc1694a461169012" +
	"260024080112201df445079bcaf00491d7600cb41ab42c274abed0152112167553641f7e4920091a203e3fe1825dfc1a" +
	"69107f293a6a5fc8dc1714ab8e1fa4d174f4616f7748c82cff20b0b890cd0628c0bb95dc06324064aba20f6c8fc5270d" +
	"e194c5d66667307ecc7528b2bd6902dce5c3abf6e2760e30873f8ef01853bb9b9a3a0049cf86974dcb2bbe1fc6206eb9" +
	"6c04cf5e423b091228525252525252525252525252525252525252525252525252525252525252525252525252525252" +
	"5232e7010aba010a2066d1440bf47c23f83a97762da35aa5891d80734947dfbac2f7bc1694a461169012260024080112" +
	"200f3050ff6f4d9268e1f59fc15af73cdc5c5b2bae0b4982dcdcdb28644515ac001a208f5982a9af96b2d1de92f0a58e" +
	"3301fa0f6b5658a0ebd132948962404363633b20b0b890cd0628c0bb95dc063240b99a8dcb3bf38e95000ad9b4722a04" +
	"c428c63eeff37954053feea2e7a43291a1e8dfc28f5b31edd6d1b29743c87e7c8d2d5306170749af0afd20170cf64fa2" +
	"091228515151515151515151515151515151515151515151515151515151515151515151515151515151513a086103dd" +
	"56575d0c403a08c797afb60bd477a9420804c0000201060fa14a172920010db800000000000000000000000191020fa1" +
	"cd03520d546573742063736131646932705a06676f6c64656e5a11676f6c64656e7e3372347371616a61786d62066174" +
	"74657374124033eae2ff2b342f11229face70b4fb88d250366ce77fc91f8649442218c356b13ec449e9d559184370cfc" +
	"39213555f89c8e7646a0f22c2363bba0bdb57a192f01"

// TestGoldenIdentityV2 pins the bytes of a kind-3 record, and checks their
// layout against records.proto's IdentityPayloadV2 without the codec.
func TestGoldenIdentityV2(t *testing.T) {
	k, r := goldenIdentityV2(t)
	raw := mustSealIdentity(t, k, r)
	if got := hex.EncodeToString(raw); got != goldenIdentityV2Hex {
		t.Errorf("kind-3 identity record encoding changed:\n got %s\nwant %s", got, goldenIdentityV2Hex)
	}
	env, err := unmarshalEnvelope(raw, MaxIdentityRecordSize)
	if err != nil {
		t.Fatal(err)
	}
	var nums []protowire.Number
	for p := env.Payload; len(p) > 0; {
		num, typ, n := protowire.ConsumeTag(p)
		m := protowire.ConsumeFieldValue(num, typ, p[n:])
		if n < 0 || m < 0 {
			t.Fatalf("payload does not parse as protobuf: %x", p)
		}
		switch {
		case num == 1 && !bytes.Equal(p[:n+m], []byte{0x08, 0x03}):
			t.Errorf("kind field %x, want 0803", p[:n+m])
		case num == 6:
			v, _ := protowire.ConsumeBytes(p[n:])
			cert, k := protowire.ConsumeBytes(v[1:])
			if v[0] != 0x0a || k < 0 || v[1+k] != 0x12 {
				t.Errorf("device entry %x is not (1 cert, 2 bundle)", v)
			} else if _, err := identity.UnmarshalDeviceCert(cert); err != nil {
				t.Errorf("device entry's field 1: %v", err)
			}
		case num == 7:
			if v, _ := protowire.ConsumeBytes(p[n:]); len(v) != identity.DeviceIDSize {
				t.Errorf("revoked id of %d bytes", len(v))
			}
		}
		nums = append(nums, num)
		p = p[n+m:]
	}
	want := []protowire.Number{1, 2, 3, 4, 5, 6, 6, 7, 7, 8, 9, 10, 11, 11, 12}
	if !slices.Equal(nums, want) {
		t.Errorf("payload fields %v, want %v", nums, want)
	}
}

// TestIdentityV2RoundTrip: a kind-3 record opens as it was sealed, its
// bundles in its devices' order, and re-seals to the same bytes; a kind-1
// record's Bundle(0) is its Prekeys.
func TestIdentityV2RoundTrip(t *testing.T) {
	k, r := goldenIdentityV2(t)
	raw := mustSealIdentity(t, k, r)
	got, err := openIdentity(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !got.MultiDevice() || got.Prekeys != nil || len(got.Devices) != 2 || len(got.Bundles) != 2 ||
		!slices.Equal(got.Revoked, r.Revoked) || got.Seq != 9 || len(got.Handles) != 2 || !got.Relays[0].Equal(r.Relays[0]) {
		t.Fatalf("kind-3 round trip: %+v", got)
	}
	for i := range r.Devices {
		if !bytes.Equal(got.Devices[i].Marshal(), r.Devices[i].Marshal()) || !bytes.Equal(got.Bundle(i), r.Bundles[i]) {
			t.Errorf("device %d or its bundle changed", i)
		}
	}
	if got.Bundle(2) != nil || got.Bundle(-1) != nil {
		t.Error("Bundle of no device is not nil")
	}
	if !bytes.Equal(mustSealIdentity(t, k, got), raw) {
		t.Fatal("kind-3 re-encoding differs")
	}
	c := newChecker(func() time.Time { return goldenNow }, identity.TestPoW)
	if _, err := c.identity(identityKey(k.Public().ID()), raw, goldenNow, 0); err != nil {
		t.Fatalf("valid kind-3 record refused: %v", err)
	}

	k1, r1 := goldenIdentity(t)
	g1, err := openIdentity(mustSealIdentity(t, k1, r1))
	if err != nil {
		t.Fatal(err)
	}
	if g1.MultiDevice() || g1.Bundles != nil || g1.Revoked != nil || !bytes.Equal(g1.Bundle(0), r1.Prekeys) || g1.Bundle(1) != nil {
		t.Fatalf("kind-1 record read as kind 3: %+v", g1)
	}
}

// TestSealIdentityV2Refuses: a record sealIdentity can't write as one
// kind, or that no node would store, is refused before it is signed.
func TestSealIdentityV2Refuses(t *testing.T) {
	k, good := goldenIdentityV2(t)
	mallory := key(t, "mallory")
	cases := []struct {
		name string
		edit func(r *IdentityRecord)
		want string
	}{
		{"prekeys in kind 3", func(r *IdentityRecord) { r.Prekeys = []byte("blob") }, "Prekeys beside"},
		{"a bundle short", func(r *IdentityRecord) { r.Bundles = r.Bundles[:1] }, "1 bundles for 2 devices"},
		{"an empty bundle", func(r *IdentityRecord) { r.Bundles = [][]byte{r.Bundles[0], {}} }, "device 1 without a bundle"},
		{"revoked in kind 1", func(r *IdentityRecord) { r.Bundles = nil; r.Prekeys = []byte("blob") }, "revoked devices without"},
		{"unsorted devices", func(r *IdentityRecord) {
			r.Devices = []identity.DeviceCert{r.Devices[1], r.Devices[0]}
			r.Bundles = [][]byte{r.Bundles[1], r.Bundles[0]}
		}, "not in ascending order"},
		{"unsorted revoked", func(r *IdentityRecord) { r.Revoked = []identity.DeviceID{r.Revoked[1], r.Revoked[0]} }, "revoked: device id"},
		{"a listed device revoked", func(r *IdentityRecord) { r.Revoked = []identity.DeviceID{r.Devices[0].DeviceID()} }, "listed as revoked"},
		{"oversize", func(r *IdentityRecord) {
			r.Bundles = [][]byte{make([]byte, 9000), make([]byte, 9000)}
		}, "too large"},
	}
	for _, tc := range cases {
		r := *good
		tc.edit(&r)
		if _, err := sealIdentity(k, &r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := sealIdentity(mallory, good); err == nil {
		t.Error("sealed with another account's key")
	}
}

// TestIdentityV2Hostile: kind-3 records that break a rule, each signed by
// the account so that only the rule can refuse them, are refused by the
// validator with an error that names the rule.
func TestIdentityV2Hostile(t *testing.T) {
	c := newChecker(func() time.Time { return goldenNow }, identity.TestPoW)
	k, good := goldenIdentityV2(t)
	ikey := identityKey(k.Public().ID())
	mallory := key(t, "mallory")
	mod := func(f func(r *IdentityRecord)) []byte {
		r := *good
		r.Devices, r.Bundles, r.Revoked = slices.Clone(r.Devices), slices.Clone(r.Bundles), slices.Clone(r.Revoked)
		f(&r)
		return signRecord(t, k, &r)
	}
	// wireMod edits the payload as encoded: for what toWire can't write.
	wireMod := func(f func(w *wireIdentity)) []byte {
		w, err := good.toWire()
		if err != nil {
			t.Fatal(err)
		}
		f(w)
		return signPayload(k, w.marshal())
	}
	certs := func(w *wireIdentity) (out [][]byte) {
		for _, e := range w.Entries {
			out = append(out, e.Cert)
		}
		return out
	}
	// twin, and devices that share its peer id or its X25519 key.
	twin := testDevice(t, k, "twin", goldenNow)
	x2 := sha256.Sum256([]byte("x25519/twin-2"))
	samePeer := issueDevice(t, k, twin.PeerID, x2[:], goldenNow)
	sameX := issueDevice(t, k, []byte("another peer"), twin.X25519, goldenNow)
	withTwinAnd := func(d identity.DeviceCert) []byte {
		return mod(func(r *IdentityRecord) {
			r.Devices, r.Bundles = append(r.Devices, twin, d), append(r.Bundles, []byte("b1"), []byte("b2"))
			sortDevices(r)
		})
	}
	// A certificate naming the account, signed by mallory's key.
	forged := testDevice(t, k, "forged", goldenNow)
	tbs := forged.Marshal()
	forged.Sig = mallory.Sign(identity.LabelDeviceCert, tbs[:len(tbs)-2-identity.SignatureSize])
	nine := make([]string, maxDevices+1)
	for i := range nine {
		nine[i] = fmt.Sprint("device-", i)
	}
	newer := wireMod(func(w *wireIdentity) { w.Kind = kindNewest + 1 })

	cases := []struct {
		name  string
		value []byte
		want  error
		says  string // a regular expression
	}{
		{"unsorted devices", mod(func(r *IdentityRecord) {
			r.Devices[0], r.Devices[1] = r.Devices[1], r.Devices[0]
			r.Bundles[0], r.Bundles[1] = r.Bundles[1], r.Bundles[0]
		}), ErrMalformed, `devices: device id \w+ after \w+: not in ascending order`},
		{"duplicate peer id", withTwinAnd(samePeer), ErrInvalidRecord, "share a peer id"},
		{"duplicate X25519 key, so DeviceID", withTwinAnd(sameX), ErrMalformed, `devices: device id \w+ listed twice`},
		{"duplicate device", withTwinAnd(twin), ErrMalformed, `devices: device id \w+ listed twice`},
		{"a listed device revoked", mod(func(r *IdentityRecord) {
			r.Revoked = append(r.Revoked, r.Devices[1].DeviceID())
			sortDevices(r)
		}), ErrInvalidRecord, "listed as revoked"},
		{"unsorted revoked", mod(func(r *IdentityRecord) { r.Revoked[0], r.Revoked[1] = r.Revoked[1], r.Revoked[0] }), ErrMalformed, `revoked: device id \w+ after \w+: not in ascending order`},
		{"duplicate revoked", mod(func(r *IdentityRecord) { r.Revoked = []identity.DeviceID{r.Revoked[0], r.Revoked[0]} }), ErrMalformed, `revoked: device id \w+ listed twice`},
		{"33 revoked", wireMod(func(w *wireIdentity) {
			w.Revoked = nil
			for i := range maxRevoked + 1 {
				w.Revoked = append(w.Revoked, []byte{0, 0, 0, 0, 0, 0, 0, byte(i + 1)})
			}
		}), ErrMalformed, "more than 32"},
		{"a 9th device", signRecord(t, k, identityV2(t, k, goldenNow, 8, nine, nil)), ErrMalformed, "more than 8"},
		{"no device", mod(func(r *IdentityRecord) { r.Devices, r.Bundles = nil, [][]byte{} }), ErrInvalidRecord, "no device"},
		{"oversize bundle", mod(func(r *IdentityRecord) { r.Bundles[1] = make([]byte, maxBundleLen+1) }), ErrMalformed, "1601 bytes"},
		{"oversize certificate", wireMod(func(w *wireIdentity) {
			w.Entries[0].Cert = append(w.Entries[0].Cert, make([]byte, identity.MaxDeviceCertSize)...)
		}), ErrMalformed, "device entry: field 1"},
		{"oversize device entry", wireMod(func(w *wireIdentity) {
			w.Entries, w.Devices = w.Entries[1:], [][]byte{make([]byte, maxDeviceEntryLen+1)}
		}), ErrMalformed, "field 6: 2049 bytes"},
		{"entry without a bundle", wireMod(func(w *wireIdentity) { w.Entries[1].Bundle = nil }), ErrMalformed, "without a certificate or a bundle"},
		{"entry with a third field", wireMod(func(w *wireIdentity) {
			e := w.Entries[0]
			w.Entries, w.Devices = w.Entries[1:], [][]byte{build(fld{1, e.Cert}, fld{2, e.Bundle}, fld{3, uint64(1)})}
		}), ErrMalformed, "device entry: field 3"},
		{"device of another account", mod(func(r *IdentityRecord) {
			r.Devices[0] = testDevice(t, mallory, "mallory's", goldenNow)
			sortDevices(r)
		}), ErrInvalidRecord, "certified by another account"},
		{"certificate signed by another key", mod(func(r *IdentityRecord) {
			r.Devices[0] = forged
			sortDevices(r)
		}), ErrInvalidRecord, "bad signature"},
		{"kind 4", newer, wire.ErrNewerVersion, "record kind 4, this callsign reads up to 3"},
		{"kind 2", wireMod(func(w *wireIdentity) { w.Kind = kindHandle }), ErrMalformed, "not an identity record"},
		{"kind-1 prekeys in kind 3", wireMod(func(w *wireIdentity) { w.Revoked, w.Prekeys = nil, make([]byte, 100) }), ErrMalformed, `field 7: 100 bytes, want 8\.\.8`},
		{"kind-1 devices in kind 3", wireMod(func(w *wireIdentity) { w.Devices, w.Entries = certs(w), nil }), ErrMalformed, "field 6: device entry"},
		{"kind-3 entries in kind 1", wireMod(func(w *wireIdentity) { w.Kind, w.Revoked = kindIdentity, nil }), ErrMalformed, "device certificate"},
		{"kind-3 revoked ids in kind 1", wireMod(func(w *wireIdentity) { w.Kind, w.Devices, w.Entries = kindIdentity, certs(w), nil }),
			ErrMalformed, "field 7 unknown, repeated or out of order"},
	}
	for _, tc := range cases {
		_, err := c.identity(ikey, tc.value, goldenNow, 0)
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidRecord) || !regexp.MustCompile(tc.says).MatchString(fmt.Sprint(err)) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.want, tc.says)
		}
	}
	// A newer kind is refused as such wherever it is read.
	for _, open := range []func([]byte) (*IdentityRecord, error){openIdentity, c.openIdentity} {
		if _, err := open(newer); !errors.Is(err, wire.ErrNewerVersion) || !errors.Is(err, ErrMalformed) {
			t.Errorf("kind 4 opened: %v, want ErrMalformed and wire.ErrNewerVersion", err)
		}
	}
	e, _ := unmarshalEnvelope(newer, MaxIdentityRecordSize)
	if _, err := unmarshalIdentity(e.Payload); !errors.Is(err, wire.ErrNewerVersion) || !errors.Is(err, ErrMalformed) {
		t.Errorf("kind 4 decoded: %v, want ErrMalformed and wire.ErrNewerVersion", err)
	}
	if _, err := peekRecord(newer); !errors.Is(err, wire.ErrNewerVersion) {
		t.Errorf("kind 4 in a kept schedule: %v, want wire.ErrNewerVersion", err)
	}
	// What they were made from passes.
	if _, err := c.identity(ikey, mustSealIdentity(t, k, good), goldenNow, 0); err != nil {
		t.Fatalf("the record all these were made from is refused: %v", err)
	}
}

// TestIdentityKindOneDuplicates: the rules on devices hold in kind 1 too.
func TestIdentityKindOneDuplicates(t *testing.T) {
	c := newChecker(func() time.Time { return goldenNow }, identity.TestPoW)
	k, r := goldenIdentity(t)
	ikey := identityKey(k.Public().ID())
	d := r.Devices[0]
	x2 := sha256.Sum256([]byte("x25519/other"))
	for _, tc := range []struct {
		name   string
		second identity.DeviceCert
		says   string
	}{
		{"peer id", issueDevice(t, k, d.PeerID, x2[:], goldenNow), "share a peer id"},
		{"X25519 key", issueDevice(t, k, []byte("other peer"), d.X25519, goldenNow), "share an X25519 key"},
	} {
		cp := *r
		cp.Devices = []identity.DeviceCert{d, tc.second}
		if _, err := c.identity(ikey, signRecord(t, k, &cp), goldenNow, 0); !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("kind 1, two devices with one %s: %v", tc.name, err)
		}
		if _, err := sealIdentity(k, &cp); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("kind 1, two devices with one %s sealed: %v", tc.name, err)
		}
	}
}

// TestIdentityKindOneFieldSeven: field 7 is a kind-1 record's one prekeys
// blob and a kind-3 record's revoked ids; neither reads as the other.
func TestIdentityKindOneFieldSeven(t *testing.T) {
	c := newChecker(func() time.Time { return goldenNow }, identity.TestPoW)
	k, r := goldenIdentity(t)
	ikey := identityKey(k.Public().ID())
	// A kind-1 blob of a revoked id's size is prekeys, not a revocation.
	id := r.Devices[0].DeviceID()
	r.Prekeys = id[:]
	got, err := c.identity(ikey, mustSealIdentity(t, k, r), goldenNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.MultiDevice() || got.Revoked != nil || !bytes.Equal(got.Bundle(0), id[:]) {
		t.Fatalf("kind-1 field 7 read as revoked ids: %+v", got)
	}
	// Kind 1's field 7 is singular: two of them are not a list.
	w, err := r.toWire()
	if err != nil {
		t.Fatal(err)
	}
	p := w.marshal()
	at := bytes.Index(p, append([]byte{0x3a, 0x08}, id[:]...))
	if at < 0 {
		t.Fatal("field 7 not found")
	}
	p = slices.Insert(p, at, p[at:at+10]...)
	if _, err := c.identity(ikey, signPayload(k, p), goldenNow, 0); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "field 7") {
		t.Errorf("kind 1 with two field-7 values: %v, want ErrMalformed", err)
	}
}

// TestIdentityV2Size: eight devices with bundles of the largest size and
// 32 revoked ids fit the 16 KiB envelope beside a typical account's
// mailboxes, relays, handles and name; filling the rest of what the record
// may hold does not, and sealIdentity says so.
func TestIdentityV2Size(t *testing.T) {
	k, g := goldenIdentity(t)
	devs, revoked := make([]string, maxDevices), make([]string, maxRevoked)
	for i := range devs {
		devs[i] = fmt.Sprint("device-", i)
	}
	for i := range revoked {
		revoked[i] = fmt.Sprint("revoked-", i)
	}
	r := identityV2(t, k, goldenNow, maxBundleLen, devs, revoked)
	r.Mailboxes, r.Relays, r.Handles, r.Attestations = g.Mailboxes, g.Relays, g.Handles, g.Attestations
	r.DisplayName = strings.Repeat("n", maxDisplayNameLen)
	raw, err := sealIdentity(k, r)
	if err != nil {
		t.Fatalf("8 full devices and 32 revoked: %v", err)
	}
	if len(r.Devices[0].Marshal()) < 180 {
		t.Fatalf("certificate of %d bytes, not a real one's size", len(r.Devices[0].Marshal()))
	}
	c := newChecker(func() time.Time { return goldenNow }, identity.TestPoW)
	if _, err := c.identity(identityKey(k.Public().ID()), raw, goldenNow, 0); err != nil {
		t.Fatalf("the largest multi-device record is refused: %v", err)
	}
	t.Logf("8 full devices, 32 revoked: %d bytes, %d left", len(raw), MaxIdentityRecordSize-len(raw))

	r.Relays = nil
	for range maxPeerAddrs {
		r.Relays = append(r.Relays, ma.StringCast("/dns4/"+strings.Repeat("r", 480)+"/tcp/1"))
	}
	if _, err := sealIdentity(k, r); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("8 full devices, 32 revoked and 8 long relays: %v, want ErrTooLarge", err)
	}
}

// TestSelectAcrossKinds: records of both kinds of one account are ordered
// by seq, whichever kind has it.
func TestSelectAcrossKinds(t *testing.T) {
	k, one := goldenIdentity(t)
	_, three := goldenIdentityV2(t)
	v := identityValidator{c: newChecker(func() time.Time { return goldenNow }, identity.TestPoW)}
	seal := func(r *IdentityRecord, seq uint64) []byte {
		cp := *r
		cp.Seq = seq
		return mustSealIdentity(t, k, &cp)
	}
	for _, tc := range []struct {
		name       string
		best, less []byte
	}{
		{"kind 3 with the higher seq", seal(three, 8), seal(one, 7)},
		{"kind 1 with the higher seq", seal(one, 9), seal(three, 8)},
	} {
		for _, vals := range [][][]byte{{tc.best, tc.less}, {tc.less, tc.best}} {
			if i, err := v.Select("", vals); err != nil || !bytes.Equal(vals[i], tc.best) {
				t.Errorf("%s: Select picked %d (%v)", tc.name, i, err)
			}
		}
	}
	// Same seq and issue time: the choice is the same whatever the order.
	a, b := seal(one, 8), seal(three, 8)
	i, _ := v.Select("", [][]byte{a, b})
	j, _ := v.Select("", [][]byte{b, a})
	if i == j {
		t.Error("Select across kinds at one seq depends on argument order")
	}
}

// TestKeepAcceptsKindThree: a keeper takes a member's schedule of kind-3
// records, and reads their seqs back from its store.
func TestKeepAcceptsKindThree(t *testing.T) {
	tn := newTestNet(t, 2, netOpts{})
	keeper := tn.nodes[1]
	now := tn.clock.Now().Truncate(time.Millisecond)
	k := key(t, "multi")
	r := identityV2(t, k, now, 100, []string{"laptop", "phone"}, []string{"tablet"})
	var recs []KeptRecord
	for i := range 3 {
		cp := *r
		cp.Seq, cp.Issued = uint64(10+i), now.Add(time.Duration(i)*KeepStep)
		cp.Expires = cp.Issued.Add(MaxTTL)
		raw := mustSealIdentity(t, k, &cp)
		if got := recordSeq(raw); got != cp.Seq {
			t.Fatalf("recordSeq of a kind-3 record: %d, want %d", got, cp.Seq)
		}
		recs = append(recs, KeptRecord{Key: identityKey(k.Public().ID()), Raw: raw})
	}
	req, err := SignKeepRequest(k, &KeepRequest{Created: now, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := keeper.AcceptKeep(context.Background(), req); err != nil || n != 3 {
		t.Fatalf("AcceptKeep of kind-3 records: %d, %v", n, err)
	}
}
