package dht

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

// Keeping a member's records while it is away (docs/ADDRESSBOOK.md, "Kept
// records"). The member signs, while it is online, a schedule of future
// records: for its identity record and each handle, one record every
// KeepStep from now, each valid MaxTTL (7 days, the validators' limit) and
// none past now + KeepHorizon, with increasing seq. It hands the schedule
// to its community nodes (a keep request, signed by its account key); a
// keeper stores it (in the DHT's datastore, on disk on a public node) and
// publishes each record when its window starts, and republishes the
// current one with its own records. The account key never leaves the
// member: a keeper can publish a record of the schedule or withhold it, and
// nothing else (storing nodes refuse a record before its issue time, and a
// keeper can't sign one).
const (
	// KeepHorizon is how long a schedule keeps a member's records valid
	// after the member signed it: a member away this long still resolves;
	// a day later (Grace) its names are free.
	KeepHorizon = 90 * 24 * time.Hour
	// KeepStep is the time between successive records of one key; each is
	// valid MaxTTL, so successive windows overlap by a day.
	KeepStep = 6 * 24 * time.Hour
	// KeepBackdate is how old a keep request (and its earliest record) may
	// be when it arrives: a schedule is handed as soon as it is signed.
	KeepBackdate = 10 * time.Minute

	// MaxKeepRequest caps an encoded keep request.
	MaxKeepRequest = 1 << 20
	// maxKeepRecords caps the records of one member's schedule: 17 keys
	// (the identity and up to 16 handles) of 16 records.
	maxKeepRecords = 17 * 16
	// maxKeepKeyLen caps a record key in a keep request.
	maxKeepKeyLen = 128
	// MaxKeepMembers caps the members whose schedules one keeper holds.
	MaxKeepMembers = 1000
	// keepTick is how often the keeper looks for records whose window
	// started (real time).
	keepTick = time.Minute

	keepNS    = "cskeep"
	keepLabel = "callsign/v1/keep-request"
)

// Keep errors; each wraps ErrKeepRefused.
var (
	ErrKeepRefused = errors.New("dht: keep request refused")
	// ErrBackdated: the request, or one of its records, was signed before
	// now - KeepBackdate.
	ErrBackdated = fmt.Errorf("%w: backdated", ErrKeepRefused)
	// ErrOutOfWindow: a record lies beyond now + KeepHorizon, or the
	// request is dated in the future.
	ErrOutOfWindow = fmt.Errorf("%w: out of window", ErrKeepRefused)
	// ErrKeepStale: the keeper holds a newer schedule of the member.
	ErrKeepStale = fmt.Errorf("%w: a newer schedule is kept", ErrKeepRefused)
	// ErrKeepFull: the keeper holds MaxKeepMembers schedules already.
	ErrKeepFull = fmt.Errorf("%w: keeper full", ErrKeepRefused)
)

// KeptRecord is one signed record of a schedule, as stored in the DHT
// under Key.
type KeptRecord struct {
	Key string
	Raw []byte
}

// KeepRequest is a member's schedule of pre-signed records, signed by its
// account key over the encoded payload.
type KeepRequest struct {
	Account identity.AccountPub
	Created time.Time
	Records []KeptRecord
}

// Wire format (protowire, strict like the records'):
//
//	Envelope     1 payload bytes   2 signature bytes (Ed25519 over keepLabel)
//	KeepPayload  1 account bytes (32)   2 created (unix ms)   3 records bytes* (1..maxKeepRecords)
//	KeptRecord   1 key string (<= 128)   2 value bytes (<= 16 KiB)

func (r *KeepRequest) payload() ([]byte, error) {
	created, err := toMillis(r.Created)
	if err != nil {
		return nil, err
	}
	var b wire.Encoder
	b.Bytes(1, r.Account.Bytes())
	b.Uint(2, created)
	for _, kr := range r.Records {
		var e wire.Encoder
		e.String(1, kr.Key)
		e.Bytes(2, kr.Raw)
		b.Bytes(3, e.B)
	}
	return b.B, nil
}

// SignKeepRequest encodes and signs a schedule with the member's key.
func SignKeepRequest(key *identity.AccountKey, r *KeepRequest) ([]byte, error) {
	rr := *r
	rr.Account = key.Public()
	p, err := rr.payload()
	if err != nil {
		return nil, err
	}
	env := (&wireEnvelope{Payload: p, Signature: key.Sign(keepLabel, p)}).marshal()
	if len(env) > MaxKeepRequest {
		return nil, fmt.Errorf("%w: keep request is %d bytes, limit %d", ErrTooLarge, len(env), MaxKeepRequest)
	}
	return env, nil
}

