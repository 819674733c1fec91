package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callsign/callsign/identity"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults of Config's durations.
const (
	DefaultRecordTTL         = 72 * time.Hour
	DefaultRepublishInterval = 12 * time.Hour
	DefaultGrace             = 24 * time.Hour
	// DefaultMaxRecordAge is how long kad-dht keeps a stored record after
	// it arrived: above the longest validity (MaxTTL) plus the default
	// grace, so no valid record, nor one within grace, is dropped early.
	DefaultMaxRecordAge     = MaxTTL + DefaultGrace + time.Hour
	DefaultQueryTimeout     = 10 * time.Second
	DefaultCacheTTL         = time.Minute
	DefaultNegativeCacheTTL = 10 * time.Second

	defaultPeerTimeout = 5 * time.Second
	cacheSize          = 1024

	// identityQuorum is how many peers must answer with a valid identity
	// record before resolveIdentity returns the best of them.
	identityQuorum = 3
	// maxRefreshes caps the identity lookups running on in the background
	// after resolveIdentity returned early.
	maxRefreshes = 16
	// maxPoWChecks caps the distinct handle records whose proof of work one
	// Resolve checks while its lookup runs; the tally checks any others.
	maxPoWChecks = 4
)

// ProtocolPrefix is the kad-dht protocol prefix of the callsign network; the
// DHT speaks /callsign/kad/1.0.0.
const ProtocolPrefix = "/callsign"

// Config configures a DHT. The zero value of every field but Host means its
// default.
type Config struct {
	// Host is the libp2p host the DHT runs on. Required. The DHT does not
	// close it.
	Host host.Host
	// Server runs the DHT in server mode: the node stores records for others
	// and answers queries (public nodes, tests). False means kad-dht's
	// ModeAuto (server once the node is publicly reachable).
	Server bool
	// Bootstrap peers are dialled by Start.
	Bootstrap []peer.AddrInfo
	// PoW are the handle proof-of-work parameters. Every node of a network
	// must use the same ones. Zero fields mean identity's defaults.
	PoW identity.PoWParams
	// RecordTTL is how long published records are valid (default 72h, at
	// most MaxTTL).
	RecordTTL time.Duration
	// RepublishInterval is how often owned records are republished
	// (default 12h).
	RepublishInterval time.Duration
	// NoKeep makes Presign sign nothing, so no keeper holds this node's
	// records while it is away (tests of names that lapse).
	NoKeep bool
	// Grace is how long after expiry a storing node still keeps a name for
	// its incumbent (default 24h).
	Grace time.Duration
	// MaxRecordAge is how long kad-dht keeps a record after receiving it
	// (default and minimum MaxTTL + Grace + 1h: a record is valid at most
	// MaxTTL after issue and held a Grace after that, so a shorter age
	// would drop valid records early).
	MaxRecordAge time.Duration
	// Datastore is where the records this node stores for the network are
	// kept (default: in memory). A public node passes a store on disk
	// (package diskstore) so that a restart blanks no name. The DHT does
	// not close it.
	Datastore ds.Batching
	// ReplicateInterval is how often the routing table is checked for peers
	// that became among the closest to the keys of the records this node
	// owns, keeps or stores, which are then handed the records (default 1m;
	// see replicate.go).
	ReplicateInterval time.Duration
	// QueryTimeout bounds one lookup, put or read-back (default 10s).
	QueryTimeout time.Duration
	// CacheTTL is how long a resolution stays cached (default 1m);
	// NegativeCacheTTL the same for names not found (default 10s).
	CacheTTL, NegativeCacheTTL time.Duration
	// Now is the clock records are issued and validated by (default
	// time.Now).
	Now func() time.Time
	// Logger receives the DHT's logs (default: discard).
	Logger *slog.Logger

	// Test hooks.
	peerTimeout      time.Duration // per-request deadline (default 5s)
	noGuard          bool          // pass handle writes through unchecked
	permissiveSelect bool          // handle Select always prefers the incoming record
}

