package call

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/turn"
)

// BenchmarkCallSetup measures invite → first media both ways through the
// Service (auto-answered, audio only, loopback), against the same call
// driven on media directly with in-process signalling (the baseline), and
// relay-only through the real TURN server with credentials over libp2p.
// setup_ms is the caller's Stats.Setup; ns/op is a whole call from Dial
// to both ends torn down.
func BenchmarkCallSetup(b *testing.B) {
	b.Run("service-direct", func(b *testing.B) {
		n := newFakeNet(b)
		a := newNode(b, n, nil)
		c := newNode(b, n, autoAnswer)
		benchService(b, a, c, DialOptions{Source: media.Tone()})
	})
	b.Run("service-relay", func(b *testing.B) {
		n := newFakeNet(b)
		r := newRelay(b, n, turn.Config{MaxAllocationsPerUser: 64, AllocationRate: 1000, AllocationBurst: 1000}, nil)
		a := newNode(b, n, withRelay(b, r, nil))
		c := newNode(b, n, withRelay(b, r, autoAnswer))
		c.policy.set(Decision{Allow: true, RelayOnly: true})
		benchService(b, a, c, DialOptions{Source: media.Tone(), RelayOnly: true})
	})
	b.Run("media-baseline", func(b *testing.B) {
		eA, err := media.NewEngine(media.Config{IPs: loopback})
		if err != nil {
			b.Fatal(err)
		}
		defer eA.Close()
		eB, err := media.NewEngine(media.Config{IPs: loopback})
		if err != nil {
			b.Fatal(err)
		}
		defer eB.Close()
		var total time.Duration
		for i := 0; b.Loop(); i++ {
			total += mediaCall(b, eA, eB)
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "setup_ms")
	})
}

func autoAnswer(c *Config) {
	c.AutoAnswer = func() (bool, string) { return true, "" }
	c.AutoAnswerSource = media.Tone()
}

func benchService(b *testing.B, a, c *tnode, opts DialOptions) {
	var total time.Duration
	for b.Loop() {
		ca, err := a.svc.Dial(context.Background(), c.id, opts)
		if err != nil {
			b.Fatal(err)
		}
		check.Until(b, 10*time.Second, "media both ways", func() bool { return ca.Stats().Setup > 0 })
		total += ca.Stats().Setup
		ca.Hangup()
		<-ca.Done()
		check.Until(b, 10*time.Second, "callee idle", func() bool { return len(c.svc.Calls()) == 0 })
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "setup_ms")
}

// mediaCall runs one audio call on media alone and returns the caller's
// SetupTime.
func mediaCall(b *testing.B, eA, eB *media.Engine) time.Duration {
	ctx := context.Background()
	caller, err := eA.NewCall(media.CallConfig{ID: "bench", Outgoing: true, Source: media.Tone()})
	if err != nil {
		b.Fatal(err)
	}
	offer, err := caller.Offer(ctx)
	if err != nil {
		b.Fatal(err)
	}
	callee, err := eB.NewCall(media.CallConfig{ID: "bench", Source: media.Tone()})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	pump := func(from, to *media.Call) {
		wg.Go(func() {
			for c := range from.Candidates() {
				_ = to.AddRemoteCandidate(c)
			}
		})
	}
	pump(caller, callee)
	answer, err := callee.Answer(ctx, offer)
	if err != nil {
		b.Fatal(err)
	}
	pump(callee, caller)
	if err := caller.SetAnswer(answer); err != nil {
		b.Fatal(err)
	}
	check.Until(b, 10*time.Second, "media both ways", func() bool { return caller.Stats().SetupTime > 0 })
	d := caller.Stats().SetupTime
	_ = caller.Close()
	_ = callee.Close()
	wg.Wait()
	return d
}
