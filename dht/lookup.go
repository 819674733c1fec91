package dht

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	kb "github.com/libp2p/go-libp2p-kbucket"
	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"google.golang.org/protobuf/proto"
)

const (
	// bucketK is how many of the closest peers a lookup converges on, and
	// how many a record is stored on (kad-dht's K).
	bucketK = 20
	// alpha is how many requests a lookup keeps in flight (or its width,
	// when wider).
	alpha = 20
	// maxCloserPeers caps the closer peers taken from one answer.
	maxCloserPeers = bucketK
	// maxCandidates caps the peers one lookup will ever consider, so hostile
	// answers can't grow it without bound.
	maxCandidates = 1000
	// silentFor is how long a peer that failed a lookup's request is
	// remembered as silent (see DHT.silent).
	silentFor = 10 * time.Minute
	// silentShare: a peer remembered as silent gets this share of the
	// per-request deadline (1 s of the default 5 s).
	silentShare = 5
)

// peerAnswer is one peer's answer to GET_VALUE: the record value it holds
// under the key, or nil.
type peerAnswer struct {
	id    peer.ID
	value []byte
}

// lookupResult holds the answers of the closest peers to a key.
type lookupResult struct {
	// answers are the up-to-width (K by default) closest peers that
	// answered, closest first, including the local node when it is itself
	// among them.
	answers []peerAnswer
	// farther are the peers that answered on the way but ended up farther
	// than the closest width: their records are evidence too (a resolve
	// never ignores a valid record it has seen), but nothing is put to them.
	farther []peerAnswer
	// peers are the remote peers among answers, where a record is put.
	peers []peer.ID
	// selfClosest reports whether the local node is among the closest.
	selfClosest bool
	// complete reports whether the lookup ran to its end: the closest
	// width peers that answer all answered (not cut short by its context
	// or by onValue).
	complete bool
	// silent counts the peers closer to the key than the width-th answer
	// that failed their request while this node is still connected to
	// them: live peers that did not answer in time (slow, or stalling), so
	// what they hold is unknown. A peer that can't be reached (gone, or an
	// address that never worked) is not counted.
	silent int
}

// all returns every answer of the lookup: the closest, then the farther.
func (r *lookupResult) all() []peerAnswer {
	return append(slices.Clip(r.answers), r.farther...)
}

type candState uint8

const (
	candNew candState = iota
	candQuerying
	candAnswered
	candFailed
)

type candidate struct {
	id    peer.ID
	dist  kb.ID
	state candState
	value []byte
	// short: its request had the shorter deadline of a peer remembered
	// as silent.
	short bool
}

type getResult struct {
	c      *candidate
	value  []byte
	closer []*peer.AddrInfo
	err    error
}

// lookupOpts tunes one lookup; the zero value is a plain lookup.
type lookupOpts struct {
	// seeds are peers to start from along with the routing table's nearest
	// to the key, for example the peers that answered another lookup.
	seeds []peer.ID
	// onValue, when not nil, is called from the lookup's goroutine with each
	// record value as it arrives and a function listing the peers that have
	// answered so far. It returning true ends the lookup early: the result
	// then holds the answers received until then.
	onValue func(value []byte, answered func() []peer.ID) bool
	// width is how many of the closest peers the lookup converges on
	// (default bucketK).
	width int
	// peerTimeout bounds each request (default Config's).
	peerTimeout time.Duration
}