// DHT is the callsign address book on a kad-dht network. Its methods are
// safe for concurrent use.
type DHT struct {
	cfg   Config
	log   *slog.Logger
	host  host.Host
	kad   *kaddht.IpfsDHT
	send  *streamSender         // our GET_VALUE and PUT_VALUE requests
	pm    *pb.ProtocolMessenger // over send
	store ds.Batching           // the raw store under the guard
	guard *guard
	check *checker
	cache *lru[string, *Resolution]

	ctx          context.Context
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	republishes  atomic.Int64            // republish passes run by the loop
	replications atomic.Int64            // replication passes run by the loop
	reconnects   atomic.Int64            // republishes on regaining peers (reconnect.go)
	checks       chan struct{}           // a slot per guard lookup running (guard.go)
	keepKick     chan struct{}           // a schedule arrived (keep.go)
	refused      *lru[string, struct{}]  // guard verdicts: key + owner refused lately
	silent       *lru[peer.ID, struct{}] // peers that failed a lookup's request lately (lookup.go)
	stats        kadStats                // requests served (stats.go)

	mu        sync.Mutex // guards the fields below
	started   bool
	closed    bool
	ownKey    *identity.AccountKey
	ownRec    *IdentityRecord
	ownClaims []HandleClaim
	lastSeq   map[identity.AccountID]uint64        // highest identity seq we published
	kept      map[string][]byte                    // Keep: DHT key -> raw record
	keeping   map[identity.AccountID]*keepSchedule // members' schedules (keep.go)
	handoff   func(context.Context, []byte)        // where the owner's schedules go (keep.go)
	published map[string][]byte                    // DHT key -> the last record we put there ourselves
	checking  map[string]*guardCheck               // guard checks in flight, by key and owner
	refreshes int                                  // background identity lookups running
}

