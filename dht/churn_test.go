package dht

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The churn simulation (issue 15): a network of DHT servers on libp2p's
// mocknet with link latency, where a share of the nodes leave and as many
// new ones join over the run, owners republish on the real schedule
// (RepublishInterval 12 h, RecordTTL 72 h, Grace 24 h) with the shared
// clock sped up, the names of owners that left for good lapse and are
// claimed by others, and sampled nodes resolve every live name at every
// step. Everything but the links is the real code: kad-dht, our
// validators, the guard, publish-and-confirm, resolve, republish and
// replication.
//
// Time runs at two speeds. The network (latency, per-request deadlines,
// lookups) runs in real time; the clock records are issued, validated and
// expired by runs cfg.speed times faster between the steps and stands
// still while a step measures, and the owners' republish ticker runs at
// 12 h / speed of real time throughout. Replication runs every 5 s of
// real time (replicateEvery).

// churnConfig shapes one run.
type churnConfig struct {
	nodes   int     // the network before the churn
	degree  int     // peers each first node connects to besides node 0
	owners  int     // names claimed before the churn, one per owner node
	lapsing int     // owners that leave for good at the first step: their names lapse and others claim them
	churn   float64 // share of the first nodes that leave, and as many that join, over the run
	mixed   bool    // links 10–150 ms one way (each node's access 5–75 ms) instead of latency
	// latency is every link's one-way latency unless mixed (default
	// 20 ms, the benchmark's figure).
	latency time.Duration
	speed   float64 // simulated time per real time during the churn
	steps   int     // churn steps; leaves and joins are spread evenly over them
	step    time.Duration
	readers int // nodes sampled at each step (the step's newcomers among them)
	claims  int // new names claimed at each step (publish-and-confirm under churn)
	// parallel bounds the resolves in flight at once.
	parallel int
	// serial readers at each step (and in the baseline) resolve every
	// live name again one at a time, after the round of parallel ones:
	// 100 or 1,000 nodes share this machine's 2 cores, so resolves in
	// flight together wait for each other's CPU as real nodes would not.
	serial int
	seed   uint64
	// dilate slows the whole simulation down by this factor (0 means 1):
	// link latencies, per-request and query deadlines, the resolve
	// deadlines and the real-time periods (republish, replication) are
	// multiplied by it and the clock's speed is divided by it. The
	// protocol does the same round trips; the CPU a node spends per round
	// trip shrinks dilate times next to the round trip, as if each node
	// had dilate times more of the machine. 1,000 nodes share 2 cores
	// here: undilated, a request waits for CPU longer than for the
	// network, and the figures measure the machine (docs/BENCHMARKS.md).
	dilate float64
}

// dilated is d slowed down by cfg.dilate.
func (cfg churnConfig) dilated(d time.Duration) time.Duration {
	return time.Duration(float64(d) * max(cfg.dilate, 1))
}

// churnReport is what a run measured. Latencies are real time.
type churnReport struct {
	rtt float64 // p50 of one raw GET_VALUE round trip between random nodes, ms

	// Before the churn (the clock standing still, every node up): the
	// same-run baseline.
	baseResolve []time.Duration
	baseFailed  int
	basePublish []time.Duration

	resolve      []time.Duration // every resolve of a live name during the churn
	failed       int             // a live name not found (or not ok with its owner)
	failures     []string        // the first few, for the log
	staleOwner   int             // an old owner shown (ok with it, or in a conflict)
	oldHandle    int             // the name's record older than one its owner had put before the resolve began
	oldIdentity  int             // the same for the owner's identity record
	publish      []time.Duration // new claims under churn (lookup, put to K, confirm)
	baseSerial   []time.Duration // the baseline's resolves one at a time (cfg.serial)
	serialRes    []time.Duration // the churn's resolves one at a time
	pubFailed    int
	reclaimed    int             // lapsed names claimed by a new owner
	firstSeen    []time.Duration // a newcomer: from its host's start to its first resolve answering ok
	joined, gone int
	simulated    time.Duration // simulated time the churn covered
	leaks        []string      // departed nodes whose goroutines outlived them
	heapPerNode  float64       // Go heap in use per node once the network is up and named, bytes
	rssPeak      int64         // the process's peak resident set (VmHWM), bytes
}

