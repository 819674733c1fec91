package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store/diskstore"
)

// Community nodes keep their members' names alive (docs/ADDRESSBOOK.md,
// "Kept records"): a public node keeps the DHT records it stores on disk,
// and takes from each member, over /callsign/keep/1.0.0, a schedule of
// pre-signed records for the next 90 days, which its DHT publishes as each
// record's window starts. A member hands a new schedule to its public
// bootstrap peers after every publication of its records.
const (
	// KeepProtocol carries one keep request (dht.KeepRequest, signed by the
	// member's account key) and answers "kept N".
	KeepProtocol = protocol.ID("/callsign/keep/1.0.0")
	// keepRate is each peer's sustained keep requests per second (one a
	// minute; a member sends one every republish, 12h), keepBurst its
	// burst.
	keepRate  = rate.Limit(1.0 / 60)
	keepBurst = 3
	// keepTimeout bounds one request, the membership lookup included.
	keepTimeout = 30 * time.Second
	// maxKeepAnswer caps the keeper's answer.
	maxKeepAnswer = 64
	// dhtStoreDir is the public node's DHT store, below the data directory.
	dhtStoreDir = "dht"
)

// dhtDatastore opens a public node's DHT store on disk (nil, nil for
// other nodes: they store records for others only while they run). The
// store closes after the DHT (closers run in reverse).
func (n *Node) dhtDatastore() (ds.Batching, error) {
	if !n.cfg.Public {
		return nil, nil
	}
	s, err := diskstore.Open(filepath.Join(n.cfg.DataDir, dhtStoreDir))
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, s.Close)
	return s, nil
}

// startKeep serves the keep protocol on a public node; on any other node
// it makes the DHT hand each new schedule to the public bootstrap peers.
func (n *Node) startKeep() {
	if !n.cfg.Public {
		n.dht.SetHandoff(n.handToKeepers)
		return
	}
	m := newMembers(n.host.ID(), n.dht.ResolveIdentity)
	srv := p2p.Handle(n.host, KeepProtocol, p2p.HandlerConfig{
		Timeout:       keepTimeout,
		MaxRequest:    dht.MaxKeepRequest,
		Rate:          keepRate,
		Burst:         keepBurst,
		MaxConcurrent: 8,
		Logger:        n.log.With("component", "keep"),
	}, func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
		return n.serveKeep(ctx, m, from, req)
	})
	n.closers = append(n.closers, srv.Close)
}

// serveKeep takes a member's schedule: the request must decode and carry
// its account's signature, come from a device of that account whose
// identity record lists this node (a member), and pass dht.AcceptKeep.
func (n *Node) serveKeep(ctx context.Context, m *members, from peer.ID, req []byte) ([]byte, error) {
	r, err := dht.OpenKeepRequest(req)
	if err != nil {
		return nil, p2p.WithCode(p2p.CodeBadRequest, fmt.Errorf("keep: %w", err))
	}
	if err := m.Check(ctx, from, r.Account.ID()); err != nil {
		return nil, p2p.WithCode(p2p.CodeBadRequest, fmt.Errorf("keep: not a member: %w", err))
	}
	kept, err := n.dht.AcceptKeep(ctx, req)
	if err != nil {
		if errors.Is(err, dht.ErrKeepFull) {
			return nil, p2p.WithCode(p2p.CodeOverloaded, err)
		}
		if errors.Is(err, dht.ErrKeepRefused) {
			return nil, p2p.WithCode(p2p.CodeBadRequest, err)
		}
		return nil, p2p.WithCode(p2p.CodeInternal, err)
	}
	n.log.Debug("keeping a member's records", "account", r.Account.ID(), "records", kept)
	return []byte("kept " + strconv.Itoa(kept)), nil
}

// handToKeepers sends a schedule to every bootstrap peer (the community
// nodes this node joined through), at once, each within keepTimeout.
func (n *Node) handToKeepers(ctx context.Context, req []byte) {
	boot, err := n.bootstrapPeers()
	if err != nil || len(boot) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, keepTimeout)
	defer cancel()
	done := make(chan struct{}, len(boot))
	for _, ai := range boot {
		go func() {
			defer func() { done <- struct{}{} }()
			resp, err := p2p.Request(ctx, n.host, ai.ID, KeepProtocol, false, req, maxKeepAnswer)
			if err != nil {
				n.log.Info("a community node did not take our records to keep", "peer", ai.ID, "err", err)
				return
			}
			n.log.Debug("community node keeps our records", "peer", ai.ID, "answer", string(resp))
		}()
	}
	for range boot {
		<-done
	}
}