// lookup runs an iterative Kademlia lookup for key, sending GET_VALUE (which
// returns a peer's record and the peers it knows closer to the key) to up
// to max(alpha, o.width) peers at a time, until the o.width (default K)
// closest peers that answer have all answered, o.onValue asks to stop, or
// ctx ends. Every answer is untrusted:
// a failed, malformed or mismatched answer marks the peer failed, and
// records are validated by the caller.
func (d *DHT) lookup(ctx context.Context, key string, o lookupOpts) (*lookupResult, error) {
	self := d.host.ID()
	width := o.width
	if width <= 0 {
		width = bucketK
	}
	inflightMax := max(alpha, width)
	target := kb.ConvertKey(key)
	cands := make(map[peer.ID]*candidate)
	var order []*candidate // sorted by distance to target
	add := func(id peer.ID) {
		if id == self || cands[id] != nil || len(cands) >= maxCandidates {
			return
		}
		c := &candidate{id: id, dist: kb.Xor(kb.ConvertPeerID(id), target)}
		cands[id] = c
		i, _ := slices.BinarySearchFunc(order, c, func(a, b *candidate) int { return bytes.Compare(a.dist, b.dist) })
		order = slices.Insert(order, i, c)
	}
	for _, id := range d.kad.RoutingTable().NearestPeers(target, width) {
		add(id)
	}
	for _, id := range o.seeds {
		add(id)
	}
	if len(order) == 0 {
		return d.localOnly(ctx, key)
	}
	answered := func() []peer.ID {
		var out []peer.ID
		for _, c := range order {
			if c.state == candAnswered {
				out = append(out, c.id)
			}
		}
		return out
	}

	qctx, cancel := context.WithCancel(ctx)
	results := make(chan getResult, inflightMax) // never blocks: inflight <= inflightMax
	var wg sync.WaitGroup
	defer func() {
		cancel() // ends requests still in flight (peers pushed out of the K closest)
		wg.Wait()
	}()
	inflight := 0
	complete := false
	fullTimeout := o.peerTimeout
	if fullTimeout <= 0 {
		fullTimeout = d.cfg.peerTimeout
	}

	for {
		pending := false
		n := 0
		for _, c := range order {
			if n == width {
				break
			}
			if c.state == candFailed {
				continue
			}
			n++
			switch c.state {
			case candNew:
				pending = true
				if inflight < inflightMax {
					c.state = candQuerying
					inflight++
					timeout := d.requestTimeout(c.id, o.peerTimeout)
					c.short = timeout < fullTimeout
					wg.Go(func() { results <- d.getValueWithin(qctx, c, key, timeout) })
				}
			case candQuerying:
				pending = true
			}
		}
		if !pending {
			complete = true
			break
		}
		var r getResult
		select {
		case r = <-results:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		inflight--
		if r.err != nil {
			r.c.state = candFailed
			if !r.c.short {
				// A peer already remembered as silent that misses its
				// shorter deadline is not evicted again: a slow peer
				// back in the routing table (kad-dht re-adds a peer
				// that reconnects and answers its check) must not be
				// thrown out by every lookup on a busy machine or
				// network, only by one that gave it the full time.
				d.peerFailed(r.c.id)
			}
			continue
		}
		d.peerAnswered(r.c.id)
		r.c.state = candAnswered
		r.c.value = r.value
		for i, ai := range r.closer {
			if i == maxCloserPeers {
				break
			}
			if ai.ID.Validate() != nil || ai.ID == self {
				continue
			}
			if cands[ai.ID] == nil && len(ai.Addrs) > 0 {
				d.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
			}
			add(ai.ID)
		}
		if o.onValue != nil && r.value != nil && o.onValue(r.value, answered) {
			break
		}
	}

	res := &lookupResult{complete: complete}
	answers := 0
	for _, c := range order {
		if answers == width {
			break
		}
		switch c.state {
		case candAnswered:
			answers++
		case candFailed:
			if d.host.Network().Connectedness(c.id) == network.Connected {
				res.silent++
			}
		}
	}
	selfDist := kb.Xor(kb.ConvertPeerID(self), target)
	for _, c := range order {
		if c.state != candAnswered {
			continue
		}
		if len(res.answers) == width {
			res.farther = append(res.farther, peerAnswer{id: c.id, value: c.value})
			continue
		}
		if !res.selfClosest && bytes.Compare(selfDist, c.dist) < 0 && d.cfg.Server {
			res.selfClosest = true
			res.answers = append(res.answers, peerAnswer{id: self, value: d.localValue(ctx, key)})
			if len(res.answers) == width {
				res.farther = append(res.farther, peerAnswer{id: c.id, value: c.value})
				continue
			}
		}
		res.answers = append(res.answers, peerAnswer{id: c.id, value: c.value})
		res.peers = append(res.peers, c.id)
	}
	if !res.selfClosest && len(res.answers) < width && d.cfg.Server {
		res.selfClosest = true
		res.answers = append(res.answers, peerAnswer{id: self, value: d.localValue(ctx, key)})
	}
	if len(res.peers) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !d.cfg.Server {
			return nil, ErrNoPeers
		}
	}
	return res, nil
}

