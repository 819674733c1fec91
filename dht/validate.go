package dht

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/callsign/callsign/identity"
	record "github.com/libp2p/go-libp2p-record"
)

// Errors. Validation errors wrap ErrInvalidRecord and, where it applies, one
// of the more precise sentinels below it.
var (
	// ErrInvalidHandle wraps identity.ErrInvalidHandle for names that do not
	// normalise.
	ErrInvalidHandle = fmt.Errorf("dht: %w", identity.ErrInvalidHandle)
	// ErrNotFound: no valid record exists for the name or account.
	ErrNotFound = errors.New("dht: not found")
	// ErrInvalidRecord is wrapped by every validation failure.
	ErrInvalidRecord = errors.New("dht: invalid record")
	ErrBadSignature  = fmt.Errorf("%w: bad signature", ErrInvalidRecord)
	ErrExpired       = fmt.Errorf("%w: expired", ErrInvalidRecord)
	ErrFutureDated   = fmt.Errorf("%w: issued in the future", ErrInvalidRecord)
	ErrWrongKey      = fmt.Errorf("%w: stored under another key", ErrInvalidRecord)
	ErrBadPoW        = fmt.Errorf("%w: proof of work does not verify", ErrInvalidRecord)
	// ErrTooLarge: a record exceeds its size limit.
	ErrTooLarge = errors.New("dht: record too large")
	// ErrIncumbent is returned by a storing node's guard when a name is held
	// by another owner whose record is unexpired or within the grace period.
	ErrIncumbent = errors.New("dht: name held by another owner")
	// ErrStaleSeq is returned by the guard for a record older than the stored
	// one of the same owner.
	ErrStaleSeq = errors.New("dht: sequence number older than stored record")
	// ErrBusy is returned by a storing node's guard when it is already
	// checking as many first records with the network as it will at once.
	ErrBusy = errors.New("dht: storing node busy checking other records")
	// ErrNotConfirmed: a publish went out but reading it back did not show it.
	ErrNotConfirmed = errors.New("dht: publish not confirmed by read-back")
	// ErrNoPeers: the routing table is empty, so nothing can be looked up.
	ErrNoPeers = errors.New("dht: no peers to query")
	// ErrClosed: the DHT has been closed.
	ErrClosed = errors.New("dht: closed")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidRecord}, args...)...)
}

// Validation constants shared by every node of the network; nodes that
// disagree on them disagree on which records are valid.
const (
	// MaxTTL is the longest a record may be valid after it was issued.
	MaxTTL = 7 * 24 * time.Hour
	// ClockSkew is how far in the future a record's issue time may lie.
	ClockSkew = 2 * time.Minute
	// powCacheSize bounds the cache of verified proofs of work.
	powCacheSize = 4096
	// openedCacheSize bounds the cache of opened records (see
	// checker.opened): at most 16 MiB of records at their largest, a few
	// MiB at their usual size.
	openedCacheSize = 1024
)

type powKey struct {
	name, owner string
	nonce       uint64
}

// checker holds the rules every record must pass. Its methods are safe for
// concurrent use.
type checker struct {
	now   func() time.Time
	pow   identity.PoWParams
	powOK *lru[powKey, struct{}]
	// opened remembers records already decoded with their signatures
	// checked (a *HandleRecord or *IdentityRecord), by the SHA-256 of
	// their bytes. A node sees the same bytes many times: each of the K
	// answers to a lookup carries the record, and a storing node opens
	// the incoming and the stored record to validate them and again to
	// select between them. Opening costs two or three curve point checks
	// and an Ed25519 verification (about 0.2 ms); the rules that depend
	// on the time still run on every call.
	opened *lru[[sha256.Size]byte, any]
}

func newChecker(now func() time.Time, pow identity.PoWParams) *checker {
	return &checker{now: now, pow: pow, powOK: newLRU[powKey, struct{}](powCacheSize),
		opened: newLRU[[sha256.Size]byte, any](openedCacheSize)}
}

// openHandle is openHandle, remembered. The record returned is the
// caller's copy, but for its slices, which it shares and must not change.
func (c *checker) openHandle(b []byte) (*HandleRecord, error) {
	return openMemo(c, b, openHandle)
}

