package dht

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/libp2p/go-libp2p"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// libp2p and go-log start process-wide workers on first use.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/tcpreuse.(*ConnMgr).gc"),
	)
}

// fakeClock is the Config.Now of every node in a test network, so that a
// test can let records expire without waiting. It stands still unless Run
// makes it move (the churn simulation's sped-up clock).
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	speed float64   // simulated time per real time; 0: stands still
	since time.Time // the real time t was last brought up to
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.catchUpLocked()
	return c.t
}

// Run makes the clock move speed times as fast as real time from now on
// (0 stops it).
func (c *fakeClock) Run(speed float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.catchUpLocked()
	c.speed, c.since = speed, time.Now()
}

func (c *fakeClock) catchUpLocked() {
	if c.speed > 0 {
		now := time.Now()
		c.t = c.t.Add(time.Duration(float64(now.Sub(c.since)) * c.speed))
		c.since = now
	}
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testNet is N DHT nodes in server mode on one network.
type testNet struct {
	tb    testing.TB
	clock *fakeClock
	mn    mocknet.Mocknet // nil for real TCP hosts
	hosts []host.Host
	nodes []*DHT
	// latency, when set, is the one-way latency of the link between two
	// hosts (by index) made by link; else the mocknet's default.
	latency func(a, b int) time.Duration

	mu   sync.Mutex
	gone map[int]bool // nodes that left (leave): closed and unlinked
}

// link links h, the host about to be added as node len(tn.hosts), to every
// host of tn that has not left, one link each.
func (tn *testNet) link(tb testing.TB, h host.Host) {
	tb.Helper()
	tn.mu.Lock()
	defer tn.mu.Unlock()
	for i, o := range tn.hosts {
		if o.ID() == h.ID() || tn.gone[i] {
			continue
		}
		l, err := tn.mn.LinkPeers(h.ID(), o.ID())
		if err != nil {
			tb.Fatal(err)
		}
		if tn.latency != nil {
			l.SetOptions(mocknet.LinkOptions{Latency: tn.latency(len(tn.hosts), i)})
		}
	}
}

// leave takes node i off the network as a process that exits: its DHT and
// host close (its connections with them) and its links go, so dials to it
// fail. Other nodes learn of it only by failing to reach it.
func (tn *testNet) leave(tb testing.TB, i int) {
	tb.Helper()
	tn.stop(tb, i)
	if err := tn.hosts[i].Close(); err != nil {
		tb.Errorf("node %d leaving: host: %v", i, err)
	}
	for _, o := range tn.hosts {
		if o.ID() != tn.hosts[i].ID() {
			_ = tn.mn.UnlinkPeers(tn.hosts[i].ID(), o.ID()) // no link to a node that left already
		}
	}
}

// stop marks node i as gone and closes its DHT, as its process ends.
func (tn *testNet) stop(tb testing.TB, i int) {
	tb.Helper()
	tn.mu.Lock()
	if tn.gone == nil {
		tn.gone = make(map[int]bool)
	}
	tn.gone[i] = true
	tn.mu.Unlock()
	if err := tn.nodes[i].Close(); err != nil {
		tb.Errorf("node %d leaving: %v", i, err)
	}
}

// left reports whether node i has left.
func (tn *testNet) left(i int) bool {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.gone[i]
}

type netOpts struct {
	latency time.Duration
	tcp     bool
	// degree: each node connects to the bootstrap node and this many random
	// others (0 = all to all).
	degree int
	cfg    func(i int, c *Config)
	// linkLatency, when set, is the one-way latency of the link between
	// nodes a and b (also of the links of nodes that join later), in place
	// of latency.
	linkLatency func(a, b int) time.Duration
}

// asNode runs f with the goroutine label testnode=i, which every goroutine
// f starts inherits (and theirs in turn): a node's goroutines can be found
// in a goroutine profile, to see that none outlives the node (churn_test.go).
func asNode(i int, f func()) {
	pprof.Do(context.Background(), pprof.Labels("testnode", strconv.Itoa(i)), func(context.Context) { f() })
}

func newTestNet(tb testing.TB, n int, o netOpts) *testNet {
	tb.Helper()
	tn := &testNet{tb: tb, clock: newClock(), latency: o.linkLatency}
	if o.tcp {
		for range n {
			h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(),
				libp2p.ResourceManager(nil))
			if err != nil {
				tb.Fatal(err)
			}
			tn.hosts = append(tn.hosts, h)
		}
	} else {
		tn.mn = mocknet.New()
		tn.mn.SetLinkDefaults(mocknet.LinkOptions{Latency: o.latency})
		for i := range n {
			var h host.Host
			var err error
			asNode(i, func() { h, err = tn.mn.GenPeer() })
			if err != nil {
				tb.Fatal(err)
			}
			tn.hosts = append(tn.hosts, h)
		}
		// One link per pair: LinkAll makes one per ordered pair and one
		// from each peer to itself, twice the links (and memory) needed.
		for i, a := range tn.hosts {
			for j := i + 1; j < n; j++ {
				l, err := tn.mn.LinkPeers(a.ID(), tn.hosts[j].ID())
				if err != nil {
					tb.Fatal(err)
				}
				if tn.latency != nil {
					l.SetOptions(mocknet.LinkOptions{Latency: tn.latency(i, j)})
				}
			}
		}
	}
	tb.Cleanup(tn.close)
	for i, h := range tn.hosts {
		cfg := Config{
			Host:         h,
			Server:       true,
			PoW:          identity.TestPoW,
			Now:          tn.clock.Now,
			QueryTimeout: 20 * time.Second,
			peerTimeout:  3 * time.Second,
		}
		if o.cfg != nil {
			o.cfg(i, &cfg)
		}
		var d *DHT
		var err error
		asNode(i, func() { d, err = New(cfg) })
		if err != nil {
			tb.Fatal(err)
		}
		tn.nodes = append(tn.nodes, d)
	}
	ctx := context.Background()
	type pair struct{ a, b int }
	var pairs []pair
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range tn.hosts {
		if o.degree == 0 {
			for j := i + 1; j < n; j++ {
				pairs = append(pairs, pair{i, j})
			}
			continue
		}
		pairs = append(pairs, pair{i, 0})
		for range o.degree {
			pairs = append(pairs, pair{i, rng.IntN(n)})
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	errs := make(chan error, len(pairs))
	for _, p := range pairs {
		if p.a == p.b {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ai := peer.AddrInfo{ID: tn.hosts[p.b].ID(), Addrs: tn.hosts[p.b].Addrs()}
			if err := tn.hosts[p.a].Connect(ctx, ai); err != nil {
				errs <- fmt.Errorf("connect %d->%d: %w", p.a, p.b, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	for i, d := range tn.nodes {
		var err error
		asNode(i, func() { err = d.Start(ctx) })
		if err != nil {
			tb.Fatal(err)
		}
	}
	want := min(n-1, bucketK)
	if o.degree != 0 {
		want = min(n-1, o.degree)
		for _, d := range tn.nodes {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				<-d.kad.RefreshRoutingTable()
			})
		}
		wg.Wait()
	}
	check.Until(tb, 30*time.Second, "routing tables", func() bool {
		full := true
		for _, d := range tn.nodes {
			if d.RoutingTableSize() >= want {
				continue
			}
			full = false
			// kad-dht takes a connected peer in when identify says it
			// speaks the DHT, after a check query of its own, and looks
			// at its connections again only every 2 minutes: a peer
			// identified before this node's DHT started, or whose check
			// timed out on a busy machine, would wait that long. What
			// this harness builds is a connected DHT: take them in.
			for _, p := range d.host.Network().Peers() {
				if ok, err := d.host.Peerstore().SupportsProtocols(p, kadProtocol); err == nil && len(ok) > 0 {
					d.kad.RoutingTable().TryAddPeer(p, true, false)
				}
			}
		}
		return full
	})
	return tn
}

func (tn *testNet) close() {
	for _, d := range tn.nodes {
		_ = d.Close()
	}
	for _, h := range tn.hosts {
		_ = h.Close()
	}
	if tn.mn != nil {
		_ = tn.mn.Close()
	}
}

// key returns a deterministic account key for a test name.
func key(tb testing.TB, seed string) *identity.AccountKey {
	tb.Helper()
	s := sha256.Sum256([]byte(seed))
	k, err := identity.AccountKeyFromSeed(s[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// testIdentity builds an identity record for k with one device.
func testIdentity(tb testing.TB, k *identity.AccountKey, now time.Time) *IdentityRecord {
	tb.Helper()
	x := sha256.Sum256([]byte("x25519" + string(k.Public().ID())))
	cert, err := identity.IssueDeviceCert(k, []byte("peer-"+string(k.Public().ID())[:8]), x[:], now.Add(-time.Hour), now.Add(30*24*time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	return &IdentityRecord{
		Account:     k.Public(),
		Seq:         1,
		Issued:      now.Truncate(time.Millisecond),
		Expires:     now.Add(72 * time.Hour).Truncate(time.Millisecond),
		Devices:     []identity.DeviceCert{cert},
		Prekeys:     bytes.Repeat([]byte{0x42}, 100),
		DisplayName: "Test " + string(k.Public().ID())[:8],
	}
}

// handleRec builds a signed handle record of k for name with a solved PoW.
func handleRec(tb testing.TB, k *identity.AccountKey, name string, seq uint64, claimed, issued time.Time, ttl time.Duration) (*HandleRecord, []byte) {
	tb.Helper()
	norm, _, selfCert, err := parseName(name)
	if err != nil {
		tb.Fatal(err)
	}
	r := &HandleRecord{Name: norm, Owner: k.Public(), Seq: seq, ClaimedAt: claimed.Truncate(time.Millisecond),
		Issued: issued.Truncate(time.Millisecond), Expires: issued.Add(ttl).Truncate(time.Millisecond)}
	if !selfCert {
		r.Nonce = solvePoW(tb, norm, k.Public())
	}
	raw, err := sealHandle(k, r)
	if err != nil {
		tb.Fatal(err)
	}
	return r, raw
}

var powMemo sync.Map // "name|owner" -> nonce

func solvePoW(tb testing.TB, norm string, owner identity.AccountPub) uint64 {
	mk := norm + "|" + string(owner.Bytes())
	if v, ok := powMemo.Load(mk); ok {
		return v.(uint64)
	}
	n, err := identity.SolveHandlePoW(context.Background(), identity.TestPoW, norm, owner)
	if err != nil {
		tb.Fatal(err)
	}
	powMemo.Store(mk, n)
	return n
}

// closestNodes returns the indexes of the test nodes closest to key.
func (tn *testNet) closestNodes(key string, n int) []int {
	ids := make([]peer.ID, len(tn.hosts))
	idx := map[peer.ID]int{}
	for i, h := range tn.hosts {
		ids[i] = h.ID()
		idx[h.ID()] = i
	}
	sorted := sortByDistance(ids, key)
	var out []int
	for _, p := range sorted[:min(n, len(sorted))] {
		out = append(out, idx[p])
	}
	return out
}

func (tn *testNet) String() string { return fmt.Sprintf("testNet(%d)", len(tn.nodes)) }

func sortByDistance(ids []peer.ID, key string) []peer.ID {
	return kb.SortClosestPeers(ids, kb.ConvertKey(key))
}

func protocolID(s string) protocol.ID { return protocol.ID(s) }
