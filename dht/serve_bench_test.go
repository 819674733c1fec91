package dht_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/benchproc"
	"github.com/callsign/callsign/internal/cputime"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/callsign/callsign/store/diskstore"
)

// What a public node's DHT answers (issue 15), and what keeping members'
// records published costs.
//
// The public node is a child process of this test binary pinned to one
// CPU (taskset -c 0, GOMAXPROCS=1): a p2p host with Public set and a DHT
// server whose records are on disk (store/diskstore), as node builds them.
// Around it, in this process, serveNodes DHT servers on real libp2p hosts
// (loopback TCP) make up its network: the routing table a FIND_NODE is
// answered from, and the peers members publish through. serveMembers
// members each publish an identity record (1,500 B of prekeys, one
// device) and claim a self-certifying handle, so the public node holds
// their records on disk.
//
// Queries: serveClients plain hosts, serveWorkers requests in flight each,
// one request per stream as callsign's resolver sends them (kad's wire
// format: a varint-length protobuf pb.Message): GET_VALUE of a stored
// identity or handle record, FIND_NODE of a random key, and as the
// baseline a no-op request/response on the same hosts (one frame each
// way, a raw stream handler on the public node). The figures are the
// public node's CPU per request, hence requests per core-second.
//
//	go test ./dht -run '^$' -bench DHTServe -benchtime 20000x -timeout 20m
//	go test ./dht -run '^$' -bench KeepRound -benchtime 1x -timeout 20m
const (
	serveNodes   = 20
	serveMembers = 200
	serveClients = 8
	serveWorkers = 4
	kadProto     = protocol.ID(dht.ProtocolPrefix + "/kad/1.0.0")
	noopProto    = protocol.ID("/callsign-test/noop/1.0.0")
)

func BenchmarkDHTServe(b *testing.B) {
	nw := newServeNet(b)
	keys := nw.keys
	ctx := context.Background()
	clients := make([]host.Host, serveClients)
	for i := range clients {
		clients[i] = p2ptest.NewHost(b, func(c *p2p.HostConfig) { c.Listen = []string{} })
		if err := clients[i].Connect(ctx, nw.child.info); err != nil {
			b.Fatal(err)
		}
	}
	// Every record held answers.
	for _, k := range keys {
		if _, err := kadGet(ctx, clients[0], nw.child.info.ID, k); err != nil {
			b.Fatalf("GET_VALUE %s: %v", k, err)
		}
	}
	b.Logf("load average at start: %s; %d records held", benchproc.LoadAvg(), len(keys))
	run := func(b *testing.B, do func(ctx context.Context, h host.Host, rng *rand.Rand) error) {
		before := nw.child.stats(b)
		var next atomic.Int64
		var failed atomic.Int64
		b.ResetTimer()
		cpu0 := cputime.Process()
		var wg sync.WaitGroup
		for i := range serveClients * serveWorkers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(i), 15))
				for next.Add(1) <= int64(b.N) {
					if err := do(ctx, clients[i%serveClients], rng); err != nil {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		after := nw.child.stats(b)
		n := float64(b.N)
		cpu := (after.cpu - before.cpu).Seconds()
		b.ReportMetric(n/b.Elapsed().Seconds(), "req/s")
		b.ReportMetric(cpu*1e6/n, "server-cpu-µs/req")
		b.ReportMetric(n/cpu, "req/core-s")
		b.ReportMetric(100*cpu/b.Elapsed().Seconds(), "server-cpu%")
		b.ReportMetric(float64(cputime.Process()-cpu0)/1e3/n, "clients-cpu-µs/req")
		b.ReportMetric(float64(failed.Load()), "failed")
		b.ReportMetric(float64(after.rss)/(1<<20), "server-rss-MiB")
		b.Logf("load average: %s", benchproc.LoadAvg())
	}
	b.Run("noop", func(b *testing.B) {
		run(b, func(ctx context.Context, h host.Host, _ *rand.Rand) error {
			return noop(ctx, h, nw.child.info.ID)
		})
	})
	b.Run("get_value", func(b *testing.B) {
		run(b, func(ctx context.Context, h host.Host, rng *rand.Rand) error {
			_, err := kadGet(ctx, h, nw.child.info.ID, keys[rng.IntN(len(keys))])
			return err
		})
	})
	b.Run("find_node", func(b *testing.B) {
		run(b, func(ctx context.Context, h host.Host, rng *rand.Rand) error {
			var k [32]byte
			for i := range k {
				k[i] = byte(rng.Uint32())
			}
			m, err := kadRequest(ctx, h, nw.child.info.ID, pb.NewMessage(pb.Message_FIND_NODE, k[:], 0))
			if err == nil && len(m.CloserPeers) == 0 {
				err = fmt.Errorf("FIND_NODE: no peers")
			}
			return err
		})
	})
	b.Logf("load average at end: %s", benchproc.LoadAvg())
}

