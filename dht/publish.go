package dht

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	// peers shows it and no other owner's.
	ClaimClaimed ClaimStatus = "claimed"
	// ClaimTaken: another owner holds the name (unexpired or within grace):
	// for a new claim nothing was put; for a claim we hold, every peer
	// refused our record and the read-back shows only the other owner.
	ClaimTaken ClaimStatus = "taken"
	// ClaimConflict: the closest peers hold records of several owners. A
	// new claim puts nothing; a claim we hold was put anyway (Claim is set)
	// and is kept: some peers hold another owner's record as well as ours.
	ClaimConflict ClaimStatus = "conflict"
)

// ClaimResult is the answer to ClaimHandle.
type ClaimResult struct {
	Status ClaimStatus
	Name   string // normalised
	// Owner is the holder of the name: the caller when claimed, the other
	// owner when taken.
	Owner identity.AccountPub
	// Claim is what to store to republish (set when claimed, and on a
	// conflict over a claim we hold).
	Claim *HandleClaim
	// Record is the record that was published (set with Claim).
	Record *HandleRecord
	// Conflicts lists the owners seen when more than one was.
	Conflicts []OwnerCount
}

// ClaimHandle claims name (a handle as typed, or the caller's own
// self-certifying handle) for key's account, or refreshes the claim when
// prev (or a record of ours found on the network) says we hold it already.
//
// It looks the name up first. A new claim stops there when any other
// owner's record, unexpired or within the grace period, is found: ClaimTaken
// (ClaimConflict when several owners are), nothing put. A claim we hold is
// never given up because another owner's record is seen: it is re-signed
// with the next seq and put to the current K closest peers whatever the
// lookup found, so that it reaches peers that became closest since. A new
// claim solves the proof of work first. Then the record is read back: the
// result is ClaimClaimed when the closest peers show ours and no other
// owner's, ClaimConflict when they show both, ClaimTaken when only another
// owner's. Errors: ErrInvalidHandle, ErrNoPeers, ErrNotConfirmed (nobody
// kept the record), deadlines.
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
	t := d.tallyHandles(dkey, lr.all(), d.cfg.Now(), d.cfg.Grace)
	_, ours := t.countOf(me)
	havePrev := prev != nil && prev.Name == norm && !prev.ClaimedAt.IsZero()
	held := ours != nil || havePrev
	if others := othersOf(t, me); len(others) > 0 {
		if !held {
			if len(others) == 1 {
				return &ClaimResult{Status: ClaimTaken, Name: norm, Owner: others[0].owner, Conflicts: conflictsOf(t)}, nil
			}
			return &ClaimResult{Status: ClaimConflict, Name: norm, Conflicts: conflictsOf(t)}, nil
		}
		d.log.Debug("another owner's record seen for a handle we hold; putting ours", "name", norm, "owners", len(t.owners))
	}

	// Build the claim: from prev, else from our own record on the network,
	// else a new claim with a fresh proof of work.
	var claim HandleClaim
	switch {
	case havePrev:
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
		if err := d.storeLocal(ctx, dkey, raw, true); err != nil {
			d.log.Debug("local store refused own handle record", "err", err)
		}
	}
	stage(StageStore)
	// Peers that failed the put (a storing node's network check that did
	// not finish, a busy one) get a second try; a refusal of a guard that
	// holds another owner's record comes back at once.
	failed := d.putEach(ctx, lr.peers, dkey, raw)
	if len(failed) > 0 && ctx.Err() == nil {
		failed = d.putEach(ctx, failed, dkey, raw)
	}
	d.setPublished(dkey, raw)
	stage(StageConfirm)
	// A peer that answered our PUT_VALUE stored the record: its guard and
	// its validator let it through, or the stream would have been reset
	// (and a peer that lies about it could lie in a read-back as well). So
	// the record is read back only from the peers that refused it or did
	// not answer, to learn what they hold instead: one round trip less for
	// a claim every peer took.
	answers := d.readFrom(ctx, failed, dkey)
	for _, p := range lr.peers {
		if !slices.Contains(failed, p) {
			answers = append(answers, peerAnswer{id: p, value: raw})
		}
	}
	if lr.selfClosest {
		answers = append(answers, peerAnswer{id: d.host.ID(), value: d.localValue(ctx, dkey)})
	}
	// Peers that answered the lookup from farther away got nothing from
	// us, but another owner's record there is still another owner's.
	t = d.tallyHandles(dkey, append(answers, lr.farther...), d.cfg.Now(), 0)
	mine, _ := t.countOf(me)
	others := othersOf(t, me)
	res := &ClaimResult{Name: norm, Conflicts: conflictsOf(t)}
	switch {
	case mine > 0 && len(others) == 0:
		res.Status, res.Owner, res.Claim, res.Record = ClaimClaimed, me, &claim, rec
	case mine > 0:
		res.Status = ClaimConflict
		if held {
			res.Claim, res.Record = &claim, rec
		}
	case len(others) == 1:
		res.Status, res.Owner = ClaimTaken, others[0].owner
	case len(others) > 1:
		res.Status = ClaimConflict
	default:
		return nil, fmt.Errorf("claim %q: %w", name, ErrNotConfirmed)
	}
	d.cache.remove(dkey) // the next Resolve reads the new record and its identity
	return res, nil
}

