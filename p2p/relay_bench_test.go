package p2p_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/internal/benchproc"
	"github.com/callsign/callsign/internal/cputime"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
)

// What a public node's circuit relay carries (issue 15): message streams
// between private hosts relayed by circuit relay v2 with the node's own
// limits (p2p.RelayLimits' defaults, which a node passes: a circuit lives
// at most 2 min and carries at most 1 MiB each way, so a stream of
// messages redials a new circuit every relayBudget bytes, as a member
// would after the relay cut it).
//
// The relay is a p2p.NewHost with Public set, as a node builds it, run in
// a child process of this test binary pinned to one CPU (taskset -c 0,
// GOMAXPROCS=1): its CPU time and memory are its own. Senders and
// receivers are p2p hosts in this process. Each of relayPairs pairs keeps
// one stream open and sends 1 KiB messages in batches of relayBatch, each
// message a frame (p2p.WriteFrame, as msg writes them) acknowledged by a
// 16-byte frame; after relayBudget bytes the sender closes the connection
// and dials a new one.
//
// Baseline, same run, same pattern: the same streams on direct
// connections between the same kind of hosts (a fresh connection every
// relayBudget bytes too, so the two differ by the relay alone).
//
//	go test ./p2p -run '^$' -bench CircuitRelay -benchtime 40000x
const (
	relayPairs   = 8 // the node's limit: 8 reservations per IP, all hosts here are on 127.0.0.1
	relayMsg     = 1024
	relayBatch   = 32
	relayBudget  = 768 << 10 // payload per connection, under the 1 MiB limit with framing and Noise
	relayAckSize = 16
	relayProto   = "/callsign-test/relay-msgs/1.0.0"
)

func BenchmarkCircuitRelay(b *testing.B) {
	b.Logf("load average at start: %s", benchproc.LoadAvg())
	// Direct: senders dial receivers' TCP addresses.
	b.Run("direct", func(b *testing.B) {
		pairs := make([]relayPair, relayPairs)
		for i := range pairs {
			pairs[i].b = p2ptest.NewHost(b, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
			pairs[i].a = p2ptest.NewHost(b, func(c *p2p.HostConfig) { c.Listen = []string{} })
			pairs[i].addr = peer.AddrInfo{ID: pairs[i].b.ID(), Addrs: pairs[i].b.Addrs()}
			serveMsgs(pairs[i].b)
		}
		runRelayPairs(b, pairs, nil)
	})
	b.Run("relayed", func(b *testing.B) {
		child := startCircuitRelayChild(b)
		relayInfo := peer.AddrInfo{ID: child.id, Addrs: []ma.Multiaddr{child.addr}}
		pairs := make([]relayPair, relayPairs)
		ctx := context.Background()
		for i := range pairs {
			noListen := func(c *p2p.HostConfig) { c.Listen = []string{} }
			pairs[i].b, pairs[i].a = p2ptest.NewHost(b, noListen), p2ptest.NewHost(b, noListen)
			serveMsgs(pairs[i].b)
			if err := pairs[i].b.Connect(ctx, relayInfo); err != nil {
				b.Fatal(err)
			}
			if _, err := client.Reserve(ctx, pairs[i].b, relayInfo); err != nil {
				b.Fatalf("reserve %d: %v", i, err)
			}
			circuit, err := ma.NewMultiaddr(fmt.Sprintf("%s/p2p/%s/p2p-circuit", child.addr, child.id))
			if err != nil {
				b.Fatal(err)
			}
			pairs[i].addr = peer.AddrInfo{ID: pairs[i].b.ID(), Addrs: []ma.Multiaddr{circuit}}
		}
		runRelayPairs(b, pairs, child)
	})
	b.Logf("load average at end: %s", benchproc.LoadAvg())
}

// BenchmarkRelayCircuitMemory opens circuits through the relay child (8
// receivers, each reached by 8 senders: 64 circuits, one open message
// stream on each) and reports the relay's memory per circuit.
//
// It measures once, whatever b.N.
//
//	go test ./p2p -run '^$' -bench RelayCircuitMemory -benchtime 1x
func BenchmarkRelayCircuitMemory(b *testing.B) {
	child := startCircuitRelayChild(b)
	relayInfo := peer.AddrInfo{ID: child.id, Addrs: []ma.Multiaddr{child.addr}}
	ctx := context.Background()
	noListen := func(c *p2p.HostConfig) { c.Listen = []string{} }
	var bs, as []host.Host
	for range relayPairs {
		h := p2ptest.NewHost(b, noListen)
		serveMsgs(h)
		if err := h.Connect(ctx, relayInfo); err != nil {
			b.Fatal(err)
		}
		if _, err := client.Reserve(ctx, h, relayInfo); err != nil {
			b.Fatal(err)
		}
		bs = append(bs, h)
		as = append(as, p2ptest.NewHost(b, noListen))
	}
	{
		before := child.stats(b)
		var streams []network.Stream
		for _, a := range as {
			for _, h := range bs {
				circuit, _ := ma.NewMultiaddr(fmt.Sprintf("%s/p2p/%s/p2p-circuit", child.addr, child.id))
				if err := a.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
					b.Fatal(err)
				}
				s, err := p2p.Dial(ctx, a, h.ID(), relayProto, true)
				if err != nil {
					b.Fatal(err)
				}
				// One message through, so the stream is open at both ends.
				if err := p2p.WriteFrame(s, make([]byte, relayMsg)); err != nil {
					b.Fatal(err)
				}
				if _, err := p2p.ReadFrame(s, relayAckSize); err != nil {
					b.Fatal(err)
				}
				streams = append(streams, s)
			}
		}
		after := child.stats(b)
		n := float64(len(streams))
		b.ReportMetric(float64(after.rss-before.rss)/n/1024, "relay-rss-KiB/circuit")
		b.ReportMetric(float64(after.heap-before.heap)/n/1024, "relay-heap-KiB/circuit")
		b.ReportMetric(float64(after.circuits), "circuits")
		for _, s := range streams {
			_ = s.Close()
		}
		for _, a := range as {
			for _, h := range bs {
				_ = a.Network().ClosePeer(h.ID())
			}
		}
	}
}

