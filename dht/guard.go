package dht

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/multiformats/go-base32"
	"google.golang.org/protobuf/proto"

	"github.com/callsign/callsign/identity"
)

// guard is the incumbent guard: the datastore kad-dht stores values in,
// wrapped so that a write of a handle record is checked against the record
// already stored, or, when there is none, against the network.
//
// kad-dht v0.42.2's handlePutValue calls records.ValueStore.Put, which
// validates the incoming record, runs Select against the stored one (only if
// the stored one still validates, i.e. is unexpired), and then writes a
// marshalled recpb.Record to the datastore key "/csname/" +
// base32(full record key). Select is stateless and only sees two byte
// strings, so this Put, which has the stored record in hand, is where the
// refusal lives: a record for a name whose stored record is valid or within
// the grace period and belongs to another owner is refused (ErrIncumbent),
// and so is a lower seq from the same owner (ErrStaleSeq). The error makes
// handlePutValue fail, the stream is reset and the putter learns of it.
//
// A node that holds no record for the name (it joined after the claim, or
// became one of the closest when others left) has nothing to compare with,
// and a squatter writing straight to such nodes is how a held name used to
// be taken. So before it accepts a first record for a name the guard asks
// the network (verify: a lookup, see DHT.verifyFirst) and refuses the
// record when other owners' valid records outnumber its owner's among the
// closest peers. The lookup runs without the guard's lock; the write
// re-checks the store under it.
type guard struct {
	ds.Batching
	check *checker
	grace time.Duration
	// verify, when not nil, is asked before a first record for a name is
	// stored; an error refuses the record.
	verify func(ctx context.Context, key string, in *HandleRecord) error
	// disabled (tests only) passes every write through, to simulate a node
	// without the guard.
	disabled bool

	mu sync.Mutex // serialises guarded read-compare-write; never held across network I/O
}

var _ ds.Batching = (*guard)(nil)

// valueDsKey is the datastore key kad-dht's ValueStore files a record key
// under (records/value_store.go: "/" + namespace + "/" + base32(key)).
func valueDsKey(key string) ds.Key {
	ns, _, _ := strings.Cut(strings.TrimPrefix(key, "/"), "/")
	return ds.NewKey("/" + ns + "/" + base32.RawStdEncoding.EncodeToString([]byte(key)))
}

// Put implements ds.Write.
func (g *guard) Put(ctx context.Context, key ds.Key, value []byte) error {
	return g.put(ctx, key, value, true)
}

// put is Put, asking the network before a first record only when verify
// is set.
func (g *guard) put(ctx context.Context, key ds.Key, value []byte, verify bool) error {
	if g.disabled || !strings.HasPrefix(key.String(), handlePrefix) {
		return g.Batching.Put(ctx, key, value)
	}
	rkey, nh, err := g.incoming(key, value)
	if err != nil {
		return err
	}
	g.mu.Lock()
	held, err := g.admitLocked(ctx, key, rkey, nh)
	// A self-certifying name needs no check with the network: only the key
	// its suffix is derived from can hold it, and the validator checked
	// that. Every node publishes one at start, so checking them would
	// spend the guard's lookups on nothing.
	if held || err != nil || g.verify == nil || !verify || identity.IsSelfCert(nh.Name) {
		if err == nil {
			err = g.Batching.Put(ctx, key, value)
		}
		g.mu.Unlock()
		return err
	}
	g.mu.Unlock()

	// Nothing held here: ask the network, unlocked.
	if err := g.verify(ctx, rkey, nh); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// A record may have been stored meanwhile; it is the incumbent now.
	if _, err := g.admitLocked(ctx, key, rkey, nh); err != nil {
		return err
	}
	return g.Batching.Put(ctx, key, value)
}

// incoming decodes and validates a kad record about to be written under
// key.
func (g *guard) incoming(key ds.Key, value []byte) (string, *HandleRecord, error) {
	var in recpb.Record
	if err := proto.Unmarshal(value, &in); err != nil {
		return "", nil, fmt.Errorf("guard: %w: %v", ErrInvalidRecord, err)
	}
	rkey := string(in.GetKey())
	if valueDsKey(rkey) != key {
		return "", nil, fmt.Errorf("guard: %w", ErrWrongKey)
	}
	nh, err := g.check.handle(rkey, in.GetValue(), g.check.now(), 0)
	if err != nil {
		return "", nil, fmt.Errorf("guard: %w", err)
	}
	return rkey, nh, nil
}

