package msg

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/cputime"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/network"
)

// benchPair starts two nodes; onA and onB receive their events.
func benchPair(b *testing.B, onA, onB func(Event)) (*node, *node) {
	w := newWorld()
	a := newNode(b, w, func(c *Config) { c.OnEvent = onA })
	bb := newNode(b, w, func(c *Config) { c.OnEvent = onB })
	a.start()
	bb.start()
	a.know(bb)
	bb.know(a)
	p2ptest.ServeEcho(bb.host)
	return a, bb
}

func echoStream(b *testing.B, a, bb *node) network.Stream {
	st, err := a.host.NewStream(context.Background(), bb.host.ID(), p2ptest.EchoProtocol)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Reset() })
	return st
}

// BenchmarkThroughput measures 1 KiB messages A → B with full durability:
// Send (message, sealed envelope and ratchet state in one commit),
// delivery, the recipient's commit and ack, and the sender's ack commit.
// Four goroutines call Send ("msg"; 32 in "msg-32senders"); the clock
// stops when every message is delivered. msg/s is the mean over the run:
// over a long run (-benchtime 300000x, 20 s and more, through memtable
// flushes and compactions) the sustained rate. min-1s-msg/s is the
// deliveries in the run's slowest whole second (for runs of several
// seconds), and the log has every second's count.
// The baseline is a raw libp2p stream echo of 1 KiB writes between the
// same two hosts, pipelined.
func BenchmarkThroughput(b *testing.B) {
	body := bytes.Repeat([]byte{'m'}, 1024)
	var delivered atomic.Int64
	done := make(chan struct{}, 1)
	var target atomic.Int64
	replied := make(chan struct{}, 1)
	a, bb := benchPair(b, func(e Event) {
		if e.Kind == EventMessage {
			select {
			case replied <- struct{}{}:
			default:
			}
		}
		if e.Kind == EventState && e.State == StateDelivered {
			if delivered.Add(1) == target.Load() {
				done <- struct{}{}
			}
		}
	}, nil)

	run := func(b *testing.B, senders int) {
		delivered.Store(0)
		target.Store(int64(b.N))
		b.SetBytes(1024)
		b.ResetTimer()
		start := time.Now()
		cpu0 := cputime.Process()
		// Deliveries in each whole second of the run; the slowest is
		// reported (memtable flushes, compactions and GC included), the
		// partial last second is not.
		var perSecond []int64
		sampled := make(chan struct{})
		stopSampling := make(chan struct{})
		go func() {
			defer close(sampled)
			t := time.NewTicker(time.Second)
			defer t.Stop()
			last := int64(0)
			for {
				select {
				case <-stopSampling:
					return
				case <-t.C:
					n := delivered.Load()
					perSecond = append(perSecond, n-last)
					last = n
				}
			}
		}()
		to := bb.id()
		var wg sync.WaitGroup
		for g := range senders {
			wg.Go(func() {
				for i := g; i < b.N; i += senders {
					if _, err := a.svc.Send(context.Background(), to, body); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.Logf("sends done after %v", time.Since(start))
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("only %d of %d delivered", delivered.Load(), b.N)
		}
		close(stopSampling)
		<-sampled
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
		if len(perSecond) >= 2 {
			b.ReportMetric(float64(slices.Min(perSecond)), "min-1s-msg/s")
			b.Logf("deliveries per second: %v", perSecond)
		}
		// CPU of both nodes (the whole process) per message: on a shared
		// machine wall time mostly measures waiting for a core.
		b.ReportMetric(float64((cputime.Process()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	}
	b.Run("msg", func(b *testing.B) { run(b, 4) })
	// Many callers at once (the node's API handlers, several
	// conversations' worth of traffic): Sends share group commits.
	b.Run("msg-32senders", func(b *testing.B) { run(b, 32) })

	b.Run("echo", func(b *testing.B) {
		st := echoStream(b, a, bb)
		b.SetBytes(1024)
		b.ResetTimer()
		start := time.Now()
		errc := make(chan error, 1)
		go func() {
			for range b.N {
				if _, err := st.Write(body); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		buf := make([]byte, 1024)
		for range b.N {
			if _, err := io.ReadFull(st, buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	})

	// The same after B has replied once: A's session is confirmed, so its
	// messages no longer carry the 1 231-byte PQXDH handshake (until then
	// every one is an initial message, as the rows above measure).
	b.Run("replied", func(b *testing.B) {
		if _, err := bb.svc.Send(context.Background(), a.id(), []byte("reply")); err != nil {
			b.Fatal(err)
		}
		select {
		case <-replied:
		case <-time.After(time.Minute):
			b.Fatal("B's reply did not reach A")
		}
		ps := a.lane(bb)
		ps.mu.Lock()
		err := a.svc.loadSetLocked(ps)
		confirmed := err == nil && ps.set.Active() != nil && ps.set.Active().Confirmed()
		ps.mu.Unlock()
		if !confirmed {
			b.Fatalf("A's session is not confirmed after B's reply (%v)", err)
		}
		b.Run("msg", func(b *testing.B) { run(b, 4) })
		b.Run("msg-32senders", func(b *testing.B) { run(b, 32) })
	})
}

// BenchmarkLatency measures one 1 KiB message at a time from Send until it
// is committed in B's store (B's message event), beside a 1 KiB round trip
// on a raw libp2p stream between the same hosts.
func BenchmarkLatency(b *testing.B) {
	body := bytes.Repeat([]byte{'l'}, 1024)
	stored := make(chan string, 16)
	a, bb := benchPair(b, nil, func(e Event) {
		if e.Kind == EventMessage {
			stored <- e.ID
		}
	})
	report := func(b *testing.B, lat []time.Duration) {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	// Warm up: the session and the stream exist before timing.
	if _, err := a.svc.Send(context.Background(), bb.id(), body); err != nil {
		b.Fatal(err)
	}
	<-stored

	b.Run("msg", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for range b.N {
			start := time.Now()
			m, err := a.svc.Send(context.Background(), bb.id(), body)
			if err != nil {
				b.Fatal(err)
			}
			if id := <-stored; id != m.ID {
				b.Fatalf("stored %s, sent %s", id, m.ID)
			}
			lat = append(lat, time.Since(start))
		}
		report(b, lat)
	})
	b.Run("echo", func(b *testing.B) {
		report(b, echoRoundTrips(b, echoStream(b, a, bb), body))
	})
}

// echoRoundTrips times b.N round trips of body on an echo stream.
func echoRoundTrips(b *testing.B, st network.Stream, body []byte) []time.Duration {
	buf := make([]byte, len(body))
	lat := make([]time.Duration, 0, b.N)
	for range b.N {
		start := time.Now()
		if _, err := st.Write(body); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(st, buf); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

// BenchmarkStamp measures a first-contact stamp at DefaultStampBits: what
// a sender computes once per new recipient (solve, mean over b.N; the
// work is random, so use -benchtime 20x or more), and what checking one
// costs the recipient (verify).
func BenchmarkStamp(b *testing.B) {
	sender, recipient := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	var stamp []byte
	b.Run("solve", func(b *testing.B) {
		for range b.N {
			var err error
			if stamp, err = solveStamp(context.Background(), sender, recipient, DefaultStampBits); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/stamp")
	})
	b.Run("verify", func(b *testing.B) {
		for range b.N {
			if !checkStamp(sender, recipient, stamp, DefaultStampBits) {
				b.Fatal("stamp does not verify")
			}
		}
	})
}

// BenchmarkSignal measures SendSignal of a 200-byte payload (an ICE
// candidate), from the call until the recipient's ack (the signal
// decrypted, its id committed, OnSignal called), with no text queued for
// the peer ("signal/queued-0"), and with 500 or 2000 texts queued for it
// during the call that the recipient reads one a second
// ("signal/queued-500", "-2000": its inbox is backed up, so they stay
// queued). The baselines, in the
// same run: a round trip of the same size on a raw libp2p stream between
// the same hosts ("echo"), and what a signal cost when it was queued
// behind the texts like a read receipt, with the recipient reading at
// full speed: a text queued behind 500 others while the recipient was
// down, from its return until it stored that text ("text-behind-500").
func BenchmarkSignal(b *testing.B) {
	const backlog = 500
	report := func(b *testing.B, lat []time.Duration) {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(0, "ns/op")
	}
	// Each run has its own pair: the signal lane takes signalBurst frames
	// at once from a peer, so runs stay within -benchtime 50x.
	lanePair := func(b *testing.B, queued int) (*node, *node) {
		w := newWorld()
		a := newNode(b, w, nil)
		bb := newNode(b, w, func(c *Config) {
			c.PeerRate, c.PeerBurst = 1, 1
			c.OnSignal = func(identity.AccountID, identity.DeviceID, []byte) {}
		})
		a.start()
		bb.start()
		a.know(bb)
		bb.know(a)
		p2ptest.ServeEcho(bb.host)
		m, err := a.svc.Send(context.Background(), bb.id(), []byte("session"))
		if err != nil {
			b.Fatal(err)
		}
		check.Until(b, 30*time.Second, "the session", func() bool { return a.state(bb.id(), m.ID) == StateDelivered })
		// The lane's stream exists before timing, and the backlog is
		// queued during the call.
		if err := a.svc.SendSignal(context.Background(), bb.id(), []byte("warm up")); err != nil {
			b.Fatal(err)
		}
		for i := range queued {
			if _, err := a.svc.Send(context.Background(), bb.id(), fmt.Appendf(nil, "backlog %d", i)); err != nil {
				b.Fatal(err)
			}
		}
		return a, bb
	}
	payload := bytes.Repeat([]byte{'c'}, 200) // an ICE candidate's size
	for _, queued := range []int{0, backlog, 4 * backlog} {
		b.Run(fmt.Sprintf("signal/queued-%d", queued), func(b *testing.B) {
			a, bb := lanePair(b, queued)
			lat := make([]time.Duration, 0, b.N)
			for range b.N {
				start := time.Now()
				if err := a.svc.SendSignal(context.Background(), bb.id(), payload); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			if n := len(bb.incoming(a.id())); n > 1+queued/10 {
				b.Fatalf("the backlog drained while timing (%d stored): no longer a backlog", n)
			}
			report(b, lat)
		})
	}
	b.Run("echo", func(b *testing.B) {
		a, bb := lanePair(b, 0)
		report(b, echoRoundTrips(b, echoStream(b, a, bb), payload))
	})
	b.Run(fmt.Sprintf("text-behind-%d", backlog), func(b *testing.B) {
		// The backlog and the text are queued while B is down; the clock
		// runs from B's return (A retries at once) until B stores the text.
		stored := make(chan string, backlog+16)
		a, bb := benchPair(b, nil, func(e Event) {
			if e.Kind == EventMessage {
				stored <- e.ID
			}
		})
		if _, err := a.svc.Send(context.Background(), bb.id(), payload); err != nil {
			b.Fatal(err)
		}
		<-stored
		lat := make([]time.Duration, 0, b.N)
		for range b.N {
			b.StopTimer()
			bb.stop()
			for i := range backlog {
				if _, err := a.svc.Send(context.Background(), bb.id(), fmt.Appendf(nil, "backlog %d", i)); err != nil {
					b.Fatal(err)
				}
			}
			m, err := a.svc.Send(context.Background(), bb.id(), payload)
			if err != nil {
				b.Fatal(err)
			}
			bb.start()
			a.know(bb)
			b.StartTimer()
			start := time.Now()
			a.svc.Kick(bb.id())
			for id := range stored {
				if id == m.ID {
					break
				}
			}
			lat = append(lat, time.Since(start))
		}
		report(b, lat)
	})
}
