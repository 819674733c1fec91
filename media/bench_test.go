package media

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// setupOnce places one call from eA to eB with the same signalling as the
// node (offer, answer, trickled candidates) and returns the time from the
// invite (the caller's NewCall) to the first media packet received at both
// ends, or the time until the engine detected a failure if it never
// connected.
func setupOnce(tb testing.TB, eA, eB *Engine, src Source) (d time.Duration, down EventKind) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Pumps end when both calls are closed: wait for them last.
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	caller, err := eA.NewCall(CallConfig{ID: "bench", Outgoing: true, Source: src})
	if err != nil {
		tb.Fatal(err)
	}
	defer caller.Close()
	offer, err := caller.Offer(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	calleeStart := time.Now()
	callee, err := eB.NewCall(CallConfig{ID: "bench", Source: src})
	if err != nil {
		tb.Fatal(err)
	}
	defer callee.Close()
	pump := func(from, to *Call) {
		wg.Go(func() {
			for c := range from.Candidates() {
				_ = to.AddRemoteCandidate(c)
			}
		})
	}
	pump(caller, callee)
	answer, err := callee.Answer(ctx, offer)
	if err != nil {
		tb.Fatal(err)
	}
	pump(callee, caller)
	if err := caller.SetAnswer(answer); err != nil {
		tb.Fatal(err)
	}
	for {
		a, b := caller.Stats(), callee.Stats()
		if a.FirstReceived > 0 && b.FirstReceived > 0 {
			return max(a.FirstReceived, calleeStart.Sub(start)+b.FirstReceived), ""
		}
		if k := caller.Down(); k != "" {
			return time.Since(start), k
		}
		time.Sleep(500 * time.Microsecond)
	}
}

func report(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(sum/time.Duration(len(ds))), name+"-mean-ms")
	b.ReportMetric(ms(ds[len(ds)/2]), name+"-p50-ms")
	b.ReportMetric(ms(ds[len(ds)-1]), name+"-max-ms")
}

// BenchmarkSetupDirect: invite to first media packet both ways, two
// engines on loopback.
func BenchmarkSetupDirect(b *testing.B) {
	eA, eB := newEngine(b, Config{}), newEngine(b, Config{})
	src := Sources(Tone(), Pattern())
	var ds []time.Duration
	for b.Loop() {
		d, ended := setupOnce(b, eA, eB, src)
		if ended != "" {
			b.Fatalf("call ended %s", ended)
		}
		ds = append(ds, d)
	}
	report(b, "setup", ds)
}

// stunOnly caches the baseline: it takes the ICE failure timeout, so it
// is measured once per process however often the benchmark function runs.
var stunOnly struct {
	once sync.Once
	d    time.Duration
	down EventKind
}

// BenchmarkSetupRelayFallback: both peers behind symmetric NATs with the
// direct path blocked; host, srflx and relay candidates are gathered at
// once and the call connects over TURN. The baseline, measured in the
// same run on the same network, is how long the call takes to fail with
// STUN only.
func BenchmarkSetupRelayFallback(b *testing.B) {
	w := newNATWorld(b, true)
	servers := []ICEServer{w.stun, w.turn}
	eA := newEngine(b, Config{Net: w.netA, ICEServers: servers})
	eB := newEngine(b, Config{Net: w.netB, ICEServers: servers})
	src := Sources(Tone(), Pattern())
	var ds []time.Duration
	for b.Loop() {
		d, ended := setupOnce(b, eA, eB, src)
		if ended != "" {
			b.Fatalf("call ended %s", ended)
		}
		ds = append(ds, d)
	}
	report(b, "setup", ds)
	b.StopTimer()
	stunOnly.once.Do(func() {
		w := newNATWorld(b, true)
		eA := newEngine(b, Config{Net: w.netA, ICEServers: []ICEServer{w.stun}})
		eB := newEngine(b, Config{Net: w.netB, ICEServers: []ICEServer{w.stun}})
		stunOnly.d, stunOnly.down = setupOnce(b, eA, eB, src)
	})
	if stunOnly.down != ICEFailed {
		b.Fatalf("the STUN-only baseline detected %q, want %q", stunOnly.down, ICEFailed)
	}
	b.ReportMetric(float64(stunOnly.d)/float64(time.Millisecond), "stun-only-fail-ms")
}