// OpenKeepRequest decodes a keep request and checks its signature; it does
// not validate the records (AcceptKeep does).
func OpenKeepRequest(b []byte) (*KeepRequest, error) {
	env, err := unmarshalEnvelope(b, MaxKeepRequest)
	if err != nil {
		return nil, err
	}
	d := newDecoder(env.Payload)
	var r KeepRequest
	if v := d.Bytes(1, 1, identity.AccountPubSize); v != nil {
		if r.Account, err = identity.ParseAccountPub(v); err != nil {
			d.Fail("field 1: %v", err)
		}
	}
	created := d.Uint(2, 1<<64-1)
	for d.More(3) && d.Err() == nil {
		if len(r.Records) == maxKeepRecords {
			d.Fail("field 3: more than %d entries", maxKeepRecords)
			break
		}
		v := d.Bytes(3, 1, MaxIdentityRecordSize+maxKeepKeyLen+16)
		if d.Err() != nil {
			break
		}
		kr, err := unmarshalKept(v)
		if err != nil {
			return nil, err
		}
		r.Records = append(r.Records, kr)
	}
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("keep request: %w", err)
	}
	if r.Account.IsZero() || created == 0 || len(r.Records) == 0 {
		return nil, malformed("keep request: missing account, created or records")
	}
	if r.Created, err = fromMillis(created); err != nil {
		return nil, err
	}
	if !r.Account.Verify(keepLabel, env.Payload, env.Signature) {
		return nil, ErrBadSignature
	}
	return &r, nil
}

func unmarshalKept(b []byte) (KeptRecord, error) {
	d := newDecoder(b)
	var kr KeptRecord
	if v := d.Bytes(1, 1, maxKeepKeyLen); v != nil {
		kr.Key = text(d, 1, v)
	}
	kr.Raw = d.Bytes(2, 1, MaxIdentityRecordSize)
	if err := d.End(); err != nil {
		return KeptRecord{}, fmt.Errorf("kept record: %w", err)
	}
	if kr.Key == "" || kr.Raw == nil {
		return KeptRecord{}, malformed("kept record: missing key or value")
	}
	return kr, nil
}

// keptEntry is one record of a schedule, without its bytes.
type keptEntry struct {
	key             string
	seq             uint64
	issued, expires time.Time
}

// keepSchedule is what a keeper holds in memory for one member; the signed
// request itself is in the datastore.
type keepSchedule struct {
	created time.Time
	entries []keptEntry // by key, then issued
	current map[string]uint64
}

func keepDsKey(id identity.AccountID) ds.Key { return ds.NewKey("/" + keepNS + "/" + string(id)) }