// requestTimeout is the deadline of one lookup request to p: timeout
// (Config's per-request deadline when 0), or a silentShare of Config's
// when p failed a request within silentFor.
//
// A peer that left without a word (a machine that crashed, a laptop shut,
// a NAT mapping lost) holds every lookup that counts it among the closest
// until its request times out, and other peers keep naming it in their
// answers until they fail it too. Its first failure evicts it from our
// routing table (peerFailed), as kad-dht's own queries do; the peers that
// still hand it to us then cost a short wait, not a full one, and a miss
// of the short wait evicts nothing (a slow peer that kad-dht took back
// stays). The lookup's
// rule is unchanged: a peer that does not answer in time is a failed peer,
// whose record, if any, is not counted. An honest peer back from a failure
// answers well inside the shorter deadline, is forgotten as silent and
// goes back into the routing table (peerAnswered).
func (d *DHT) requestTimeout(p peer.ID, timeout time.Duration) time.Duration {
	if timeout <= 0 {
		timeout = d.cfg.peerTimeout
	}
	if _, ok := d.silent.get(p, time.Now()); ok {
		return min(timeout, d.cfg.peerTimeout/silentShare)
	}
	return timeout
}

// peerFailed evicts p, whose request failed while the lookup was still
// running, from the routing table and remembers it as silent for silentFor
// from its first failure (a failure under the shorter deadline does not
// extend it, so a slow peer gets a full deadline again in time).
func (d *DHT) peerFailed(p peer.ID) {
	d.kad.RoutingTable().RemovePeer(p)
	now := time.Now()
	if _, ok := d.silent.get(p, now); !ok {
		d.silent.put(p, struct{}{}, now.Add(silentFor))
	}
}

// peerAnswered forgets p as silent; a peer evicted for a failure goes back
// into the routing table, so that a peer that missed a deadline under load
// (ours or its own) is not lost to us until kad-dht's next refresh.
func (d *DHT) peerAnswered(p peer.ID) {
	if _, ok := d.silent.get(p, time.Now()); ok {
		d.silent.remove(p)
		_, _ = d.kad.RoutingTable().TryAddPeer(p, true, true)
	}
}

// localOnly is the lookup of a node with an empty routing table: only its
// own store can answer, and only if it serves the DHT.
func (d *DHT) localOnly(ctx context.Context, key string) (*lookupResult, error) {
	if !d.cfg.Server {
		return nil, ErrNoPeers
	}
	return &lookupResult{
		answers:     []peerAnswer{{id: d.host.ID(), value: d.localValue(ctx, key)}},
		selfClosest: true,
		complete:    true,
	}, nil
}

// getValue sends one GET_VALUE and bounds its time and answer.
func (d *DHT) getValue(ctx context.Context, c *candidate, key string) getResult {
	return d.getValueWithin(ctx, c, key, 0)
}

