package p2p

import (
	"bytes"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func signalAddrs(t testing.TB) (peer.ID, []ma.Multiaddr) {
	id, err := peer.Decode("12D3KooWHHzSeKaY8xuZVzkLbKFfvNgPPeKhFBGrMbNzbm5akpqu")
	if err != nil {
		t.Fatal(err)
	}
	return id, []ma.Multiaddr{
		ma.StringCast("/ip4/192.0.2.7/tcp/4141"),
		ma.StringCast("/ip6/2001:db8::7/udp/4141/quic-v1"),
	}
}

func TestAddrsSignal(t *testing.T) {
	id, addrs := signalAddrs(t)
	b := EncodeAddrsSignal(id, addrs)
	ai, err := DecodeAddrsSignal(b)
	if err != nil || ai.ID != id || len(ai.Addrs) != 2 || !ai.Addrs[0].Equal(addrs[0]) || !ai.Addrs[1].Equal(addrs[1]) {
		t.Fatalf("round trip: %+v %v", ai, err)
	}
	// A newer device's signal, with an addition (field 19), is read as the
	// addresses this version knows.
	newer := append(bytes.Clone(b), 0x9a, 0x01, 0x03, 'a', 'b', 'c')
	if ai, err := DecodeAddrsSignal(newer); err != nil || ai.ID != id || len(ai.Addrs) != 2 {
		t.Fatalf("newer signal: %+v %v", ai, err)
	}
	many := make([]ma.Multiaddr, MaxSignalAddrs+1)
	for i := range many {
		many[i] = addrs[0]
	}
	for name, bad := range map[string][]byte{
		"empty":          nil,
		"no address":     EncodeAddrsSignal(id, nil),
		"relayed":        EncodeAddrsSignal(id, []ma.Multiaddr{ma.StringCast("/ip4/192.0.2.1/tcp/1/p2p/" + id.String() + "/p2p-circuit")}),
		"dns":            EncodeAddrsSignal(id, []ma.Multiaddr{ma.StringCast("/dns4/example.com/tcp/1")}),
		"too many":       EncodeAddrsSignal(id, many),
		"trailing byte":  append(bytes.Clone(b), 0),
		"call signal":    {0x08, 0x01},
		"unknown core":   append(bytes.Clone(b), 0x78, 0x01), // field 15 after the addresses
		"bad peer id":    EncodeAddrsSignal(peer.ID("xx"), addrs),
		"addr then peer": append(EncodeAddrsSignal(id, addrs)[len(EncodeAddrsSignal(id, nil)):], EncodeAddrsSignal(id, nil)...),
	} {
		if _, err := DecodeAddrsSignal(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzAddrsSignal: an addresses signal from the network never panics,
// and what is accepted encodes back to the same bytes.
func FuzzAddrsSignal(f *testing.F) {
	id, addrs := signalAddrs(f)
	f.Add(EncodeAddrsSignal(id, addrs))
	f.Add(EncodeAddrsSignal(id, addrs[:1]))
	f.Add([]byte{0x82, 0x01, 0x00})
	f.Add(append(EncodeAddrsSignal(id, addrs), 0x98, 0x01, 0x05)) // an addition
	f.Fuzz(func(t *testing.T, b []byte) {
		ai, skipped, err := decodeAddrsSignal(b)
		if err != nil {
			return
		}
		if got := append(EncodeAddrsSignal(ai.ID, ai.Addrs), skipped...); !bytes.Equal(got, b) {
			t.Fatalf("accepted %x, re-encodes as %x", b, got)
		}
	})
}