// accessLatency is node i's one-way access latency in the mixed profile:
// 5–75 ms, so a link (the sum of its two ends) is 10–150 ms.
func accessLatency(seed uint64, i int) time.Duration {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d", seed, i)
	return 5*time.Millisecond + time.Duration(h.Sum64()%71)*time.Millisecond
}

// churnNodeConfig is the DHT configuration of every simulated node.
func churnNodeConfig(cfg churnConfig, c *Config) {
	c.RepublishInterval = cfg.dilated(time.Duration(float64(DefaultRepublishInterval) / cfg.speed))
	// Replication every simulated minute would be every few milliseconds
	// of real time here, each pass a storm of pushes and the guard's
	// network checks; see replicateEvery.
	c.ReplicateInterval = cfg.dilated(max(time.Duration(float64(DefaultReplicateInterval)/cfg.speed), replicateEvery))
	c.QueryTimeout = cfg.dilated(c.QueryTimeout)
	c.peerTimeout = cfg.dilated(c.peerTimeout)
	c.NoKeep = true // no keepers in the simulation: nothing would take the schedules
}

// replicateEvery is the simulated nodes' ReplicateInterval, in real time:
// a twelfth of production's minute (the network's real-time costs would
// otherwise be packed 60 times denser than a real node's), about 10
// simulated hours at TestChurn's speed.
const replicateEvery = 5 * time.Second

// lapseTTL is how long the records of the owners that leave for good are
// valid: their names are free lapseTTL + Grace (24 h) after they left.
const lapseTTL = 6 * time.Hour

// liveName is a name the simulation expects to resolve.
type liveName struct {
	name  string
	key   *identity.AccountKey
	owner int                 // the owner's node
	prev  identity.AccountPub // the owner before a lapse, or zero
	// lapse: the owner left for good; the name is free at freeAt and
	// nobody holds it until reclaimed.
	lapsed bool
	freeAt time.Time
}

type churnSim struct {
	tb  testing.TB
	cfg churnConfig
	tn  *testNet
	rng *rand.Rand
	// lapsing are the owners' nodes that sign short-lived records and
	// leave for good at the first step.
	lapsing map[int]bool

	mu     sync.Mutex // guards the fields below
	names  []*liveName
	owners map[int]bool // nodes owning an account
	rep    churnReport
}

