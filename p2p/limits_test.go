package p2p_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// holdStreams registers protos on h with a handler that holds each stream
// until the other side ends it, and returns the count of streams held.
func holdStreams(h host.Host, protos ...protocol.ID) *atomic.Int64 {
	var held atomic.Int64
	for _, p := range protos {
		h.SetStreamHandler(p, func(s network.Stream) {
			held.Add(1)
			defer held.Add(-1)
			_, _ = s.Read(make([]byte, 2)) // the opener's byte
			_, _ = s.Read(make([]byte, 1)) // until the stream ends
			_ = s.Reset()
		})
	}
	return &held
}

// openStreams opens n streams from a to b for proto, each carrying a byte,
// and returns them; the caller resets them.
func openStreams(t *testing.T, a, b host.Host, proto protocol.ID, n int) []network.Stream {
	t.Helper()
	var out []network.Stream
	for range n {
		s, err := a.NewStream(ctxT(t, 10*time.Second), b.ID(), proto)
		if err != nil {
			t.Fatalf("open %s: %v", proto, err)
		}
		// A refused stream may be reset before this byte goes out (QUIC
		// delivers the reset at once): the callers count refusals, so a
		// failed write is not the test's failure.
		_, _ = s.Write([]byte{1})
		out = append(out, s)
	}
	return out
}

// TestInboundStreamLimits: one peer holds at most 32 inbound streams of a
// protocol and 96 in all; the streams beyond are refused by the resource
// manager, and another peer's streams are still taken.
func TestInboundStreamLimits(t *testing.T) {
	srv := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	var protos []protocol.ID
	for i := range 4 {
		protos = append(protos, protocol.ID(fmt.Sprintf("/callsign-test/hold%d/1.0.0", i)))
	}
	held := holdStreams(srv, protos...)
	greedy := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	other := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	p2ptest.Connect(t, greedy, srv)
	p2ptest.Connect(t, other, srv)

	var all []network.Stream
	defer func() {
		for _, s := range all {
			_ = s.Reset()
		}
	}()
	// refused reads each stream until the server resets it or 1 s passes,
	// and counts those refused by the resource manager.
	refused := func(ss []network.Stream) int {
		var n atomic.Int64
		var wg sync.WaitGroup
		for _, s := range ss {
			wg.Go(func() {
				_ = s.SetReadDeadline(time.Now().Add(time.Second))
				_, err := s.Read(make([]byte, 1))
				var se *network.StreamError
				if errors.As(err, &se) && se.Remote && se.ErrorCode == network.StreamResourceLimitExceeded {
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return int(n.Load())
	}
	inbound := func() int { // srv's inbound streams from greedy, of any protocol
		n := 0
		for _, c := range srv.Network().ConnsToPeer(greedy.ID()) {
			for _, s := range c.GetStreams() {
				if s.Stat().Direction == network.DirInbound {
					n++
				}
			}
		}
		return n
	}

	// 40 streams of one protocol: 32 are held, 8 refused.
	batch := openStreams(t, greedy, srv, protos[0], 40)
	all = append(all, batch...)
	if n := refused(batch); n != 8 || held.Load() != 32 {
		t.Fatalf("40 streams of a protocol: %d held, %d refused", held.Load(), n)
	}
	// 32 more of each of three other protocols: the peer's inbound streams
	// stop at 96.
	batch = nil
	for _, p := range protos[1:] {
		batch = append(batch, openStreams(t, greedy, srv, p, 32)...)
	}
	all = append(all, batch...)
	if n := refused(batch); n < 32 || inbound() != 96 {
		t.Fatalf("%d inbound streams from one peer (%d held, %d refused), want 96", inbound(), held.Load(), n)
	}
	// Another peer is not locked out.
	before := held.Load()
	all = append(all, openStreams(t, other, srv, protos[0], 1)...)
	check.Until(t, 10*time.Second, "the other peer's stream held", func() bool { return held.Load() == before+1 })
}