// admitLocked decides whether nh may replace what is stored under key:
// held reports whether a record holds the name here (valid, or expired
// less than the grace period ago), and err the refusal.
func (g *guard) admitLocked(ctx context.Context, key ds.Key, rkey string, nh *HandleRecord) (held bool, err error) {
	old, err := g.Batching.Get(ctx, key)
	if errors.Is(err, ds.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var stored recpb.Record
	if proto.Unmarshal(old, &stored) != nil || string(stored.GetKey()) != rkey {
		return false, nil // garbage in the store does not hold a name
	}
	oh, err := g.check.handle(rkey, stored.GetValue(), g.check.now(), g.grace)
	if err != nil {
		return false, nil // invalid, or expired beyond grace: the name is free here
	}
	if !oh.Owner.Equal(nh.Owner) {
		return true, ErrIncumbent
	}
	if nh.Seq < oh.Seq {
		return true, ErrStaleSeq
	}
	return true, nil
}

// Limits of the guard's network check.
const (
	// maxGuardChecks caps the guard lookups one node runs at once; a put
	// that finds them all busy is refused (ErrBusy) rather than queued.
	maxGuardChecks = 8
	// guardRefusalTTL is how long a refused owner of a name is refused
	// again without a new lookup.
	guardRefusalTTL = time.Minute
	// guardWidth is how many of the closest peers the check counts records
	// on: twice K, so that an incumbent whose holders were pushed out of
	// the K closest by newcomers is still counted.
	guardWidth = 2 * bucketK
)

// verifyFirst is the guard's network check before this node stores a first
// record of in.Owner for key: a lookup of key over the 2K closest peers,
// bounded by the per-request timeout (a putter waits twice that for a
// PUT_VALUE, so it hears the verdict). The record is refused (ErrIncumbent)
// when valid records of other owners, unexpired or within the grace
// period, are found and are not outnumbered by in.Owner's; a lone first
// claim, or the incumbent's record reaching a peer that became one of the
// closest, finds none or fewer and is accepted. Live peers among the
// closest that did not answer in time (lookupResult.silent) count for
// whichever side they could turn in a dispute: a record is accepted only
// when no other owner's record was heard or its owner's records outnumber
// the others' and the silent peers together, refused for good only when
// the others' records are at least its owner's and the silent peers
// together, and otherwise refused for now (ErrBusy), so that on a busy
// network neither a squatter whose servers answer first nor a lasting
// refusal of the incumbent's replicas comes out of a partial count. A lookup that does not finish in time refuses (ErrBusy); one that
// finds no peer to ask accepts, as nothing says the name is held.
// Refusals are remembered for guardRefusalTTL; concurrent checks of one
// owner's record share a lookup; at most maxGuardChecks run at once
// (ErrBusy beyond).
func (d *DHT) verifyFirst(ctx context.Context, key string, in *HandleRecord) error {
	ck := key + "\x00" + string(in.Owner.Bytes())
	if _, ok := d.refused.get(ck, time.Now()); ok {
		return fmt.Errorf("guard: %w (refused lately)", ErrIncumbent)
	}
	// Puts of one owner's record arriving together (a claim, replicas
	// pushed by several holders) share one check.
	d.mu.Lock()
	f := d.checking[ck]
	lead := f == nil
	if lead {
		f = &guardCheck{done: make(chan struct{})}
		d.checking[ck] = f
	}
	d.mu.Unlock()
	if !lead {
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.err = d.checkNetwork(ctx, key, ck, in)
	d.mu.Lock()
	delete(d.checking, ck)
	d.mu.Unlock()
	close(f.done)
	return f.err
}

// guardCheck is one network check in flight; err is set before done is
// closed.
type guardCheck struct {
	done chan struct{}
	err  error
}

// checkNetwork is verifyFirst's lookup and verdict.
func (d *DHT) checkNetwork(ctx context.Context, key, ck string, in *HandleRecord) error {
	select {
	case d.checks <- struct{}{}:
		defer func() { <-d.checks }()
	default:
		return ErrBusy
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.peerTimeout)
	defer cancel()
	stop := context.AfterFunc(d.ctx, cancel)
	defer stop()
	// The peers we are connected to seed the lookup too: a node that has
	// just joined (the very case this check is for) may not have them in
	// its routing table yet.
	//
	// Each request gets a third of the budget: a peer that takes the
	// stream and never answers (a hostile one can) is then a failed peer,
	// not a check that never finishes, which would refuse the incumbent's
	// replicas as surely as the squatter's record.
	lr, err := d.lookup(ctx, key, lookupOpts{width: guardWidth, seeds: d.host.Network().Peers(),
		peerTimeout: d.cfg.peerTimeout / 3})
	if err == nil && !lr.complete {
		err = ctx.Err()
	}
	if err != nil {
		// A partial view could be the attacker's servers alone (they answer
		// first): refuse, and let the putter try again.
		return fmt.Errorf("guard: %w: checking the network: %w", ErrBusy, err)
	}
	t := d.tallyHandles(key, lr.all(), d.cfg.Now(), d.cfg.Grace)
	mine, _ := t.countOf(in.Owner)
	others := t.valid - mine
	switch {
	case others == 0:
		// A first claim, or its record reaching more of the closest:
		// nothing heard says another owner holds the name. (Requiring
		// more than the silent peers here would turn away a claim's own
		// puts on a busy network, while the record they hold reaches
		// its closest peers concurrently.)
		return nil
	case mine > others+lr.silent:
		// More peers back this owner than could back any other, even if
		// every peer that did not answer holds another owner's record.
		return nil
	case others >= mine+lr.silent:
		// Refused whatever the silent peers hold.
		d.refused.put(ck, struct{}{}, time.Now().Add(guardRefusalTTL))
		return fmt.Errorf("guard: %w: %d of the closest peers hold other owners' records, %d this owner's", ErrIncumbent, others, mine)
	}
	// The peers that did not answer in time could decide it either way (a
	// busy network, or an attacker's servers answering first while the
	// incumbent's holders are slow): neither accept nor remember a
	// refusal; the putter tries again.
	return fmt.Errorf("guard: %w: %d of the closest peers hold this owner's record, %d others', %d did not answer in time", ErrBusy, mine, others, lr.silent)
}

// Batch implements ds.Batching; batched writes go through Put.
func (g *guard) Batch(ctx context.Context) (ds.Batch, error) {
	return ds.NewBasicBatch(g), nil
}