// New validates cfg and builds the DHT on cfg.Host. The DHT starts serving
// its protocol at once; Start bootstraps it.
func New(cfg Config) (*DHT, error) {
	if cfg.Host == nil {
		return nil, errors.New("dht: Config.Host is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.RecordTTL, DefaultRecordTTL)
	def(&cfg.RepublishInterval, DefaultRepublishInterval)
	def(&cfg.Grace, DefaultGrace)
	cfg.MaxRecordAge = max(cfg.MaxRecordAge, MaxTTL+cfg.Grace+time.Hour)
	def(&cfg.ReplicateInterval, DefaultReplicateInterval)
	def(&cfg.QueryTimeout, DefaultQueryTimeout)
	def(&cfg.CacheTTL, DefaultCacheTTL)
	def(&cfg.NegativeCacheTTL, DefaultNegativeCacheTTL)
	def(&cfg.peerTimeout, defaultPeerTimeout)
	if cfg.RecordTTL > MaxTTL {
		return nil, fmt.Errorf("dht: RecordTTL %v exceeds %v", cfg.RecordTTL, MaxTTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	d := &DHT{
		cfg:       cfg,
		log:       log,
		host:      cfg.Host,
		check:     newChecker(cfg.Now, cfg.PoW),
		cache:     newLRU[string, *Resolution](cacheSize),
		lastSeq:   make(map[identity.AccountID]uint64),
		kept:      make(map[string][]byte),
		keeping:   make(map[identity.AccountID]*keepSchedule),
		published: make(map[string][]byte),
		checking:  make(map[string]*guardCheck),
		checks:    make(chan struct{}, maxGuardChecks),
		keepKick:  make(chan struct{}, 1),
		refused:   newLRU[string, struct{}](cacheSize),
		silent:    newLRU[peer.ID, struct{}](cacheSize),
	}
	d.store = cfg.Datastore
	if d.store == nil {
		d.store = dssync.MutexWrap(ds.NewMapDatastore())
	}
	d.guard = &guard{Batching: d.store, check: d.check, grace: cfg.Grace, disabled: cfg.noGuard, verify: d.verifyFirst}

	mode := kaddht.ModeAuto
	if cfg.Server {
		mode = kaddht.ModeServer
	}
	// kadHost bounds every kad message kad-dht reads (kadlimit.go) and
	// counts the requests it serves (stats.go).
	kad, err := kaddht.New(kadHost{cfg.Host, &d.stats},
		kaddht.OnRequestHook(d.onRequest),
		kaddht.ProtocolPrefix(ProtocolPrefix),
		kaddht.Mode(mode),
		kaddht.Datastore(d.guard),
		kaddht.DisableProviders(),
		kaddht.Validator(record.NamespacedValidator{}),
		kaddht.NamespacedValidator(identityNS, identityValidator{d.check}),
		kaddht.NamespacedValidator(handleNS, handleValidator{c: d.check, permissive: cfg.permissiveSelect}),
		kaddht.MaxRecordAge(cfg.MaxRecordAge),
		kaddht.BootstrapPeers(cfg.Bootstrap...),
	)
	if err != nil {
		return nil, fmt.Errorf("dht: %w", err)
	}
	send := &streamSender{host: cfg.Host}
	pm, err := pb.NewProtocolMessenger(send)
	if err != nil {
		_ = kad.Close()
		return nil, fmt.Errorf("dht: %w", err)
	}
	d.kad, d.send, d.pm = kad, send, pm
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d, nil
}

// Start dials the bootstrap peers, waits until the routing table holds at
// least one peer (when any bootstrap peer answered) and starts the
// republish loop. It returns once the DHT is ready or ctx ends.
func (d *DHT) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	if d.started {
		d.mu.Unlock()
		return nil
	}
	d.started = true
	d.mu.Unlock()

	connected := 0
	if len(d.cfg.Bootstrap) > 0 {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, ai := range d.cfg.Bootstrap {
			if ai.ID == d.host.ID() {
				continue
			}
			wg.Go(func() {
				if err := d.host.Connect(ctx, ai); err != nil {
					d.log.Debug("bootstrap peer unreachable", "peer", ai.ID, "err", err)
					return
				}
				mu.Lock()
				connected++
				mu.Unlock()
			})
		}
		wg.Wait()
		if connected == 0 {
			d.log.Warn("no bootstrap peer reachable", "tried", len(d.cfg.Bootstrap))
		}
	}
	if connected > 0 {
		if err := waitFor(ctx, func() bool { return d.kad.RoutingTable().Size() > 0 }); err != nil {
			return fmt.Errorf("dht: start: routing table still empty: %w", err)
		}
		_ = d.kad.Bootstrap(ctx) // triggers a routing table refresh; never fails
	}
	d.loadKept(ctx)
	d.wg.Go(d.republishLoop)
	d.wg.Go(d.replicateLoop)
	d.wg.Go(d.keepLoop)
	if sub, err := d.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged)); err == nil {
		d.wg.Go(func() { d.reconnectLoop(sub) })
	} else {
		d.log.Warn("no connectedness events: no republish on reconnect", "err", err)
	}
	return nil
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Close stops the republish loop and kad-dht and waits for them. It does not
// close the host. Close is idempotent.
func (d *DHT) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	return d.kad.Close()
}

// RoutingTableSize returns the number of peers in the routing table.
func (d *DHT) RoutingTableSize() int { return d.kad.RoutingTable().Size() }

// FindPeer asks the network for a peer's current addresses (kad-dht's
// peer routing), bounded by QueryTimeout and by Close. Values are put and
// got only through this package's own methods: kad-dht's GetValue trusts
// the first best answer and its PutValue reports success when every peer
// refused, so the kad-dht itself is not handed out.
func (d *DHT) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	ctx, cancel := d.opCtx(ctx)
	defer cancel()
	return d.kad.FindPeer(ctx, id)
}

// Refresh fills the routing table: a lookup of this node's own key and of
// random keys, as kad-dht's bootstrap does (used when the node first finds
// a peer, so that its table fills without waiting for the next refresh).
func (d *DHT) Refresh(ctx context.Context) error { return d.kad.Bootstrap(ctx) }