// Presign builds and signs the schedule of the records the DHT republishes
// for its owner (SetOwned): for the identity record and every handle claim,
// a record every KeepStep from now until now + KeepHorizon, with seqs above
// every one published so far; the owner's own next publications go above
// those. It returns the encoded KeepRequest to hand to keepers (nil when
// nothing is owned).
func (d *DHT) Presign() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := d.ownKey
	if key == nil || d.cfg.NoKeep {
		return nil, nil
	}
	now := d.cfg.Now().Truncate(time.Millisecond)
	end := now.Add(KeepHorizon)
	windows := func(f func(issued, expires time.Time) error) error {
		for t := now; t.Before(end); t = t.Add(KeepStep) {
			exp := t.Add(MaxTTL)
			if exp.After(end) {
				exp = end
			}
			if err := f(t, exp); err != nil {
				return err
			}
		}
		return nil
	}
	req := &KeepRequest{Account: key.Public(), Created: now}
	id := key.Public().ID()
	if d.ownRec != nil {
		seq := d.lastSeq[id]
		err := windows(func(issued, expires time.Time) error {
			r := *d.ownRec
			r.Account = key.Public()
			seq++
			r.Seq, r.Issued, r.Expires = seq, issued, expires
			raw, err := sealIdentity(key, &r)
			if err == nil {
				req.Records = append(req.Records, KeptRecord{Key: identityKey(id), Raw: raw})
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("presign: %w", err)
		}
		d.lastSeq[id] = seq
	}
	for i := range d.ownClaims {
		c := &d.ownClaims[i]
		if c.ClaimedAt.IsZero() {
			continue // not claimed yet: nothing to keep
		}
		_, dkey, _, err := parseName(c.Name)
		if err != nil {
			continue
		}
		seq := c.Seq
		err = windows(func(issued, expires time.Time) error {
			seq++
			claimed := c.ClaimedAt.Truncate(time.Millisecond)
			if claimed.After(issued) {
				claimed = issued
			}
			r := &HandleRecord{Name: c.Name, Owner: key.Public(), Seq: seq, Nonce: c.Nonce,
				ClaimedAt: claimed, Issued: issued, Expires: expires}
			raw, err := sealHandle(key, r)
			if err == nil {
				req.Records = append(req.Records, KeptRecord{Key: dkey, Raw: raw})
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("presign %q: %w", c.Name, err)
		}
		c.Seq = seq
	}
	if len(req.Records) == 0 {
		return nil, nil
	}
	return SignKeepRequest(key, req)
}

// AcceptKeep is the keeper's side: it checks a member's keep request (the
// signature, every record as of its own issue time: signature, key, proof
// of work, validity; the account's records only; dates within [now -
// KeepBackdate, now + KeepHorizon]; caps), stores it, replacing an older
// schedule of the member, and publishes the records whose window has
// started. Who may hand a schedule (members only) is the caller's
// decision. It returns how many records it keeps.
func (d *DHT) AcceptKeep(ctx context.Context, raw []byte) (int, error) {
	req, err := OpenKeepRequest(raw)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrKeepRefused, err)
	}
	now := d.cfg.Now()
	switch {
	case req.Created.Before(now.Add(-KeepBackdate)):
		return 0, fmt.Errorf("%w: signed %v ago", ErrBackdated, now.Sub(req.Created).Round(time.Second))
	case req.Created.After(now.Add(ClockSkew)):
		return 0, fmt.Errorf("%w: signed in the future", ErrOutOfWindow)
	}
	s, err := d.checkSchedule(req, now)
	if err != nil {
		return 0, err
	}
	id := req.Account.ID()
	d.mu.Lock()
	old := d.keeping[id]
	switch {
	case old != nil && !req.Created.After(old.created):
		d.mu.Unlock()
		return 0, ErrKeepStale
	case old == nil && len(d.keeping) >= MaxKeepMembers:
		d.mu.Unlock()
		return 0, ErrKeepFull
	}
	d.mu.Unlock()
	if err := d.store.Put(ctx, keepDsKey(id), raw); err != nil {
		return 0, fmt.Errorf("keep: store: %w", err)
	}
	d.mu.Lock()
	if cur := d.keeping[id]; cur != nil && !req.Created.After(cur.created) {
		d.mu.Unlock()
		return 0, ErrKeepStale // a newer one was stored meanwhile
	}
	if old != nil {
		s.current = nil // publish the new schedule's current records
		for k := range d.keptBy(id, old) {
			delete(d.kept, k)
		}
	}
	d.keeping[id] = s
	d.mu.Unlock()
	// Publishing the current records takes a lookup per key: the keep loop
	// does it, so the member's request is answered once the schedule is
	// stored.
	select {
	case d.keepKick <- struct{}{}:
	default:
	}
	return len(s.entries), nil
}

// keptBy lists the keys a schedule covers.
func (d *DHT) keptBy(_ identity.AccountID, s *keepSchedule) map[string]struct{} {
	out := map[string]struct{}{}
	for _, e := range s.entries {
		out[e.key] = struct{}{}
	}
	return out
}

// checkSchedule validates every record of req.
func (d *DHT) checkSchedule(req *KeepRequest, now time.Time) (*keepSchedule, error) {
	id := req.Account.ID()
	s := &keepSchedule{created: req.Created}
	for i, kr := range req.Records {
		var issued, expires time.Time
		var seq uint64
		switch {
		case strings.HasPrefix(kr.Key, identityPrefix):
			if kr.Key != identityKey(id) {
				return nil, fmt.Errorf("%w: record %d: %w", ErrKeepRefused, i, ErrWrongKey)
			}
			r, err := openIdentity(kr.Raw)
			if err != nil {
				return nil, fmt.Errorf("%w: record %d: %w", ErrKeepRefused, i, err)
			}
			if _, err := d.check.identity(kr.Key, kr.Raw, r.Issued, 0); err != nil {
				return nil, fmt.Errorf("%w: record %d: %w", ErrKeepRefused, i, err)
			}
			issued, expires, seq = r.Issued, r.Expires, r.Seq
		case strings.HasPrefix(kr.Key, handlePrefix):
			r, err := openHandle(kr.Raw)
			if err != nil {
				return nil, fmt.Errorf("%w: record %d: %w", ErrKeepRefused, i, err)
			}
			if !r.Owner.Equal(req.Account) {
				return nil, fmt.Errorf("%w: record %d: another account's handle", ErrKeepRefused, i)
			}
			if _, err := d.check.handle(kr.Key, kr.Raw, r.Issued, 0); err != nil {
				return nil, fmt.Errorf("%w: record %d: %w", ErrKeepRefused, i, err)
			}
			issued, expires, seq = r.Issued, r.Expires, r.Seq
		default:
			return nil, fmt.Errorf("%w: record %d: %w", ErrKeepRefused, i, ErrWrongKey)
		}
		switch {
		case issued.Before(now.Add(-KeepBackdate)):
			return nil, fmt.Errorf("%w: record %d issued %v ago", ErrBackdated, i, now.Sub(issued).Round(time.Second))
		case expires.After(now.Add(KeepHorizon + ClockSkew)):
			return nil, fmt.Errorf("%w: record %d valid until %v, beyond %v", ErrOutOfWindow, i, expires, KeepHorizon)
		}
		s.entries = append(s.entries, keptEntry{key: kr.Key, seq: seq, issued: issued, expires: expires})
	}
	sortEntries(s.entries)
	for i := 1; i < len(s.entries); i++ {
		a, b := s.entries[i-1], s.entries[i]
		if a.key == b.key && b.seq <= a.seq {
			return nil, fmt.Errorf("%w: %s: seq %d issued after seq %d", ErrKeepRefused, b.key, b.seq, a.seq)
		}
	}
	return s, nil
}

func sortEntries(es []keptEntry) {
	slices.SortFunc(es, func(a, b keptEntry) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return a.issued.Compare(b.issued)
	})
}

