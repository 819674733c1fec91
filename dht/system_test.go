package dht

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

const testNodes = 24

// claim publishes k's identity on d and claims name there, failing the test
// unless the claim holds.
func claim(t *testing.T, tn *testNet, d *DHT, k *identity.AccountKey, name string) *ClaimResult {
	t.Helper()
	ctx := context.Background()
	if _, err := d.PublishIdentity(ctx, k, testIdentity(t, k, tn.clock.Now())); err != nil {
		t.Fatalf("publish identity: %v", err)
	}
	res, err := d.ClaimHandle(ctx, k, name, nil)
	if err != nil {
		t.Fatalf("claim %q: %v", name, err)
	}
	if res.Status != ClaimClaimed || !res.Owner.Equal(k.Public()) {
		t.Fatalf("claim %q = %s (conflicts %v)", name, res.Status, res.Conflicts)
	}
	return res
}

// expectOwner resolves name on every node, with caches dropped, and wants
// owner with no dissent.
func expectOwner(t *testing.T, tn *testNet, name string, owner identity.AccountPub) {
	t.Helper()
	for i, d := range tn.nodes {
		d.cache.clear()
		r, err := d.Resolve(context.Background(), name)
		if err != nil {
			t.Fatalf("node %d: resolve %q: %v", i, name, err)
		}
		if r.Status != StatusOK || !r.Owner.Equal(owner) {
			t.Fatalf("node %d: resolve %q = %s owner %v conflicts %v", i, name, r.Status, r.Owner, r.Conflicts)
		}
		if len(r.Conflicts) != 0 {
			t.Fatalf("node %d: resolve %q: dissenting records %v", i, name, r.Conflicts)
		}
	}
}

func TestClaimResolvesEverywhere(t *testing.T) {
	tn := newTestNet(t, testNodes, netOpts{})
	alice := key(t, "alice")
	res := claim(t, tn, tn.nodes[3], alice, "@Alice")
	if res.Name != "alice" || res.Claim == nil || res.Claim.Nonce == 0 || res.Claim.Seq != 1 {
		t.Fatalf("claim result %+v", res)
	}
	expectOwner(t, tn, "alice", alice.Public())
	for i, d := range tn.nodes {
		r, err := d.Resolve(context.Background(), "ALICE")
		if err != nil || r.Identity == nil || !r.Identity.Account.Equal(alice.Public()) || r.Handle.Name != "alice" {
			t.Fatalf("node %d: resolve: %v %+v", i, err, r)
		}
		// by account id too
		r, err = d.Resolve(context.Background(), string(alice.Public().ID()))
		if err != nil || r.Status != StatusOK || r.Identity == nil {
			t.Fatalf("node %d: resolve account id: %v %+v", i, err, r)
		}
	}
	// A name nobody claimed.
	r, err := tn.nodes[5].Resolve(context.Background(), "nobody")
	if err != nil || r.Status != StatusNotFound {
		t.Fatalf("resolve unclaimed: %v %+v", err, r)
	}
	// Self-certifying handle.
	sc := identity.SelfCertHandle("alice", alice.Public())
	claim(t, tn, tn.nodes[3], alice, sc)
	expectOwner(t, tn, sc, alice.Public())
	// Someone else's self-certifying handle can't be claimed.
	if _, err := tn.nodes[4].ClaimHandle(context.Background(), key(t, "mallory"), sc, nil); !errors.Is(err, ErrInvalidHandle) {
		t.Fatalf("claiming another key's self-cert handle: %v", err)
	}
}

// squat tries every way around ClaimHandle: kad's PutValue from the
// squatter's node, and a raw PUT_VALUE to every node. It returns how many
// nodes that held a record for the name accepted the squatter's. (Nodes
// that hold none accept it; they are not among the closest, so resolution
// never asks them.)
func squat(ctx context.Context, tn *testNet, from *DHT, dkey string, raw []byte) (accepted int) {
	_ = from.kad.PutValue(ctx, dkey, raw)
	for i, h := range tn.hosts {
		if h.ID() == from.host.ID() || tn.nodes[i].localValue(ctx, dkey) == nil {
			continue
		}
		if from.putTo(ctx, []peer.ID{h.ID()}, dkey, raw) == 1 {
			accepted++
		}
	}
	return accepted
}