// opCtx bounds an operation by QueryTimeout and by Close.
func (d *DHT) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.QueryTimeout)
	stop := context.AfterFunc(d.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// Status is the outcome of resolving a name.
type Status string

// Resolution statuses.
const (
	// StatusOK: every valid record the lookup found (at least one) names
	// the same owner.
	StatusOK Status = "ok"
	// StatusConflict: valid records of two or more owners; Conflicts lists
	// them. Neither is the answer, whatever the counts: an incumbent
	// outnumbered by servers that joined after its claim is still the
	// incumbent, and a reader can't tell which side that is.
	StatusConflict Status = "conflict"
	// StatusExpired: records were found but all have expired.
	StatusExpired Status = "expired"
	// StatusNotFound: no record.
	StatusNotFound Status = "not_found"
)

// OwnerCount is how many of the closest peers hold a valid record of Owner.
type OwnerCount struct {
	Owner identity.AccountPub
	Count int
}

// Resolution is the answer to Resolve. Treat it as read-only: cached
// resolutions are shared.
type Resolution struct {
	Query  string // as given
	Status Status
	Name   string // normalised handle; empty for an account id
	// Owner is set when Status is StatusOK.
	Owner identity.AccountPub
	// Handle is the owner's best handle record (StatusOK, handles only).
	Handle *HandleRecord
	// Identity is the owner's identity record; nil when the owner has none
	// published.
	Identity *IdentityRecord
	// Conflicts lists every owner with valid records, most records first
	// (StatusConflict only).
	Conflicts []OwnerCount
	// Answers is how many of the K closest peers answered (peers farther
	// away that answered on the way are counted in Conflicts, not here).
	Answers int
}

// ownerTally counts one owner's records.
type ownerTally struct {
	owner identity.AccountPub
	count int
	best  *HandleRecord
	raw   []byte
}

type handleTally struct {
	owners  []*ownerTally
	valid   int
	expired int
}

// tallyHandles validates every answer as of now (accepting records expired
// less than grace ago) and counts owners.
func (d *DHT) tallyHandles(key string, answers []peerAnswer, now time.Time, grace time.Duration) *handleTally {
	t := &handleTally{}
	for _, a := range answers {
		if a.value == nil {
			continue
		}
		r, err := d.check.handle(key, a.value, now, grace)
		if errors.Is(err, ErrExpired) {
			t.expired++
			continue
		}
		if err != nil {
			continue
		}
		t.valid++
		var ot *ownerTally
		for _, o := range t.owners {
			if o.owner.Equal(r.Owner) {
				ot = o
			}
		}
		if ot == nil {
			ot = &ownerTally{owner: r.Owner}
			t.owners = append(t.owners, ot)
		}
		ot.count++
		if ot.best == nil || compareHandle(r, ot.best, a.value, ot.raw) > 0 {
			ot.best, ot.raw = r, a.value
		}
	}
	// Most records first; ties by owner key so the order is deterministic.
	for i := 1; i < len(t.owners); i++ {
		for j := i; j > 0 && t.less(j, j-1); j-- {
			t.owners[j], t.owners[j-1] = t.owners[j-1], t.owners[j]
		}
	}
	return t
}

func (t *handleTally) less(i, j int) bool {
	a, b := t.owners[i], t.owners[j]
	if a.count != b.count {
		return a.count > b.count
	}
	return string(a.owner.Bytes()) < string(b.owner.Bytes())
}

// verdict applies the resolution rule: one owner among all valid records
// is the answer; two or more are a conflict, whatever the counts.
func (t *handleTally) verdict() (Status, *ownerTally) {
	switch {
	case len(t.owners) == 1:
		return StatusOK, t.owners[0]
	case len(t.owners) > 1:
		return StatusConflict, nil
	case t.expired > 0:
		return StatusExpired, nil
	}
	return StatusNotFound, nil
}

func (t *handleTally) counts() []OwnerCount {
	var out []OwnerCount
	for _, o := range t.owners {
		out = append(out, OwnerCount{Owner: o.owner, Count: o.count})
	}
	return out
}

func (t *handleTally) countOf(owner identity.AccountPub) (int, *ownerTally) {
	for _, o := range t.owners {
		if o.owner.Equal(owner) {
			return o.count, o
		}
	}
	return 0, nil
}

// Resolve finds who holds a name. It accepts "@alice", "alice", a
// self-certifying "alice~k3x9q2mf7v" or an account id ("csa1..."). It asks
// the K closest peers to the name's key and answers StatusOK only when every
// valid record it saw (from them and from peers that answered on the way)
// names one owner, StatusConflict when they name several (see Status); it
// returns the owner's identity record too. A name nobody holds
// is a Resolution with StatusNotFound, not an error; errors are invalid
// names (ErrInvalidHandle), an empty routing table (ErrNoPeers) and
// deadlines. Results are cached (Config.CacheTTL).
func (d *DHT) Resolve(ctx context.Context, name string) (*Resolution, error) {
	q := strings.TrimSpace(name)
	if id, err := identity.ParseAccountID(q); err == nil {
		return d.resolveAccount(ctx, name, id)
	}
	norm, key, _, err := parseName(q)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", name, err)
	}
	now := d.cfg.Now()
	if r, ok := d.cache.get(key, now); ok {
		c := *r
		c.Query = name
		// The owner's identity may have been refreshed since (a background
		// lookup, a newer record): the highest seq wins.
		if c.Identity != nil {
			if ir, ok := d.cache.get(identityKey(c.Owner.ID()), now); ok && ir.Identity != nil && ir.Identity.Seq > c.Identity.Seq {
				c.Identity = ir.Identity
			}
		}
		return &c, nil
	}
	ctx, cancel := d.opCtx(ctx)
	// The owner's identity is looked up as soon as the first signed handle
	// record arrives, in parallel with the rest of the handle lookup; the
	// majority almost always confirms that owner.
	spec := &identityFetch{d: d}
	// Each distinct record's proof of work (a memory-hard hash) is checked
	// as it arrives, in parallel with the lookup, so that the tally finds
	// it verified.
	var powWG sync.WaitGroup
	checking := make(map[string]bool) // record values; the lookup's goroutine only
	defer func() {
		cancel()
		spec.wait()
		powWG.Wait()
	}()
	lr, err := d.lookup(ctx, key, lookupOpts{onValue: func(v []byte, answered func() []peer.ID) bool {
		if checking[string(v)] {
			return false
		}
		r, err := d.check.handleSigned(key, v, d.cfg.Now())
		if err != nil {
			return false
		}
		// A signed record is enough to speculate on its owner: the tally
		// below checks the proof of work. The identity lookup starts from
		// the peers that have answered so far as well as the routing
		// table: known to answer, already connected.
		if !spec.started() {
			spec.start(ctx, r.Owner, answered())
		}
		if len(checking) < maxPoWChecks {
			checking[string(v)] = true
			powWG.Go(func() { _, _ = d.check.handle(key, v, d.cfg.Now(), 0) })
		}
		return false
	}})
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", name, err)
	}
	powWG.Wait()
	t := d.tallyHandles(key, lr.all(), d.cfg.Now(), 0)
	status, top := t.verdict()
	res := &Resolution{Query: name, Status: status, Name: norm, Answers: len(lr.answers)}
	if len(t.owners) > 1 {
		res.Conflicts = t.counts()
	}
	if top != nil {
		res.Owner, res.Handle = top.owner, top.best
		ir, err := spec.result(ctx, top.owner)
		if err == nil && !slices.Contains(ir.Handles, norm) {
			// An identity record that does not name the handle may be one
			// cached before the claim (another lookup of the owner, a
			// keeper checking a member): ask the network once more.
			d.cache.remove(identityKey(top.owner.ID()))
			if fresh, ferr := d.resolveIdentity(ctx, top.owner.ID(), nil); ferr == nil && fresh.Seq > ir.Seq {
				ir = fresh
			}
		}
		switch {
		case err == nil:
			res.Identity = ir
		case errors.Is(err, ErrNotFound):
		default:
			return nil, fmt.Errorf("resolve %q: owner identity: %w", name, err)
		}
	}
	d.cacheResolution(key, res)
	return res, nil
}

