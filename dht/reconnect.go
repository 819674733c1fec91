package dht

import (
	"context"

	"github.com/libp2p/go-libp2p/core/event"
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
	alone := len(d.host.Network().Peers()) == 0
	for {
		select {
		case <-d.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			if _, ok := e.(event.EvtPeerConnectednessChanged); !ok {
				continue
			}
			n := len(d.host.Network().Peers())
			if n == 0 {
				alone = true
				continue
			}
			if !alone {
				continue
			}
			alone = false
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