// loadKept reads the schedules in the datastore (after a restart). The
// records were checked when they arrived; only the request's signature is
// checked again (proofs of work for a thousand members would hold up the
// start; storing nodes check every record anyway).
func (d *DHT) loadKept(ctx context.Context) {
	res, err := d.store.Query(ctx, dsq.Query{Prefix: "/" + keepNS})
	if err != nil {
		d.log.Warn("reading kept schedules", "err", err)
		return
	}
	entries, err := res.Rest()
	if err != nil {
		d.log.Warn("reading kept schedules", "err", err)
		return
	}
	for _, e := range entries {
		req, err := OpenKeepRequest(e.Value)
		if err != nil || keepDsKey(req.Account.ID()).String() != e.Key {
			d.log.Warn("dropping an unreadable kept schedule", "key", e.Key, "err", err)
			_ = d.store.Delete(ctx, ds.NewKey(e.Key))
			continue
		}
		s := &keepSchedule{created: req.Created}
		for _, kr := range req.Records {
			ke, err := peekRecord(kr.Raw)
			if err != nil {
				continue
			}
			ke.key = kr.Key
			s.entries = append(s.entries, ke)
		}
		sortEntries(s.entries)
		d.mu.Lock()
		if len(d.keeping) < MaxKeepMembers {
			d.keeping[req.Account.ID()] = s
		}
		d.mu.Unlock()
	}
}

// keepLoop publishes records whose window started, every keepTick and
// whenever a schedule arrives.
func (d *DHT) keepLoop() {
	d.keepPass(d.ctx, "") // after a restart: publish the current records at once
	t := time.NewTicker(keepTick)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
			d.keepPass(d.ctx, "")
		case <-d.keepKick:
			d.keepPass(d.ctx, "")
		}
	}
}