func TestSquatterIsRefused(t *testing.T) {
	tn := newTestNet(t, testNodes, netOpts{})
	ctx := context.Background()
	alice, mallory := key(t, "alice"), key(t, "mallory")
	owner, squatter := tn.nodes[2], tn.nodes[17]
	claim(t, tn, owner, alice, "alice")

	for _, name := range []string{"alice", "@ALICE", "a1ice", "al.ice"} {
		res, err := squatter.ClaimHandle(ctx, mallory, name, nil)
		if err != nil {
			t.Fatalf("squat %q: %v", name, err)
		}
		if res.Status != ClaimTaken || !res.Owner.Equal(alice.Public()) {
			t.Fatalf("squat %q = %s, want taken by alice", name, res.Status)
		}
	}

	// Bypassing ClaimHandle: a valid record of mallory's, even with a
	// backdated claim (which kad-dht's Select would prefer), is refused by
	// every storing node.
	now := tn.clock.Now()
	_, dkey, _, _ := parseName("alice")
	_, raw := handleRec(t, mallory, "alice", 5, now.Add(-365*24*time.Hour), now, time.Hour)
	held := squatter.localValue(ctx, dkey) != nil
	if n := squat(ctx, tn, squatter, dkey, raw); n != 0 {
		t.Fatalf("%d nodes accepted the squatter's record", n)
	}
	if v := squatter.localValue(ctx, dkey); held && v != nil {
		if r, _ := openHandle(v); r != nil && r.Owner.Equal(mallory.Public()) {
			t.Fatal("squatter's own node stored its record")
		}
	}
	expectOwner(t, tn, "alice", alice.Public())
}

func TestSquatterRacingRepublish(t *testing.T) {
	tn := newTestNet(t, testNodes, netOpts{})
	ctx := context.Background()
	alice, mallory := key(t, "alice"), key(t, "mallory")
	owner, squatter := tn.nodes[0], tn.nodes[9]
	res := claim(t, tn, owner, alice, "alice")
	owner.SetOwned(alice, testIdentity(t, alice, tn.clock.Now()), []HandleClaim{*res.Claim})

	_, dkey, _, _ := parseName("alice")
	var wg sync.WaitGroup
	var accepted int
	wg.Go(func() {
		for i := range 5 {
			now := tn.clock.Now()
			_, raw := handleRec(t, mallory, "alice", uint64(100+i), now.Add(-time.Hour), now, time.Hour)
			accepted += squat(ctx, tn, squatter, dkey, raw)
		}
	})
	for range 5 {
		tn.clock.Advance(time.Minute)
		if err := owner.Republish(ctx); err != nil {
			t.Errorf("republish: %v", err)
		}
	}
	wg.Wait()
	if accepted != 0 {
		t.Fatalf("%d puts of the squatter accepted", accepted)
	}
	if got := owner.OwnedClaims()[0].Seq; got != 6 {
		t.Fatalf("claim seq after 5 republishes = %d, want 6", got)
	}
	expectOwner(t, tn, "alice", alice.Public())
}

