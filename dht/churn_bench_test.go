package dht

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkChurn runs the churn simulation (churn_test.go) once per
// sub-benchmark and reports its figures: resolves of live names during the
// churn beside the same resolves before it (every node up, same run),
// publish-and-confirm likewise, failures, stale owners, a newcomer's first
// resolve, and memory. Run it with -benchtime 1x. The 1,000-node networks
// are opt-in (select them by name, see explicitlySelected), and run
// also slowed down 5 and 10 times (x5, x10: churnConfig.dilate), so that
// the 1,000 nodes sharing this machine's 2 cores are not waiting for CPU
// longer than for the network:
//
//	go test ./dht -run '^$' -bench 'BenchmarkChurn/nodes=100/' -benchtime 1x
//	go test ./dht -run '^$' -bench 'BenchmarkChurn/nodes=1000/lat=20ms-x5' -benchtime 1x -timeout 120m
func BenchmarkChurn(b *testing.B) {
	for _, n := range []int{100, 1000} {
		dilations := []float64{1}
		if n >= 1000 {
			dilations = append(dilations, 5, 10)
		}
		for _, mixed := range []bool{false, true} {
			for _, dilate := range dilations {
				lat := "20ms"
				if mixed {
					lat = "mixed"
				}
				if dilate > 1 {
					lat += fmt.Sprintf("-x%g", dilate)
				}
				b.Run(fmt.Sprintf("nodes=%d/lat=%s", n, lat), func(b *testing.B) {
					benchChurn(b, n, mixed, dilate)
				})
			}
		}
	}
}

func benchChurn(b *testing.B, n int, mixed bool, dilate float64) {
	if n >= 1000 && !explicitlySelected(fmt.Sprint(n)) {
		b.Skipf("opt-in: select it with -bench 'BenchmarkChurn/nodes=%d/'", n)
	}
	cfg := churnConfig{
		nodes: n, degree: 8, owners: 8, lapsing: 2, churn: 0.2, mixed: mixed, speed: 7200,
		steps: 5, step: 8 * time.Hour, readers: 8, claims: 2, parallel: 8, serial: 2, seed: 2,
		dilate: dilate,
	}
	if n >= 1000 {
		cfg.owners, cfg.lapsing, cfg.readers, cfg.parallel = 24, 4, 10, 16
	}
	b.ResetTimer()
	var rep *churnReport
	for range b.N {
		rep = runChurn(b, cfg)
	}
	b.StopTimer()
	logChurn(b, rep)
	rtts := func(d []time.Duration, p float64) float64 { return percentile(d, p) / rep.rtt }
	b.ReportMetric(rep.rtt, "rtt-ms")
	b.ReportMetric(rtts(rep.resolve, .5), "p50-rtts")
	b.ReportMetric(rtts(rep.resolve, .99), "p99-rtts")
	b.ReportMetric(percentile(rep.resolve, .5), "p50-ms")
	b.ReportMetric(rtts(rep.baseResolve, .5), "base-p50-rtts")
	b.ReportMetric(rtts(rep.baseResolve, .99), "base-p99-rtts")
	b.ReportMetric(rtts(rep.serialRes, .5), "serial-p50-rtts")
	b.ReportMetric(rtts(rep.serialRes, .99), "serial-p99-rtts")
	b.ReportMetric(rtts(rep.baseSerial, .5), "base-serial-p50-rtts")
	b.ReportMetric(float64(rep.failed), "failed")
	b.ReportMetric(float64(rep.staleOwner), "stale-owner")
	b.ReportMetric(rtts(rep.publish, .5), "pub-p50-rtts")
	b.ReportMetric(rtts(rep.basePublish, .5), "base-pub-p50-rtts")
	b.ReportMetric(percentile(rep.firstSeen, .5), "first-resolve-ms")
	b.ReportMetric(rtts(rep.firstSeen, .5), "first-resolve-rtts")
	b.ReportMetric(max(dilate, 1), "dilation")
	b.ReportMetric(rep.heapPerNode/1e6, "heap-MB/node")
}