// keepPass brings the kept records up to date as of now: for each key of
// each schedule (only account's when not empty) the current record is the
// latest issued one whose window has started and not ended; a new current
// record replaces the kept one and is published at once. A schedule whose
// records have all expired is dropped.
func (d *DHT) keepPass(ctx context.Context, only identity.AccountID) {
	now := d.cfg.Now()
	type due struct {
		id  identity.AccountID
		key string
		seq uint64
	}
	var todo []due
	var gone []identity.AccountID
	d.mu.Lock()
	for id, s := range d.keeping {
		if only != "" && id != only {
			continue
		}
		if s.current == nil {
			s.current = map[string]uint64{}
		}
		live := false
		cur := map[string]keptEntry{}
		for _, e := range s.entries {
			if now.Before(e.expires) {
				live = true
			}
			if !e.issued.After(now.Add(ClockSkew)) && now.Before(e.expires) {
				cur[e.key] = e // entries are sorted by issued: the latest wins
			}
		}
		if !live {
			gone = append(gone, id)
			for k := range d.keptBy(id, s) {
				delete(d.kept, k)
			}
			continue
		}
		for k, e := range cur {
			if s.current[k] != e.seq {
				todo = append(todo, due{id, k, e.seq})
			}
		}
	}
	for _, id := range gone {
		delete(d.keeping, id)
	}
	d.mu.Unlock()
	for _, id := range gone {
		_ = d.store.Delete(ctx, keepDsKey(id))
		d.log.Info("kept schedule ended", "account", id)
	}
	if len(todo) == 0 {
		return
	}
	reqs := map[identity.AccountID]*KeepRequest{}
	for _, t := range todo {
		req := reqs[t.id]
		if req == nil {
			raw, err := d.store.Get(ctx, keepDsKey(t.id))
			if err != nil {
				continue
			}
			if req, err = OpenKeepRequest(raw); err != nil {
				continue
			}
			reqs[t.id] = req
		}
		var rec []byte
		for _, kr := range req.Records {
			if kr.Key == t.key && recordSeq(kr.Raw) == t.seq {
				rec = kr.Raw
			}
		}
		if rec == nil {
			continue
		}
		d.mu.Lock()
		s := d.keeping[t.id]
		if s == nil || s.created != req.Created {
			d.mu.Unlock()
			continue // replaced meanwhile
		}
		s.current[t.key] = t.seq
		d.kept[t.key] = rec
		d.mu.Unlock()
		if err := d.putRaw(ctx, t.key, rec); err != nil {
			d.log.Info("publishing a kept record", "key", t.key, "err", err)
		}
	}
}

// recordSeq is the seq of a record (0 when it does not decode).
func recordSeq(raw []byte) uint64 {
	e, err := peekRecord(raw)
	if err != nil {
		return 0
	}
	return e.seq
}

// peekRecord decodes a record's seq and dates without checking its
// signature: for schedules read back from our own store, checked when they
// arrived (the request's signature, checked again, covers them).
func peekRecord(raw []byte) (keptEntry, error) {
	env, err := unmarshalEnvelope(raw, MaxIdentityRecordSize)
	if err != nil {
		return keptEntry{}, err
	}
	k, err := payloadKind(env.Payload)
	if err != nil {
		return keptEntry{}, err
	}
	switch k {
	case kindIdentity, kindIdentityV2:
		w, err := unmarshalIdentity(env.Payload)
		if err != nil {
			return keptEntry{}, err
		}
		r, err := w.fromWire()
		if err != nil {
			return keptEntry{}, err
		}
		return keptEntry{seq: r.Seq, issued: r.Issued, expires: r.Expires}, nil
	case kindHandle:
		w, err := unmarshalHandle(env.Payload)
		if err != nil {
			return keptEntry{}, err
		}
		r, err := w.fromWire()
		if err != nil {
			return keptEntry{}, err
		}
		return keptEntry{seq: r.Seq, issued: r.Issued, expires: r.Expires}, nil
	}
	return keptEntry{}, malformed("unknown record kind %d", k)
}

// KeptMembers returns how many members' schedules this node keeps.
func (d *DHT) KeptMembers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keeping)
}

// SetHandoff sets where the owner's schedules go: after every Republish of
// the owned records (the loop's, and the one on regaining peers) and every
// HandOff, a fresh schedule is presigned, with seqs above those just
// published, and passed to fn, which hands it to the keepers. A schedule
// handed before a republish is outdated by it (its seqs are lower, so
// storing nodes refuse its records), hence a new one after each.
func (d *DHT) SetHandoff(fn func(ctx context.Context, req []byte)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.handoff = fn
}

// HandOff presigns a schedule of the owned records and passes it to the
// handoff function, if both are set.
func (d *DHT) HandOff(ctx context.Context) error {
	d.mu.Lock()
	fn := d.handoff
	d.mu.Unlock()
	if fn == nil {
		return nil
	}
	raw, err := d.Presign()
	if err != nil || raw == nil {
		return err
	}
	fn(ctx, raw)
	return nil
}