type relayPair struct {
	a, b host.Host
	addr peer.AddrInfo
}

// serveMsgs acknowledges each message frame on a stream with a frame
// carrying its sequence number.
func serveMsgs(h host.Host) {
	h.SetStreamHandler(relayProto, func(s network.Stream) {
		ack := make([]byte, relayAckSize)
		br := bufio.NewReader(s)
		bw := bufio.NewWriter(s)
		for {
			m, err := p2p.ReadFrame(br, relayMsg)
			if err != nil {
				if err == io.EOF {
					_ = s.Close()
				} else {
					_ = s.Reset()
				}
				return
			}
			copy(ack, m[:8])
			if err := p2p.WriteFrame(bw, ack); err != nil {
				_ = s.Reset()
				return
			}
			if br.Buffered() == 0 {
				if err := bw.Flush(); err != nil {
					_ = s.Reset()
					return
				}
			}
		}
	})
}

// runRelayPairs sends b.N messages in all over the pairs and reports
// messages per second and CPU per message: this process's (senders and
// receivers), and the relay child's when there is one.
func runRelayPairs(b *testing.B, pairs []relayPair, child *circuitRelayChild) {
	ctx := context.Background()
	// Warm up: one connection and one batch per pair.
	for _, p := range pairs {
		if _, err := sendMsgs(ctx, p, relayBatch); err != nil {
			b.Fatal(err)
		}
	}
	var before relayStats
	if child != nil {
		before = child.stats(b)
	}
	per := max(b.N/len(pairs), relayBatch)
	var conns atomic.Int64
	b.SetBytes(relayMsg)
	b.ResetTimer()
	cpu0 := cputime.Process()
	var wg sync.WaitGroup
	for _, p := range pairs {
		wg.Go(func() {
			for left := per; left > 0; {
				n := min(left, relayBudget/relayMsg)
				sent, err := sendMsgs(ctx, p, n)
				if err != nil {
					b.Errorf("after %d of %d: %v", per-left+sent, per, err)
					return
				}
				conns.Add(1)
				left -= n
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	total := float64(per * len(pairs))
	wall := b.Elapsed().Seconds()
	b.ReportMetric(total/wall, "msgs/s")
	b.ReportMetric(float64(cputime.Process()-cpu0)/1e3/total, "ends-cpu-µs/msg")
	b.ReportMetric(float64(conns.Load()), "conns")
	if child != nil {
		after := child.stats(b)
		cpu := (after.cpu - before.cpu).Seconds()
		b.ReportMetric(cpu*1e6/total, "relay-cpu-µs/msg")
		b.ReportMetric(total/cpu, "relay-msgs/core-s")
		b.ReportMetric(100*cpu/wall, "relay-cpu%")
		b.ReportMetric(float64(after.bytes-before.bytes)/total, "relayed-B/msg")
		b.ReportMetric(float64(after.circuitsAll-before.circuitsAll), "circuits-opened")
	}
	b.Logf("load average: %s", benchproc.LoadAvg())
}

// sendMsgs connects p.a to p.b (through the relay when p.addr is a
// circuit), sends n messages on one stream in batches of relayBatch, each
// batch waiting for its acknowledgements, and closes the connection.
func sendMsgs(ctx context.Context, p relayPair, n int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.a.Connect(ctx, p.addr); err != nil {
		return 0, err
	}
	defer p.a.Network().ClosePeer(p.b.ID())
	s, err := p2p.Dial(ctx, p.a, p.b.ID(), relayProto, true)
	if err != nil {
		return 0, err
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	msg := bytes.Repeat([]byte{'m'}, relayMsg)
	bw := bufio.NewWriterSize(s, 64<<10)
	br := bufio.NewReader(s)
	sent := 0
	for sent < n {
		k := min(relayBatch, n-sent)
		for i := range k {
			binary.BigEndian.PutUint64(msg, uint64(sent+i))
			if err := p2p.WriteFrame(bw, msg); err != nil {
				return sent, err
			}
		}
		if err := bw.Flush(); err != nil {
			return sent, err
		}
		for i := range k {
			ack, err := p2p.ReadFrame(br, relayAckSize)
			if err != nil {
				return sent, err
			}
			if got := binary.BigEndian.Uint64(ack); got != uint64(sent+i) {
				return sent, fmt.Errorf("ack %d for message %d", got, sent+i)
			}
		}
		sent += k
	}
	_ = s.CloseWrite()
	return sent, nil
}

// circuitRelayChild is the relay host running in a child process.
type circuitRelayChild struct {
	*benchproc.Child
	id   peer.ID
	addr ma.Multiaddr
}

// relayStats are the child's figures; the counters are the relay's.
type relayStats struct {
	cpu                time.Duration
	rss, heap          int64
	bytes, circuitsAll uint64
	circuits           int64
}

func (c *circuitRelayChild) stats(b *testing.B) relayStats {
	s := c.Stats(b)
	if len(s.Counters) != 3 {
		b.Fatalf("relay child counters %v", s.Counters)
	}
	return relayStats{cpu: s.CPU, rss: s.RSS, heap: s.Heap, bytes: s.Counters[0], circuits: int64(s.Counters[1]), circuitsAll: s.Counters[2]}
}

// startCircuitRelayChild runs TestCircuitRelayServer in a child process
// pinned to CPU 0 with one P.
func startCircuitRelayChild(b *testing.B) *circuitRelayChild {
	c := &circuitRelayChild{Child: benchproc.Start(b, "TestCircuitRelayServer", "CALLSIGN_RELAY_CAPACITY_CHILD")}
	if len(c.Ready) != 2 {
		b.Fatalf("relay child ready with %q", c.Ready)
	}
	var err error
	if c.id, err = peer.Decode(c.Ready[0]); err != nil {
		b.Fatal(err)
	}
	if c.addr, err = ma.NewMultiaddr(c.Ready[1]); err != nil {
		b.Fatal(err)
	}
	return c
}

// TestCircuitRelayServer is the relay of BenchmarkCircuitRelay: it runs
// only as its child process (internal/benchproc), ready with "<peer id>
// <tcp addr>"; its counters are the bytes relayed, the circuits open and
// the circuits opened.
func TestCircuitRelayServer(t *testing.T) {
	if !benchproc.IsChild("CALLSIGN_RELAY_CAPACITY_CHILD") {
		t.Skip("the relay of BenchmarkCircuitRelay, run in its own process")
	}
	var stats p2p.HostStats
	// As node.startHost builds a public node's host (RelayLimits nil).
	h := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP; c.Public = true; c.Stats = &stats })
	benchproc.Serve([]string{h.ID().String(), h.Addrs()[0].String()}, func() []uint64 {
		r := stats.Relay()
		return []uint64{r.Bytes, uint64(r.Circuits), r.CircuitsAll}
	})
}
