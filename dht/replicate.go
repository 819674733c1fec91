package dht

import (
	"bytes"
	"context"
	"maps"
	"strings"
	"time"

	dsq "github.com/ipfs/go-datastore/query"
	kb "github.com/libp2p/go-libp2p-kbucket"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// Replication: records follow the peers closest to their keys.
//
// kad-dht stores a record on the K peers closest to its key when it is put
// and never moves it. When peers join closer to the key than the ones that
// hold it, a lookup finds the newcomers first and the record with them,
// which is what let servers that joined after a claim answer for the name.
// So every ReplicateInterval the DHT compares its routing table with the
// one of the pass before, and for every peer that is new and among the K
// nearest (in our routing table) to the key of a record we have:
//
//   - a record we own or keep (the owner's node, a public node keeping its
//     members' records): look the key up and put the record to every one
//     of the K closest that answered without it;
//   - a record we store for someone else (a DHT server), when we are among
//     the K nearest to its key ourselves: put it to the new peers. This is
//     Kademlia's own rule for a joining node, and the peers that store a key
//     have the densest view of the key's neighbourhood; a holder pushed out
//     of the K nearest leaves the pushing to those that are not.
//
// A peer that refused or failed a push (busy checking, a timeout, or it
// holds another owner's record) counts as new again on the next
// maxReplicateTries-1 passes. A record reaches a newcomer before the
// newcomer can be asked for it, in the usual case; a squatter racing the
// replication meets the newcomer's guard (guard.go), which asks the network
// before it accepts a first record for a name.

// DefaultReplicateInterval is the default of Config.ReplicateInterval.
const DefaultReplicateInterval = time.Minute

// maxReplicateTries is how many passes in a row push to a peer whose push
// failed.
const maxReplicateTries = 5

// setPublished remembers the last record we put under key ourselves, for
// the replicator.
func (d *DHT) setPublished(key string, raw []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.published[key] = raw
}

// ownedRecord is a record the replicator looks after as its owner (own)
// or keeper.
type ownedRecord struct {
	raw []byte
	own bool
}

// ownedRecords returns the records the replicator looks after as their
// owner or keeper: the last published record of each owned handle and of
// the owned identity, and the kept records.
func (d *DHT) ownedRecords() map[string]ownedRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]ownedRecord, len(d.ownClaims)+1+len(d.kept))
	for k, v := range d.kept {
		out[k] = ownedRecord{raw: v}
	}
	for _, c := range d.ownClaims {
		if _, k, _, err := parseName(c.Name); err == nil && d.published[k] != nil {
			out[k] = ownedRecord{raw: d.published[k], own: true}
		}
	}
	if d.ownKey != nil && d.ownRec != nil {
		if k := identityKey(d.ownKey.Public().ID()); d.published[k] != nil {
			out[k] = ownedRecord{raw: d.published[k], own: true}
		}
	}
	return out
}

func (d *DHT) replicateLoop() {
	t := time.NewTicker(d.cfg.ReplicateInterval)
	defer t.Stop()
	known := make(map[peer.ID]bool)
	tries := make(map[peer.ID]int) // peers a push failed to: passes tried
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		peers := d.kad.RoutingTable().ListPeers()
		var fresh []peer.ID
		now := make(map[peer.ID]bool, len(peers))
		for _, p := range peers {
			now[p] = true
			if !known[p] || tries[p] > 0 {
				fresh = append(fresh, p)
			}
		}
		known = now
		if len(fresh) > 0 {
			failed := d.replicate(d.ctx, fresh)
			next := make(map[peer.ID]int, len(failed))
			for _, p := range failed {
				if n := tries[p] + 1; n < maxReplicateTries {
					next[p] = n
				}
			}
			tries = next
		}
		d.replications.Add(1)
	}
}

