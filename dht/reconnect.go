package dht

import (
	"context"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// reconnectLoop republishes the owned and kept records as soon as the node
// regains peers after having had none (a laptop waking up, a network coming
// back): the records may have expired, or the peers closest to their keys
// changed, while it was away, and waiting for the next RepublishInterval
// could leave its names unresolvable for hours.
//
// The loop only reads events (the event bus blocks emitters on a full
// subscriber) and hands the republish to a worker that runs one at a time.
func (d *DHT) reconnectLoop(sub event.Subscription) {
	defer sub.Close()
	kick := make(chan struct{}, 1)
	done := make(chan struct{})
	defer func() { <-done }()
	go func() {
		defer close(done)
		for {
			select {
			case <-d.ctx.Done():
				return
			case <-kick:
				d.republishOnReconnect()
			}
		}
	}()
	// The peers connected, as the events tell (the loop may run behind
	// the network, so the network's own count can't say whether it was
	// ever empty in between).
	conns := map[peer.ID]struct{}{}
	for _, p := range d.host.Network().Peers() {
		conns[p] = struct{}{}
	}
	for {
		select {
		case <-d.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			ev, ok := e.(event.EvtPeerConnectednessChanged)
			if !ok {
				continue
			}
			if ev.Connectedness != network.Connected {
				delete(conns, ev.Peer)
				continue
			}
			wasAlone := len(conns) == 0
			conns[ev.Peer] = struct{}{}
			if !wasAlone {
				continue
			}
			if !d.hasOwned() {
				continue
			}
			select {
			case kick <- struct{}{}:
			default: // one is pending already
			}
		}
	}
}

// hasOwned reports whether there is anything to republish.
func (d *DHT) hasOwned() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return (d.ownKey != nil && (d.ownRec != nil || len(d.ownClaims) > 0)) || len(d.kept) > 0
}

// republishOnReconnect waits briefly for the routing table to refill, then
// republishes. Events arriving meanwhile queue in the subscription.
func (d *DHT) republishOnReconnect() {
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.QueryTimeout)
	err := waitFor(ctx, func() bool { return d.kad.RoutingTable().Size() > 0 })
	cancel()
	if err != nil {
		d.log.Debug("reconnected but the routing table stayed empty", "err", err)
		return
	}
	d.log.Info("peers again after none: republishing")
	if err := d.Republish(d.ctx); err != nil {
		d.log.Info("republish on reconnect incomplete", "err", err)
	}
	d.reconnects.Add(1)
}
