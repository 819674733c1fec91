package p2p_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
)

// allowOnly is a DirectPolicy allowing a fixed set of peers.
type allowOnly map[peer.ID]bool

func (a allowOnly) AllowDirect(p peer.ID) bool { return a[p] }

// directTo reports a direct (not relayed) connection from a to b.
func directTo(a, b host.Host) bool {
	for _, c := range a.Network().ConnsToPeer(b.ID()) {
		if !c.Stat().Limited {
			return true
		}
	}
	return false
}

// TestDirectPolicy: a private host with a DirectPolicy announces no
// address of its own; a stranger reaches it through the relay but not
// directly, even with its real address; a peer the policy allows connects
// directly; and the host doesn't dial directly a stranger that reached it
// through the relay (the dial hole punching makes first), while other
// outbound dials go ahead.
func TestDirectPolicy(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	relayH := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP; c.Public = true })
	relayInfo := peer.AddrInfo{ID: relayH.ID(), Addrs: relayH.Addrs()}
	contact, stranger, other := p2ptest.NewHost(t, nil), p2ptest.NewHost(t, nil), p2ptest.NewHost(t, nil)
	a := p2ptest.NewHost(t, func(c *p2p.HostConfig) {
		c.Direct = allowOnly{contact.ID(): true, relayH.ID(): true}
		c.StaticRelays = []peer.AddrInfo{relayInfo}
		c.ForcePrivate = true
	})
	for _, ad := range a.Addrs() {
		if _, err := ad.ValueForProtocol(ma.P_CIRCUIT); err != nil {
			t.Fatalf("the host announces its own address %s", ad)
		}
	}
	own := peer.AddrInfo{ID: a.ID(), Addrs: a.Network().ListenAddresses()}
	if err := a.Connect(ctx, relayInfo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, a, relayInfo); err != nil {
		t.Fatalf("reserve: %v", err)
	}

	// The stranger comes through the relay.
	circuit := ma.StringCast(fmt.Sprintf("%s/p2p/%s/p2p-circuit", relayInfo.Addrs[0], relayH.ID()))
	if err := stranger.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	// With the real address it gets no direct connection.
	dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "test"), 20*time.Second)
	_ = stranger.Connect(dctx, own) // may succeed a moment before the refusal closes it
	cancel()
	check.Until(t, 30*time.Second, "the stranger holds a direct connection", func() bool { return !directTo(stranger, a) })
	if directTo(a, stranger) {
		t.Fatal("the host holds a direct connection to the stranger")
	}
	if stranger.Network().Connectedness(a.ID()) != network.Limited {
		t.Fatalf("the stranger's relayed connection is gone: %v", stranger.Network().Connectedness(a.ID()))
	}
	// Nor does the host dial the stranger directly while it comes
	// through the relay...
	dctx, cancel = context.WithTimeout(network.WithForceDirectDial(ctx, "test"), 20*time.Second)
	err := a.Connect(dctx, peer.AddrInfo{ID: stranger.ID(), Addrs: stranger.Addrs()})
	cancel()
	if err == nil || directTo(a, stranger) {
		t.Fatalf("the host dialled the stranger directly: %v", err)
	}
	// ...but it dials anyone else (a DHT server, say).
	if err := a.Connect(ctx, peer.AddrInfo{ID: other.ID(), Addrs: other.Addrs()}); err != nil {
		t.Fatalf("outbound dial: %v", err)
	}

	// The contact connects directly.
	if err := contact.Connect(ctx, own); err != nil {
		t.Fatalf("the contact's direct dial: %v", err)
	}
	check.Until(t, 30*time.Second, "no direct connection for the contact", func() bool { return directTo(contact, a) && directTo(a, contact) })
}
