package dht

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protowire"
)

var goldenNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// goldenIdentity is a fully populated identity record from fixed seeds.
func goldenIdentity(t testing.TB) (*identity.AccountKey, *IdentityRecord) {
	k := key(t, "golden")
	r := testIdentity(t, k, goldenNow)
	r.Seq = 7
	r.Mailboxes = []ma.Multiaddr{ma.StringCast("/ip4/192.0.2.1/tcp/4001")}
	r.Relays = []ma.Multiaddr{ma.StringCast("/ip6/2001:db8::1/udp/4001/quic-v1")}
	r.Handles = []string{"golden", identity.SelfCertHandle("golden", k.Public())}
	r.Attestations = [][]byte{[]byte("attest")}
	return k, r
}

func goldenHandle(t testing.TB) (*identity.AccountKey, *HandleRecord) {
	k := key(t, "golden")
	return k, &HandleRecord{Name: "golden", Owner: k.Public(), Seq: 3, ClaimedAt: goldenNow.Add(-time.Hour),
		Issued: goldenNow, Expires: goldenNow.Add(72 * time.Hour), Nonce: solvePoW(t, "golden", k.Public())}
}

func mustSealIdentity(t testing.TB, k *identity.AccountKey, r *IdentityRecord) []byte {
	t.Helper()
	b, err := sealIdentity(k, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSealHandle(t testing.TB, k *identity.AccountKey, r *HandleRecord) []byte {
	t.Helper()
	b, err := sealHandle(k, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	goldenHandleHex = "0a4508021206676f6c64656e1a2066d1440bf47c23f83a97762da35aa5891d80734947dfbac2f7bc1694a46116902003" +
		"2880b7b8c8ca3330809494caca333880bce0c5cb3340111240a3f47fc48c76e3122b2e4476ff80f6a14daa646d7581e2" +
		"d905f39b9a3e02d8671c91d45f223912fc6d7dac2fe0ad3188b5b229564478ec499258f8e28b878300"
	goldenIdentityHex = "0a93030801122066d1440bf47c23f83a97762da35aa5891d80734947dfbac2f7bc1694a4611690180720809494caca33" +
		"2880bce0c5cb3332a1010a2066d1440bf47c23f83a97762da35aa5891d80734947dfbac2f7bc1694a4611690120d7065" +
		"65722d63736131646932701a20aa70d995166a778082db822bd1848126c44d05918a9d6f5beb143b036995fc0e20b0b8" +
		"90cd0628c0eeaece063240f7fd83543ca35d83390c83f2397c96768eb2504689efd44fb2e859f3974a4463ff3921c32c" +
		"1096f64b08e6a62dda8b342803e2696a54d1187434335ce5de4b093a6442424242424242424242424242424242424242" +
		"424242424242424242424242424242424242424242424242424242424242424242424242424242424242424242424242" +
		"424242424242424242424242424242424242424242424242424242424242424242420804c0000201060fa14a17292001" +
		"0db800000000000000000000000191020fa1cd03520d546573742063736131646932705a06676f6c64656e5a11676f6c" +
		"64656e7e3372347371616a61786d62066174746573741240fa5250564a8ecd1a6cb8ea77e0e18a4723c228dc55a6dbcf" +
		"02b8d92ce1d3ec720578cb98f14cba256477decf96a1140bb7ffd2c2565eeb3028ff92415c0d9c0a"
)

func TestGoldenVectors(t *testing.T) {
	k, h := goldenHandle(t)
	hraw := mustSealHandle(t, k, h)
	if got := hex.EncodeToString(hraw); got != goldenHandleHex {
		t.Errorf("handle record encoding changed:\n got %s\nwant %s", got, goldenHandleHex)
	}
	k, id := goldenIdentity(t)
	iraw := mustSealIdentity(t, k, id)
	if got := hex.EncodeToString(iraw); got != goldenIdentityHex {
		t.Errorf("identity record encoding changed:\n got %s\nwant %s", got, goldenIdentityHex)
	}
}

func TestRoundTrip(t *testing.T) {
	k, h := goldenHandle(t)
	got, err := openHandle(mustSealHandle(t, k, h))
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != h.Name || !got.Owner.Equal(h.Owner) || got.Seq != h.Seq || !got.ClaimedAt.Equal(h.ClaimedAt) ||
		!got.Issued.Equal(h.Issued) || !got.Expires.Equal(h.Expires) || got.Nonce != h.Nonce {
		t.Fatalf("handle round trip: %+v != %+v", got, h)
	}
	k, id := goldenIdentity(t)
	raw := mustSealIdentity(t, k, id)
	gi, err := openIdentity(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustSealIdentity(t, k, gi), raw) {
		t.Fatal("identity re-encoding differs")
	}
	if gi.Seq != 7 || gi.DisplayName != id.DisplayName || len(gi.Devices) != 1 || !gi.Mailboxes[0].Equal(id.Mailboxes[0]) ||
		!gi.Relays[0].Equal(id.Relays[0]) || len(gi.Handles) != 2 || string(gi.Attestations[0]) != "attest" ||
		!bytes.Equal(gi.Prekeys, id.Prekeys) || !gi.Devices[0].Account.Equal(k.Public()) {
		t.Fatalf("identity round trip: %+v", gi)
	}
}

type fld struct {
	num protowire.Number
	v   any // uint64, string or []byte
}

func build(fs ...fld) []byte {
	var b []byte
	for _, f := range fs {
		switch v := f.v.(type) {
		case uint64:
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, v)
		case string:
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			b = protowire.AppendString(b, v)
		case []byte:
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			b = protowire.AppendBytes(b, v)
		}
	}
	return b
}

func TestStrictDecoder(t *testing.T) {
	k, h := goldenHandle(t)
	owner := k.Public().Bytes()
	ms := uint64(goldenNow.UnixMilli())
	valid := []fld{{1, uint64(2)}, {2, "golden"}, {3, owner}, {4, uint64(3)}, {5, ms - 1}, {6, ms}, {7, ms + 1}, {8, h.Nonce}}
	if _, err := unmarshalHandle(build(valid...)); err != nil {
		t.Fatalf("valid payload refused: %v", err)
	}
	with := func(edit func([]fld) []fld) []byte {
		return build(edit(append([]fld(nil), valid...))...)
	}
	enc := build(valid...)
	cases := map[string][]byte{
		"empty":            nil,
		"no kind":          with(func(f []fld) []fld { return f[1:] }),
		"wrong kind":       with(func(f []fld) []fld { f[0].v = uint64(1); return f }),
		"out of order":     with(func(f []fld) []fld { f[3], f[4] = f[4], f[3]; return f }),
		"duplicate":        with(func(f []fld) []fld { return append(f[:4], f[3:]...) }),
		"unknown field":    with(func(f []fld) []fld { return append(f, fld{9, uint64(1)}) }),
		"wrong wire type":  with(func(f []fld) []fld { f[3].v = []byte{3}; return f }),
		"explicit zero":    with(func(f []fld) []fld { f[3].v = uint64(0); return f }),
		"empty string":     with(func(f []fld) []fld { f[1].v = ""; return f }),
		"invalid utf8":     with(func(f []fld) []fld { f[1].v = "gol\xffden"; return f }),
		"long name":        with(func(f []fld) []fld { f[1].v = string(bytes.Repeat([]byte("a"), maxHandleLen+1)); return f }),
		"truncated":        enc[:len(enc)-1],
		"trailing garbage": append(bytes.Clone(enc), 0x00),
		"non-minimal tag":  append([]byte{0x88, 0x00}, enc[1:]...),
		"non-minimal varint": func() []byte {
			b := []byte{0x08, 0x82, 0x00} // kind 2 in two bytes
			return append(b, enc[2:]...)
		}(),
		"non-minimal length": func() []byte {
			b := append([]byte{0x08, 0x02, 0x12, 0x86, 0x00}, "golden"...)
			return append(b, enc[10:]...)
		}(),
		"field number zero": append([]byte{0x00}, enc...),
		"group wire type":   append(bytes.Clone(enc), 0x4b, 0x4c),
	}
	for name, b := range cases {
		if _, err := unmarshalHandle(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}

	// Identity payload caps.
	_, id := goldenIdentity(t)
	w, err := id.toWire()
	if err != nil {
		t.Fatal(err)
	}
	tooMany := *w
	for range maxDevices {
		tooMany.Devices = append(tooMany.Devices, w.Devices[0])
	}
	if _, err := unmarshalIdentity(tooMany.marshal()); !errors.Is(err, ErrMalformed) {
		t.Errorf("9 devices: %v", err)
	}
	split := w.marshal()
	split = append(split, build(fld{6, w.Devices[0]})...) // devices not contiguous
	if _, err := unmarshalIdentity(split); !errors.Is(err, ErrMalformed) {
		t.Errorf("non-contiguous repeated field: %v", err)
	}
	bigPrekeys := *w
	bigPrekeys.Prekeys = make([]byte, maxPrekeysLen+1)
	if _, err := unmarshalIdentity(bigPrekeys.marshal()); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized prekeys: %v", err)
	}
	emptyElem := *w
	emptyElem.Attestations = [][]byte{{}}
	if _, err := unmarshalIdentity(emptyElem.marshal()); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty repeated element: %v", err)
	}
	badAddr := *w
	badAddr.Mailboxes = [][]byte{{0xff, 0xff}}
	if r, err := unmarshalIdentity(badAddr.marshal()); err == nil {
		if _, err := r.fromWire(); !errors.Is(err, ErrMalformed) {
			t.Errorf("bad multiaddr: %v", err)
		}
	}

	// Envelope.
	env := mustSealHandle(t, k, h)
	e, err := unmarshalEnvelope(env, MaxHandleRecordSize)
	if err != nil {
		t.Fatal(err)
	}
	envCases := map[string][]byte{
		"no signature":   build(fld{1, e.Payload}),
		"no payload":     build(fld{2, e.Signature}),
		"swapped":        build(fld{2, e.Signature}, fld{1, e.Payload}),
		"extra field":    append(bytes.Clone(env), build(fld{3, uint64(1)})...),
		"long signature": build(fld{1, e.Payload}, fld{2, make([]byte, maxSigLen+1)}),
		"oversized":      append(bytes.Clone(env), make([]byte, MaxHandleRecordSize)...),
	}
	for name, b := range envCases {
		if _, err := unmarshalEnvelope(b, MaxHandleRecordSize); !errors.Is(err, ErrMalformed) {
			t.Errorf("envelope %s: err = %v, want ErrMalformed", name, err)
		}
	}
	// A handle envelope is not an identity record and vice versa.
	if _, err := openIdentity(env); !errors.Is(err, ErrMalformed) {
		t.Errorf("handle opened as identity: %v", err)
	}
}

// resign replaces the payload of a handle record and signs it with k.
func resign(k *identity.AccountKey, r *HandleRecord) []byte {
	w, err := r.toWire()
	if err != nil {
		panic(err)
	}
	p := w.marshal()
	return (&wireEnvelope{Payload: p, Signature: k.Sign(identity.LabelHandleRecord, p)}).marshal()
}

func TestValidateHandle(t *testing.T) {
	c := newChecker(func() time.Time { return goldenNow }, identity.TestPoW)
	k, h := goldenHandle(t)
	mallory := key(t, "mallory")
	_, goodKey, _, _ := parseName("golden")
	good := mustSealHandle(t, k, h)
	if _, err := c.handle(goodKey, good, goldenNow, 0); err != nil {
		t.Fatalf("valid record refused: %v", err)
	}
	mod := func(f func(r *HandleRecord)) []byte {
		r := *h
		f(&r)
		return resign(k, &r)
	}
	other := *h
	other.Name = "silver"
	other.Nonce = solvePoW(t, "silver", k.Public())
	otherRaw := mustSealHandle(t, k, &other)
	oe, _ := unmarshalEnvelope(otherRaw, MaxHandleRecordSize)
	ge, _ := unmarshalEnvelope(good, MaxHandleRecordSize)
	badNonce := h.Nonce + 1
	for identity.VerifyHandlePoW(identity.TestPoW, "golden", k.Public(), badNonce) {
		badNonce++
	}
	sc := identity.SelfCertHandle("golden", k.Public())
	scMallory := identity.SelfCertHandle("golden", mallory.Public())
	_, scKey, _, _ := parseName(sc)
	_, scMalloryKey, _, _ := parseName(scMallory)
	scRec := func(name string, nonce uint64) []byte {
		r := *h
		r.Name, r.Nonce = name, nonce
		return resign(k, &r)
	}

	cases := []struct {
		name  string
		key   string
		value []byte
		want  error
	}{
		{"forged signature", goodKey, (&wireEnvelope{Payload: ge.Payload, Signature: mallory.Sign(identity.LabelHandleRecord, ge.Payload)}).marshal(), ErrBadSignature},
		{"wrong label", goodKey, (&wireEnvelope{Payload: ge.Payload, Signature: k.Sign(identity.LabelIdentityRecord, ge.Payload)}).marshal(), ErrBadSignature},
		{"altered field", goodKey, func() []byte {
			p := bytes.Clone(ge.Payload)
			p[len(p)-3] ^= 1 // inside the expiry
			return (&wireEnvelope{Payload: p, Signature: ge.Signature}).marshal()
		}(), ErrBadSignature},
		{"another record's signature", goodKey, (&wireEnvelope{Payload: ge.Payload, Signature: oe.Signature}).marshal(), ErrBadSignature},
		{"stored under another name's key", goodKey, otherRaw, ErrWrongKey},
		{"lookalike key", handlePrefix + "go1den", good, ErrWrongKey},
		{"identity namespace", identityPrefix + "golden", good, ErrWrongKey},
		{"wrong pow", goodKey, mod(func(r *HandleRecord) { r.Nonce = badNonce }), ErrBadPoW},
		{"no pow", goodKey, mod(func(r *HandleRecord) { r.Nonce = 0 }), ErrInvalidRecord},
		{"expired", goodKey, mod(func(r *HandleRecord) {
			r.Issued = goldenNow.Add(-2 * time.Hour)
			r.Expires = goldenNow.Add(-time.Hour)
			r.ClaimedAt = r.Issued
		}), ErrExpired},
		{"future dated", goodKey, mod(func(r *HandleRecord) {
			r.Issued = goldenNow.Add(ClockSkew + time.Second)
			r.Expires = r.Issued.Add(time.Hour)
		}), ErrFutureDated},
		{"lifetime too long", goodKey, mod(func(r *HandleRecord) { r.Expires = r.Issued.Add(MaxTTL + time.Millisecond) }), ErrInvalidRecord},
		{"expires before issued", goodKey, mod(func(r *HandleRecord) { r.Expires = r.Issued }), ErrInvalidRecord},
		{"claimed after issued", goodKey, mod(func(r *HandleRecord) { r.ClaimedAt = r.Issued.Add(time.Millisecond) }), ErrInvalidRecord},
		{"name not normalised", handlePrefix + identity.HandleKey("golden"), mod(func(r *HandleRecord) { r.Name = "Golden" }), ErrInvalidRecord},
		{"oversized", goodKey, append(bytes.Clone(good), make([]byte, MaxHandleRecordSize)...), ErrMalformed},
		{"self-cert suffix of another key", scMalloryKey, scRec(scMallory, 0), ErrInvalidRecord},
		{"self-cert with nonce", scKey, scRec(sc, 1), ErrInvalidRecord},
		{"self-cert under a plain name's key", handlePrefix + identity.HandleKey("golden"), scRec(sc, 0), ErrWrongKey},
	}
	for _, tc := range cases {
		_, err := c.handle(tc.key, tc.value, goldenNow, 0)
		if err == nil || !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := c.handle(scKey, scRec(sc, 0), goldenNow, 0); err != nil {
		t.Errorf("valid self-cert record refused: %v", err)
	}
	// Within grace, an expired record still passes when grace is asked for.
	exp := mod(func(r *HandleRecord) {
		r.Issued = goldenNow.Add(-2 * time.Hour)
		r.Expires = goldenNow.Add(-time.Hour)
		r.ClaimedAt = r.Issued
	})
	if _, err := c.handle(goodKey, exp, goldenNow, 2*time.Hour); err != nil {
		t.Errorf("expired within grace: %v", err)
	}
	// The PoW cache makes repeated validation cheap and stays bounded.
	if c.powOK.len() == 0 || c.powOK.len() > powCacheSize {
		t.Errorf("pow cache size %d", c.powOK.len())
	}
}

func TestValidateIdentity(t *testing.T) {
	c := newChecker(func() time.Time { return goldenNow }, identity.TestPoW)
	k, id := goldenIdentity(t)
	mallory := key(t, "mallory")
	ikey := identityKey(k.Public().ID())
	if _, err := c.identity(ikey, mustSealIdentity(t, k, id), goldenNow, 0); err != nil {
		t.Fatalf("valid identity refused: %v", err)
	}
	mod := func(f func(r *IdentityRecord)) []byte {
		r := *id
		f(&r)
		w, err := r.toWire()
		if err != nil {
			t.Fatal(err)
		}
		p := w.marshal()
		return (&wireEnvelope{Payload: p, Signature: k.Sign(identity.LabelIdentityRecord, p)}).marshal()
	}
	malloryDev := testIdentity(t, mallory, goldenNow).Devices[0]
	cases := []struct {
		name  string
		key   string
		value []byte
		want  error
	}{
		{"another account's key", identityKey(mallory.Public().ID()), mustSealIdentity(t, k, id), ErrWrongKey},
		{"not an account id", identityPrefix + "alice", mustSealIdentity(t, k, id), ErrWrongKey},
		{"no devices", ikey, mod(func(r *IdentityRecord) { r.Devices = nil }), ErrInvalidRecord},
		{"device of another account", ikey, mod(func(r *IdentityRecord) { r.Devices = append(r.Devices, malloryDev) }), ErrInvalidRecord},
		{"expired device", ikey, mod(func(r *IdentityRecord) {
			d, _ := identity.IssueDeviceCert(k, []byte("p"), bytes.Repeat([]byte{1}, 32), goldenNow.Add(-48*time.Hour), goldenNow.Add(-time.Hour))
			r.Devices = []identity.DeviceCert{d}
		}), ErrInvalidRecord},
		{"control character", ikey, mod(func(r *IdentityRecord) { r.DisplayName = "a\x07b" }), ErrInvalidRecord},
		{"handle not normalised", ikey, mod(func(r *IdentityRecord) { r.Handles = []string{"Golden"} }), ErrInvalidRecord},
		{"duplicate handle", ikey, mod(func(r *IdentityRecord) { r.Handles = []string{"golden", "golden"} }), ErrInvalidRecord},
		{"another key's self-cert", ikey, mod(func(r *IdentityRecord) { r.Handles = []string{identity.SelfCertHandle("x", mallory.Public())} }), ErrInvalidRecord},
		{"expired", ikey, mod(func(r *IdentityRecord) {
			r.Issued = goldenNow.Add(-3 * time.Hour)
			r.Expires = goldenNow.Add(-time.Hour)
		}), ErrExpired},
		{"future", ikey, mod(func(r *IdentityRecord) { r.Issued = goldenNow.Add(time.Hour); r.Expires = goldenNow.Add(2 * time.Hour) }), ErrFutureDated},
		{"over 7 days", ikey, mod(func(r *IdentityRecord) { r.Expires = r.Issued.Add(MaxTTL + time.Second) }), ErrInvalidRecord},
		{"forged", ikey, func() []byte {
			e, _ := unmarshalEnvelope(mustSealIdentity(t, k, id), MaxIdentityRecordSize)
			return (&wireEnvelope{Payload: e.Payload, Signature: mallory.Sign(identity.LabelIdentityRecord, e.Payload)}).marshal()
		}(), ErrBadSignature},
	}
	for _, tc := range cases {
		_, err := c.identity(tc.key, tc.value, goldenNow, 0)
		if err == nil || !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	big := *id
	big.Prekeys = make([]byte, maxPrekeysLen)
	big.Attestations = [][]byte{make([]byte, 512), make([]byte, 512), make([]byte, 512), make([]byte, 512), make([]byte, 512), make([]byte, 512), make([]byte, 512), make([]byte, 512)}
	big.Mailboxes = nil
	for range 8 {
		big.Mailboxes = append(big.Mailboxes, ma.StringCast("/dns4/"+string(bytes.Repeat([]byte("m"), 480))+"/tcp/1"))
		big.Relays = append(big.Relays, ma.StringCast("/dns4/"+string(bytes.Repeat([]byte("r"), 480))+"/tcp/1"))
	}
	if _, err := sealIdentity(k, &big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized identity: %v", err)
	}
}

func TestSelect(t *testing.T) {
	alice, mallory := key(t, "alice"), key(t, "mallory")
	now := goldenNow
	_, a1 := handleRec(t, alice, "golden", 1, now.Add(-time.Hour), now, time.Hour)
	_, a2 := handleRec(t, alice, "golden", 2, now.Add(-time.Hour), now, time.Hour)
	_, a2later := handleRec(t, alice, "golden", 2, now.Add(-time.Hour), now.Add(time.Second), time.Hour)
	_, mOlder := handleRec(t, mallory, "golden", 9, now.Add(-2*time.Hour), now, time.Hour)
	_, mNewer := handleRec(t, mallory, "golden", 9, now.Add(-time.Minute), now, time.Hour)
	c := newChecker(func() time.Time { return goldenNow }, identity.TestPoW)
	v := handleValidator{c: c}
	pick := func(vals ...[]byte) []byte {
		i, err := v.Select("", vals)
		if err != nil {
			t.Fatal(err)
		}
		// Order independence: the reversed list picks the same value.
		rev := append([][]byte(nil), vals...)
		for l, r := 0, len(rev)-1; l < r; l, r = l+1, r-1 {
			rev[l], rev[r] = rev[r], rev[l]
		}
		j, _ := v.Select("", rev)
		if !bytes.Equal(vals[i], rev[j]) {
			t.Fatalf("Select depends on argument order")
		}
		return vals[i]
	}
	if !bytes.Equal(pick(a1, a2), a2) {
		t.Error("same owner: higher seq must win")
	}
	if !bytes.Equal(pick(a2, a2later), a2later) {
		t.Error("same owner, same seq: later issued must win")
	}
	if !bytes.Equal(pick(a2, mNewer), a2) {
		t.Error("different owners: the older claim must win")
	}
	if !bytes.Equal(pick(a2, mOlder), mOlder) {
		t.Error("different owners: a backdated claim wins Select (which is why Select is not trusted)")
	}
	if !bytes.Equal(pick([]byte("junk"), a1), a1) {
		t.Error("undecodable values must lose")
	}
	if _, err := v.Select("", [][]byte{[]byte("junk")}); err == nil {
		t.Error("Select of junk only must fail")
	}

	k, id := goldenIdentity(t)
	r1 := mustSealIdentity(t, k, id)
	id2 := *id
	id2.Seq = 8
	r2 := mustSealIdentity(t, k, &id2)
	iv := identityValidator{c: c}
	for _, vals := range [][][]byte{{r1, r2}, {r2, r1}} {
		if i, err := iv.Select("", vals); err != nil || !bytes.Equal(vals[i], r2) {
			t.Errorf("identity: highest seq must win")
		}
	}
}

// TestCheckerRemembersOpenedRecords: a record opened once is opened again
// from the checker's memory as the caller's own copy, and bytes that fail
// to open keep failing.
func TestCheckerRemembersOpenedRecords(t *testing.T) {
	c := newChecker(func() time.Time { return goldenNow }, identity.TestPoW)
	_, raw := handleRec(t, key(t, "alice"), "golden", 3, goldenNow.Add(-time.Hour), goldenNow, time.Hour)
	a, err := c.openHandle(raw)
	if err != nil {
		t.Fatal(err)
	}
	a.Seq = 99 // the caller's copy
	b, err := c.openHandle(raw)
	if err != nil || b.Seq != 3 {
		t.Fatalf("second open: seq %d, %v; want 3", b.Seq, err)
	}
	if c.opened.len() != 1 {
		t.Errorf("%d records remembered, want 1", c.opened.len())
	}
	// The same bytes are not an identity record, remembered or not.
	if _, err := c.openIdentity(raw); err == nil {
		t.Error("a handle record opened as an identity record")
	}
	bad := bytes.Clone(raw)
	bad[len(bad)-1] ^= 1 // the signature
	for range 2 {
		if _, err := c.openHandle(bad); !errors.Is(err, ErrBadSignature) {
			t.Errorf("tampered record: %v, want ErrBadSignature", err)
		}
	}
}
