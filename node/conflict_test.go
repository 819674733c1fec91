package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

// TestConflictKeepsPinnedContact: two owners hold one handle (each claimed
// it while the network was split in two, so each half's storing nodes keep
// their own incumbent). Once the halves meet, whois says conflict with both
// owners on every node, a contact pinned before keeps its key and is not
// marked changed, messages to it still go to the pinned key, nobody can add
// the name as a new contact, and both owners keep republishing their claims.
func TestConflictKeepsPinnedContact(t *testing.T) {
	net := testnet.New(t, 8, testnet.Options{Mocknet: true, Network: node.Network{
		CacheTTL: 100 * time.Millisecond, RepublishInterval: time.Second,
	}})
	ctx := ctxT(t, 2*time.Minute)
	mn := net.Mocknet()
	half := func(i int) bool { return i < 4 } // node 0, the bootstrap node, is on Alice's side
	split := func() {
		for i, a := range net.Nodes {
			for j, b := range net.Nodes {
				if half(i) && !half(j) {
					if err := mn.UnlinkPeers(a.Host().ID(), b.Host().ID()); err != nil {
						t.Fatal(err)
					}
					if err := mn.DisconnectPeers(a.Host().ID(), b.Host().ID()); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	split()
	alice, watcher, mallory := net.Nodes[1], net.Nodes[2], net.Nodes[5]
	for _, c := range []struct {
		nd    *testnet.Node
		owner string
	}{{alice, alice.Account().String()}, {mallory, mallory.Account().String()}} {
		cl, err := c.nd.Client.Claim(ctx, "alice")
		if err != nil || cl.Status != "claimed" || cl.Owner != c.owner {
			t.Fatalf("claim in one half: %+v %v", cl, err)
		}
	}
	pinned, err := watcher.Client.AddContact(ctx, "alice", "")
	if err != nil || pinned.Account != alice.Account().String() {
		t.Fatalf("pin: %+v %v", pinned, err)
	}

	// The halves meet.
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	for _, nd := range net.Nodes[4:] {
		for _, o := range net.Nodes[:4] {
			if _, err := mn.ConnectPeers(nd.Host().ID(), o.Host().ID()); err != nil {
				t.Fatal(err)
			}
		}
	}
	fresh := net.Add(false)
	owners := map[string]bool{alice.Account().String(): true, mallory.Account().String(): true}
	for i, nd := range append(net.Nodes[:len(net.Nodes):len(net.Nodes)], fresh) {
		check.Eventually(t, 30*time.Second, func() error {
			w, err := nd.Client.Whois(ctx, "alice")
			if err != nil {
				return err
			}
			if w.Status == "ok" {
				// Never an answer while both records are out there; it
				// may be one before this node has met the other half.
				if len(w.Owners) != 0 {
					t.Fatalf("node %d: ok with dissent: %+v", i, w)
				}
				return fmt.Errorf("node %d: still ok for %s", i, w.Account)
			}
			if w.Status != "conflict" || w.Account != "" || w.Pinned || w.KeyChanged || len(w.Owners) != 2 ||
				!owners[w.Owners[0].Account] || !owners[w.Owners[1].Account] {
				return fmt.Errorf("node %d: whois %+v", i, w)
			}
			return nil
		})
	}

	// The pinned contact is untouched and messages go to its key.
	cs, err := watcher.Client.Contacts(ctx)
	if err != nil || len(cs) != 1 || cs[0].Account != alice.Account().String() || cs[0].KeyChanged {
		t.Fatalf("contacts after the conflict: %+v %v", cs, err)
	}
	m, err := watcher.Client.Send(ctx, "alice", "still you?")
	if err != nil || m.To != alice.Account().String() {
		t.Fatalf("send to the pinned contact: %+v %v", m, err)
	}
	waitState(t, watcher.Client, "alice", m.ID, "delivered")
	// A new contact can't be made of a conflicted name.
	if _, err := fresh.Client.AddContact(ctx, "alice", ""); !api.IsCode(err, api.CodeConflict) {
		t.Fatalf("adding a conflicted name: %v", err)
	}
	if cs, _ := fresh.Client.Contacts(ctx); len(cs) != 0 {
		t.Fatalf("contacts of the fresh node: %+v", cs)
	}
	// Both owners keep their claims and keep republishing them.
	for _, nd := range []*testnet.Node{alice, mallory} {
		seq := claimSeq(t, nd, "alice")
		check.Eventually(t, 30*time.Second, func() error {
			if s := claimSeq(t, nd, "alice"); s <= seq+1 {
				return fmt.Errorf("claim seq %d, was %d", s, seq)
			}
			return nil
		})
	}
}

// claimSeq is the seq of nd's claim on name as its DHT last republished it.
func claimSeq(t *testing.T, nd *testnet.Node, name string) uint64 {
	t.Helper()
	for _, c := range nd.DHT().OwnedClaims() {
		if c.Name == name {
			return c.Seq
		}
	}
	t.Fatalf("%s no longer claims %q", nd.Account(), name)
	return 0
}
