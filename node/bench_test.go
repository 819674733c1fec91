package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
	"github.com/callsign/callsign/p2p/p2ptest"
)

// BenchmarkSendToEvent measures what a user of two nodes sees: the time
// from a send on node A's local API to the message event on node B's
// event stream (both over loopback HTTP/WebSocket), beside a raw libp2p
// stream echo of 1 KiB between the same two hosts, measured in the same run.
//
//	go test -run '^$' -bench SendToEvent -benchtime 2000x ./node/
func BenchmarkSendToEvent(b *testing.B) {
	ctx := context.Background()
	a, bb := benchPair(b)
	events, err := bb.Client.Events(ctx)
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("x", 1000)
	recv := func() {
		for ev := range events {
			if ev.Type == api.EventMessage {
				var m api.Message
				if json.Unmarshal(ev.Data, &m) == nil && m.Direction == "in" {
					return
				}
			}
		}
		b.Fatal("event stream closed")
	}
	// Warm up: session set-up, connections.
	for range 20 {
		if _, err := a.Client.Send(ctx, "b", text); err != nil {
			b.Fatal(err)
		}
		recv()
	}
	p2ptest.ServeEcho(bb.Host())
	payload, buf := make([]byte, 1024), make([]byte, 1024)

	lat := make([]time.Duration, 0, b.N)
	echo := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := a.Client.Send(ctx, "b", text); err != nil {
			b.Fatal(err)
		}
		recv()
		lat = append(lat, time.Since(t0))
		t1 := time.Now()
		if err := p2ptest.EchoRoundTrip(ctx, a.Host(), bb.Host().ID(), payload, buf); err != nil {
			b.Fatal(err)
		}
		echo = append(echo, time.Since(t1))
	}
	b.StopTimer()
	p50, p99 := pctl(lat, 50), pctl(lat, 99)
	e50, e99 := pctl(echo, 50), pctl(echo, 99)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(e50.Microseconds()), "echo-p50-µs")
	b.ReportMetric(float64(e99.Microseconds()), "echo-p99-µs")
	b.ReportMetric(float64(p50)/float64(e50), "p50-ratio")
}

func pctl(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[(len(s)-1)*p/100]
}

// BenchmarkThroughputAPI sends 1 KiB messages through A's API from 8
// concurrent clients and measures how fast B stores them (decrypted, durable,
// acknowledged): the clock stops when B's unread count reaches b.N.
//
//	go test -run '^$' -bench ThroughputAPI -benchtime 5000x ./node/
func BenchmarkThroughputAPI(b *testing.B) {
	ctx := context.Background()
	a, bb := benchPair(b)
	text := strings.Repeat("y", 1024)
	unread := func() int {
		cs, err := bb.Client.Conversations(ctx)
		if err != nil || len(cs) == 0 {
			return 0
		}
		return cs[0].Unread
	}
	if _, err := a.Client.Send(ctx, "b", text); err != nil {
		b.Fatal(err)
	}
	check.Eventually(b, time.Minute, func() error {
		if unread() < 1 {
			return fmt.Errorf("warm-up message not there")
		}
		return nil
	})
	const senders = 8
	b.ResetTimer()
	errs := make(chan error, senders)
	for w := range senders {
		go func() {
			var err error
			for i := w; i < b.N && err == nil; i += senders {
				_, err = a.Client.Send(ctx, "b", text)
			}
			errs <- err
		}()
	}
	for range senders {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	sent := b.Elapsed()
	check.Eventually(b, 5*time.Minute, func() error {
		if n := unread(); n < b.N+1 {
			return fmt.Errorf("%d of %d stored", n-1, b.N)
		}
		return nil
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	b.ReportMetric(float64(b.N)/sent.Seconds(), "queued-msg/s")
}

// benchPair starts a hub and two nodes that have each other as contacts
// ("a" and "b").
func benchPair(b *testing.B) (a, bb *testnet.Node) {
	net := testnet.New(b, 3, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond}})
	ctx := context.Background()
	a, bb = net.Nodes[1], net.Nodes[2]
	if _, err := a.Client.AddContact(ctx, bb.Account().String(), "b"); err != nil {
		b.Fatal(err)
	}
	if _, err := bb.Client.AddContact(ctx, a.Account().String(), "a"); err != nil {
		b.Fatal(err)
	}
	return a, bb
}

// BenchmarkLinkDevice: the "code entered → new device ready": from
// `up --link CODE` (node.Link) to the new node started with the account
// and its record published, both numbers confirmed at once (the person's
// part is not timed). Beside it, in the same run, the first start of a new
// node until its record is published: what a device costs with no link.
// Every node stays up (a closed one would slow the next lookups down by
// its dial timeout); an account takes 6 linked devices, then a new one
// links the next (a record holds 8).
func BenchmarkLinkDevice(b *testing.B) {
	net := testnet.New(b, 2, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond}})
	ctx := context.Background()
	b.Run("baseline-first-start", func(b *testing.B) {
		for b.Loop() {
			nd := net.StartOn(net.NodeConfig())
			for !nd.Published() {
				time.Sleep(5 * time.Millisecond)
			}
		}
	})
	b.Run("link", func(b *testing.B) {
		var e *testnet.Node
		linked := 0
		var linkTime time.Duration
		for b.Loop() {
			b.StopTimer()
			if e == nil || linked == 6 {
				e = net.StartOn(net.NodeConfig())
				for !e.Published() {
					time.Sleep(5 * time.Millisecond)
				}
				linked = 0
			}
			offer, err := e.Client.StartLink(ctx, api.LinkRequest{})
			if err != nil {
				b.Fatal(err)
			}
			cfg := net.NodeConfig()
			sas := make(chan string, 1)
			go func() {
				for s := range sas {
					if _, err := e.Client.ConfirmLink(ctx, s); err != nil {
						b.Error(err)
					}
				}
			}()
			b.StartTimer()
			start := time.Now()
			_, err = node.Link(ctx, cfg, node.LinkOptions{Code: offer.Code, Name: "bench", ConfirmSAS: func(ctx context.Context, s string) (bool, error) {
				// The other side shows the numbers once it has them too.
				for {
					st, err := e.Client.LinkStatus(ctx)
					if err != nil {
						return false, err
					}
					if st.State == api.LinkSAS {
						sas <- st.SAS
						return true, nil
					}
					time.Sleep(2 * time.Millisecond)
				}
			}})
			close(sas)
			if err != nil {
				b.Fatal(err)
			}
			linkTime += time.Since(start)
			nd := net.StartOn(cfg)
			for !nd.Published() {
				time.Sleep(5 * time.Millisecond)
			}
			linked++
		}
		b.ReportMetric(float64(linkTime.Milliseconds())/float64(b.N), "link-ms/op")
	})
}
