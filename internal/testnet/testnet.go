// Package testnet builds networks of real callsign nodes in one process for
// tests and benchmarks: each node has its own data directory (real badger
// files), its own libp2p host on 127.0.0.1, a DHT in server mode and its
// local API on an ephemeral loopback port. Production code never imports it.
//
// Helpers wait for a condition under a deadline instead of sleeping.
package testnet

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/node"
)

// Options shape a test network. Zero values are sensible test defaults.
type Options struct {
	// Network parameters shared by every node; zero PoW means
	// identity.TestPoW (cheap), not production.
	Network node.Network
	// ProductionPoW uses the real proof of work instead of TestPoW.
	ProductionPoW bool
	// Logger for every node; nil = discard, or stderr at debug when
	// CALLSIGN_TEST_LOG=1.
	Logger *slog.Logger
	// Mocknet puts every node's libp2p host on libp2p's in-memory mocknet
	// instead of loopback TCP, with Latency one way on every link: for
	// simulated latency, partitions (Net.Mocknet().UnlinkPeers) and
	// networks of hundreds of nodes. Everything else stays real (badger,
	// the API on loopback, media on loopback UDP).
	Mocknet bool
	Latency time.Duration
	// Bandwidth caps every mocknet link, in bytes per second each way
	// (0: no cap): for transfers slow enough to cut half way.
	Bandwidth float64
	// Web is the web app every node serves (web.FS() for browser tests);
	// nil serves none.
	Web fs.FS
	// Configure, when set, adjusts every node's configuration before it
	// starts.
	Configure func(*node.Config)
}

// Net is a running test network.
type Net struct {
	t     testing.TB
	opts  Options
	root  string // data directories live below it
	mn    mocknet.Mocknet
	mu    sync.Mutex
	Nodes []*Node
	seq   int
}

// Node is one node of the network plus a client of its API.
type Node struct {
	*node.Node
	Client *api.Client
	Dir    string
	cfg    node.Config
}