func (d *DHT) cacheResolution(key string, res *Resolution) {
	ttl := d.cfg.NegativeCacheTTL
	if res.Status == StatusOK {
		ttl = d.cfg.CacheTTL
	}
	d.cache.put(key, res, d.cfg.Now().Add(ttl))
}

func (d *DHT) resolveAccount(ctx context.Context, query string, id identity.AccountID) (*Resolution, error) {
	ir, err := d.ResolveIdentity(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return &Resolution{Query: query, Status: StatusNotFound}, nil
	}
	if err != nil {
		return nil, err
	}
	return &Resolution{Query: query, Status: StatusOK, Owner: ir.Account, Identity: ir}, nil
}

// ResolveIdentity returns the valid identity record with the highest seq of
// account id among the closest peers, or ErrNotFound. No majority is needed:
// ForgetIdentity drops the cached resolution of id's identity record: the
// next ResolveIdentity asks the network.
func (d *DHT) ForgetIdentity(id identity.AccountID) { d.cache.remove(identityKey(id)) }

// only the account key can sign one. Results are cached.
func (d *DHT) ResolveIdentity(ctx context.Context, id identity.AccountID) (*IdentityRecord, error) {
	key := identityKey(id)
	if r, ok := d.cache.get(key, d.cfg.Now()); ok {
		if r.Identity == nil {
			return nil, fmt.Errorf("resolve %s: %w", id, ErrNotFound)
		}
		return r.Identity, nil
	}
	ctx, cancel := d.opCtx(ctx)
	defer cancel()
	ir, err := d.resolveIdentity(ctx, id, nil)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("resolve %s: %w", id, err)
	}
	return ir, err
}