// openIdentity is openIdentity, remembered, with openHandle's terms.
func (c *checker) openIdentity(b []byte) (*IdentityRecord, error) {
	return openMemo(c, b, openIdentity)
}

// openMemo opens b with open, or copies the record that opening the same
// bytes gave before.

func openMemo[R any](c *checker, b []byte, open func([]byte) (*R, error)) (*R, error) {
	h := sha256.Sum256(b)
	if v, ok := c.opened.get(h, time.Time{}); ok {
		if r, ok := v.(*R); ok {
			cp := *r
			return &cp, nil
		}
	}
	r, err := open(b)
	if err != nil {
		return nil, err // not remembered: bytes that fail cost the sender as much to send
	}
	cp := *r
	c.opened.put(h, &cp, time.Time{})
	return r, nil
}

// checkTimes enforces the rules common to both kinds. A record whose expiry
// lies less than grace in the past still passes.
func checkTimes(issued, expires, now time.Time, grace time.Duration) error {
	switch {
	case !expires.After(issued):
		return invalid("expires %v not after issued %v", expires, issued)
	case expires.Sub(issued) > MaxTTL:
		return invalid("valid for %v, limit %v", expires.Sub(issued), MaxTTL)
	case issued.After(now.Add(ClockSkew)):
		return ErrFutureDated
	case !now.Before(expires.Add(grace)):
		return ErrExpired
	}
	return nil
}

// identity validates an identity record stored under key at time now.
func (c *checker) identity(key string, value []byte, now time.Time, grace time.Duration) (*IdentityRecord, error) {
	id, ok := strings.CutPrefix(key, identityPrefix)
	if !ok {
		return nil, ErrWrongKey
	}
	aid, err := identity.ParseAccountID(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWrongKey, err)
	}
	r, err := c.openIdentity(value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	if !aid.Matches(r.Account) {
		return nil, ErrWrongKey
	}
	if err := checkTimes(r.Issued, r.Expires, now, grace); err != nil {
		return nil, err
	}
	if len(r.Devices) == 0 {
		return nil, invalid("no device")
	}
	for i, d := range r.Devices {
		if !d.Account.Equal(r.Account) {
			return nil, invalid("device %d certified by another account", i)
		}
		if err := d.Verify(now); err != nil {
			return nil, invalid("device %d: %v", i, err)
		}
	}
	if err := r.checkDevices(); err != nil {
		return nil, invalid("%v", err)
	}
	for _, ch := range r.DisplayName {
		if unicode.IsControl(ch) {
			return nil, invalid("control character in display name")
		}
	}
	seen := make(map[string]bool, len(r.Handles))
	for _, h := range r.Handles {
		norm, _, selfCert, err := parseName(h)
		if err != nil || norm != h {
			return nil, invalid("handle %q not normalised", h)
		}
		if selfCert && !identity.VerifySelfCert(h, r.Account) {
			return nil, invalid("self-certifying handle %q of another key", h)
		}
		if seen[h] {
			return nil, invalid("handle %q listed twice", h)
		}
		seen[h] = true
	}
	return r, nil
}

// handle validates a handle record stored under key at time now.
func (c *checker) handle(key string, value []byte, now time.Time, grace time.Duration) (*HandleRecord, error) {
	return c.handleRecord(key, value, now, grace, true)
}

// handleSigned is handle without the proof of work (a memory-hard hash,
// tens of milliseconds with the default parameters): enough to start work
// on a record's owner speculatively, never to accept the record.
func (c *checker) handleSigned(key string, value []byte, now time.Time) (*HandleRecord, error) {
	return c.handleRecord(key, value, now, 0, false)
}