// New starts n nodes. The first is a public node (DHT server and relay);
// every node bootstraps from it and runs its DHT in server mode so that
// routing tables fill on loopback. Nodes are closed at the end of the test.
func New(t testing.TB, n int, opts Options) *Net {
	t.Helper()
	if opts.Network.PoW == (identity.PoWParams{}) && !opts.ProductionPoW {
		opts.Network.PoW = identity.TestPoW
	}
	if opts.Logger == nil {
		if os.Getenv("CALLSIGN_TEST_LOG") == "1" {
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	// The data directories must outlive the nodes: make their root before
	// registering Close, since cleanups run last-registered first.
	net := &Net{t: t, opts: opts, root: t.TempDir()}
	if opts.Mocknet {
		net.mn = mocknet.New()
		net.mn.SetLinkDefaults(mocknet.LinkOptions{Latency: opts.Latency, Bandwidth: opts.Bandwidth})
	}
	t.Cleanup(net.Close)
	net.Add(true)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n - 1 {
		wg.Go(func() {
			if _, err := net.add(false, net.newDir()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every node publishes its identity (its self-certifying handle's
	// claim and the record, each confirmed) at once: on a busy machine, or
	// under the race detector, 25 nodes take far longer than 3.
	net.WaitConnected(t, 30*time.Second+time.Duration(n)*3*time.Second)
	return net
}

// Add starts one more node (public or not) that bootstraps from the first.
func (net *Net) Add(public bool) *Node {
	net.t.Helper()
	nd, err := net.add(public, net.newDir())
	if err != nil {
		net.t.Fatal(err)
	}
	return nd
}

// AddBehindNAT starts a node that listens nowhere, as if behind a NAT:
// others reach it only through the first node's relay.
func (net *Net) AddBehindNAT() *Node {
	net.t.Helper()
	nd, err := net.addWith(false, net.newDir(), func(c *node.Config) { c.BehindNAT, c.DHTServer = true, false })
	if err != nil {
		net.t.Fatal(err)
	}
	return nd
}

// StartOn starts a node with cfg (from NodeConfig, once a test prepared
// its data directory: a restore, a link) and adds it to Nodes.
func (net *Net) StartOn(cfg node.Config) *Node {
	net.t.Helper()
	nd, err := net.start(cfg)
	if err != nil {
		net.t.Fatal(err)
	}
	net.mu.Lock()
	net.Nodes = append(net.Nodes, nd)
	net.mu.Unlock()
	return nd
}

// Restart closes nd and starts a node on the same data directory; the
// returned node replaces nd in Nodes.
func (net *Net) Restart(nd *Node) *Node {
	net.t.Helper()
	nd.Client.Close()
	if err := nd.Node.Close(); err != nil {
		net.t.Fatalf("close: %v", err)
	}
	nn, err := net.start(nd.cfg)
	if err != nil {
		net.t.Fatalf("restart: %v", err)
	}
	net.mu.Lock()
	for i, x := range net.Nodes {
		if x == nd {
			net.Nodes[i] = nn
		}
	}
	net.mu.Unlock()
	return nn
}

// Stop closes nd and takes it out of Nodes, keeping its data directory:
// Start starts it again.
func (net *Net) Stop(nd *Node) {
	net.t.Helper()
	nd.Client.Close()
	if err := nd.Node.Close(); err != nil {
		net.t.Fatalf("close: %v", err)
	}
	net.mu.Lock()
	net.Nodes = slices.DeleteFunc(net.Nodes, func(x *Node) bool { return x == nd })
	net.mu.Unlock()
}

// Start starts a node that Stop stopped, on its data directory.
func (net *Net) Start(nd *Node) *Node {
	net.t.Helper()
	nn, err := net.start(nd.cfg)
	if err != nil {
		net.t.Fatalf("start: %v", err)
	}
	net.mu.Lock()
	net.Nodes = append(net.Nodes, nn)
	net.mu.Unlock()
	return nn
}

func (net *Net) newDir() string {
	net.mu.Lock()
	defer net.mu.Unlock()
	net.seq++
	return filepath.Join(net.root, fmt.Sprintf("node%03d", net.seq))
}

func (net *Net) add(public bool, dir string) (*Node, error) {
	return net.addWith(public, dir, nil)
}

// NodeConfig is the configuration Add would start a node with, on a new
// data directory, for a test that starts the node itself (node.Run).
func (net *Net) NodeConfig() node.Config { return net.config(false, net.newDir()) }

func (net *Net) addWith(public bool, dir string, mod func(*node.Config)) (*Node, error) {
	cfg := net.config(public, dir)
	if mod != nil {
		mod(&cfg)
	}
	nd, err := net.start(cfg)
	if err != nil {
		return nil, err
	}
	net.mu.Lock()
	net.Nodes = append(net.Nodes, nd)
	net.mu.Unlock()
	return nd, nil
}

func (net *Net) config(public bool, dir string) node.Config {
	cfg := node.Config{
		DataDir:   dir,
		Listen:    []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		APIAddr:   "127.0.0.1:0",
		Public:    public,
		DHTServer: true,
		Network:   net.opts.Network,
		Web:       net.opts.Web,
		Logger:    net.opts.Logger,
		// Backups at the cheapest cost a reader accepts: production's
		// 256 MiB of Argon2id per backup would dominate a test.
		BackupParams: devices.BackupParams{Time: 1, MemoryKiB: 64 << 10, Lanes: 1, ChunkSize: 64 << 10},
	}
	net.mu.Lock()
	if len(net.Nodes) > 0 {
		cfg.Bootstrap = net.Nodes[0].bootstrapAddrs()
	}
	net.mu.Unlock()
	if net.mn != nil {
		cfg.NewHost = net.mockHost
	}
	if net.opts.Configure != nil {
		net.opts.Configure(&cfg)
	}
	return cfg
}

func (net *Net) start(cfg node.Config) (*Node, error) {
	n, err := node.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		return nil, fmt.Errorf("start node in %s: %w", cfg.DataDir, err)
	}
	c, err := api.DialDataDir(cfg.DataDir)
	if err != nil {
		n.Close()
		return nil, err
	}
	return &Node{Node: n, Client: c, Dir: cfg.DataDir, cfg: cfg}, nil
}

func (nd *Node) bootstrapAddrs() []string {
	id, err := nd.ID(context.Background())
	if err != nil {
		return nil
	}
	return id.Addrs
}

// Mocknet is the simulated network, or nil on loopback.
func (net *Net) Mocknet() mocknet.Mocknet { return net.mn }

var mockPort atomic.Int32

// mockHost adds a host with the node's key to the mocknet and links it to
// every other host.
func (net *Net) mockHost(key crypto.PrivKey) (host.Host, error) {
	addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 20000+mockPort.Add(1)))
	if err != nil {
		return nil, err
	}
	h, err := net.mn.AddPeer(key, addr)
	if err != nil {
		return nil, err
	}
	if err := net.mn.LinkAll(); err != nil {
		return nil, err
	}
	return h, nil
}

// Close stops every node and waits for them.
func (net *Net) Close() {
	net.mu.Lock()
	nodes := net.Nodes
	net.Nodes = nil
	net.mu.Unlock()
	var wg sync.WaitGroup
	for _, nd := range nodes {
		wg.Go(func() {
			nd.Client.Close()
			if err := nd.Node.Close(); err != nil {
				net.t.Errorf("close node: %v", err)
			}
		})
	}
	wg.Wait()
	if net.mn != nil {
		net.mn.Close()
	}
}

// WaitConnected waits until every node has published its identity and has
// a non-empty routing table.
func (net *Net) WaitConnected(t testing.TB, timeout time.Duration) {
	t.Helper()
	check.Eventually(t, timeout, func() error {
		for i, nd := range net.Nodes {
			if nd.DHT().RoutingTableSize() == 0 {
				return fmt.Errorf("node %d has an empty routing table", i)
			}
			if !nd.Published() {
				return fmt.Errorf("node %d has not published its identity yet", i)
			}
		}
		return nil
	})
}

// Running is a node started by node.Run, as `callsign up` starts one: it
// starts again after a restore from the web app.
type Running struct {
	Config  node.Config
	started chan *node.Node
	done    chan error
}

// Run starts a node with node.Run on a new data directory, bootstrapped
// from the first node; it stops at the end of the test, before the rest of
// the network.
func (net *Net) Run(t testing.TB) *Running {
	t.Helper()
	r := &Running{Config: net.NodeConfig(), started: make(chan *node.Node, 2), done: make(chan error, 1)}
	ctx, stop := context.WithCancel(context.Background())
	go func() { r.done <- node.Run(ctx, r.Config, func(n *node.Node) { r.started <- n }) }()
	t.Cleanup(func() {
		stop()
		if err := <-r.done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return r
}

// Next waits for the node's next start, for a minute at most.
func (r *Running) Next(t testing.TB) *node.Node {
	t.Helper()
	select {
	case n := <-r.started:
		return n
	case err := <-r.done:
		r.done <- err // for the cleanup
		t.Fatalf("run returned: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the node did not start within a minute")
	}
	return nil
}

// Restarted reports whether the node started again since the last Next.
func (r *Running) Restarted() bool { return len(r.started) > 0 }