// resolveIdentity is ResolveIdentity without the caller's deadline. seeds
// are extra peers to start the lookup from.
//
// No majority is needed for an identity record (only the account key signs
// one; the highest valid seq wins), so it does not wait for the K closest
// peers: it returns the best record once identityQuorum peers have answered
// with valid records. The lookup runs on to the K closest in the background
// (owned by the DHT, bounded by QueryTimeout and maxRefreshes, cancelled by
// Close) and caches the record with the highest seq it finds, so a stale
// record held by a few peers is corrected within a round trip or two. When
// maxRefreshes lookups are running already, the lookup ends at the quorum.
func (d *DHT) resolveIdentity(ctx context.Context, id identity.AccountID, seeds []peer.ID) (*IdentityRecord, error) {
	key := identityKey(id)
	if r, ok := d.cache.get(key, d.cfg.Now()); ok && r.Identity != nil {
		return r.Identity, nil
	}
	q := &identityVotes{d: d, key: key, enough: make(chan struct{})}
	if d.cfg.Server {
		q.add(d.localValue(ctx, key))
	}
	bctx, release, ok := d.startRefresh()
	if !ok {
		lr, err := d.lookup(ctx, key, lookupOpts{seeds: seeds, onValue: func(v []byte, _ func() []peer.ID) bool {
			return q.add(v)
		}})
		if err != nil {
			return nil, err
		}
		return d.finishIdentity(key, id, lr)
	}
	type outcome struct {
		rec *IdentityRecord
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		defer release()
		lr, err := d.lookup(bctx, key, lookupOpts{seeds: seeds, onValue: func(v []byte, _ func() []peer.ID) bool {
			q.add(v)
			return false
		}})
		if err != nil {
			done <- outcome{err: err}
			return
		}
		rec, err := d.finishIdentity(key, id, lr)
		done <- outcome{rec, err}
	}()
	select {
	case <-q.enough:
		return q.best(), nil
	case o := <-done:
		return o.rec, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startRefresh reserves a background identity lookup: its context (ended by
// Close and QueryTimeout) and the function that releases it, which the
// goroutine running it must call last. ok is false when maxRefreshes run
// already or the DHT is closed.
func (d *DHT) startRefresh() (ctx context.Context, release func(), ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.refreshes >= maxRefreshes {
		return nil, nil, false
	}
	d.refreshes++
	d.wg.Add(1) // under mu, with closed false: never after Close's Wait began
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.QueryTimeout)
	return ctx, func() {
		cancel()
		d.mu.Lock()
		d.refreshes--
		d.mu.Unlock()
		d.wg.Done()
	}, true
}

// finishIdentity picks the best identity record of a finished lookup and
// caches it.
func (d *DHT) finishIdentity(key string, id identity.AccountID, lr *lookupResult) (*IdentityRecord, error) {
	best, _ := d.bestIdentity(key, lr.answers)
	res := &Resolution{Query: string(id), Status: StatusNotFound, Answers: len(lr.answers)}
	if best != nil {
		res.Status, res.Owner, res.Identity = StatusOK, best.Account, best
	}
	d.cacheIdentity(key, res)
	if best == nil {
		return nil, fmt.Errorf("resolve %s: %w", id, ErrNotFound)
	}
	return best, nil
}

// cacheIdentity caches an identity resolution unless the cache holds a
// record of the account with a higher seq (the highest seq wins, and
// lookups finish in any order).
func (d *DHT) cacheIdentity(key string, res *Resolution) {
	if old, ok := d.cache.get(key, d.cfg.Now()); ok && old.Identity != nil &&
		(res.Identity == nil || old.Identity.Seq > res.Identity.Seq) {
		return
	}
	d.cacheResolution(key, res)
}

// identityVotes collects the valid identity records of a lookup as they
// arrive and closes enough once identityQuorum of them have.
type identityVotes struct {
	d      *DHT
	key    string
	enough chan struct{}

	mu     sync.Mutex // guards the fields below
	n      int
	rec    *IdentityRecord
	raw    []byte
	closed bool
}

// add validates v (nil is no record) and reports whether the quorum is
// reached.
func (q *identityVotes) add(v []byte) bool {
	if v == nil {
		return false
	}
	r, err := q.d.check.identity(q.key, v, q.d.cfg.Now(), 0)
	q.mu.Lock()
	defer q.mu.Unlock()
	if err == nil {
		q.n++
		if q.rec == nil || compareIdentity(r, q.rec, v, q.raw) > 0 {
			q.rec, q.raw = r, v
		}
	}
	if q.n >= identityQuorum && !q.closed {
		q.closed = true
		close(q.enough)
	}
	return q.n >= identityQuorum
}

// best returns the best record collected so far.
func (q *identityVotes) best() *IdentityRecord {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.rec
}

// bestIdentity returns the best valid identity record among answers and how
// many answers hold exactly that record.
func (d *DHT) bestIdentity(key string, answers []peerAnswer) (*IdentityRecord, int) {
	now := d.cfg.Now()
	var best *IdentityRecord
	var bestRaw []byte
	for _, a := range answers {
		if a.value == nil {
			continue
		}
		r, err := d.check.identity(key, a.value, now, 0)
		if err != nil {
			continue
		}
		if best == nil || compareIdentity(r, best, a.value, bestRaw) > 0 {
			best, bestRaw = r, a.value
		}
	}
	n := 0
	for _, a := range answers {
		if best != nil && string(a.value) == string(bestRaw) {
			n++
		}
	}
	return best, n
}

// identityFetch is an identity lookup started speculatively for the first
// owner seen during a handle lookup.
type identityFetch struct {
	d     *DHT
	owner identity.AccountPub
	done  chan struct{}
	rec   *IdentityRecord
	err   error
}

func (f *identityFetch) started() bool { return f.done != nil }

func (f *identityFetch) start(ctx context.Context, owner identity.AccountPub, seeds []peer.ID) {
	f.owner, f.done = owner, make(chan struct{})
	go func() {
		defer close(f.done)
		f.rec, f.err = f.d.resolveIdentity(ctx, owner.ID(), seeds)
	}()
}

// result returns owner's identity record: the speculative one when it was
// for owner, else a fresh lookup.
func (f *identityFetch) result(ctx context.Context, owner identity.AccountPub) (*IdentityRecord, error) {
	if f.started() && f.owner.Equal(owner) {
		<-f.done
		return f.rec, f.err
	}
	return f.d.resolveIdentity(ctx, owner.ID(), nil)
}

// wait blocks until a started fetch has ended, so Resolve never leaves a
// goroutine behind.
func (f *identityFetch) wait() {
	if f.started() {
		<-f.done
	}
}
