package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/node/backend"
	"github.com/callsign/callsign/store"
)

// The node's own state as the local API shows it (backend.Node): what it
// is, what it is connected to, the handles it publishes. Everything else
// the API offers is the backend's (node/backend).
var _ backend.Node = (*Node)(nil)

// ID implements backend.Node.
func (n *Node) ID(ctx context.Context) (api.ID, error) {
	handle, err := n.selfCertHandle()
	if err != nil {
		return api.ID{}, err
	}
	return api.ID{
		Account: n.keys.account.Public().ID().String(),
		Handle:  handle,
		Peer:    n.host.ID().String(),
		Addrs:   n.fullAddrs(),
		API:     n.api.Addr(),

		FileLimit: n.files.store.Limit(),
	}, nil
}

// fullAddrs are the host's addresses with /p2p/<id>, ready to hand to
// another node's --bootstrap.
func (n *Node) fullAddrs() []string {
	infos, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(infos))
	for _, a := range infos {
		out = append(out, a.String())
	}
	return out
}

// Status implements backend.Node.
func (n *Node) Status(ctx context.Context) (api.Status, error) {
	st := api.Status{
		DeviceRevoked: n.msg.Revoked(),
		Peers:         len(n.host.Network().Peers()),
		RoutingTable:  n.dht.RoutingTableSize(),
		Public:        n.cfg.Public,
		Relays:        n.relaysInUse(),
		Encryption:    n.db.Encryption(),
		UptimeS:       int64(time.Since(n.started) / time.Second),
		DataDir:       n.cfg.DataDir,
		Version:       Version,
		Invite:        n.inviteInfo(),
		MDNS:          n.mdnsOn(),
	}
	st.Hint = n.aloneHint(st.Peers)
	n.fillMailboxStatus(&st)
	n.fillTURNStatus(&st)
	return st, nil
}

// relaysInUse lists the relays this node holds reservations on (taken from
// its /p2p-circuit addresses); a public node is its own relay.
func (n *Node) relaysInUse() []string {
	seen := map[string]bool{}
	out := []string{}
	for _, a := range n.host.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err != nil {
			continue
		}
		if id, err := a.ValueForProtocol(ma.P_P2P); err == nil && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Peers implements backend.Node.
func (n *Node) Peers(ctx context.Context) ([]api.Peer, error) {
	out := []api.Peer{}
	for _, p := range n.host.Network().Peers() {
		conns := n.host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		ap := api.Peer{Peer: p.String(), Direction: "outbound"}
		for _, c := range conns {
			ap.Addrs = append(ap.Addrs, c.RemoteMultiaddr().String())
			if c.Stat().Direction == network.DirInbound {
				ap.Direction = "inbound"
			}
			if c.Stat().Limited {
				ap.Limited = true
			}
		}
		out = append(out, ap)
	}
	return out, nil
}

// Handles implements backend.Node.
func (n *Node) Handles(ctx context.Context) ([]api.Handle, error) {
	var claims []store.HandleClaim
	if err := n.db.View(func(tx *store.Tx) error {
		var err error
		claims, err = tx.Claims()
		return err
	}); err != nil {
		return nil, err
	}
	out := []api.Handle{{Name: identity.SelfCertHandle(primaryName(claims), n.keys.account.Public()), SelfCert: true}}
	for _, c := range claims {
		out = append(out, api.Handle{Name: c.Name, ClaimedAt: c.ClaimedAt})
	}
	return out, nil
}

// Claim implements backend.Node: it claims the normalised handle name on
// the DHT for this account and, once a read has confirmed the claim, keeps
// it and republishes the identity record with it.
func (n *Node) Claim(ctx context.Context, name string, progress func(dht.ClaimStage)) (*dht.ClaimResult, error) {
	var prev *dht.HandleClaim
	if err := n.db.View(func(tx *store.Tx) error {
		cs, err := tx.Claims()
		for _, c := range cs {
			if c.Name == name {
				prev = &dht.HandleClaim{Name: c.Name, Nonce: c.Nonce, Seq: c.Seq, ClaimedAt: c.ClaimedAt}
			}
		}
		return err
	}); err != nil {
		return nil, err
	}
	res, err := n.dht.ClaimHandleProgress(ctx, n.keys.account, name, prev, progress)
	if err != nil || res.Status != dht.ClaimClaimed {
		return res, err
	}
	c := res.Claim
	if err := n.db.Update(func(tx *store.Tx) error {
		return tx.PutClaim(store.HandleClaim{Name: c.Name, Nonce: c.Nonce, Seq: c.Seq, ClaimedAt: c.ClaimedAt})
	}); err != nil {
		return nil, fmt.Errorf("store claim: %w", err)
	}
	// The identity record lists our handles, and the self-certifying handle
	// takes its name from the first one: publish both before answering, so
	// that whatever the user looks up next is already there.
	if err := n.publish(ctx); err != nil {
		n.log.Info("republish after claim", "err", err)
	}
	return res, nil
}