// runChurn builds the network, measures the baseline, runs the churn and
// a last round of resolves, and closes the network.
func runChurn(tb testing.TB, cfg churnConfig) *churnReport {
	tb.Helper()
	lat := cfg.dilated(cmp.Or(cfg.latency, 20*time.Millisecond))
	var linkLat func(a, b int) time.Duration
	if cfg.mixed {
		linkLat = func(a, b int) time.Duration {
			return cfg.dilated(accessLatency(cfg.seed, a) + accessLatency(cfg.seed, b))
		}
	}
	s := &churnSim{tb: tb, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.seed, 15)), owners: map[int]bool{}}
	ownerNode := func(i int) int { return 1 + i*(cfg.nodes-1)/cfg.owners }
	lapsing := map[int]bool{}
	for i := range cfg.lapsing {
		lapsing[ownerNode(i)] = true
	}
	s.lapsing = lapsing
	began := time.Now()
	progress := func(what string) { tb.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	s.tn = newTestNet(tb, cfg.nodes, netOpts{latency: lat, linkLatency: linkLat, degree: cfg.degree,
		cfg: func(i int, c *Config) {
			churnNodeConfig(cfg, c)
			if lapsing[i] {
				// The owners that leave for good sign records valid
				// lapseTTL instead of 72 h, so that their names lapse
				// (expiry + the 24 h grace) within a short run.
				c.RecordTTL = lapseTTL
			}
		}})
	tn := s.tn
	ctx := context.Background()
	progress("network up")
	// Owners claim their names with the clock standing still.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range cfg.owners {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.claimNew(ctx, ownerNode(i), fmt.Sprintf("owner%d", i), nil)
		})
	}
	wg.Wait()
	s.rep.rtt = s.rttSample(40)
	s.rep.heapPerNode, _ = memPerNode(cfg.nodes)
	progress(fmt.Sprintf("names claimed; heap %.1f MB per node", s.rep.heapPerNode/1e6))

	// The baseline: the same resolves and claims, with no churn.
	s.resolveRound(ctx, s.sampleReaders(nil), &s.rep.baseResolve, cfg.parallel)
	s.serialRound(ctx, &s.rep.baseSerial)
	s.rep.baseFailed = s.rep.failed
	s.rep.failed, s.rep.failures = 0, nil
	for i := range cfg.claims {
		s.claimNew(ctx, s.randomLive(), fmt.Sprintf("base%d", i), &s.rep.basePublish)
	}

	progress("baseline measured")
	// The churn: the clock runs; owners republish every 12 h simulated.
	toLeave := int(float64(cfg.nodes)*cfg.churn + 0.5)
	start := tn.clock.Now()
	var departed []int
	for step := range cfg.steps {
		// The clock runs for the step's simulated time, then stands still
		// while the step's nodes leave, join, claim and resolve: a busy
		// machine slows the network, and a clock that ran on meanwhile
		// would expire records no slow republish could keep up with. The
		// republish tickers run in real time throughout, so owners
		// republish at least every 12 simulated hours.
		tn.clock.Run(cfg.speed / max(cfg.dilate, 1))
		for at := start.Add(time.Duration(step+1) * cfg.step); tn.clock.Now().Before(at); {
			time.Sleep(time.Millisecond) // the clock is a timer here, not a condition
		}
		tn.clock.Run(0)
		n := toLeave*(step+1)/cfg.steps - toLeave*step/cfg.steps
		departed = append(departed, s.leave(ctx, step, n)...)
		fresh := s.joinSome(ctx, n)
		s.reclaimLapsed(ctx)
		for i := range cfg.claims {
			s.claimNew(ctx, s.randomLive(), fmt.Sprintf("step%d-%d", step, i), &s.rep.publish)
		}
		s.resolveRound(ctx, s.sampleReaders(fresh), &s.rep.resolve, cfg.parallel)
		s.serialRound(ctx, &s.rep.serialRes)
		progress(fmt.Sprintf("step %d at %v simulated: %d left, %d joined, %d resolves failed", step,
			tn.clock.Now().Sub(start).Round(time.Hour), s.rep.gone, s.rep.joined, s.rep.failed))
	}
	// The end: every name lapsed long enough ago is claimed anew; every
	// live name resolves everywhere sampled.
	s.reclaimLapsed(ctx)
	s.resolveRound(ctx, s.sampleReaders(nil), &s.rep.resolve, cfg.parallel)
	s.rep.simulated = tn.clock.Now().Sub(start)
	s.rep.rssPeak = peakRSS()
	progress("last round measured")

	// Nothing of a node that left outlives it.
	s.rep.leaks = departedGoroutines(tb, departed, 30*time.Second)
	progress("departed nodes' goroutines checked")
	return &s.rep
}

// randomLive returns a live node that owns no account.
func (s *churnSim) randomLive() int {
	for {
		i := s.rng.IntN(len(s.tn.nodes))
		s.mu.Lock()
		own := s.owners[i]
		s.mu.Unlock()
		if !own && !s.tn.left(i) {
			return i
		}
	}
}

// claimNew makes node i the owner of a new account and claims name for it:
// identity published, claim confirmed, both handed to the republisher. The
// claim's time goes to lat when not nil.
func (s *churnSim) claimNew(ctx context.Context, i int, name string, lat *[]time.Duration) *liveName {
	d := s.tn.nodes[i]
	k := key(s.tb, fmt.Sprintf("churn-%d-%s", s.cfg.seed, name))
	norm, _, _, err := parseName(name)
	if err != nil {
		s.tb.Fatal(err)
	}
	rec := testIdentity(s.tb, k, s.tn.clock.Now())
	rec.Handles = []string{norm}
	pub, err := d.PublishIdentity(ctx, k, rec)
	if err != nil {
		s.mu.Lock()
		s.rep.pubFailed++
		s.mu.Unlock()
		s.tb.Logf("node %d: publish identity for %q: %v", i, name, err)
		return nil
	}
	solvePoW(s.tb, norm, k.Public()) // the proof of work is not the network's cost
	start := time.Now()
	res, err := d.ClaimHandle(ctx, k, name, nil)
	el := time.Since(start)
	if err != nil || res.Status != ClaimClaimed {
		s.mu.Lock()
		s.rep.pubFailed++
		s.mu.Unlock()
		s.tb.Logf("node %d: claim %q: %v %+v", i, name, err, res)
		return nil
	}
	d.SetOwned(k, pub, []HandleClaim{*res.Claim})
	n := &liveName{name: norm, key: k, owner: i}
	s.mu.Lock()
	defer s.mu.Unlock()
	if lat != nil {
		*lat = append(*lat, el)
	}
	s.owners[i] = true
	s.names = append(s.names, n)
	return n
}

