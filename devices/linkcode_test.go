package devices

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/internal/wire"
)

// fixedPeer is the peer id of the Ed25519 key whose seed is 32 bytes of b.
func fixedPeer(t testing.TB, b byte) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{b}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func fixedSecret(b byte) LinkSecret {
	s, err := LinkSecretFromBytes(bytes.Repeat([]byte{b}, LinkSecretSize))
	if err != nil {
		panic(err)
	}
	return s
}

var (
	codeExpires = time.Unix(1796083200, 0) // 2026-12-01T00:10:00Z
	codeNow     = codeExpires.Add(-5 * time.Minute)
)

func testCode(t testing.TB) LinkCode {
	t.Helper()
	relay := fixedPeer(t, 2)
	c, err := NewLinkCode(fixedPeer(t, 1), []ma.Multiaddr{
		ma.StringCast("/ip4/198.51.100.7/udp/4001/quic-v1"),
		ma.StringCast("/ip4/203.0.113.9/tcp/4001/p2p/" + relay.String() + "/p2p-circuit"),
	}, fixedSecret(0x5a), codeExpires)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sameCode(a, b LinkCode) bool {
	if a.Peer != b.Peer || !a.Secret.Equal(b.Secret) || !a.Expires.Equal(b.Expires) || len(a.Addrs) != len(b.Addrs) {
		return false
	}
	for i := range a.Addrs {
		if !a.Addrs[i].Equal(b.Addrs[i]) {
			return false
		}
	}
	return true
}

// TestLinkCode: the golden text (codes pass between versions, so the form
// only grows by additions), a round trip, any case and white space.
func TestLinkCode(t *testing.T) {
	c := testCode(t)
	const want = "callsign:link/citaajaiaejcbcui4poxicprsx6vfwznhs5f24wkm4e36hmucin7g5eiag2a6324difqjrrtmqdzc" +
		"aqpuhgqggrtatfqa4ijayh2djideyacicabciqicolxb2uh2f27k2rvizwdjr7mzs4nrki3j3rxujo7md23r7e3hffcairb" +
		"aws2ljnfuws2ljnfuws2ljnfuwriqcolrwago5jcrky"
	if got := c.String(); got != want {
		t.Fatalf("code =\n%s\nwant\n%s", got, want)
	}
	for _, s := range []string{want, strings.ToUpper(want), "  " + want + "\n"} {
		got, err := ParseLinkCode(s, codeNow)
		if err != nil || !sameCode(got, c) {
			t.Fatalf("ParseLinkCode(%q) = %+v, %v", s, got, err)
		}
	}
}

// TestLinkCodeAdditions: a newer E's additions (fields 16 and up) are
// skipped, kept, and written back.
func TestLinkCodeAdditions(t *testing.T) {
	c := testCode(t)
	var e wire.Encoder
	e.Bytes(17, []byte("a newer field"))
	c.extra = e.B
	got, err := ParseLinkCode(c.String(), codeNow)
	if err != nil || !sameCode(got, c) {
		t.Fatalf("code with additions: %+v, %v", got, err)
	}
	if got.String() != c.String() {
		t.Fatal("additions not written back")
	}
	// An unknown core field is refused.
	var core wire.Encoder
	core.Bytes(9, []byte("x"))
	c.extra = core.B
	if _, err := ParseLinkCode(c.String(), codeNow); !errors.Is(err, ErrLinkCode) {
		t.Fatalf("unknown core field: %v", err)
	}
}

// TestLinkCodeVersion2: a code of a newer version is refused as "update
// callsign", not as garbage.
func TestLinkCodeVersion2(t *testing.T) {
	c := testCode(t)
	var e wire.Encoder
	e.Uint(lcVersion, 2)
	p := append(e.B, c.payload()...)
	s := linkFormat.Encode(p)
	_, err := ParseLinkCode(s, codeNow)
	if !errors.Is(err, wire.ErrNewerVersion) || !errors.Is(err, ErrLinkCode) {
		t.Fatalf("version 2: %v", err)
	}
}

// TestLinkCodeRefused: garbled before anything else, then fields, then
// the expiry.
func TestLinkCodeRefused(t *testing.T) {
	good := testCode(t).String()
	flip := []byte(good)
	flip[40] = 'a'
	if flip[40] == good[40] {
		flip[40] = 'b'
	}
	for name, s := range map[string]string{
		"typo":     string(flip),
		"cut":      good[:len(good)-7],
		"prefix":   "callsign:join/" + good[len(LinkCodePrefix):],
		"empty":    LinkCodePrefix,
		"unicode":  good + "é",
		"long":     good + strings.Repeat("a", MaxLinkCodeLen),
		"noncanon": good[:len(good)-1] + "9",
	} {
		if _, err := ParseLinkCode(s, codeNow); !errors.Is(err, ErrLinkCode) || errors.Is(err, ErrLinkExpired) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A garbled code that is also expired reads as garbled.
	if _, err := ParseLinkCode(string(flip), codeExpires.Add(time.Hour)); !errors.Is(err, ErrLinkCode) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("garbled and expired: %v", err)
	}
	for _, now := range []time.Time{codeExpires, codeExpires.Add(time.Second)} {
		if _, err := ParseLinkCode(good, now); !errors.Is(err, ErrLinkExpired) {
			t.Errorf("at %v: %v", now, err)
		}
	}
}

// TestNewLinkCodeTrims: at most three addresses, direct ones dropped
// first, relayed ones kept, and the text within MaxLinkCodeLen.
func TestNewLinkCodeTrims(t *testing.T) {
	p := fixedPeer(t, 1)
	var addrs []ma.Multiaddr
	for _, r := range []byte{2, 3, 4} {
		addrs = append(addrs, ma.StringCast("/dns4/relay-with-a-rather-long-name.example.org/tcp/4001/p2p/"+fixedPeer(t, r).String()+"/p2p-circuit"))
	}
	addrs = append([]ma.Multiaddr{
		ma.StringCast("/ip4/192.0.2.1/tcp/1/p2p/" + p.String()),
		ma.StringCast("/ip4/0.0.0.0/tcp/1"), // not dialable
		ma.StringCast("/ip4/192.0.2.1/tcp/1"),
	}, addrs...)
	c, err := NewLinkCode(p, addrs, fixedSecret(1), codeExpires)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.String()) > MaxLinkCodeLen || len(c.Addrs) == 0 || len(c.Addrs) > MaxLinkAddrs {
		t.Fatalf("%d characters, %d addresses", len(c.String()), len(c.Addrs))
	}
	for _, a := range c.Addrs {
		if !isRelayed(a) {
			t.Errorf("kept direct %s while dropping relayed ones", a)
		}
	}
	if _, err := ParseLinkCode(c.String(), codeNow); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLinkCode(p, addrs[1:2], fixedSecret(1), codeExpires); !errors.Is(err, ErrLinkCode) {
		t.Fatalf("no dialable address: %v", err)
	}
}

// FuzzLinkCode: no text panics; an accepted code re-encodes to a text that
// parses to the same code.
func FuzzLinkCode(f *testing.F) {
	c := testCode(f)
	f.Add(c.String())
	f.Add(strings.ToUpper(c.String()))
	f.Add(LinkCodePrefix + "aaaa")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseLinkCode(s, codeNow)
		if err != nil {
			return
		}
		again, err := ParseLinkCode(c.String(), codeNow)
		if err != nil || !sameCode(again, c) || again.String() != c.String() {
			t.Fatalf("accepted %q but its re-encoding %q reads %v", s, c.String(), err)
		}
		if len(c.String()) > MaxLinkCodeLen {
			t.Fatalf("accepted code re-encodes to %d characters", len(c.String()))
		}
	})
}
