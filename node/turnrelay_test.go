package node_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
	"github.com/callsign/callsign/turn"
)

// TestRelayAfterHubRestart: a public node's relay listens on UDP, TCP and
// TLS and shows its allocations and limits in status. The hub restarts
// (its TURN on new ports, with a new secret, the same certificate); the
// members' next relay-only call gets the new relay at once and connects,
// instead of sitting in calling on credentials for the old one.
func TestRelayAfterHubRestart(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{})
	ctx := ctxT(t, 3*time.Minute)
	hub, alice, bob := net.Nodes[0], net.Nodes[1], net.Nodes[2]

	before := turnStatus(t, hub)
	if st, err := alice.Client.Status(ctx); err != nil || st.TURN != nil {
		t.Fatalf("a private node's status shows a relay: %+v, %v", st.TURN, err)
	}
	if _, err := os.Stat(filepath.Join(hub.Dir, "turn-tls.pem")); err != nil {
		t.Fatalf("the self-signed certificate is not kept in the data directory: %v", err)
	}

	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{Policy: strp(node.CallsEveryone), AutoAnswer: boolp(true)}); err != nil {
		t.Fatal(err)
	}
	relayCall := func(what string) time.Duration {
		t.Helper()
		start := time.Now()
		c, err := alice.Client.Dial(ctx, api.CallRequest{To: bob.Account().String(), Audio: "tone", RelayOnly: true})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var cur api.Call
		check.Eventually(t, 30*time.Second, func() error {
			if cur, err = alice.Client.Call(ctx, c.ID); err != nil {
				return err
			}
			if cur.State != "active" {
				return fmt.Errorf("%s is %s (%s), want active", what, cur.State, cur.EndReason)
			}
			return nil
		})
		took := time.Since(start)
		if cur.Path != "relay" {
			t.Errorf("%s: path %q, want relay", what, cur.Path)
		}
		if n := turnStatus(t, net.Nodes[0]).Allocations; n == 0 {
			t.Errorf("%s: the hub's status shows no allocation during a relayed call", what)
		}
		if _, err := alice.Client.CallAction(ctx, c.ID, "hangup", nil); err != nil {
			t.Fatal(err)
		}
		waitCall(t, alice.Client, c.ID, "ended")
		return took
	}
	relayCall("the first call")

	hub = net.Restart(hub)
	after := turnStatus(t, hub)
	if slices.Equal(after.URLs, before.URLs) {
		t.Fatalf("the restarted hub's relay is on the same ports %v", after.URLs)
	}
	if after.TLSCertSHA256 != before.TLSCertSHA256 {
		t.Error("the restarted hub has another TLS certificate: members' pins changed")
	}
	// The members find the hub again (its libp2p port changed too).
	for _, m := range []*testnet.Node{alice, bob} {
		if err := m.Host().Connect(ctx, peer.AddrInfo{ID: hub.Host().ID(), Addrs: hub.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	took := relayCall("the call after the hub restarted")
	t.Logf("relay-only call after the restart active in %v", took)
}

// turnStatus is the hub's relay in its status, checked for its listeners
// and the default limits.
func turnStatus(t *testing.T, hub *testnet.Node) *api.TURNStatus {
	t.Helper()
	st, err := hub.Client.Status(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r := st.TURN
	if r == nil {
		t.Fatal("a public node's status shows no TURN relay")
	}
	if len(r.URLs) != 3 || !strings.HasSuffix(r.URLs[0], "?transport=udp") ||
		!strings.HasPrefix(r.URLs[1], "turn:") || !strings.HasPrefix(r.URLs[2], "turns:") {
		t.Fatalf("relay URLs %q, want UDP, TCP and TLS", r.URLs)
	}
	if len(r.TLSCertSHA256) != 64 || r.MaxAllocationsPerUser != turn.DefaultMaxAllocationsPerUser ||
		r.MaxAllocationsPerIP != turn.DefaultMaxAllocationsPerIP || r.MaxAllocations != turn.DefaultMaxAllocations ||
		r.AllocationLifetimeS != int64(turn.DefaultAllocationLifetime/time.Second) {
		t.Fatalf("relay status %+v", r)
	}
	return r
}
