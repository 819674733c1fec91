package node

import (
	"context"
	"crypto/rand"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/identity"
)

// x25519Key stands for a device's X25519 key (any non-zero 32 bytes).
var x25519Key = []byte("a device's x25519 key, 32 bytes.")

func newPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// memberRecord is account k's identity record certifying device and
// listing relays.
func memberRecord(t *testing.T, k *identity.AccountKey, device peer.ID, now time.Time, relays ...peer.ID) *dht.IdentityRecord {
	t.Helper()
	cert, err := identity.IssueDeviceCert(k, []byte(device), x25519Key, now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rec := &dht.IdentityRecord{Account: k.Public(), Issued: now, Expires: now.Add(7 * 24 * time.Hour), Devices: []identity.DeviceCert{cert}}
	for _, r := range relays {
		rec.Relays = append(rec.Relays, ma.StringCast("/ip4/192.0.2.1/tcp/4141/p2p/"+r.String()))
	}
	return rec
}

// TestMembership: the rule a public node's TURN relay serves by.
func TestMembership(t *testing.T) {
	now := time.Now()
	self, other, device := newPeerID(t), newPeerID(t), newPeerID(t)
	k, _ := identity.GenerateAccountKey(rand.Reader)
	k2, _ := identity.GenerateAccountKey(rand.Reader)
	acct := k.Public().ID()

	until, err := membership(memberRecord(t, k, device, now, other, self), acct, device, self, now)
	if err != nil {
		t.Fatalf("a member: %v", err)
	}
	if want := now.Add(memberTTL); !until.Equal(want) {
		t.Errorf("member until %v, want %v", until, want)
	}
	expiring := memberRecord(t, k, device, now, self)
	expiring.Expires = now.Add(time.Minute)
	if until, err := membership(expiring, acct, device, self, now); err != nil || !until.Equal(expiring.Expires) {
		t.Errorf("a record expiring in a minute: until %v, %v", until, err)
	}

	expiredCert := memberRecord(t, k, device, now, self)
	expiredCert.Devices[0], _ = identity.IssueDeviceCert(k, []byte(device), x25519Key, now.Add(-2*time.Hour), now.Add(-time.Hour))
	for name, tc := range map[string]struct {
		rec  *dht.IdentityRecord
		peer peer.ID
	}{
		"no record":                  {nil, device},
		"another account's record":   {memberRecord(t, k2, device, now, self), device},
		"this node not a relay":      {memberRecord(t, k, device, now, other), device},
		"no relays":                  {memberRecord(t, k, device, now), device},
		"peer not a device":          {memberRecord(t, k, device, now, self), other},
		"device certificate expired": {expiredCert, device},
		"device certified by another": {func() *dht.IdentityRecord {
			r := memberRecord(t, k2, device, now, self)
			r.Account = k.Public()
			return r
		}(), device},
	} {
		if _, err := membership(tc.rec, acct, tc.peer, self, now); err == nil {
			t.Errorf("%s: counted as a member", name)
		}
	}
}

// TestMembersCheck: a member is looked up once and then known, until its
// time is up; a stranger is looked up every time and never known.
func TestMembersCheck(t *testing.T) {
	now := time.Now()
	self, device, stranger := newPeerID(t), newPeerID(t), newPeerID(t)
	k, _ := identity.GenerateAccountKey(rand.Reader)
	acct := k.Public().ID()
	rec := memberRecord(t, k, device, now, self)
	var lookups atomic.Int32
	m := newMembers(self, func(_ context.Context, id identity.AccountID) (*dht.IdentityRecord, error) {
		lookups.Add(1)
		if id == acct {
			return rec, nil
		}
		return nil, dht.ErrNotFound
	})
	clock := now
	m.now = func() time.Time { return clock }
	ctx := context.Background()

	if m.Known(device) {
		t.Fatal("known before any check")
	}
	for range 3 {
		if err := m.Check(ctx, device, acct); err != nil {
			t.Fatalf("member: %v", err)
		}
	}
	if n := lookups.Load(); n != 1 || !m.Known(device) {
		t.Fatalf("member: %d lookups, known %v; want 1 and known", n, m.Known(device))
	}
	// The member's peer naming another account is looked up again.
	other, _ := identity.GenerateAccountKey(rand.Reader)
	if err := m.Check(ctx, device, other.Public().ID()); !errors.Is(err, errNoRecord) {
		t.Errorf("member's peer naming an unknown account: %v", err)
	}
	for range 2 {
		if err := m.Check(ctx, stranger, acct); err == nil {
			t.Fatal("a stranger naming a member's account counts as a member")
		}
	}
	if n := lookups.Load(); n != 4 || m.Known(stranger) {
		t.Fatalf("after the strangers: %d lookups, stranger known %v", n, m.Known(stranger))
	}
	clock = now.Add(memberTTL)
	if m.Known(device) {
		t.Error("still known after memberTTL")
	}
	if err := m.Check(ctx, device, acct); err != nil || lookups.Load() != 5 {
		t.Errorf("after memberTTL: %v, %d lookups", err, lookups.Load())
	}
}
