package dht

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/callsign/callsign/identity"
)

// HandleClaim is what a node stores about a handle it holds, so that it can
// republish without solving the proof of work again.
type HandleClaim struct {
	Name      string // normalised
	Nonce     uint64
	Seq       uint64 // of the last published record
	ClaimedAt time.Time
}

// ClaimStatus is the outcome of ClaimHandle.
type ClaimStatus string

// Claim statuses.
const (
	// ClaimClaimed: the record was put and reading it back from the closest
	// peers shows it with a supermajority.
	ClaimClaimed ClaimStatus = "claimed"
	// ClaimTaken: another owner holds the name (unexpired or within grace);
	// nothing was put, or the read-back shows the other owner.
	ClaimTaken ClaimStatus = "taken"
	// ClaimConflict: the read-back shows records of several owners and none
	// with a supermajority.
	ClaimConflict ClaimStatus = "conflict"
)

// ClaimResult is the answer to ClaimHandle.
type ClaimResult struct {
	Status ClaimStatus
	Name   string // normalised
	// Owner is the holder of the name: the caller when claimed, the other
	// owner when taken.
	Owner identity.AccountPub
	// Claim is what to store to republish (set when claimed).
	Claim *HandleClaim
	// Record is the record that was published (set when claimed).
	Record *HandleRecord
	// Conflicts lists the owners seen when more than one was.
	Conflicts []OwnerCount
}

// ClaimHandle claims name (a handle as typed, or the caller's own
// self-certifying handle) for key's account, or refreshes the claim when
// prev (or a record of ours found on the network) says we hold it already.
//
// It looks the name up first: when another owner's record is unexpired or
// within the grace period on more of the closest peers than ours, it returns
// ClaimTaken and puts nothing. Otherwise it solves the proof of work (only
// for a new claim), signs a record with the next seq, puts it to the K
// closest peers and reads it back from them; the result is ClaimClaimed only
// when the majority rule returns our account. Errors: ErrInvalidHandle,
// ErrNoPeers, ErrNotConfirmed (nobody kept the record), deadlines.
func (d *DHT) ClaimHandle(ctx context.Context, key *identity.AccountKey, name string, prev *HandleClaim) (*ClaimResult, error) {
	return d.ClaimHandleProgress(ctx, key, name, prev, nil)
}

// ClaimStage is one step of a claim, reported while it runs.
type ClaimStage string

// Claim stages, in order; a claim that finds the name taken stops after
// the lookup, and one that renews a claim skips the proof of work.
const (
	StageLookup      ClaimStage = "lookup"        // is the name free?
	StageProofOfWork ClaimStage = "proof-of-work" // the memory-hard puzzle
	StageStore       ClaimStage = "store"         // putting the record to the closest peers
	StageConfirm     ClaimStage = "confirm"       // reading it back
)