// BenchmarkKeepRound is one republish round of a keeper holding
// serveMembers members' records (an identity record and a handle record
// each, through dht.Keep, as node's keeper does for the schedules it
// keeps): Republish looks each record's key up and puts it to the K
// closest. Reported: the keeper's process CPU (the whole network here:
// the other servers' answers included, so an upper bound on the
// keeper's share) per member, the requests the round made the public
// node (the child, one of the K closest to every key here) serve, and the
// bytes per member, derived from the requests served by every server in
// the network and the sizes of those messages.
func BenchmarkKeepRound(b *testing.B) {
	nw := newServeNet(b)
	ctx := context.Background()
	c := p2ptest.NewHost(b, func(c *p2p.HostConfig) { c.Listen = []string{} })
	if err := c.Connect(ctx, nw.child.info); err != nil {
		b.Fatal(err)
	}
	keeper := nw.dhts[0]
	var recBytes int
	for _, k := range nw.keys {
		raw, err := kadGet(ctx, c, nw.child.info.ID, k)
		if err != nil {
			b.Fatal(err)
		}
		if err := keeper.Keep(k, raw); err != nil {
			b.Fatal(err)
		}
		recBytes += len(raw)
	}
	b.Logf("load average at start: %s; %d records kept, %d B", benchproc.LoadAvg(), len(nw.keys), recBytes)
	for range b.N {
		before := nw.child.stats(b)
		reqs0 := nw.requests()
		cpu0 := cputime.Process()
		start := time.Now()
		if err := keeper.Republish(ctx); err != nil {
			b.Fatalf("republish: %v", err)
		}
		wall := time.Since(start)
		cpu := cputime.Process() - cpu0
		after := nw.child.stats(b)
		reqs := nw.requests()
		for k := range reqs {
			reqs[k] -= reqs0[k]
		}
		reqs["get_value"] += after.get - before.get
		reqs["find_node"] += after.find - before.find
		reqs["put_value"] += after.put - before.put
		m := float64(len(nw.keys)) / 2 // members' worth of records
		// Bytes on the wire per request, payload only (Noise and yamux add
		// ~30 B a frame, multistream ~40 B a stream): a PUT_VALUE carries
		// the record and its key, echoed back; GET_VALUE of a key the
		// peer holds returns the record and up to 20 closer peers;
		// FIND_NODE returns 20 peers (≈ 60 B each: id and two addresses).
		avgRec := float64(recBytes) / float64(len(nw.keys))
		const peers = 20 * 60
		bytes := float64(reqs["put_value"])*2*(avgRec+80) + float64(reqs["get_value"])*(avgRec+80+peers) +
			float64(reqs["find_node"])*(60+peers)
		b.ReportMetric(wall.Seconds()*1e3/m, "wall-ms/member")
		b.ReportMetric(cpu.Seconds()*1e3/m, "network-cpu-ms/member")
		b.ReportMetric((after.cpu-before.cpu).Seconds()*1e3/m, "public-node-cpu-ms/member")
		b.ReportMetric(float64(reqs["put_value"])/m, "puts/member")
		b.ReportMetric(float64(reqs["get_value"]+reqs["find_node"])/m, "lookups-req/member")
		b.ReportMetric(bytes/m/1024, "derived-KiB/member")
		b.Logf("round: %v for %d records; requests served in the network: %v; load %s", wall, len(nw.keys), reqs, benchproc.LoadAvg())
	}
}