// leave takes n nodes off the network: at the first step the lapsing
// owners (for good: their names lapse), otherwise random nodes that own
// nothing.
func (s *churnSim) leave(ctx context.Context, step, n int) []int {
	var out []int
	if step == 0 {
		s.mu.Lock()
		var lapsing []*liveName
		for _, ln := range s.names {
			// The names of the nodes that sign short-lived records: any
			// other owner's records would outlive the run.
			if len(lapsing) < s.cfg.lapsing && s.lapsing[ln.owner] {
				lapsing = append(lapsing, ln)
			}
		}
		s.mu.Unlock()
		for _, ln := range lapsing {
			d := s.tn.nodes[ln.owner]
			_, dkey, _, _ := parseName(ln.name)
			d.mu.Lock()
			raw := d.published[dkey]
			d.mu.Unlock()
			// The name is free a grace after its last record expires.
			// A busy machine can starve the owner's republish ticker
			// (12 simulated hours are 1.5 s here) past its records' 6 h:
			// the node then forgot the expired record, and the name is
			// free a grace from now at the latest.
			freeAt := s.tn.clock.Now().Add(DefaultGrace)
			if raw != nil {
				r, err := openHandle(raw)
				if err != nil {
					s.tb.Fatalf("lapsing owner's last record: %v", err)
				}
				freeAt = r.Expires.Add(DefaultGrace)
			}
			s.tn.leave(s.tb, ln.owner)
			out = append(out, ln.owner)
			s.mu.Lock()
			ln.lapsed, ln.freeAt = true, freeAt
			s.mu.Unlock()
			n--
		}
	}
	for range max(n, 0) {
		i := s.randomLive()
		s.tn.leave(s.tb, i)
		out = append(out, i)
	}
	s.mu.Lock()
	s.rep.gone += len(out)
	s.mu.Unlock()
	_ = ctx
	return out
}