// ClaimHandleProgress is ClaimHandle, calling progress (when not nil, on
// the caller's goroutine) as each stage starts.
func (d *DHT) ClaimHandleProgress(ctx context.Context, key *identity.AccountKey, name string, prev *HandleClaim, progress func(ClaimStage)) (*ClaimResult, error) {
	stage := func(s ClaimStage) {
		if progress != nil {
			progress(s)
		}
	}
	norm, dkey, selfCert, err := parseName(name)
	if err != nil {
		return nil, fmt.Errorf("claim %q: %w", name, err)
	}
	me := key.Public()
	if selfCert && !identity.VerifySelfCert(norm, me) {
		return nil, fmt.Errorf("claim %q: %w: self-certifying handle of another key", name, ErrInvalidHandle)
	}
	// The network steps each get QueryTimeout; the proof of work in between
	// runs under the caller's deadline alone (it takes seconds for short
	// names on a slow machine).
	parent := ctx
	stage(StageLookup)
	lctx, lcancel := d.opCtx(parent)
	lr, err := d.lookup(lctx, dkey, lookupOpts{})
	lcancel()
	if err != nil {
		return nil, fmt.Errorf("claim %q: %w", name, err)
	}
	t := d.tallyHandles(dkey, lr.answers, d.cfg.Now(), d.cfg.Grace)
	mine, ours := t.countOf(me)
	for _, o := range t.owners {
		if !o.owner.Equal(me) && o.count > mine {
			return &ClaimResult{Status: ClaimTaken, Name: norm, Owner: o.owner, Conflicts: conflictsOf(t)}, nil
		}
	}

	// Build the claim: from prev, else from our own record on the network,
	// else a new claim with a fresh proof of work.
	var claim HandleClaim
	switch {
	case prev != nil && prev.Name == norm:
		claim = *prev
	case ours != nil:
		claim = HandleClaim{Name: norm, Nonce: ours.best.Nonce, Seq: ours.best.Seq, ClaimedAt: ours.best.ClaimedAt}
	default:
		claim = HandleClaim{Name: norm, ClaimedAt: d.cfg.Now()}
		if !selfCert {
			stage(StageProofOfWork)
			claim.Nonce, err = identity.SolveHandlePoW(parent, d.cfg.PoW, norm, me)
			if err != nil {
				return nil, fmt.Errorf("claim %q: proof of work: %w", name, err)
			}
		}
	}
	if ours != nil && ours.best.Seq > claim.Seq {
		claim.Seq = ours.best.Seq
	}
	claim.Seq++
	now := d.cfg.Now()
	rec := &HandleRecord{
		Name: norm, Owner: me, Seq: claim.Seq, Nonce: claim.Nonce,
		ClaimedAt: claim.ClaimedAt.Truncate(time.Millisecond),
		Issued:    now.Truncate(time.Millisecond),
		Expires:   now.Add(d.cfg.RecordTTL).Truncate(time.Millisecond),
	}
	if rec.ClaimedAt.After(rec.Issued) {
		rec.ClaimedAt = rec.Issued
	}
	claim.ClaimedAt = rec.ClaimedAt
	raw, err := sealHandle(key, rec)
	if err != nil {
		return nil, fmt.Errorf("claim %q: %w", name, err)
	}

	// Publish, then confirm by reading back from the same peers.
	ctx, cancel := d.opCtx(parent)
	defer cancel()
	if lr.selfClosest {
		if err := d.storeLocal(ctx, dkey, raw); err != nil {
			d.log.Debug("local store refused own handle record", "err", err)
		}
	}
	stage(StageStore)
	d.putTo(ctx, lr.peers, dkey, raw)
	stage(StageConfirm)
	answers := d.readFrom(ctx, lr.peers, dkey)
	if lr.selfClosest {
		answers = append(answers, peerAnswer{id: d.host.ID(), value: d.localValue(ctx, dkey)})
	}
	t = d.tallyHandles(dkey, answers, d.cfg.Now(), 0)
	status, top := t.verdict()
	res := &ClaimResult{Name: norm, Conflicts: conflictsOf(t)}
	switch {
	case status == StatusOK && top.owner.Equal(me):
		res.Status, res.Owner, res.Claim, res.Record = ClaimClaimed, me, &claim, rec
		d.cache.remove(dkey) // the next Resolve reads the new record and its identity
	case status == StatusOK:
		res.Status, res.Owner = ClaimTaken, top.owner
	case status == StatusConflict:
		res.Status = ClaimConflict
	default:
		return nil, fmt.Errorf("claim %q: %w", name, ErrNotConfirmed)
	}
	return res, nil
}

func conflictsOf(t *handleTally) []OwnerCount {
	if len(t.owners) < 2 {
		return nil
	}
	return t.counts()
}

// PublishIdentity signs rec with key and publishes it at /csid/<account-id>.
// It sets rec's Account, Issued (now) and Expires (now + RecordTTL), and a
// Seq above both rec.Seq and any record of the account found on the
// network, then puts it to the K closest peers and reads it back. It
// returns the published record, or ErrNotConfirmed when fewer than 2/3 of
// the peers that answered the read-back hold it. ErrTooLarge when the record
// exceeds 16 KiB.
func (d *DHT) PublishIdentity(ctx context.Context, key *identity.AccountKey, rec *IdentityRecord) (*IdentityRecord, error) {
	if rec == nil {
		return nil, errors.New("publish identity: nil record")
	}
	me := key.Public()
	id := me.ID()
	dkey := identityKey(id)
	ctx, cancel := d.opCtx(ctx)
	defer cancel()

	lr, err := d.lookup(ctx, dkey, lookupOpts{})
	if err != nil {
		return nil, fmt.Errorf("publish identity: %w", err)
	}
	r := *rec
	r.Account = me
	if best, _ := d.bestIdentity(dkey, lr.answers); best != nil && best.Seq >= r.Seq {
		r.Seq = best.Seq
	}
	d.mu.Lock()
	if s := d.lastSeq[id]; s > r.Seq {
		r.Seq = s
	}
	r.Seq++
	d.lastSeq[id] = r.Seq
	d.mu.Unlock()
	now := d.cfg.Now()
	r.Issued = now.Truncate(time.Millisecond)
	r.Expires = now.Add(d.cfg.RecordTTL).Truncate(time.Millisecond)
	raw, err := sealIdentity(key, &r)
	if err != nil {
		return nil, fmt.Errorf("publish identity: %w", err)
	}
	if _, err := d.check.identity(dkey, raw, now, 0); err != nil {
		return nil, fmt.Errorf("publish identity: %w", err)
	}

	if lr.selfClosest {
		if err := d.storeLocal(ctx, dkey, raw); err != nil {
			d.log.Debug("local store refused own identity record", "err", err)
		}
	}
	d.putTo(ctx, lr.peers, dkey, raw)
	answers := d.readFrom(ctx, lr.peers, dkey)
	if lr.selfClosest {
		answers = append(answers, peerAnswer{id: d.host.ID(), value: d.localValue(ctx, dkey)})
	}
	holding := 0
	for _, a := range answers {
		if string(a.value) == string(raw) {
			holding++
		}
	}
	if holding == 0 || holding*3 < len(answers)*2 {
		return nil, fmt.Errorf("publish identity: %d of %d peers hold it: %w", holding, len(answers), ErrNotConfirmed)
	}
	out := r
	d.cacheResolution(dkey, &Resolution{Query: string(id), Status: StatusOK, Owner: me, Identity: &out, Answers: len(answers)})
	return &out, nil
}

