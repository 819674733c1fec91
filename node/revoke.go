package node

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
)

// Revoking a device of the account (docs/DEVICES.md §4): any device marks
// the other revoked in the roster and publishes the account's record with
// it listed as revoked instead of as a device. Contacts stop encrypting to
// it when they read the record, and refuse what it still sends; siblings
// stop copying to it. The revoked device is told at once over
// ProtocolRevoked, and checks its own record, which decides: when the
// record lists it as revoked it sends and publishes nothing more, and its
// API says so.

// ProtocolRevoked asks a device to look its account's record up again: a
// sibling revoked it. The request carries nothing; the record decides.
const ProtocolRevoked protocol.ID = "/callsign/revoked/1.0.0"

// minDevicePrefix is the shortest device id prefix `devices revoke` takes.
const minDevicePrefix = 4

// startRevoked serves ProtocolRevoked.
func (n *Node) startRevoked() {
	srv := p2p.Handle(n.host, ProtocolRevoked, p2p.HandlerConfig{
		Timeout:    10 * time.Second,
		MaxRequest: 16,
		Rate:       0.2,
		Burst:      2,
		Logger:     n.log,
	}, func(_ context.Context, from peer.ID, _ []byte) ([]byte, error) {
		n.log.Info("a device says this one was revoked; reading the account's record", "peer", from)
		n.msg.CheckRevoked()
		return []byte{1}, nil
	})
	n.closers = append(n.closers, srv.Close)
}

// onRevoked is msg's: the account's record lists this device as revoked.
// It keeps so across restarts, stops republishing the account's records
// (the other devices do) and tells the API's subscribers.
func (n *Node) onRevoked() {
	if err := n.db.Update(func(tx *store.Tx) error { return tx.SetRevoked() }); err != nil {
		n.log.Warn("remember that this device was revoked", "err", err)
	}
	n.dht.SetOwned(nil, nil, nil)
	n.log.Warn("this device was revoked by another device of the account: it sends nothing more; link it again to use it")
	if b := n.backend.Load(); b != nil {
		b.DeviceRevoked()
	}
}

// RevokeDevice revokes the device of this account whose id starts with
// prefix (at least minDevicePrefix characters, naming one device): it is
// marked revoked in the roster, the record is published without it, and
// it is told. This device can't revoke itself.
func (n *Node) RevokeDevice(ctx context.Context, prefix string) (api.OwnDevice, error) {
	if n.msg.Revoked() {
		return api.OwnDevice{}, api.Errorf(api.CodeConflict, "", "this device was revoked itself")
	}
	prefix = strings.ToLower(strings.TrimSpace(prefix))
	if len(prefix) < minDevicePrefix {
		return api.OwnDevice{}, api.Errorf(api.CodeBadRequest, "`callsign devices list` shows the ids", "give at least %d characters of the device id", minDevicePrefix)
	}
	list, err := n.Devices(ctx)
	if err != nil {
		return api.OwnDevice{}, err
	}
	var match []api.OwnDevice
	for _, d := range list {
		if strings.HasPrefix(d.ID, prefix) {
			match = append(match, d)
		}
	}
	switch {
	case len(match) == 0:
		return api.OwnDevice{}, api.Errorf(api.CodeNotFound, "`callsign devices list` shows the ids", "no device of this account has an id starting %q", prefix)
	case len(match) > 1:
		return api.OwnDevice{}, api.Errorf(api.CodeBadRequest, "give more of the id", "%d devices have ids starting %q", len(match), prefix)
	case match[0].Current:
		return api.OwnDevice{}, api.Errorf(api.CodeBadRequest, "revoke it from another device of yours", "this is the device you are using")
	case match[0].Revoked:
		return match[0], nil
	}
	d := match[0]
	id, err := identity.ParseDeviceID(d.ID)
	if err != nil {
		return api.OwnDevice{}, err
	}
	// Its certificate, for its peer id and key: the record's, else the
	// roster's entry.
	var cert *identity.DeviceCert
	if rec, err := n.dht.ResolveIdentity(ctx, n.keys.account.Public().ID()); err == nil {
		for _, c := range rec.Devices {
			if c.DeviceID() == id {
				cert = &c
			}
		}
	}
	r := n.replica()
	var pid peer.ID
	err = n.db.Update(func(tx *store.Tx) error {
		var e devices.RosterEntry
		if op, ok, err := r.Get(tx, devices.KindRoster, id[:]); err != nil {
			return err
		} else if ok {
			if e, err = devices.UnmarshalRosterEntry(op.Value); err != nil {
				return err
			}
		} else if cert != nil {
			e = devices.RosterEntry{PeerID: cert.PeerID, X25519: cert.X25519, Added: cert.Created}
		} else {
			return fmt.Errorf("device %s: neither the record nor the roster holds its key", id)
		}
		if p, err := peer.IDFromBytes(e.PeerID); err == nil {
			pid = p
		}
		e.RevokedAt = time.Now().UTC()
		return r.Changed(tx, devices.KindRoster, id[:], e.Marshal())
	})
	if err != nil {
		return api.OwnDevice{}, err
	}
	n.link.mu.Lock()
	delete(n.link.added, id)
	n.link.mu.Unlock()
	n.log.Info("revoking a device of the account", "device", id, "name", d.Name)
	if err := n.publishRecord(ctx); err != nil {
		n.wg.Go(n.publishLinked) // keeps trying; the roster holds the revocation
		return api.OwnDevice{}, fmt.Errorf("the device is revoked here, but the account's record could not be published yet (this node keeps trying): %w", err)
	}
	// The handles and the keepers' schedule too; it also reads the
	// record again, should this read fail.
	n.wg.Go(n.publishLinked)
	if err := n.msg.RefreshSelf(ctx); err != nil {
		n.log.Info("reading the account's record after revoking a device", "err", err)
	}
	if pid != "" {
		n.wg.Go(func() {
			ctx, cancel := context.WithTimeout(n.ctx, 20*time.Second)
			defer cancel()
			if _, err := p2p.Request(ctx, n.host, pid, ProtocolRevoked, true, []byte{1}, 16); err != nil {
				n.log.Info("telling the revoked device; it learns at its next look at the record", "device", id, "err", err)
			}
		})
	}
	d.Revoked = true
	return d, nil
}

// addRevoked lists in rec, the record this node is about to publish, the
// devices the roster holds as revoked.
func (n *Node) addRevoked(rec *dht.IdentityRecord) error {
	var entries []devices.RosterEntry
	err := n.db.View(func(tx *store.Tx) (err error) {
		_, entries, err = n.replica().Roster(tx)
		return err
	})
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Revoked() {
			rec.Revoke(e.DeviceID())
		}
	}
	return nil
}
