package node_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

func circuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// directConn reports a direct (not relayed) connection from a to b.
func directConn(a, b *testnet.Node) error {
	for _, c := range a.Host().Network().ConnsToPeer(b.Host().ID()) {
		if !c.Stat().Limited || !circuit(c.RemoteMultiaddr()) {
			return fmt.Errorf("direct connection %s -> %s", c.LocalMultiaddr(), c.RemoteMultiaddr())
		}
	}
	return nil
}

// TestStrangersGetNoDirectConnection: Alice joins through a public node
// and keeps her address. A stranger's message reaches her as a request
// and his call is refused, both through the relay; afterwards he holds no
// direct connection to her, and what he can read (her announced addresses,
// what the DHT hands out for her peer id, his peerstore) holds no address
// of hers but relay ones. Dialling her real address, had he learned it,
// gets him nothing. A contact, though, ends up directly connected.
func TestStrangersGetNoDirectConnection(t *testing.T) {
	var private atomic.Bool
	net := testnet.New(t, 2, testnet.Options{
		Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second},
		// Members as `callsign up --bootstrap` runs them: DHT clients
		// that listen (on loopback), not the test network's DHT servers.
		Configure: func(c *node.Config) {
			if private.Load() && !c.Public {
				c.DHTServer = false
			}
		},
	})
	private.Store(true)
	ctx := ctxT(t, 3*time.Minute)
	alice, stranger, carol := net.Add(false), net.Add(false), net.Add(false)
	aliceID := alice.Host().ID()
	check.Eventually(t, 60*time.Second, func() error {
		for _, nd := range []*testnet.Node{alice, stranger, carol} {
			if !nd.Published() {
				return errors.New("not published yet")
			}
		}
		// Her announced addresses: relay ones only (none on loopback:
		// AutoRelay announces relays with public addresses only).
		for _, a := range alice.Host().Addrs() {
			if !circuit(a) {
				t.Fatalf("alice announces her own address %s", a)
			}
		}
		return nil
	})

	// The stranger writes and calls.
	m, err := stranger.Client.Send(ctx, alice.Account().String(), "hello, stranger here")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, stranger.Client, alice.Account().String(), m.ID, "delivered")
	reqs, err := alice.Client.Requests(ctx)
	if err != nil || len(reqs) != 1 || reqs[0].Peer != stranger.Account().String() {
		t.Fatalf("alice's requests: %+v %v", reqs, err)
	}
	c, err := stranger.Client.Dial(ctx, api.CallRequest{To: alice.Account().String(), Audio: "tone"})
	if err != nil {
		t.Fatal(err)
	}
	if end := waitCall(t, stranger.Client, c.ID, "ended"); end.EndReason != "unavailable" {
		t.Fatalf("refused call ended %q", end.EndReason)
	}

	// What the stranger holds and can learn.
	if err := directConn(stranger, alice); err != nil {
		t.Fatal(err)
	}
	if err := directConn(alice, stranger); err != nil {
		t.Fatal(err)
	}
	for _, a := range stranger.Host().Peerstore().Addrs(aliceID) {
		if !circuit(a) {
			t.Fatalf("the stranger's peerstore holds alice's address %s", a)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	ai, err := stranger.DHT().FindPeer(fctx, aliceID)
	cancel()
	if err != nil {
		t.Fatalf("find alice through the DHT: %v", err)
	}
	for _, a := range ai.Addrs {
		if !circuit(a) {
			t.Fatalf("the DHT hands out alice's address %s", a)
		}
	}

	// Her real address, had it leaked, doesn't get him in either.
	own := alice.Host().Network().ListenAddresses()
	dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "test"), 20*time.Second)
	// (With Noise's early muxer negotiation the dialler may see its dial
	// succeed a moment before Alice's refusal closes it.)
	_ = stranger.Host().Connect(dctx, peer.AddrInfo{ID: aliceID, Addrs: own})
	cancel()
	check.Eventually(t, 20*time.Second, func() error { return directConn(stranger, alice) })
	if err := directConn(alice, stranger); err != nil {
		t.Fatal(err)
	}

	// A contact's message makes the two directly connected.
	if _, err := alice.Client.AddContact(ctx, carol.Account().String(), "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Client.AddContact(ctx, alice.Account().String(), "alice"); err != nil {
		t.Fatal(err)
	}
	m, err = carol.Client.Send(ctx, "alice", "hi alice")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, carol.Client, "alice", m.ID, "delivered")
	check.Eventually(t, 60*time.Second, func() error {
		if directConn(carol, alice) == nil {
			return errors.New("carol has no direct connection to alice yet")
		}
		return nil
	})
	// The stranger still has none.
	if err := directConn(stranger, alice); err != nil {
		t.Fatal(err)
	}
}
