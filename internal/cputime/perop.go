package cputime

import "testing"

// PerOp reports the process's CPU time per operation of b (its other
// goroutines, badger's included) as the metric "cpu-ns/op". Call the
// result when the timed part ends: defer cputime.PerOp(b)().
func PerOp(b *testing.B) func() {
	start := Process()
	return func() {
		if d := Process() - start; d > 0 && b.N > 0 {
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}