func conflictsOf(t *handleTally) []OwnerCount {
	if len(t.owners) < 2 {
		return nil
	}
	return t.counts()
}

// othersOf returns the owners in t other than me, most records first.
func othersOf(t *handleTally, me identity.AccountPub) []*ownerTally {
	var out []*ownerTally
	for _, o := range t.owners {
		if !o.owner.Equal(me) {
			out = append(out, o)
		}
	}
	return out
}

// PublishIdentity signs rec with key and publishes it at /csid/<account-id>.
// It sets rec's Account, Issued (now) and Expires (now + RecordTTL), and a
// Seq above both rec.Seq and any record of the account found on the
// network, then puts it to the K closest peers and reads it back. The
// devices of the account's record on the network that rec lacks are kept
// (mergeDevices): another device of the account published them. It
// returns the published record, or ErrNotConfirmed when fewer than 2/3 of
// the peers that answered the read-back hold it. ErrTooLarge when the record
// exceeds 16 KiB.
func (d *DHT) PublishIdentity(ctx context.Context, key *identity.AccountKey, rec *IdentityRecord) (*IdentityRecord, error) {
	return d.publishIdentity(ctx, key, rec, false)
}

// PublishIdentityReplacing is PublishIdentity for a device that takes the
// place of the account's others (restored from a backup): every device of
// the account's record on the network that rec does not list is listed as
// revoked instead of kept.
func (d *DHT) PublishIdentityReplacing(ctx context.Context, key *identity.AccountKey, rec *IdentityRecord) (*IdentityRecord, error) {
	return d.publishIdentity(ctx, key, rec, true)
}

func (d *DHT) publishIdentity(ctx context.Context, key *identity.AccountKey, rec *IdentityRecord, replace bool) (*IdentityRecord, error) {
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
	now := d.cfg.Now()
	// Every valid record of the account the lookup found, and the one
	// this node published last, newest first: a busy network may answer
	// with an older record than the newest, and merging only the best one
	// would drop a device another device added (docs/DEVICES.md §0.4).
	var found []*IdentityRecord
	d.mu.Lock()
	last := d.published[dkey]
	d.mu.Unlock()
	for _, raw := range append([][]byte{last}, answerValues(lr.answers)...) {
		if raw == nil {
			continue
		}
		if rec, err := d.check.identity(dkey, raw, now, 0); err == nil {
			found = append(found, rec)
		}
	}
	slices.SortStableFunc(found, func(a, b *IdentityRecord) int { return cmp.Compare(b.Seq, a.Seq) })
	if len(found) > 0 {
		best := found[0]
		if best.Seq >= r.Seq {
			r.Seq = best.Seq
		}
		// A revocation in any of them holds, before any is merged: an
		// older record may still list a device a newer one revoked.
		for _, f := range found {
			r.Revoke(f.Revoked...)
			if replace {
				r.revokeOthers(f)
			}
		}
		for _, f := range found {
			if err := mergeDevices(key, &r, f, now); err != nil {
				return nil, fmt.Errorf("publish identity: %w", err)
			}
		}
	}
	d.mu.Lock()
	if s := d.lastSeq[id]; s > r.Seq {
		r.Seq = s
	}
	r.Seq++
	d.lastSeq[id] = r.Seq
	d.mu.Unlock()
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
		if err := d.storeLocal(ctx, dkey, raw, true); err != nil {
			d.log.Debug("local store refused own identity record", "err", err)
		}
	}
	d.putTo(ctx, lr.peers, dkey, raw)
	d.setPublished(dkey, raw)
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
	// What the republisher and the keep schedule (Presign) sign from now
	// on is the record as merged: a schedule of this device's entry alone
	// would, once a keeper published it, drop its siblings.
	d.mu.Lock()
	if d.ownKey != nil && d.ownKey.Public().Equal(me) && d.ownRec != nil {
		merged := out
		d.ownRec = &merged
	}
	d.mu.Unlock()
	return &out, nil
}

// siblingCertRenew is how close to its expiry a sibling's certificate is
// issued again by a device publishing the account's record, and
// siblingCertTTL how long the new one lasts: a device that stays offline
// never makes the record invalid (docs/DEVICES.md §0.4).
const (
	siblingCertRenew = 30 * 24 * time.Hour
	siblingCertTTL   = 365 * 24 * time.Hour
)

