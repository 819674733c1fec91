package call

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/turn"
)

var testID = callID{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

const hexID = "000102030405060708090a0b0c0d0e0f"

// Golden vectors: the exact bytes of each kind of signal.
var goldenSignals = []struct {
	name string
	sig  signal
	hex  string
}{
	{"invite", signal{typ: sigInvite, id: testID, sdp: "v=0\r\n"}, "0801" + "1210" + hexID + "1a05763d300d0a"},
	{"ringing", signal{typ: sigRinging, id: testID}, "0802" + "1210" + hexID},
	{"accept", signal{typ: sigAccept, id: testID, sdp: "v=0\r\n"}, "0803" + "1210" + hexID + "1a05763d300d0a"},
	{"candidate", signal{typ: sigCandidate, id: testID, cand: `{"a":1}`}, "0804" + "1210" + hexID + "2207" + hex.EncodeToString([]byte(`{"a":1}`))},
	{"decline", signal{typ: sigDecline, id: testID, reason: reasonDeclined}, "0805" + "1210" + hexID + "2801"},
	{"unavailable", signal{typ: sigDecline, id: testID, reason: reasonUnavailable}, "0805" + "1210" + hexID + "2802"},
	{"decline missed", signal{typ: sigDecline, id: testID, reason: reasonMissed}, "0805" + "1210" + hexID + "2803"},
	{"busy", signal{typ: sigBusy, id: testID}, "0806" + "1210" + hexID},
	{"cancel", signal{typ: sigCancel, id: testID}, "0807" + "1210" + hexID},
	{"cancel missed", signal{typ: sigCancel, id: testID, reason: reasonMissed}, "0807" + "1210" + hexID + "2803"},
	{"cancel answered elsewhere", signal{typ: sigCancel, id: testID, reason: reasonElsewhere}, "0807" + "1210" + hexID + "800101"},
	{"cancel declined elsewhere", signal{typ: sigCancel, id: testID, reason: reasonDeclined}, "0807" + "1210" + hexID + "2801"},
	{"hangup", signal{typ: sigHangup, id: testID}, "0808" + "1210" + hexID},
	{"hangup failed", signal{typ: sigHangup, id: testID, reason: reasonFailed}, "0808" + "1210" + hexID + "2804"},
}

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestSignalGolden(t *testing.T) {
	for _, g := range goldenSignals {
		want := mustHex(t, g.hex)
		if got := g.sig.marshal(); !bytes.Equal(got, want) {
			t.Errorf("%s: marshal %x, want %s", g.name, got, g.hex)
		}
		got, err := decodeSignal(want)
		if err != nil {
			t.Errorf("%s: decode: %v", g.name, err)
			continue
		}
		if got != g.sig {
			t.Errorf("%s: decoded %+v, want %+v", g.name, got, g.sig)
		}
		typ, id, err := decodeHeader(want)
		if err != nil || typ != g.sig.typ || id != testID {
			t.Errorf("%s: header %v %x %v", g.name, typ, id, err)
		}
	}
}

// TestElsewhereReadByOlderBuilds: a cancel "answered elsewhere" is a plain
// cancel with addition 16, which a build that does not know it skips (it
// stops ringing: cancelled); reason 5, which builds of 2026-12-06 sent, is
// still read as answered elsewhere; addition 16 on anything but a plain
// cancel is malformed.
func TestElsewhereReadByOlderBuilds(t *testing.T) {
	b := signal{typ: sigCancel, id: testID, reason: reasonElsewhere}.marshal()
	// What a build without addition 16 reads: the fields it knows.
	d := newDecoder(b)
	typ, _ := readHeader(d)
	reason := d.Uint(fReason, uint64(reasonFailed))
	d.Version(fVersion, signalVersion)
	if err := d.End(); err != nil || typ != sigCancel || reason != uint64(reasonNone) || len(d.Skipped()) == 0 {
		t.Fatalf("an older build reads %v reason %d (%v), skipping %x; want a plain cancel", typ, reason, err, d.Skipped())
	}
	legacy := mustHex(t, "0807"+"1210"+hexID+"2805")
	if s, err := decodeSignal(legacy); err != nil || s.reason != reasonElsewhere || !bytes.Equal(s.marshal(), legacy) {
		t.Fatalf("reason 5: %+v %v, want answered elsewhere, re-encoded as sent", s, err)
	}
	for name, h := range map[string]string{
		"on a hangup":         "0808" + "1210" + hexID + "800101",
		"on a cancel, missed": "0807" + "1210" + hexID + "2803" + "800101",
		"with another value":  "0807" + "1210" + hexID + "800102",
	} {
		if _, err := decodeSignal(mustHex(t, h)); !errors.Is(err, ErrMalformed) {
			t.Errorf("addition 16 %s: %v, want malformed", name, err)
		}
	}
}

func TestSignalRejects(t *testing.T) {
	ring := "0802" + "1210" + hexID
	tests := map[string]string{
		"empty":                 "",
		"id first":              "1210" + hexID + "0802",
		"type only":             "0802",
		"unknown type":          "0809" + "1210" + hexID,
		"explicit zero type":    "0800" + "1210" + hexID,
		"non-minimal tag":       "880002" + "1210" + hexID,
		"non-minimal type":      "088200" + "1210" + hexID,
		"non-minimal id length": "0802" + "129000" + hexID,
		"short id":              "0802" + "120f" + hexID[:30],
		"long id":               "0802" + "1211" + hexID + "ff",
		"repeated id":           ring + "1210" + hexID,
		"unknown field":         ring + "3001",
		"wrong wire type":       "0802" + "1010",
		"reason before sdp":     "0801" + "1210" + hexID + "2801" + "1a01" + "76",
		"invite without sdp":    "0801" + "1210" + hexID,
		"ringing with sdp":      ring + "1a0176",
		"accept empty sdp":      "0803" + "1210" + hexID + "1a00",
		"candidate empty":       "0804" + "1210" + hexID + "2200",
		"candidate missing":     "0804" + "1210" + hexID,
		"decline no reason":     "0805" + "1210" + hexID,
		"decline failed":        "0805" + "1210" + hexID + "2804",
		"cancel unavailable":    "0807" + "1210" + hexID + "2802",
		"hangup unavailable":    "0808" + "1210" + hexID + "2802",
		"busy with reason":      "0806" + "1210" + hexID + "2801",
		"unknown reason":        "0805" + "1210" + hexID + "2805",
		"truncated sdp":         "0801" + "1210" + hexID + "1a05763d",
		"trailing byte":         ring + "00",
		"huge length":           "0801" + "1210" + hexID + "1affffffff0f",
	}
	for name, h := range tests {
		if _, err := decodeSignal(mustHex(t, h)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: decode error %v, want ErrMalformed", name, err)
		}
	}
	id := testID
	big := signal{typ: sigInvite, id: id, sdp: strings.Repeat("a", media.MaxSDPSize)}.marshal()
	if _, err := decodeSignal(big); err != nil {
		t.Errorf("largest SDP refused: %v", err)
	}
	tooBig := append(mustHex(t, "0801"+"1210"+hexID+"1a"), protowireVarint(media.MaxSDPSize+1)...)
	tooBig = append(tooBig, bytes.Repeat([]byte("a"), media.MaxSDPSize+1)...)
	if _, err := decodeSignal(tooBig); !errors.Is(err, ErrMalformed) {
		t.Errorf("SDP over the cap: %v", err)
	}
	bigCand := append(mustHex(t, "0804"+"1210"+hexID+"22"), protowireVarint(media.MaxCandidateSize+1)...)
	bigCand = append(bigCand, bytes.Repeat([]byte("a"), media.MaxCandidateSize+1)...)
	if _, err := decodeSignal(bigCand); !errors.Is(err, ErrMalformed) {
		t.Errorf("candidate over the cap: %v", err)
	}
	if _, _, err := decodeHeader(make([]byte, MaxSignalSize+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized payload header: %v", err)
	}
}

func protowireVarint(v uint64) []byte {
	var b []byte
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// TestHeaderIgnoresBody: the policy gate reads the header of an invite
// whatever garbage follows it.
func TestHeaderIgnoresBody(t *testing.T) {
	b := append(mustHex(t, "0801"+"1210"+hexID), 0xff, 0xff, 0xff)
	typ, id, err := decodeHeader(b)
	if err != nil || typ != sigInvite || id != testID {
		t.Fatalf("header of an invite with a bad body: %v %x %v", typ, id, err)
	}
	if _, err := decodeSignal(b); err == nil {
		t.Fatal("bad body decoded")
	}
}

func TestCallIDText(t *testing.T) {
	if testID.String() != hexID {
		t.Fatalf("String %s", testID)
	}
	for _, s := range []string{hexID, strings.ToUpper(hexID), hexID[:30], hexID + "00", "zz" + hexID[2:], ""} {
		id, ok := parseCallID(s)
		if want := s == hexID; ok != want || (ok && id != testID) {
			t.Errorf("parseCallID(%q) = %x, %v", s, id, ok)
		}
	}
}

var goldenCreds = turn.Credentials{
	Username: "1767225600:peer", Password: "cGFzc3dvcmQ=", Expires: time.Unix(1767225600, 0),
	URLs: []string{"turn:192.0.2.1:3478?transport=udp", "turn:[2001:db8::1]:3478?transport=tcp"},
}

const goldenCredsHex = "0a0f313736373232353630303a70656572" + "120c6347467a63336476636d513d" +
	"1880f2d6ca06" +
	"2221" + "7475726e3a3139322e302e322e313a333437383f7472616e73706f72743d756470" +
	"2225" + "7475726e3a5b323030313a6462383a3a315d3a333437383f7472616e73706f72743d746370"

func TestCredentialsGolden(t *testing.T) {
	b := encodeCredentials(goldenCreds)
	if hex.EncodeToString(b) != goldenCredsHex {
		t.Errorf("encode %x\nwant   %s", b, goldenCredsHex)
	}
	c, err := decodeCredentials(mustHex(t, goldenCredsHex))
	if err != nil {
		t.Fatal(err)
	}
	if c.Username != goldenCreds.Username || c.Password != goldenCreds.Password || !c.Expires.Equal(goldenCreds.Expires) ||
		strings.Join(c.URLs, " ") != strings.Join(goldenCreds.URLs, " ") {
		t.Errorf("decoded %+v", c)
	}
}

// goldenTURNRequest is a credential request from the account whose key
// has the seed 32 × 0x01.
const (
	goldenTURNAccount    = identity.AccountID("csa1plvh7e5fi2gljj7kv2obbjwizxkknj54isw6l6")
	goldenTURNRequestHex = "0a2a" + "63736131706c7668376535666932676c6a6a376b76326f62626a77697a786b6b6e6a3534697377366c36"
)

func TestTURNRequest(t *testing.T) {
	k, err := identity.AccountKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	if err != nil || k.Public().ID() != goldenTURNAccount {
		t.Fatalf("golden account %v %v", k, err)
	}
	if b := encodeTURNRequest(goldenTURNAccount); hex.EncodeToString(b) != goldenTURNRequestHex {
		t.Errorf("encode %x\nwant   %s", b, goldenTURNRequestHex)
	}
	if id, err := decodeTURNRequest(mustHex(t, goldenTURNRequestHex)); err != nil || id != goldenTURNAccount {
		t.Errorf("decode: %q %v", id, err)
	}
	golden := mustHex(t, goldenTURNRequestHex)
	typo := bytes.Clone(golden)
	typo[len(typo)-1] ^= 1
	for name, b := range map[string][]byte{
		"empty":           nil,
		"checksum typo":   typo,
		"upper case":      encodeTURNRequest(identity.AccountID(strings.ToUpper(string(goldenTURNAccount)))),
		"padded":          encodeTURNRequest(" " + goldenTURNAccount),
		"truncated":       golden[:20],
		"trailing field":  append(bytes.Clone(golden), 0x10, 0x01),
		"repeated":        append(bytes.Clone(golden), golden...),
		"wrong field":     append([]byte{0x12}, golden[1:]...),
		"wrong wire type": append([]byte{0x08}, golden[1:]...),
		"non-minimal len": append([]byte{0x0a, 0xaa, 0x00}, golden[2:]...),
		"oversized":       make([]byte, maxTURNRequest+1),
	} {
		if _, err := decodeTURNRequest(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestCredentialsRejects(t *testing.T) {
	mod := func(f func(*turn.Credentials)) []byte {
		c := goldenCreds
		c.URLs = append([]string(nil), c.URLs...)
		f(&c)
		return encodeCredentials(c)
	}
	golden := mustHex(t, goldenCredsHex)
	tests := map[string][]byte{
		"empty":           nil,
		"host name":       mod(func(c *turn.Credentials) { c.URLs[0] = "turn:relay.example.org:3478" }),
		"stun URL":        mod(func(c *turn.Credentials) { c.URLs[0] = "stun:192.0.2.1:3478" }),
		"other query":     mod(func(c *turn.Credentials) { c.URLs[0] = "turn:192.0.2.1:3478?x=y" }),
		"port zero":       mod(func(c *turn.Credentials) { c.URLs[0] = "turn:192.0.2.1:0" }),
		"port with zero":  mod(func(c *turn.Credentials) { c.URLs[0] = "turn:192.0.2.1:03478" }),
		"no port":         mod(func(c *turn.Credentials) { c.URLs[0] = "turn:192.0.2.1" }),
		"five URLs":       mod(func(c *turn.Credentials) { c.URLs = append(c.URLs, c.URLs[0], c.URLs[0], c.URLs[0]) }),
		"no URLs":         mod(func(c *turn.Credentials) { c.URLs = nil }),
		"no password":     mod(func(c *turn.Credentials) { c.Password = "" }),
		"long username":   mod(func(c *turn.Credentials) { c.Username = strings.Repeat("u", turn.MaxUsernameLen+1) }),
		"zero expiry":     mod(func(c *turn.Credentials) { c.Expires = time.Unix(0, 0) }),
		"trailing":        append(append([]byte(nil), golden...), 0),
		"password first":  append(mustHex(t, "120170"), golden...),
		"unknown field":   append(append([]byte(nil), golden...), 0x28, 0x01),
		"URL out of turn": append(append([]byte(nil), golden...), mustHex(t, "0a0178")...),
		"oversized":       make([]byte, maxCredentials+1),
	}
	for name, b := range tests {
		if _, err := decodeCredentials(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