// joinSome adds n new nodes, each bootstrapping from 3 random live nodes
// as a real node does (Config.Bootstrap), in parallel, and measures how
// long each takes from its start to its first resolve of a live name that
// answers ok with the name's owner.
func (s *churnSim) joinSome(ctx context.Context, n int) []int {
	type plan struct {
		boot []peer.AddrInfo
		name *liveName
	}
	var plans []plan
	for range n {
		var p plan
		for range 3 {
			h := s.tn.hosts[s.randomLive()]
			p.boot = append(p.boot, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
		}
		p.name = s.randomName()
		plans = append(plans, p)
	}
	var out []int
	var wg sync.WaitGroup
	for _, p := range plans {
		start := time.Now()
		d := s.tn.join(s.tb, mustKey(s.tb), []int{}, func(c *Config) {
			churnNodeConfig(s.cfg, c)
			c.Bootstrap = p.boot
		})
		i := len(s.tn.nodes) - 1
		out = append(out, i)
		if p.name == nil {
			continue
		}
		wg.Go(func() {
			for time.Since(start) < s.cfg.dilated(60*time.Second) {
				owner := s.ownerOf(p.name)
				rctx, cancel := context.WithTimeout(ctx, s.cfg.dilated(30*time.Second))
				r, err := d.Resolve(rctx, p.name.name)
				cancel()
				if err == nil && r.Status == StatusOK && r.Owner.Equal(owner) {
					s.mu.Lock()
					s.rep.firstSeen = append(s.rep.firstSeen, time.Since(start))
					s.mu.Unlock()
					return
				}
				d.cache.clear()
				time.Sleep(10 * time.Millisecond) // an error can be instant: don't spin
			}
			s.tb.Errorf("newcomer %d never resolved %q", i, p.name.name)
		})
	}
	wg.Wait()
	s.mu.Lock()
	s.rep.joined += len(out)
	s.mu.Unlock()
	return out
}

// randomName returns a name that is held (not lapsed), or nil.
func (s *churnSim) randomName() *liveName {
	s.mu.Lock()
	defer s.mu.Unlock()
	var held []*liveName
	for _, n := range s.names {
		if !n.lapsed {
			held = append(held, n)
		}
	}
	if len(held) == 0 {
		return nil
	}
	return held[s.rng.IntN(len(held))]
}

func (s *churnSim) ownerOf(n *liveName) identity.AccountPub {
	s.mu.Lock()
	defer s.mu.Unlock()
	return n.key.Public()
}

// reclaimLapsed has a new account claim every lapsed name whose grace has
// passed, on a random live node: the name has a new owner from then on, and
// its old owner is stale wherever it shows.
func (s *churnSim) reclaimLapsed(ctx context.Context) {
	now := s.tn.clock.Now()
	s.mu.Lock()
	var due []*liveName
	for _, n := range s.names {
		if n.lapsed && now.After(n.freeAt.Add(time.Hour)) {
			due = append(due, n)
		}
	}
	s.mu.Unlock()
	for _, n := range due {
		i := s.randomLive()
		d := s.tn.nodes[i]
		k := key(s.tb, fmt.Sprintf("churn-%d-new-%s", s.cfg.seed, n.name))
		rec := testIdentity(s.tb, k, s.tn.clock.Now())
		rec.Handles = []string{n.name}
		pub, err := d.PublishIdentity(ctx, k, rec)
		if err != nil {
			s.tb.Fatalf("new owner of %q: publish identity: %v", n.name, err)
		}
		res, err := d.ClaimHandle(ctx, k, n.name, nil)
		if err != nil || res.Status != ClaimClaimed {
			s.tb.Errorf("lapsed name %q: new claim %v %+v", n.name, err, res)
			continue
		}
		d.SetOwned(k, pub, []HandleClaim{*res.Claim})
		s.mu.Lock()
		n.prev, n.key, n.owner, n.lapsed = n.key.Public(), k, i, false
		s.owners[i] = true
		s.rep.reclaimed++
		s.mu.Unlock()
	}
}

// sampleReaders returns up to cfg.readers live nodes: fresh ones (the
// step's newcomers) first, then random others.
func (s *churnSim) sampleReaders(fresh []int) []int {
	out := slices.Clone(fresh[:min(len(fresh), s.cfg.readers/2)])
	for tries := 0; len(out) < s.cfg.readers && tries < 10*s.cfg.readers; tries++ {
		i := s.rng.IntN(len(s.tn.nodes))
		if !s.tn.left(i) && !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	return out
}

// publishedSeq returns the seq of the record node d last put under key
// itself (0 when none).
func publishedSeq(d *DHT, key string) uint64 {
	d.mu.Lock()
	raw := d.published[key]
	d.mu.Unlock()
	if raw == nil {
		return 0
	}
	if r, err := openHandle(raw); err == nil {
		return r.Seq
	}
	if r, err := openIdentity(raw); err == nil {
		return r.Seq
	}
	return 0
}

// serialRound has cfg.serial random readers resolve every held name one at
// a time.
func (s *churnSim) serialRound(ctx context.Context, lat *[]time.Duration) {
	if s.cfg.serial > 0 {
		s.resolveRound(ctx, s.sampleReaders(nil)[:min(s.cfg.serial, s.cfg.readers)], lat, 1)
	}
}

// resolveRound resolves every held name from every reader, parallel at a
// time, caches emptied, and classifies the answers.
func (s *churnSim) resolveRound(ctx context.Context, readers []int, lat *[]time.Duration, parallel int) {
	s.mu.Lock()
	type job struct {
		reader int
		n      *liveName
		owner  identity.AccountPub
		prev   identity.AccountPub
		od     *DHT
	}
	var jobs []job
	for _, r := range readers {
		for _, n := range s.names {
			if !n.lapsed {
				jobs = append(jobs, job{r, n, n.key.Public(), n.prev, s.tn.nodes[n.owner]})
			}
		}
	}
	s.mu.Unlock()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d := s.tn.nodes[j.reader]
			_, hkey, _, _ := parseName(j.n.name)
			hseq := publishedSeq(j.od, hkey)
			iseq := publishedSeq(j.od, identityKey(j.owner.ID()))
			d.cache.clear()
			rctx, cancel := context.WithTimeout(ctx, s.cfg.dilated(20*time.Second))
			start := time.Now()
			r, err := d.Resolve(rctx, j.n.name)
			el := time.Since(start)
			cancel()
			s.mu.Lock()
			defer s.mu.Unlock()
			*lat = append(*lat, el)
			fail := func(why string) {
				s.rep.failed++
				if len(s.rep.failures) < 8 {
					s.rep.failures = append(s.rep.failures, fmt.Sprintf("node %d resolving %q: %s", j.reader, j.n.name, why))
				}
			}
			switch {
			case err != nil:
				fail(err.Error())
				return
			case !j.prev.IsZero() && (r.Owner.Equal(j.prev) || slices.ContainsFunc(r.Conflicts, func(o OwnerCount) bool { return o.Owner.Equal(j.prev) })):
				s.rep.staleOwner++
				fail(fmt.Sprintf("the old owner: %s", r.Status))
				return
			case r.Status != StatusOK || !r.Owner.Equal(j.owner):
				fail(fmt.Sprintf("%s, owner %s, conflicts %d", r.Status, r.Owner.ID(), len(r.Conflicts)))
				return
			}
			if r.Handle != nil && r.Handle.Seq < hseq {
				s.rep.oldHandle++
			}
			if r.Identity == nil || r.Identity.Seq < iseq {
				s.rep.oldIdentity++
			}
		})
	}
	wg.Wait()
}