func (c *checker) handleRecord(key string, value []byte, now time.Time, grace time.Duration, pow bool) (*HandleRecord, error) {
	if !strings.HasPrefix(key, handlePrefix) {
		return nil, ErrWrongKey
	}
	r, err := c.openHandle(value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	norm, want, selfCert, err := parseName(r.Name)
	if err != nil || norm != r.Name {
		return nil, invalid("name not normalised")
	}
	if want != key {
		return nil, ErrWrongKey
	}
	if r.ClaimedAt.After(r.Issued) {
		return nil, invalid("claimed after issued")
	}
	if err := checkTimes(r.Issued, r.Expires, now, grace); err != nil {
		return nil, err
	}
	if selfCert {
		if !identity.VerifySelfCert(r.Name, r.Owner) {
			return nil, invalid("self-certifying suffix does not match the owner key")
		}
		if r.Nonce != 0 {
			return nil, invalid("proof of work on a self-certifying name")
		}
		return r, nil
	}
	if pow && !c.verifyPoW(r.Name, r.Owner, r.Nonce) {
		return nil, ErrBadPoW
	}
	return r, nil
}

// verifyPoW checks a handle's proof of work, remembering verified triples so
// that validating the same record again costs nothing.
func (c *checker) verifyPoW(name string, owner identity.AccountPub, nonce uint64) bool {
	k := powKey{name: name, owner: string(owner.Bytes()), nonce: nonce}
	if _, ok := c.powOK.get(k, time.Time{}); ok {
		return true
	}
	if !identity.VerifyHandlePoW(c.pow, name, owner, nonce) {
		return false
	}
	c.powOK.put(k, struct{}{}, time.Time{})
	return true
}

// compareIdentity orders two identity records of one account: positive when
// a is better. Highest seq, then later issued, then the smaller encoding, so
// the choice never depends on argument order.
func compareIdentity(a, b *IdentityRecord, araw, braw []byte) int {
	switch {
	case a.Seq != b.Seq:
		return cmpUint(a.Seq, b.Seq)
	case !a.Issued.Equal(b.Issued):
		return a.Issued.Compare(b.Issued)
	}
	return bytes.Compare(braw, araw)
}

// compareHandle totally orders handle records: positive when a is better.
// The order is (claimed_at ascending, owner key ascending, seq descending,
// issued descending, encoding ascending): for one owner (whose claimed_at is
// constant across republishes) the highest seq wins; between owners the
// older claim wins. claimed_at is asserted by the owner and can be backdated,
// so this order is only what kad-dht's internal callers see; the guard (which
// has the stored record in hand) and the majority read are what keep a name
// with its incumbent.
func compareHandle(a, b *HandleRecord, araw, braw []byte) int {
	switch {
	case !a.ClaimedAt.Equal(b.ClaimedAt):
		return b.ClaimedAt.Compare(a.ClaimedAt)
	case !a.Owner.Equal(b.Owner):
		return bytes.Compare(b.Owner.Bytes(), a.Owner.Bytes())
	case a.Seq != b.Seq:
		return cmpUint(a.Seq, b.Seq)
	case !a.Issued.Equal(b.Issued):
		return a.Issued.Compare(b.Issued)
	}
	return bytes.Compare(braw, araw)
}

func cmpUint(a, b uint64) int {
	switch {
	case a > b:
		return 1
	case a < b:
		return -1
	}
	return 0
}

// selectBest returns the index of the best decodable value, or an error when
// none decodes.
func selectBest[R any](values [][]byte, open func([]byte) (*R, error), cmp func(a, b *R, araw, braw []byte) int) (int, error) {
	best := -1
	var bestRec *R
	for i, v := range values {
		r, err := open(v)
		if err != nil {
			continue
		}
		if best < 0 || cmp(r, bestRec, v, values[best]) > 0 {
			best, bestRec = i, r
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("%w: no value decodes", ErrInvalidRecord)
	}
	return best, nil
}

// identityValidator is the record.Validator of the csid namespace.
type identityValidator struct{ c *checker }

func (v identityValidator) Validate(key string, value []byte) error {
	_, err := v.c.identity(key, value, v.c.now(), 0)
	return err
}

func (v identityValidator) Select(_ string, values [][]byte) (int, error) {
	return selectBest(values, v.c.openIdentity, compareIdentity)
}

// handleValidator is the record.Validator of the csname namespace.
type handleValidator struct {
	c *checker
	// permissive (tests only) makes Select always prefer values[0], the
	// incoming record at a storing node, so the guard is tested alone.
	permissive bool
}

func (v handleValidator) Validate(key string, value []byte) error {
	_, err := v.c.handle(key, value, v.c.now(), 0)
	return err
}

func (v handleValidator) Select(_ string, values [][]byte) (int, error) {
	if v.permissive {
		return 0, nil
	}
	return selectBest(values, v.c.openHandle, compareHandle)
}

var (
	_ record.Validator = identityValidator{}
	_ record.Validator = handleValidator{}
)