// serveNet is the public node (the child) and its network.
type serveNet struct {
	child *dhtChild
	dhts  []*dht.DHT
	keys  []string // DHT keys of the members' records
}

func (nw *serveNet) requests() map[string]uint64 {
	out := map[string]uint64{}
	for _, d := range nw.dhts {
		for _, r := range d.Requests() {
			out[r.Kind] += r.Served
		}
	}
	return out
}

func newServeNet(b *testing.B) *serveNet {
	nw := &serveNet{child: startDHTChild(b)}
	ctx := context.Background()
	for range serveNodes {
		h := p2ptest.NewHost(b, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
		d, err := dht.New(dht.Config{Host: h, Server: true, Bootstrap: []peer.AddrInfo{nw.child.info},
			RepublishInterval: 24 * time.Hour, ReplicateInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = d.Close() })
		if err := d.Start(ctx); err != nil {
			b.Fatal(err)
		}
		nw.dhts = append(nw.dhts, d)
	}
	for _, d := range nw.dhts {
		_ = d.Refresh(ctx)
	}
	// Members publish their identity and claim a self-certifying handle.
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	now := time.Now()
	for i := range serveMembers {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d := nw.dhts[i%len(nw.dhts)]
			s := sha256.Sum256(fmt.Appendf(nil, "serve-member-%d", i))
			k, err := identity.AccountKeyFromSeed(s[:])
			if err != nil {
				b.Error(err)
				return
			}
			x := sha256.Sum256(fmt.Appendf(nil, "x25519-%d", i))
			cert, err := identity.IssueDeviceCert(k, fmt.Appendf(nil, "peer-%d", i), x[:], now.Add(-time.Hour), now.Add(30*24*time.Hour))
			if err != nil {
				b.Error(err)
				return
			}
			rec := &dht.IdentityRecord{Account: k.Public(), Seq: 1, Issued: now.Truncate(time.Millisecond),
				Expires: now.Add(72 * time.Hour).Truncate(time.Millisecond), Devices: []identity.DeviceCert{cert},
				Prekeys: bytes.Repeat([]byte{0x42}, 1500), DisplayName: fmt.Sprintf("Member %d", i)}
			if _, err := d.PublishIdentity(ctx, k, rec); err != nil {
				b.Errorf("publish %d: %v", i, err)
				return
			}
			name := identity.SelfCertHandle(fmt.Sprintf("member%d", i), k.Public())
			if res, err := d.ClaimHandle(ctx, k, name, nil); err != nil || res.Status != dht.ClaimClaimed {
				b.Errorf("claim %d: %v %+v", i, err, res)
				return
			}
			mu.Lock()
			nw.keys = append(nw.keys, "/csid/"+string(k.Public().ID()), "/csname/"+name)
			mu.Unlock()
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	// Keep the keys the public node holds: a publisher whose routing
	// table was still filling put a few records to 20 closest that did not
	// include it.
	c := p2ptest.NewHost(b, func(c *p2p.HostConfig) { c.Listen = []string{} })
	if err := c.Connect(ctx, nw.child.info); err != nil {
		b.Fatal(err)
	}
	held := nw.keys[:0]
	for _, k := range nw.keys {
		if _, err := kadGet(ctx, c, nw.child.info.ID, k); err == nil {
			held = append(held, k)
		}
	}
	b.Logf("the public node holds %d of the members' %d records", len(held), len(nw.keys))
	nw.keys = held
	return nw
}

// kadRequest sends one kad message on a new stream and reads the answer.
func kadRequest(ctx context.Context, h host.Host, to peer.ID, m *pb.Message) (*pb.Message, error) {
	req, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	resp, err := p2p.Request(ctx, h, to, kadProto, false, req, 128<<10)
	if err != nil {
		return nil, err
	}
	var out pb.Message
	if err := proto.Unmarshal(resp, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// kadGet is a GET_VALUE; it returns the record's value.
func kadGet(ctx context.Context, h host.Host, to peer.ID, key string) ([]byte, error) {
	m, err := kadRequest(ctx, h, to, pb.NewMessage(pb.Message_GET_VALUE, []byte(key), 0))
	if err != nil {
		return nil, err
	}
	if m.Record == nil || len(m.Record.Value) == 0 {
		return nil, fmt.Errorf("GET_VALUE %s: no record", key)
	}
	return m.Record.Value, nil
}

// noop is the baseline: one frame each way on a new stream.
func noop(ctx context.Context, h host.Host, to peer.ID) error {
	_, err := p2p.Request(ctx, h, to, noopProto, false, []byte("noop"), 16)
	return err
}

// dhtChild is the public node running in a child process.
type dhtChild struct {
	*benchproc.Child
	info peer.AddrInfo
}

// dhtChildStats are the child's figures; its counters are the requests
// its DHT served.
type dhtChildStats struct {
	cpu            time.Duration
	rss, heap      int64
	get, find, put uint64
}

func (c *dhtChild) stats(b *testing.B) dhtChildStats {
	s := c.Stats(b)
	if len(s.Counters) != 3 {
		b.Fatalf("DHT child counters %v", s.Counters)
	}
	return dhtChildStats{cpu: s.CPU, rss: s.RSS, heap: s.Heap, get: s.Counters[0], find: s.Counters[1], put: s.Counters[2]}
}

// startDHTChild runs TestDHTServeServer in a child process pinned to CPU
// 0 with one P.
func startDHTChild(b *testing.B) *dhtChild {
	c := &dhtChild{Child: benchproc.Start(b, "TestDHTServeServer", "CALLSIGN_DHT_SERVE_CHILD")}
	if len(c.Ready) != 2 {
		b.Fatalf("DHT child ready with %q", c.Ready)
	}
	pid, err := peer.Decode(c.Ready[0])
	if err != nil {
		b.Fatal(err)
	}
	a, err := ma.NewMultiaddr(c.Ready[1])
	if err != nil {
		b.Fatal(err)
	}
	c.info = peer.AddrInfo{ID: pid, Addrs: []ma.Multiaddr{a}}
	return c
}

// TestDHTServeServer is the public node of BenchmarkDHTServe and
// BenchmarkKeepRound: it runs only as their child process
// (internal/benchproc), ready with "<peer id> <tcp addr>"; its counters
// are the GET_VALUE, FIND_NODE and PUT_VALUE requests its DHT served.
func TestDHTServeServer(t *testing.T) {
	if !benchproc.IsChild("CALLSIGN_DHT_SERVE_CHILD") {
		t.Skip("the public node of BenchmarkDHTServe, run in its own process")
	}
	h := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP; c.Public = true })
	st, err := diskstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := dht.New(dht.Config{Host: h, Server: true, Datastore: st})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.SetStreamHandler(noopProto, func(s network.Stream) {
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := p2p.ReadFrame(s, 16); err != nil {
			_ = s.Reset()
			return
		}
		if err := p2p.WriteFrame(s, nil); err != nil {
			_ = s.Reset()
		}
	})
	benchproc.Serve([]string{h.ID().String(), h.Addrs()[0].String()}, func() []uint64 {
		n := map[string]uint64{}
		for _, r := range d.Requests() {
			n[r.Kind] = r.Served
		}
		return []uint64{n["get_value"], n["find_node"], n["put_value"]}
	})
}
