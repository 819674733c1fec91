package invite

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// golden is an invite made with a fixed key (ed25519 seed 0x01 * 32) to
// /ip4/203.0.113.7/tcp/4141 and /ip4/203.0.113.7/udp/4141/quic-v1,
// community "Harbour".
const golden = "callsign:join/baarejqaeqeacerarkeohxlubhyzl7ks3mwtzos5olfgocn7dwkbeg7toseadnapn5obucaezmahcbygcawrucyezmahcb4raiic3tideiduqylsmjxxk4qk3ptou"

func testPeer(t testing.TB) peer.ID {
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{1}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func addrs(t testing.TB, ss ...string) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, s := range ss {
		out = append(out, ma.StringCast(s))
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	id := testPeer(t)
	inv := Invite{Peer: id, Addrs: addrs(t, "/ip4/203.0.113.7/tcp/4141", "/ip4/203.0.113.7/udp/4141/quic-v1"), Name: "Harbour"}
	s, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if s != golden {
		t.Fatalf("encoding changed:\n got %s\nwant %s", s, golden)
	}
	for _, in := range []string{s, strings.ToUpper(s), "  " + s + "\n"} {
		got, err := Parse(in)
		if err != nil {
			t.Fatalf("parse %q: %v", in, err)
		}
		if got.Peer != id || len(got.Addrs) != 2 || !got.Addrs[0].Equal(inv.Addrs[0]) || !got.Addrs[1].Equal(inv.Addrs[1]) || got.Name != "Harbour" {
			t.Fatalf("parsed %+v", got)
		}
	}
	if ai := inv.AddrInfo(); ai.ID != id || len(ai.Addrs) != 2 {
		t.Fatalf("AddrInfo %+v", ai)
	}
}

func TestRefused(t *testing.T) {
	id := testPeer(t)
	typo := []byte(golden)
	typo[len(Prefix)+10] ^= 1 // 'e'/'d': still base32
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "does not start with"},
		{"garbage", "hello there", "does not start with"},
		{"multiaddr", "/ip4/1.2.3.4/tcp/1/p2p/" + id.String(), "does not start with"},
		{"not base32", Prefix + "!!!!", "not base32"},
		{"too short", Prefix + "aaaa", "too short"},
		{"typo", string(typo), "checksum mismatch"},
		{"cut off", golden[:len(golden)-8], "checksum mismatch"},
		{"extra character", golden + "a", "not base32"},
		{"stray low bits", golden[:len(golden)-1] + "v", "not base32"},
		{"too long", Prefix + strings.Repeat("a", MaxLen), "at most 512"},
	} {
		_, err := Parse(tc.in)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// Invites that point nowhere can't be made, nor read.
	for _, tc := range []struct {
		name  string
		addrs []string
		want  string
	}{
		{"no address", nil, "no address"},
		{"port 0", []string{"/ip4/203.0.113.7/tcp/0"}, "port 0"},
		{"unspecified", []string{"/ip4/0.0.0.0/tcp/4141"}, "not a host"},
		{"multicast", []string{"/ip4/224.0.0.251/udp/5353/quic-v1"}, "not a host"},
		{"relayed", []string{"/ip4/203.0.113.7/tcp/4141/p2p/" + id.String() + "/p2p-circuit"}, "want"},
		{"udp without quic", []string{"/ip4/203.0.113.7/udp/4141"}, "want tcp/PORT"},
		{"unix", []string{"/unix/tmp/x"}, "IP address or DNS name"},
	} {
		inv := Invite{Peer: id, Addrs: addrs(t, tc.addrs...)}
		if _, err := inv.Encode(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("encode %s: %v, want %q", tc.name, err, tc.want)
		}
		{
			if _, err := Parse(inv.encode()); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parse %s: %v, want %q", tc.name, err, tc.want)
			}
		}
	}
	if _, err := (Invite{Addrs: addrs(t, "/ip4/203.0.113.7/tcp/4141")}).Encode(); !errors.Is(err, ErrInvalid) {
		t.Errorf("no peer: %v", err)
	}
	if _, err := (Invite{Peer: id, Addrs: addrs(t, "/ip4/203.0.113.7/tcp/4141"), Name: "a\nb"}).Encode(); !errors.Is(err, ErrInvalid) {
		t.Errorf("control character in name: %v", err)
	}
}

func TestForNode(t *testing.T) {
	id := testPeer(t)
	inv, err := ForNode(id, addrs(t,
		"/ip4/127.0.0.1/tcp/4141",
		"/ip4/192.168.1.5/tcp/4141",
		"/ip4/0.0.0.0/tcp/4141",
		"/ip6/fe80::1/tcp/4141",
		"/ip4/203.0.113.7/udp/4141/quic-v1",
		"/ip4/203.0.113.7/udp/4141/quic-v1/p2p/"+id.String(),
		"/ip4/198.51.100.1/tcp/4001/p2p/"+id.String()+"/p2p-circuit",
	), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/ip4/203.0.113.7/udp/4141/quic-v1", "/ip4/192.168.1.5/tcp/4141"}
	if len(inv.Addrs) != len(want) {
		t.Fatalf("addresses %v, want %v", inv.Addrs, want)
	}
	for i := range want {
		if inv.Addrs[i].String() != want[i] {
			t.Fatalf("addresses %v, want %v", inv.Addrs, want)
		}
	}
	// A node on loopback only (tests, walkthroughs) invites to loopback.
	inv, err = ForNode(id, addrs(t, "/ip4/127.0.0.1/tcp/4141"), "")
	if err != nil || len(inv.Addrs) != 1 {
		t.Fatalf("loopback node: %v %v", inv, err)
	}
	// Many addresses: as many as fit.
	var many []ma.Multiaddr
	for i := range 20 {
		many = append(many, ma.StringCast("/dns4/a-rather-long-host-name-number-"+strings.Repeat("x", i)+".example.org/tcp/4141"))
	}
	inv, err = ForNode(id, many, strings.Repeat("n", MaxNameLen))
	if err != nil || len(inv.Addrs) == 0 || len(inv.Addrs) > MaxAddrs || len(inv.String()) > MaxLen {
		t.Fatalf("many addresses: %d addresses, %d characters, %v", len(inv.Addrs), len(inv.String()), err)
	}
	if _, err := ForNode(id, addrs(t, "/ip4/0.0.0.0/tcp/4141"), ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no dialable address: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(golden)
	f.Add(strings.ToUpper(golden))
	f.Add(Prefix)
	f.Add(Prefix + "aaaaaaaa")
	f.Add(golden[:len(golden)-3])
	payload, _ := format.Decode(golden, ErrInvalid)
	f.Add(textOf(append(payload[:len(payload):len(payload)], 0x88, 0x01, 0x05))) // an addition
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		// What parses encodes again, to the canonical form of its input.
		out, err := inv.Encode()
		if err != nil {
			t.Fatalf("parsed invite does not encode: %v", err)
		}
		if out != strings.ToLower(strings.TrimSpace(s)) {
			t.Fatalf("not canonical: %q parsed, %q encoded", s, out)
		}
	})
}
