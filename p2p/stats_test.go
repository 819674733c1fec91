package p2p_test

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
)

// TestStatsCountRefusals: the streams one peer opens beyond its share of a
// protocol are counted as the resource manager's refusals at the
// protocol-peer scope, and nothing else is.
func TestStatsCountRefusals(t *testing.T) {
	var stats p2p.HostStats
	srv := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP; c.Stats = &stats })
	proto := protocol.ID("/callsign-test/hold/1.0.0")
	held := holdStreams(srv, proto)
	greedy := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	p2ptest.Connect(t, greedy, srv)

	for _, r := range stats.Refusals() {
		if r.Count != 0 {
			t.Fatalf("refusals before any stream: %+v", stats.Refusals())
		}
	}
	streams := openStreams(t, greedy, srv, proto, 40)
	defer func() {
		for _, s := range streams {
			_ = s.Reset()
		}
	}()
	count := func(resource, scope string) uint64 {
		for _, r := range stats.Refusals() {
			if r.Resource == resource && r.Scope == scope {
				return r.Count
			}
		}
		t.Fatalf("no refusal kind %s/%s in %+v", resource, scope, stats.Refusals())
		return 0
	}
	check.Until(t, 10*time.Second, "32 streams held and 8 refusals counted", func() bool {
		return held.Load() == 32 && count("stream", "protocol-peer") == 8
	})
	for _, r := range stats.Refusals() {
		if r.Count != 0 && (r.Resource != "stream" || r.Scope != "protocol-peer") {
			t.Errorf("refusals counted as %s/%s: %d", r.Resource, r.Scope, r.Count)
		}
	}
}
