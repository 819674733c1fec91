package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// deviceCertTTL is how long a device certificate is valid. It is issued at
// every start and used both in the identity record and in every message
// frame, so a node must restart within a year to renew it. (Renewing a
// running node's certificate comes with linked devices, which need the
// same machinery.)
const deviceCertTTL = 365 * 24 * time.Hour

// publishLoop joins the network and publishes the identity record and the
// handles, retrying with backoff until the first publication is confirmed.
// The DHT's republish loop keeps them alive afterwards.
func (n *Node) publishLoop() {
	ctx := n.ctx
	backoff := time.Second
	for {
		if !n.waitForPeers(ctx) {
			return
		}
		if err := n.publish(ctx); err == nil {
			return
		} else if ctx.Err() != nil || errors.Is(err, msg.ErrDeviceRevoked) {
			return
		} else {
			n.log.Info("publishing identity failed; will retry", "err", err, "in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Minute)
	}
}

// waitForPeers connects to the bootstrap peers and, if none answers, waits
// until some peer connects to us (the first node of a network waits for the
// second). It returns false once ctx ends.
func (n *Node) waitForPeers(ctx context.Context) bool {
	if n.connectBootstrap(ctx) > 0 {
		return true
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	retry := time.Now().Add(30 * time.Second)
	for len(n.host.Network().Peers()) == 0 {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if time.Now().After(retry) {
			if n.connectBootstrap(ctx) > 0 {
				return true
			}
			retry = time.Now().Add(30 * time.Second)
		}
	}
	return true
}

// publish connects to the bootstrap peers, then publishes the identity
// record and republishes every handle this node holds, and hands them to the
// DHT's republisher.
func (n *Node) publish(ctx context.Context) error {
	// One publication at a time (start-up, a new claim, a prekey
	// rotation): each builds on the sequence numbers of the last.
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	if n.msg.Revoked() {
		return fmt.Errorf("publish: %w", msg.ErrDeviceRevoked)
	}
	n.joinDHT(ctx)
	rec, claims, err := n.ownedRecords()
	if err != nil {
		return err
	}
	// Handles first: the identity record names them, so they must resolve
	// by the time it does.
	var errs []error
	for i := range claims {
		var prev *dht.HandleClaim
		if !claims[i].ClaimedAt.IsZero() {
			prev = &claims[i]
		}
		res, err := n.dht.ClaimHandle(ctx, n.keys.account, claims[i].Name, prev)
		if err != nil {
			errs = append(errs, err) // the claim stays; the republisher tries again
			continue
		}
		// A claim this node holds stays in the list whatever the network
		// shows: the DHT keeps putting it to the closest peers, and a name
		// is never given up because someone else's record was seen.
		if res.Claim != nil {
			claims[i] = *res.Claim
		}
		switch res.Status {
		case dht.ClaimConflict:
			n.log.Warn("some of the closest peers hold another owner's record for a handle this node holds; keeping the claim",
				"name", claims[i].Name, "owners", len(res.Conflicts))
		case dht.ClaimTaken:
			n.log.Warn("every peer refused this node's record for a handle it held; it will keep trying",
				"name", claims[i].Name, "owner", res.Owner.ID())
		}
	}
	// The republisher gets every claim before anything can fail below, so
	// that a claim just made is kept alive even if this publication is not
	// confirmed.
	n.dht.SetOwned(n.keys.account, rec, claims)
	if err := n.publishIdentityLocked(ctx, rec); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	n.mu.Lock()
	n.published = true
	n.mu.Unlock()
	n.log.Info("identity published", "account", n.keys.account.Public().ID(), "handles", len(claims))
	// The community nodes keep what was just published alive while this
	// node is away (keep.go); the DHT hands them a new schedule after each
	// republish.
	if err := n.dht.HandOff(ctx); err != nil {
		n.log.Info("presigning records to keep", "err", err)
	}
	return nil
}

// publishRecord publishes the identity record alone, not the handles: a
// device linked or revoked here is in the network's record at once (the
// full publish follows in the background).
func (n *Node) publishRecord(ctx context.Context) error {
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	if n.msg.Revoked() {
		return fmt.Errorf("publish: %w", msg.ErrDeviceRevoked)
	}
	rec, _, err := n.ownedRecords()
	if err != nil {
		return err
	}
	return n.publishIdentityLocked(ctx, rec)
}

// publishIdentityLocked publishes rec, the account's record as this
// device makes it (ownedRecords); pubMu is held. A device restored from a
// backup takes the place of the account's other devices the first time
// (store.Tx.ReplaceDevices).
func (n *Node) publishIdentityLocked(ctx context.Context, rec *dht.IdentityRecord) error {
	var replace bool
	if err := n.db.View(func(tx *store.Tx) (err error) { replace, err = tx.ReplaceDevices(); return err }); err != nil {
		return err
	}
	publish := n.dht.PublishIdentity
	if replace {
		publish = n.dht.PublishIdentityReplacing
	}
	pub, err := publish(ctx, n.keys.account, rec)
	if err != nil {
		return err
	}
	n.publishedLinked(pub)
	if replace {
		return n.db.Update(func(tx *store.Tx) error { return tx.SetReplaceDevices(false) })
	}
	return nil
}

// primaryName is the name part of the self-certifying handle: the earliest
// claimed global handle, or "user" before there is one.
func primaryName(claims []store.HandleClaim) string {
	var first *store.HandleClaim
	for i := range claims {
		c := &claims[i]
		if identity.IsSelfCert(c.Name) {
			continue
		}
		if first == nil || c.ClaimedAt.Before(first.ClaimedAt) {
			first = c
		}
	}
	if first == nil {
		return "user"
	}
	return first.Name
}

// selfCertHandle is this account's self-certifying handle.
func (n *Node) selfCertHandle() (string, error) {
	var claims []store.HandleClaim
	err := n.db.View(func(tx *store.Tx) error {
		var err error
		claims, err = tx.Claims()
		return err
	})
	if err != nil {
		return "", err
	}
	return identity.SelfCertHandle(primaryName(claims), n.keys.account.Public()), nil
}

// ownedRecords builds the identity record and the list of handle claims
// (the self-certifying handle included) from the store.
func (n *Node) ownedRecords() (*dht.IdentityRecord, []dht.HandleClaim, error) {
	var stored []store.HandleClaim
	if err := n.db.View(func(tx *store.Tx) error {
		var err error
		stored, err = tx.Claims()
		return err
	}); err != nil {
		return nil, nil, err
	}
	bundle, err := n.msg.Bundle()
	if err != nil {
		return nil, nil, fmt.Errorf("prekey bundle: %w", err)
	}
	self := identity.SelfCertHandle(primaryName(stored), n.keys.account.Public())
	claims := []dht.HandleClaim{{Name: self}}
	names := []string{self}
	sort.Slice(stored, func(i, j int) bool { return stored[i].ClaimedAt.Before(stored[j].ClaimedAt) })
	for _, c := range stored {
		if identity.IsSelfCert(c.Name) {
			continue
		}
		claims = append(claims, dht.HandleClaim{Name: c.Name, Nonce: c.Nonce, Seq: c.Seq, ClaimedAt: c.ClaimedAt})
		names = append(names, c.Name)
	}
	rec := &dht.IdentityRecord{
		Devices:   []identity.DeviceCert{n.cert},
		Prekeys:   bundle,
		Relays:    n.relayAddrs(),
		Mailboxes: n.mailboxAddrs(),
		Handles:   names,
	}
	n.addLinked(rec)
	if err := n.addRevoked(rec); err != nil {
		return nil, nil, err
	}
	return rec, claims, nil
}

// relayAddrs are the addresses of the community nodes this node reaches
// the world through, announced in the identity record.
func (n *Node) relayAddrs() []ma.Multiaddr {
	if n.cfg.Public {
		return nil
	}
	boot, err := n.bootstrapPeers()
	if err != nil {
		return nil
	}
	return recordAddrs(boot)
}

// maxRecordAddrs is how many relay or mailbox addresses an identity
// record carries (dht's limit).
const maxRecordAddrs = 8

// recordAddrs are peers' /p2p/ addresses for an identity record, at most
// maxRecordAddrs, the first peers' first.
func recordAddrs(peers []peer.AddrInfo) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, ai := range peers {
		addrs, err := peer.AddrInfoToP2pAddrs(&ai)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if len(out) == maxRecordAddrs {
				return out
			}
			out = append(out, a)
		}
	}
	return out
}

// joinDHT waits (briefly) for the routing table to hold a peer once we are
// connected, then asks kad-dht to refresh it.
func (n *Node) joinDHT(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for n.dht.RoutingTableSize() == 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	_ = n.dht.Refresh(ctx)
}