// replicate hands our records to the peers of fresh that are among the K
// nearest to their keys in the routing table. It returns the peers that
// failed or refused a push.
func (d *DHT) replicate(ctx context.Context, fresh []peer.ID) (failed []peer.ID) {
	rt := d.kad.RoutingTable()
	isFresh := make(map[peer.ID]bool, len(fresh))
	for _, p := range fresh {
		isFresh[p] = true
	}
	self := kb.ConvertPeerID(d.host.ID())
	// freshNear returns the fresh peers among the K nearest to key, and
	// whether we are among them too (closer than the K-th).
	freshNear := func(key string) (fresh []peer.ID, near bool) {
		target := kb.ConvertKey(key)
		nearest := rt.NearestPeers(target, bucketK)
		for _, p := range nearest {
			if isFresh[p] {
				fresh = append(fresh, p)
			}
		}
		near = len(nearest) < bucketK ||
			bytes.Compare(kb.Xor(self, target), kb.Xor(kb.ConvertPeerID(nearest[len(nearest)-1]), target)) < 0
		return fresh, near
	}
	now := d.cfg.Now()
	d.forgetExpired(now)
	owned := d.ownedRecords()
	for key, o := range owned {
		if ctx.Err() != nil {
			return failed
		}
		if ps, _ := freshNear(key); len(ps) == 0 || !d.stillValid(key, o.raw, now) {
			continue
		}
		put, f := d.reput(ctx, key, o.raw, o.own)
		failed = append(failed, f...)
		d.log.Debug("replicated an owned record to the closest peers", "key", key, "put", put, "failed", len(f))
	}
	if !d.cfg.Server {
		return failed
	}
	for key, raw := range d.storedRecords(ctx) {
		if ctx.Err() != nil {
			return failed
		}
		if _, ok := owned[key]; ok {
			continue
		}
		if ps, near := freshNear(key); near && len(ps) > 0 && d.stillValid(key, raw, now) {
			f := d.putEach(ctx, ps, key, raw)
			failed = append(failed, f...)
			d.log.Debug("replicated a stored record to peers that became closest", "key", key, "peers", len(ps), "failed", len(f))
		}
	}
	return failed
}

// forgetExpired drops the published records that are no longer valid.
// (Records of names not owned, a claim given up or one that was never
// handed to SetOwned, stay until then: a claim is published before the
// node hands it over.)
func (d *DHT) forgetExpired(now time.Time) {
	d.mu.Lock()
	published := maps.Clone(d.published)
	d.mu.Unlock()
	for k, raw := range published {
		if d.stillValid(k, raw, now) {
			continue
		}
		d.mu.Lock()
		if bytes.Equal(d.published[k], raw) {
			delete(d.published, k)
		}
		d.mu.Unlock()
	}
}

// stillValid reports whether raw, under key, is still a valid record.
func (d *DHT) stillValid(key string, raw []byte, now time.Time) bool {
	if strings.HasPrefix(key, handlePrefix) {
		_, err := d.check.handle(key, raw, now, 0)
		return err == nil
	}
	_, err := d.check.identity(key, raw, now, 0)
	return err == nil
}

// reput looks key up and puts raw to each of the K closest peers that
// answered without exactly raw (and stores it locally when we are among
// them; own as for storeLocal). It returns how many peers it put to and
// those that did not accept.
func (d *DHT) reput(ctx context.Context, key string, raw []byte, own bool) (int, []peer.ID) {
	ctx, cancel := d.opCtx(ctx)
	defer cancel()
	lr, err := d.lookup(ctx, key, lookupOpts{})
	if err != nil {
		d.log.Debug("replicate: lookup failed", "key", key, "err", err)
		return 0, nil
	}
	var lacking []peer.ID
	self := d.host.ID()
	for _, a := range lr.answers {
		switch {
		case bytes.Equal(a.value, raw):
		case a.id == self:
			_ = d.storeLocal(ctx, key, raw, own)
		default:
			lacking = append(lacking, a.id)
		}
	}
	return len(lacking), d.putEach(ctx, lacking, key, raw)
}

// storedRecords returns the records in the local value store (both
// namespaces) that kad-dht would still serve: well-formed, filed under
// their own key, and received less than MaxRecordAge ago.
func (d *DHT) storedRecords(ctx context.Context) map[string][]byte {
	out := make(map[string][]byte)
	for _, ns := range []string{handleNS, identityNS} {
		res, err := d.store.Query(ctx, dsq.Query{Prefix: "/" + ns})
		if err != nil {
			continue
		}
		entries, err := res.Rest()
		if err != nil {
			continue
		}
		for _, e := range entries {
			var rec recpb.Record
			if proto.Unmarshal(e.Value, &rec) != nil {
				continue
			}
			key := string(rec.GetKey())
			if valueDsKey(key).String() != e.Key {
				continue
			}
			// kad-dht ages records by wall-clock receive time.
			got, err := time.Parse(time.RFC3339Nano, rec.GetTimeReceived())
			if err != nil || time.Since(got) > d.cfg.MaxRecordAge {
				continue
			}
			out[key] = rec.GetValue()
		}
	}
	return out
}