// rttSample is the p50 of n raw GET_VALUE round trips between random pairs
// of live nodes: the unit the figures are counted in.
func (s *churnSim) rttSample(n int) float64 {
	var ds []time.Duration
	for range n {
		a, b := s.randomLive(), s.randomLive()
		if a == b {
			continue
		}
		// A first request opens the connection; time the second.
		_ = s.tn.nodes[a].getValue(context.Background(), &candidate{id: s.tn.hosts[b].ID()}, "/csname/baseline")
		start := time.Now()
		_ = s.tn.nodes[a].getValue(context.Background(), &candidate{id: s.tn.hosts[b].ID()}, "/csname/baseline")
		ds = append(ds, time.Since(start))
	}
	return percentile(ds, 0.5)
}

// departedGoroutines waits up to d for every goroutine started by a node
// that left (labelled by the harness) to end, and returns the ones left.
func departedGoroutines(tb testing.TB, departed []int, d time.Duration) []string {
	tb.Helper()
	want := map[string]bool{}
	for _, i := range departed {
		want[strconv.Itoa(i)] = true
	}
	var left []string
	deadline := time.Now().Add(d)
	for {
		left = labelledGoroutines(want)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// labelledGoroutines returns the stacks of the goroutines whose testnode
// label is in nodes, but for the process-wide workers libp2p starts on
// first use (TestMain's goleak ignores them too).
func labelledGoroutines(nodes map[string]bool) []string {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	var out []string
	for _, rec := range strings.Split(buf.String(), "\n\n") {
		i := strings.Index(rec, `"testnode":"`)
		if i < 0 {
			continue
		}
		v := rec[i+len(`"testnode":"`):]
		v = v[:strings.IndexByte(v, '"')]
		if !nodes[v] || strings.Contains(rec, "logRoutine") || strings.Contains(rec, "opencensus") || strings.Contains(rec, "tcpreuse") {
			continue
		}
		out = append(out, rec)
	}
	return out
}

// peakRSS returns the process's peak resident set size (VmHWM in
// /proc/self/status), or 0 where there is none.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n << 10
		}
	}
	return 0
}

// memPerNode returns the Go heap in use and the memory taken from the OS,
// after a GC, divided by n.
func memPerNode(n int) (heap, sys float64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / float64(n), float64(ms.Sys-ms.HeapReleased) / float64(n)
}

