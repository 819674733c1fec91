package dht

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
)

const benchLatency = 20 * time.Millisecond

// explicitlySelected reports whether -test.bench names this size, so the
// 500-node network never runs in a plain "go test -bench=." or go test ./...
func explicitlySelected(size string) bool {
	f := flag.Lookup("test.bench")
	return f != nil && strings.Contains(f.Value.String(), size)
}

func benchNet(b *testing.B, n int) *testNet {
	if n >= 500 && !explicitlySelected(fmt.Sprint(n)) {
		b.Skipf("opt-in: select it with -bench 'Benchmark.*/nodes=%d'", n)
	}
	return newTestNet(b, n, netOpts{latency: benchLatency, degree: 8, cfg: func(i int, c *Config) {
		c.NegativeCacheTTL = time.Nanosecond
		c.CacheTTL = time.Nanosecond
	}})
}

func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return float64(s[i]) / float64(time.Millisecond)
}

// rttBaseline measures one raw kad GET_VALUE round trip between two nodes of
// the same network: the unit the other figures are counted in.
func rttBaseline(tn *testNet) float64 {
	var ds []time.Duration
	a, b := tn.nodes[1], tn.nodes[2]
	for range 20 {
		start := time.Now()
		_ = a.getValue(context.Background(), &candidate{id: b.host.ID()}, "/csname/baseline")
		ds = append(ds, time.Since(start))
	}
	return percentile(ds, 0.5)
}

func BenchmarkResolve(b *testing.B) {
	for _, n := range []int{100, 500} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			tn := benchNet(b, n)
			ctx := context.Background()
			const names = 8
			for i := range names {
				k := key(b, fmt.Sprint("bench-owner-", i))
				d := tn.nodes[(i*37)%n]
				if _, err := d.PublishIdentity(ctx, k, testIdentity(b, k, tn.clock.Now())); err != nil {
					b.Fatal(err)
				}
				if res, err := d.ClaimHandle(ctx, k, fmt.Sprintf("benchname%d", i), nil); err != nil || res.Status != ClaimClaimed {
					b.Fatalf("claim: %v %+v", err, res)
				}
			}
			rtt := rttBaseline(tn)
			rng := rand.New(rand.NewPCG(7, 7))
			var lat []time.Duration
			failed := 0
			b.ResetTimer()
			for b.Loop() {
				d := tn.nodes[rng.IntN(n)]
				// The test clock stands still, so a 1ns cache TTL alone would
				// not keep a node from answering from its cache.
				d.cache.clear()
				start := time.Now()
				r, err := d.Resolve(ctx, fmt.Sprintf("benchname%d", rng.IntN(names)))
				lat = append(lat, time.Since(start))
				if err != nil || r.Status != StatusOK || r.Identity == nil {
					failed++
				}
			}
			b.ReportMetric(percentile(lat, 0.5), "p50-ms")
			b.ReportMetric(percentile(lat, 0.99), "p99-ms")
			b.ReportMetric(float64(failed), "failed")
			b.ReportMetric(rtt, "rtt-ms")
			b.ReportMetric(percentile(lat, 0.5)/rtt, "p50-rtts")
		})
	}
}

func BenchmarkPublishConfirm(b *testing.B) {
	for _, n := range []int{100, 500} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			tn := benchNet(b, n)
			ctx := context.Background()
			rtt := rttBaseline(tn)
			rng := rand.New(rand.NewPCG(9, 9))
			var lat []time.Duration
			failed, i := 0, 0
			keys := make([]*identity.AccountKey, 16)
			for j := range keys {
				keys[j] = key(b, fmt.Sprint("bench-claimer-", j))
			}
			b.ResetTimer()
			for b.Loop() {
				i++
				k := keys[i%len(keys)]
				name := fmt.Sprintf("claimname%d", i)
				b.StopTimer()
				solvePoW(b, name, k.Public()) // PoW is not the network's cost
				b.StartTimer()
				d := tn.nodes[rng.IntN(n)]
				start := time.Now()
				res, err := d.ClaimHandle(ctx, k, name, &HandleClaim{Name: name, Nonce: solvePoW(b, name, k.Public()), ClaimedAt: tn.clock.Now()})
				lat = append(lat, time.Since(start))
				if err != nil || res.Status != ClaimClaimed {
					failed++
				}
			}
			b.ReportMetric(percentile(lat, 0.5), "p50-ms")
			b.ReportMetric(percentile(lat, 0.99), "p99-ms")
			b.ReportMetric(float64(failed), "failed")
			b.ReportMetric(rtt, "rtt-ms")
			b.ReportMetric(percentile(lat, 0.5)/rtt, "p50-rtts")
		})
	}
}

func BenchmarkResolveCached(b *testing.B) {
	tn := newTestNet(b, 3, netOpts{})
	ctx := context.Background()
	k := key(b, "cached")
	d := tn.nodes[0]
	if _, err := d.PublishIdentity(ctx, k, testIdentity(b, k, tn.clock.Now())); err != nil {
		b.Fatal(err)
	}
	if res, err := d.ClaimHandle(ctx, k, "cachedname", nil); err != nil || res.Status != ClaimClaimed {
		b.Fatalf("claim: %v %+v", err, res)
	}
	if _, err := d.Resolve(ctx, "cachedname"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r, err := d.Resolve(ctx, "@CachedName")
		if err != nil || r.Status != StatusOK {
			b.Fatal(err)
		}
	}
}