// SetOwned hands the DHT the records it republishes every
// RepublishInterval: the account's identity record (re-signed with the next
// seq and fresh times) and its handle claims (likewise; no new proof of
// work). A nil key stops republishing. The node should publish once itself
// (PublishIdentity, ClaimHandle) and store the returned claims.
func (d *DHT) SetOwned(key *identity.AccountKey, rec *IdentityRecord, claims []HandleClaim) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ownKey, d.ownClaims = key, slices.Clone(claims)
	d.ownRec = nil
	if rec != nil {
		r := *rec
		d.ownRec = &r
	}
}

// OwnedClaims returns the handle claims as last republished (their Seq
// advances with every republish), for the node to store.
func (d *DHT) OwnedClaims() []HandleClaim {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.ownClaims)
}

// Keep makes this node republish a record signed by someone else (a public
// node keeping its members' records alive) along with its own, as long as
// the record stays valid. raw is the record as stored in the DHT under key
// ("/csid/..." or "/csname/..."); it is validated first.
func (d *DHT) Keep(key string, raw []byte) error {
	now := d.cfg.Now()
	_, errI := d.check.identity(key, raw, now, 0)
	_, errH := d.check.handle(key, raw, now, 0)
	if errI != nil && errH != nil {
		if len(key) > len(identityPrefix) && key[:len(identityPrefix)] == identityPrefix {
			return fmt.Errorf("keep: %w", errI)
		}
		return fmt.Errorf("keep: %w", errH)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.kept[key] = append([]byte(nil), raw...)
	return nil
}

func (d *DHT) republishLoop() {
	t := time.NewTicker(d.cfg.RepublishInterval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
			if err := d.Republish(d.ctx); err != nil {
				d.log.Info("republish incomplete", "err", err)
			}
			d.republishes.Add(1)
		}
	}
}

// Republish publishes the owned and kept records now; the republish loop
// calls it every RepublishInterval. It returns the errors of the records
// that could not be republished.
func (d *DHT) Republish(ctx context.Context) error {
	d.mu.Lock()
	key, rec, claims := d.ownKey, d.ownRec, slices.Clone(d.ownClaims)
	kept := make(map[string][]byte, len(d.kept))
	for k, v := range d.kept {
		kept[k] = v
	}
	d.mu.Unlock()

	var errs []error
	if key != nil && rec != nil {
		if _, err := d.PublishIdentity(ctx, key, rec); err != nil {
			errs = append(errs, err)
		}
	}
	if key != nil {
		for i := range claims {
			res, err := d.ClaimHandle(ctx, key, claims[i].Name, &claims[i])
			switch {
			case err != nil:
				errs = append(errs, err)
			case res.Status != ClaimClaimed:
				errs = append(errs, fmt.Errorf("republish %q: %s", claims[i].Name, res.Status))
			default:
				claims[i] = *res.Claim
			}
		}
		d.mu.Lock()
		if d.ownKey == key {
			d.ownClaims = claims
		}
		d.mu.Unlock()
	}
	now := d.cfg.Now()
	for k, raw := range kept {
		_, errI := d.check.identity(k, raw, now, 0)
		_, errH := d.check.handle(k, raw, now, 0)
		if errI != nil && errH != nil {
			d.mu.Lock()
			delete(d.kept, k)
			d.mu.Unlock()
			continue
		}
		if err := d.putRaw(ctx, k, raw); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// putRaw puts an already signed record to the K closest peers of key.
func (d *DHT) putRaw(ctx context.Context, key string, raw []byte) error {
	ctx, cancel := d.opCtx(ctx)
	defer cancel()
	lr, err := d.lookup(ctx, key, lookupOpts{})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if lr.selfClosest {
		_ = d.storeLocal(ctx, key, raw)
	}
	if d.putTo(ctx, lr.peers, key, raw) == 0 && len(lr.peers) > 0 {
		return fmt.Errorf("put %s: %w", key, ErrNotConfirmed)
	}
	return nil
}