// TestChurn is the churn simulation's 100 nodes in the normal suite: 20 %
// of them leave over two simulated days, in three steps (two owners among
// them, for good) and as many join; owners republish every 12 simulated
// hours. At every step sampled nodes (the step's newcomers among them)
// resolve every live name: every one answers ok with its owner, a lapsed
// name claimed anew never shows its old owner, every newcomer resolves a
// name, and no goroutine of a node that left outlives it.
//
// It asserts; the figures are the benchmark's (BenchmarkChurn: 20 ms
// links, the clock 7,200× real time, more names and readers). Here links
// are 5 ms and the clock runs 28,800× (a step of 16 simulated hours is
// 2 s), so the run is bound by the CPU its 100 nodes share: 40–53 s of
// CPU, 29 s on 2 cores at a load average of 3 and up to 77 s at 5–8
// (92 s before these cuts and before nodes remembered the records they
// had opened). Under
// the race detector 100 nodes took 330 s and 9 GB of memory before these
// cuts, so the race stage leaves it to the plain one; the dht code it
// drives is raced by the package's other tests.
func TestChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("100 nodes for half a minute: not with -short")
	}
	if churnRace {
		t.Skip("the race detector makes this 5 minutes and gigabytes; the suite runs it without -race")
	}
	cfg := churnConfig{
		nodes: 100, degree: 8, owners: 6, lapsing: 2, churn: 0.2, latency: 5 * time.Millisecond, speed: 28800,
		steps: 3, step: 16 * time.Hour, readers: 5, claims: 1, parallel: 8, seed: 1,
	}
	rep := runChurn(t, cfg)
	logChurn(t, rep)
	if rep.failed != 0 {
		t.Errorf("%d resolves of live names failed: %v", rep.failed, rep.failures)
	}
	if rep.baseFailed != 0 {
		t.Errorf("%d resolves failed before the churn", rep.baseFailed)
	}
	if rep.staleOwner != 0 {
		t.Errorf("%d resolves showed a lapsed name's old owner", rep.staleOwner)
	}
	if rep.reclaimed != cfg.lapsing {
		t.Errorf("%d of %d lapsed names claimed anew", rep.reclaimed, cfg.lapsing)
	}
	if rep.pubFailed != 0 {
		t.Errorf("%d claims under churn failed", rep.pubFailed)
	}
	if want := int(float64(cfg.nodes)*cfg.churn + 0.5); rep.joined < want-1 || len(rep.firstSeen) != rep.joined {
		t.Errorf("%d nodes joined, %d resolved a first name", rep.joined, len(rep.firstSeen))
	}
	if len(rep.leaks) != 0 {
		t.Errorf("%d goroutines of nodes that left are still running; the first:\n%s", len(rep.leaks), rep.leaks[0])
	}
}

func logChurn(tb testing.TB, r *churnReport) {
	tb.Helper()
	ms := func(d []time.Duration, p float64) string {
		return fmt.Sprintf("%.0f ms (%.1f RTT)", percentile(d, p), percentile(d, p)/r.rtt)
	}
	tb.Logf("rtt p50 %.1f ms; simulated %v; %d left, %d joined, %d lapsed names claimed anew; heap %.1f MB per node, peak RSS %d MB",
		r.rtt, r.simulated.Round(time.Hour), r.gone, r.joined, r.reclaimed, r.heapPerNode/1e6, r.rssPeak>>20)
	tb.Logf("baseline (no churn): resolve p50 %s p99 %s of %d, failed %d; publish p50 %s of %d",
		ms(r.baseResolve, .5), ms(r.baseResolve, .99), len(r.baseResolve), r.baseFailed, ms(r.basePublish, .5), len(r.basePublish))
	tb.Logf("churn: resolve p50 %s p99 %s of %d, failed %d, stale owner %d, older handle record %d, older identity %d",
		ms(r.resolve, .5), ms(r.resolve, .99), len(r.resolve), r.failed, r.staleOwner, r.oldHandle, r.oldIdentity)
	if len(r.serialRes) > 0 {
		tb.Logf("one at a time: baseline resolve p50 %s p99 %s of %d; churn resolve p50 %s p99 %s of %d",
			ms(r.baseSerial, .5), ms(r.baseSerial, .99), len(r.baseSerial), ms(r.serialRes, .5), ms(r.serialRes, .99), len(r.serialRes))
	}
	tb.Logf("churn: publish-and-confirm p50 %s p99 %s of %d, failed %d; newcomer's first resolve p50 %s p99 %s of %d",
		ms(r.publish, .5), ms(r.publish, .99), len(r.publish), r.pubFailed, ms(r.firstSeen, .5), ms(r.firstSeen, .99), len(r.firstSeen))
	if len(r.failures) > 0 {
		tb.Logf("failures: %v", r.failures)
	}
}