// mergeDevices adds to r, the record this device is about to publish, the
// devices of best, the account's record on the network, that r lacks and
// neither record lists as revoked: the devices another device of the
// account linked (docs/DEVICES.md §0.4). r's own entries win over best's
// for the same device. Revoked ids are the union of both records'. The
// result is kind 3, in DeviceID order, when it lists more than one device
// or best is kind 3 (an account that had a second device stays kind 3, so
// its tombstones are kept); a kind-1 r's Prekeys become its device's
// bundle. A sibling's certificate that expires within siblingCertRenew is
// issued again with key. More than maxDevices devices or maxRevoked
// revoked ids is an error, ErrTooLarge.
func mergeDevices(key *identity.AccountKey, r, best *IdentityRecord, now time.Time) error {
	revoked := slices.Clone(r.Revoked)
	for _, id := range best.Revoked {
		if !slices.Contains(revoked, id) {
			revoked = append(revoked, id)
		}
	}
	mine := r.deviceIDs()
	out := *r
	out.Devices, out.Bundles = slices.Clone(r.Devices), slices.Clone(r.Bundles)
	added := 0
	for i, c := range best.Devices {
		id := c.DeviceID()
		b := best.Bundle(i)
		if slices.Contains(mine, id) || slices.Contains(revoked, id) || b == nil {
			continue
		}
		if c.Expires.Sub(now) < siblingCertRenew {
			nc, err := identity.IssueDeviceCert(key, c.PeerID, c.X25519, now, now.Add(siblingCertTTL))
			if err != nil {
				return err
			}
			c = nc
		}
		out.AddDevice(c, b)
		added++
	}
	if added == 0 && !best.MultiDevice() && !r.MultiDevice() {
		return nil // an account on one device: r stays kind 1
	}
	if len(out.Devices) > maxDevices {
		return fmt.Errorf("%w: the account lists %d devices, at most %d fit: revoke one", ErrTooLarge, len(out.Devices), maxDevices)
	}
	if len(revoked) > maxRevoked {
		return fmt.Errorf("%w: the account revoked %d devices, at most %d are listed", ErrTooLarge, len(revoked), maxRevoked)
	}
	if !out.MultiDevice() {
		out.AddDevice(out.Devices[0], out.Bundle(0)) // kind 3 with its one device
	}
	slices.SortFunc(revoked, func(a, b identity.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	out.Revoked = revoked
	*r = out
	return nil
}

// answerValues are the values of answers.
func answerValues(answers []peerAnswer) [][]byte {
	out := make([][]byte, 0, len(answers))
	for _, a := range answers {
		out = append(out, a.value)
	}
	return out
}

// revokeOthers lists as revoked in r every device of best that r does not
// list, and makes r kind 3 if it revoked any.
func (r *IdentityRecord) revokeOthers(best *IdentityRecord) {
	mine := r.deviceIDs()
	r.Revoke(slices.DeleteFunc(best.deviceIDs(), func(id identity.DeviceID) bool { return slices.Contains(mine, id) })...)
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

// Republish publishes the owned and kept records now, to the peers that are
// the K closest now; the republish loop calls it every RepublishInterval.
// A handle claim stays owned whatever the network shows: a conflict (other
// owners' records beside ours) is logged and the claim republished; a claim
// every peer refused is logged and tried again next time. It returns the
// errors of the records that could not be republished, ClaimTaken among
// them.
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
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if res.Claim != nil {
				claims[i] = *res.Claim
			}
			switch res.Status {
			case ClaimConflict:
				d.log.Warn("another owner's record is held beside ours; keeping the claim",
					"name", claims[i].Name, "owners", ownersAttr(res.Conflicts))
			case ClaimTaken:
				d.log.Warn("every peer refused our record for a handle we hold; will try again",
					"name", claims[i].Name, "owner", res.Owner.ID())
				errs = append(errs, fmt.Errorf("republish %q: %s by %s", claims[i].Name, res.Status, res.Owner.ID()))
			}
		}
		// SetOwned may have run meanwhile (a new claim): update the claims
		// still owned, by name, and never to a lower seq.
		d.mu.Lock()
		if d.ownKey == key {
			for i := range d.ownClaims {
				for _, c := range claims {
					if c.Name == d.ownClaims[i].Name && c.Seq > d.ownClaims[i].Seq {
						d.ownClaims[i] = c
					}
				}
			}
		}
		d.mu.Unlock()
		// The keepers' schedules are older than what was just published:
		// hand them a new one.
		if err := d.HandOff(ctx); err != nil {
			errs = append(errs, err)
		}
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
		_ = d.storeLocal(ctx, key, raw, false)
	}
	if d.putTo(ctx, lr.peers, key, raw) == 0 && len(lr.peers) > 0 {
		return fmt.Errorf("put %s: %w", key, ErrNotConfirmed)
	}
	return nil
}

// ownersAttr renders owner counts for a log line: "csa1...=12 csa1...=8".
func ownersAttr(cs []OwnerCount) string {
	var b strings.Builder
	for i, c := range cs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", c.Owner.ID(), c.Count)
	}
	return b.String()
}