// plant writes a record straight into a node's store, bypassing the guard,
// as an attacker controlling that node would.
func plant(t *testing.T, d *DHT, dkey string, raw []byte) {
	t.Helper()
	buf, err := proto.Marshal(&recpb.Record{Key: []byte(dkey), Value: raw, TimeReceived: time.Now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.store.Put(context.Background(), valueDsKey(dkey), buf); err != nil {
		t.Fatal(err)
	}
}

func TestEclipseGivesConflict(t *testing.T) {
	// The counts of each owner's records are the subject here: a peer
	// whose answer misses its deadline drops out of them. Under the race
	// detector on a busy machine a GET_VALUE to one of 24 nodes in one
	// process could miss the harness's 3 s (and the 0.6 s a peer gets
	// after missing one), so the deadline is 10 s.
	tn := newTestNet(t, testNodes, netOpts{cfg: func(_ int, c *Config) { c.peerTimeout = 10 * time.Second }})
	ctx := context.Background()
	alice, mallory := key(t, "alice"), key(t, "mallory")
	claim(t, tn, tn.nodes[1], alice, "alice")
	_, dkey, _, _ := parseName("alice")
	now := tn.clock.Now()
	_, raw := handleRec(t, mallory, "alice", 9, now.Add(-30*24*time.Hour), now, 72*time.Hour)
	closest := tn.closestNodes(dkey, bucketK)
	// The counts below start from Alice's record on all twenty closest. A
	// claim is confirmed once the closest show it and no other owner's; on
	// a busy machine a few may have turned its put away for now (their
	// network check did not finish in time: ErrBusy), so the owner puts it
	// again until all twenty hold it.
	owner := tn.nodes[1]
	owner.mu.Lock()
	mine := owner.published[dkey]
	owner.mu.Unlock()
	reput := 0
	check.Until(t, 30*time.Second, "Alice's record on the twenty closest", func() bool {
		all := true
		for _, i := range closest {
			if o, _ := ownerOf(tn.nodes[i], dkey); !o.Equal(alice.Public()) {
				all = false
				if tn.nodes[i] != owner {
					owner.putTo(ctx, []peer.ID{tn.hosts[i].ID()}, dkey, mine)
					reput++
				}
			}
		}
		return all
	})
	if reput > 0 {
		t.Logf("%d of the closest got Alice's record again after the claim", reput)
	}

	// One lucky, backdated record on one of the closest nodes does not win,
	// and is not outvoted either: owners disagree, so the answer is
	// conflict, with the counts.
	plant(t, tn.nodes[closest[0]], dkey, raw)
	reader := tn.nodes[closest[len(closest)-1]]
	r, err := reader.Resolve(ctx, "alice")
	if err != nil || r.Status != StatusConflict || !r.Owner.IsZero() || r.Identity != nil {
		t.Fatalf("one planted record: %v %s owner %v", err, r.Status, r.Owner)
	}
	if len(r.Conflicts) != 2 || !r.Conflicts[0].Owner.Equal(alice.Public()) || r.Conflicts[0].Count != 19 ||
		!r.Conflicts[1].Owner.Equal(mallory.Public()) || r.Conflicts[1].Count != 1 {
		t.Fatalf("dissent not reported: %+v", r.Conflicts)
	}

	// Eight of the twenty closest: conflict just the same.
	for _, i := range closest[1:8] {
		plant(t, tn.nodes[i], dkey, raw)
	}
	for _, i := range []int{closest[10], closest[19]} {
		d := tn.nodes[i]
		d.cache.clear()
		r, err := d.Resolve(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != StatusConflict || !r.Owner.IsZero() || r.Identity != nil {
			t.Fatalf("eclipse: status %s owner %v, want conflict and no owner", r.Status, r.Owner)
		}
		if len(r.Conflicts) != 2 || !r.Conflicts[0].Owner.Equal(alice.Public()) || r.Conflicts[0].Count != 12 || r.Conflicts[1].Count != 8 {
			t.Fatalf("eclipse: conflicts %+v", r.Conflicts)
		}
	}
	// And the squatter can't claim it either.
	res, err := tn.nodes[closest[3]].ClaimHandle(ctx, mallory, "alice", nil)
	if err != nil || res.Status == ClaimClaimed {
		t.Fatalf("squatter claim under eclipse: %v %+v", err, res)
	}
}

func TestNameFreesAfterExpiryAndGrace(t *testing.T) {
	tn := newTestNet(t, testNodes, netOpts{})
	ctx := context.Background()
	alice, bob := key(t, "alice"), key(t, "bob")
	claim(t, tn, tn.nodes[4], alice, "carol")

	// Expired but within grace: unresolvable, yet still held.
	tn.clock.Advance(DefaultRecordTTL + time.Hour)
	r, err := tn.nodes[7].Resolve(ctx, "carol")
	if err != nil || r.Status != StatusExpired {
		t.Fatalf("after expiry: %v %+v", err, r)
	}
	res, err := tn.nodes[11].ClaimHandle(ctx, bob, "carol", nil)
	if err != nil || res.Status != ClaimTaken || !res.Owner.Equal(alice.Public()) {
		t.Fatalf("claim within grace: %v %+v", err, res)
	}
	_, dkey, _, _ := parseName("carol")
	now := tn.clock.Now()
	_, raw := handleRec(t, bob, "carol", 1, now, now, time.Hour)
	if n := squat(ctx, tn, tn.nodes[11], dkey, raw); n != 0 {
		t.Fatalf("%d nodes accepted a new owner within grace", n)
	}

	// After the grace period the name is free.
	tn.clock.Advance(DefaultGrace)
	res, err = tn.nodes[11].ClaimHandle(ctx, bob, "carol", nil)
	if err != nil || res.Status != ClaimClaimed {
		t.Fatalf("claim after grace: %v %+v", err, res)
	}
	expectOwner(t, tn, "carol", bob.Public())
}

func TestHostileRecordsRefused(t *testing.T) {
	tn := newTestNet(t, testNodes, netOpts{})
	ctx := context.Background()
	alice, mallory := key(t, "alice"), key(t, "mallory")
	attacker := tn.nodes[0]
	now := tn.clock.Now()
	_, dkey, _, _ := parseName("dave")

	forged := func() []byte { // alice's record signed by mallory
		r, _ := handleRec(t, alice, "dave", 1, now, now, time.Hour)
		w, _ := r.toWire()
		p := w.marshal()
		return (&wireEnvelope{Payload: p, Signature: mallory.Sign(identity.LabelHandleRecord, p)}).marshal()
	}()
	_, expired := handleRec(t, alice, "dave", 1, now.Add(-3*time.Hour), now.Add(-3*time.Hour), time.Hour)
	_, future := handleRec(t, alice, "dave", 1, now.Add(time.Hour), now.Add(time.Hour), time.Hour)
	_, otherName := handleRec(t, alice, "erin", 1, now, now, time.Hour)
	huge := make([]byte, 64<<10)
	_, _ = rand.Read(huge)
	ident := testIdentity(t, alice, now)
	ident.Attestations = [][]byte{make([]byte, 600)}
	w, _ := ident.toWire()
	p := w.marshal()
	oversizedIdentity := (&wireEnvelope{Payload: p, Signature: alice.Sign(identity.LabelIdentityRecord, p)}).marshal()

	cases := []struct {
		name, key string
		value     []byte
	}{
		{"forged", dkey, forged},
		{"expired", dkey, expired},
		{"future", dkey, future},
		{"another name's record", dkey, otherName},
		{"garbage", dkey, huge},
		{"oversized identity", identityKey(alice.Public().ID()), oversizedIdentity},
		{"unknown namespace", "/pk/whatever", []byte("x")},
	}
	for _, c := range cases {
		for _, h := range tn.hosts[1:] {
			if attacker.putTo(ctx, []peer.ID{h.ID()}, c.key, c.value) != 0 {
				t.Fatalf("%s: accepted by %s", c.name, h.ID())
			}
		}
		for i, d := range tn.nodes[1:] {
			if v := d.localValue(ctx, c.key); v != nil {
				t.Fatalf("%s: stored by node %d", c.name, i+1)
			}
		}
	}
	// The network still works.
	claim(t, tn, tn.nodes[5], alice, "dave")
	expectOwner(t, tn, "dave", alice.Public())
}

func TestGarbageOnKadProtocol(t *testing.T) {
	tn := newTestNet(t, testNodes, netOpts{})
	ctx := context.Background()
	alice := key(t, "alice")
	claim(t, tn, tn.nodes[2], alice, "frank")

	// A peer sending garbage to every node.
	evil, err := tn.mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	proto := "/callsign/kad/1.0.0"
	payloads := [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0x0f},            // huge length prefix
		{0x05, 0x08, 0x99, 0x99, 0x99, 0x99},      // bad protobuf
		append([]byte{0x80, 0x80, 0x80, 0x80}, 1), // overlong varint
		{0x03, 0x08, 0x01, 0x12},                  // truncated
	}
	rnd := make([]byte, 4096)
	_, _ = rand.Read(rnd)
	payloads = append(payloads, rnd)
	for _, h := range tn.hosts {
		if err := evil.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
			t.Fatal(err)
		}
		for _, p := range payloads {
			s, err := evil.NewStream(ctx, h.ID(), protocolID(proto))
			if err != nil {
				t.Fatal(err)
			}
			_ = s.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = s.Write(p)
			_ = s.CloseWrite()
			buf := make([]byte, 1)
			if n, _ := s.Read(buf); n != 0 {
				t.Fatalf("node answered garbage with data")
			}
			_ = s.Reset()
		}
	}

	// A peer answering every request with garbage, in a node's routing
	// table: its answers count as none.
	liar, err := tn.mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	liar.SetStreamHandler(protocolID(proto), func(s network.Stream) {
		buf := make([]byte, 256)
		_, _ = s.Read(buf)
		_, _ = s.Write(append([]byte{0x10}, rnd[:16]...))
		_ = s.Close()
	})
	victim := tn.nodes[7]
	if err := victim.host.Connect(ctx, peer.AddrInfo{ID: liar.ID(), Addrs: liar.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if _, err := victim.kad.RoutingTable().TryAddPeer(liar.ID(), true, false); err != nil {
		t.Fatal(err)
	}
	r := victim.getValue(ctx, &candidate{id: liar.ID()}, "/csname/frank")
	if r.err == nil {
		t.Fatal("garbage answer accepted")
	}
	expectOwner(t, tn, "frank", alice.Public())
}

func TestRealTCP(t *testing.T) {
	tn := newTestNet(t, 10, netOpts{tcp: true})
	alice, mallory := key(t, "alice"), key(t, "mallory")
	claim(t, tn, tn.nodes[6], alice, "grace")
	expectOwner(t, tn, "grace", alice.Public())
	res, err := tn.nodes[2].ClaimHandle(context.Background(), mallory, "grace", nil)
	if err != nil || res.Status != ClaimTaken {
		t.Fatalf("squat over TCP: %v %+v", err, res)
	}
}