// BenchmarkMediaQualityRelay: 60 s (MEDIA_BENCH_SECONDS) of Opus audio and
// about 1 Mbit/s of VP8 video each way through a TURN relay on loopback,
// both ends relay-only. Reports loss each way and the media bit rate.
// Opt-in: it only runs with -bench.
func BenchmarkMediaQualityRelay(b *testing.B) {
	secs := 60
	if s, err := strconv.Atoi(os.Getenv("MEDIA_BENCH_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	video, err := OpenClip("testdata/bench-1mbps.ivf")
	if err != nil {
		b.Fatal(err)
	}
	ts := loopbackTURN(b)
	eA := newEngine(b, Config{ICEServers: []ICEServer{ts}, RelayOnly: true})
	eB := newEngine(b, Config{ICEServers: []ICEServer{ts}, RelayOnly: true})
	src := Sources(Tone(), video)
	for b.Loop() {
		caller := newCall(b, eA, CallConfig{ID: "q", Outgoing: true, Source: src})
		callee := newCall(b, eB, CallConfig{ID: "q", Source: src})
		wA := watch(b, caller)
		connect(b, caller, callee, nil)
		wA.wait(b, Connected, 10*time.Second)
		time.Sleep(time.Duration(secs) * time.Second)
		a, c := caller.Stats(), callee.Stats()
		caller.Close()
		callee.Close()
		if a.Path != PathRelay || c.Path != PathRelay {
			b.Fatalf("path %s/%s, want relay", a.Path, c.Path)
		}
		b.ReportMetric(a.Loss*100, "loss-to-caller-%")
		b.ReportMetric(c.Loss*100, "loss-to-callee-%")
		b.ReportMetric(float64(a.BytesSent)*8/float64(secs)/1000, "kbit/s-each-way")
		b.ReportMetric(float64(a.PacketsSent), "packets-sent")
		b.ReportMetric(float64(c.PacketsReceived), "packets-received")
		b.ReportMetric(float64(a.RTT)/float64(time.Millisecond), "rtt-ms")
	}
}

// BenchmarkConnectivityChecks: what a connected call spends on ICE checks
// (STUN on the wire of the peers' LAN, both ways, some wrapped for the
// relay), measured over 10 s once the call has been up 3 s, on the
// lanWorld of TestRelayUpgradesToDirect with the direct path open from the
// start. Renomination (renominationInterval) makes the controlling agent
// check every pair that has not failed each time it wakes up
// (iceKeepaliveInterval, 2 s); the audio alone is about 4 KB/s each way.
func BenchmarkConnectivityChecks(b *testing.B) {
	for b.Loop() {
		w := newLANWorld(b)
		w.direct.Store(true)
		var mu sync.Mutex
		var counting bool
		var msgs, bytes int
		count := func(p []byte) {
			mu.Lock()
			defer mu.Unlock()
			if counting && stun.IsMessage(p) {
				msgs++
				bytes += len(p)
			}
		}
		w.count.Store(&count)
		caller, callee, _, _ := w.call(b)
		time.Sleep(3 * time.Second)
		mu.Lock()
		counting = true
		mu.Unlock()
		time.Sleep(10 * time.Second)
		mu.Lock()
		counting = false
		b.ReportMetric(float64(bytes)/10, "stun-B/s")
		b.ReportMetric(float64(msgs)/10, "stun-msgs/s")
		mu.Unlock()
		if p := caller.Stats().Path; p != PathDirect {
			b.Fatalf("path %q, want direct", p)
		}
		caller.Close()
		callee.Close()
	}
}