// getValueWithin is getValue within timeout (0: Config's peerTimeout).
func (d *DHT) getValueWithin(ctx context.Context, c *candidate, key string, timeout time.Duration) getResult {
	if timeout <= 0 {
		timeout = d.cfg.peerTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := d.send.SendRequest(ctx, c.id, pb.NewMessage(pb.Message_GET_VALUE, []byte(key), 0))
	if err != nil {
		return getResult{c: c, err: err}
	}
	value, closer, err := parseGetValue(resp, key)
	return getResult{c: c, value: value, closer: closer, err: err}
}

// parseGetValue checks an answer to GET_VALUE for key and returns the record
// value in it (nil when none) and at most maxCloserPeers closer peers. The
// answer must echo the request's type and key, and a record in it must be
// under the key and within MaxIdentityRecordSize; anything else is an error.
// Addresses that don't parse are dropped; the caller checks peer ids.
func parseGetValue(resp *pb.Message, key string) ([]byte, []*peer.AddrInfo, error) {
	if resp.GetType() != pb.Message_GET_VALUE || string(resp.GetKey()) != key {
		return nil, nil, errBadAnswer
	}
	var value []byte
	if rec := resp.GetRecord(); rec != nil {
		if string(rec.GetKey()) != key {
			return nil, nil, errBadAnswer
		}
		if len(rec.GetValue()) > MaxIdentityRecordSize {
			return nil, nil, ErrTooLarge
		}
		value = rec.GetValue()
	}
	peers := resp.GetCloserPeers()
	if len(peers) > maxCloserPeers {
		peers = peers[:maxCloserPeers]
	}
	return value, pb.PBPeersToPeerInfos(peers), nil
}

// readFrom asks each of peers for its record under key, in parallel, and
// returns the answers of those that answered.
func (d *DHT) readFrom(ctx context.Context, peers []peer.ID, key string) []peerAnswer {
	out := make([]peerAnswer, len(peers))
	ok := make([]bool, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			r := d.getValue(ctx, &candidate{id: p}, key)
			if r.err == nil {
				out[i], ok[i] = peerAnswer{id: p, value: r.value}, true
			}
		})
	}
	wg.Wait()
	var res []peerAnswer
	for i := range out {
		if ok[i] {
			res = append(res, out[i])
		}
	}
	return res
}

// putTo sends PUT_VALUE to each of peers in parallel and returns how many
// accepted the record. A refusal (the guard, a validator) resets the stream,
// which counts as not accepted.
func (d *DHT) putTo(ctx context.Context, peers []peer.ID, key string, value []byte) int {
	return len(peers) - len(d.putEach(ctx, peers, key, value))
}

// putEach is putTo returning the peers that did not accept the record. Each
// PUT_VALUE may take twice the per-request timeout: a storing node that
// holds no record for a handle looks the network up before it answers
// (guard.go).
func (d *DHT) putEach(ctx context.Context, peers []peer.ID, key string, value []byte) (failed []peer.ID) {
	rec := record.MakePutRecord(key, value)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, 2*d.cfg.peerTimeout)
			defer cancel()
			if err := d.pm.PutValue(ctx, p, rec); err != nil {
				d.log.Debug("put refused or failed", "peer", p, "err", err)
				mu.Lock()
				failed = append(failed, p)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// localValue returns the record value the local node stores under key, or
// nil.
func (d *DHT) localValue(ctx context.Context, key string) []byte {
	buf, err := d.store.Get(ctx, valueDsKey(key))
	if err != nil {
		return nil
	}
	var rec recpb.Record
	if proto.Unmarshal(buf, &rec) != nil || string(rec.GetKey()) != key {
		return nil
	}
	return rec.GetValue()
}

// storeLocal stores a record in the local node's own value store, applying
// the same rules a remote PUT_VALUE meets: validation, the guard for handle
// records, and the highest seq for identity records. own says the record is
// our own account's: the guard still keeps a stored incumbent, but does not
// ask the network before a first record (we know who holds our claim, and
// a squatter's majority must not make our own node refuse it).
func (d *DHT) storeLocal(ctx context.Context, key string, value []byte, own bool) error {
	rec := record.MakePutRecord(key, value)
	// kad-dht ages records by wall-clock receive time in this format.
	rec.TimeReceived = time.Now().UTC().Format(time.RFC3339Nano)
	buf, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	dskey := valueDsKey(key)
	if _, err := d.check.identity(key, value, d.cfg.Now(), 0); err == nil {
		if old := d.localValue(ctx, key); old != nil {
			if _, err := d.check.identity(key, old, d.cfg.Now(), 0); err == nil {
				if i, _ := (identityValidator{d.check}).Select(key, [][]byte{value, old}); i != 0 {
					return ErrStaleSeq
				}
			}
		}
		return d.store.Put(ctx, dskey, buf)
	}
	if _, err := d.check.handle(key, value, d.cfg.Now(), 0); err != nil {
		return err
	}
	return d.guard.put(ctx, dskey, buf, !own)
}
