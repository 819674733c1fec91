package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/identity"
)

// Membership of a public node (the call package doc has the rule): an
// account whose identity record lists this node among its relays, asking
// from one of the devices that record certifies.
const (
	// memberTTL is how long a member stays known after a lookup, at most
	// (never beyond its record's or its device certificate's expiry).
	memberTTL = time.Hour
	// maxMemberLookups bounds the DHT lookups membership checks run at
	// once; more wait for a place, within their request's deadline.
	maxMemberLookups = 8
	// maxKnownMembers bounds the members remembered; beyond it, expired
	// entries go first, then arbitrary ones (they are looked up again).
	maxKnownMembers = 4096
)

// errNoRecord is a membership check for an account with no identity
// record on the network.
var errNoRecord = errors.New("no identity record")

// members decides who a public node's TURN relay serves (call.Members).
type members struct {
	self    peer.ID
	resolve func(ctx context.Context, id identity.AccountID) (*dht.IdentityRecord, error)
	now     func() time.Time
	lookups chan struct{} // a place per running lookup

	mu    sync.Mutex
	known map[peer.ID]knownMember // guarded by mu
}

type knownMember struct {
	account identity.AccountID
	until   time.Time
}

func newMembers(self peer.ID, resolve func(context.Context, identity.AccountID) (*dht.IdentityRecord, error)) *members {
	return &members{
		self: self, resolve: resolve, now: time.Now,
		lookups: make(chan struct{}, maxMemberLookups),
		known:   map[peer.ID]knownMember{},
	}
}

// Known implements call.Members.
func (m *members) Known(p peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.known[p]
	return ok && m.now().Before(k.until)
}

// Check implements call.Members: p, saying it is a device of account, is a
// member if account's identity record, as the DHT resolves it, certifies
// p and lists this node as a relay.
func (m *members) Check(ctx context.Context, p peer.ID, account identity.AccountID) error {
	m.mu.Lock()
	k, ok := m.known[p]
	m.mu.Unlock()
	if ok && k.account == account && m.now().Before(k.until) {
		return nil
	}
	select {
	case m.lookups <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("membership lookup: %w", context.Cause(ctx))
	}
	rec, err := m.resolve(ctx, account)
	<-m.lookups
	switch {
	case errors.Is(err, dht.ErrNotFound):
		return errNoRecord
	case err != nil:
		return fmt.Errorf("membership lookup: %w", err)
	}
	until, err := membership(rec, account, p, m.self, m.now())
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rememberLocked(p, knownMember{account: account, until: until})
	return nil
}

// rememberLocked records a member, making room if need be.
func (m *members) rememberLocked(p peer.ID, k knownMember) {
	if _, ok := m.known[p]; !ok && len(m.known) >= maxKnownMembers {
		now := m.now()
		for q, old := range m.known {
			if !now.Before(old.until) {
				delete(m.known, q)
			}
		}
		for q := range m.known {
			if len(m.known) < maxKnownMembers {
				break
			}
			delete(m.known, q)
		}
	}
	m.known[p] = k
}

// membership applies the rule to rec, the identity record found for
// account: it must be account's, list relay self, and certify p with a
// certificate valid at now. It returns until when p counts as a member.
func membership(rec *dht.IdentityRecord, account identity.AccountID, p, self peer.ID, now time.Time) (time.Time, error) {
	if rec == nil || !account.Matches(rec.Account) {
		return time.Time{}, errNoRecord
	}
	if !now.Before(rec.Expires) {
		return time.Time{}, errors.New("identity record expired")
	}
	listed := false
	for _, a := range rec.Relays {
		if ai, err := peer.AddrInfoFromP2pAddr(a); err == nil && ai.ID == self {
			listed = true
			break
		}
	}
	if !listed {
		return time.Time{}, errors.New("identity record does not list this node as a relay")
	}
	for _, c := range rec.Devices {
		if peer.ID(c.PeerID) != p || !c.Account.Equal(rec.Account) || c.Verify(now) != nil {
			continue
		}
		return minTime(now.Add(memberTTL), rec.Expires, c.Expires), nil
	}
	return time.Time{}, errors.New("the peer is not a device of the account")
}

func minTime(t time.Time, more ...time.Time) time.Time {
	for _, u := range more {
		if u.Before(t) {
			t = u
		}
	}
	return t
}
