package p2p_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// BenchmarkEchoRoundTrip is the raw libp2p baseline: a new stream per
// round trip carrying 1 KiB each way over TCP on loopback, no framing.
func BenchmarkEchoRoundTrip(b *testing.B) {
	tcp := func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP }
	a, srv := p2ptest.NewHost(b, tcp), p2ptest.NewHost(b, tcp)
	p2ptest.ServeEcho(srv)
	p2ptest.Connect(b, a, srv)
	payload := bytes.Repeat([]byte{'x'}, 1024)
	buf := make([]byte, len(payload))
	ctx := context.Background()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p2ptest.EchoRoundTrip(ctx, a, srv.ID(), payload, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFramedRequest is the same round trip through p2p.Request and
// p2p.Handle (framing, deadlines, rate limiter, concurrency cap).
func BenchmarkFramedRequest(b *testing.B) {
	tcp := func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP }
	a, srv := p2ptest.NewHost(b, tcp), p2ptest.NewHost(b, tcp)
	s := p2p.Handle(srv, echoProto, p2p.HandlerConfig{Rate: rate.Inf}, func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
		return req, nil
	})
	defer s.Close()
	p2ptest.Connect(b, a, srv)
	payload := bytes.Repeat([]byte{'x'}, 1024)
	ctx := context.Background()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := p2p.Request(ctx, a, srv.ID(), echoProto, false, payload, 2048)
		if err != nil || len(resp) != len(payload) {
			b.Fatal(err)
		}
	}
}
