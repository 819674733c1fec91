package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
)

// bootstrapPeers merges the configured bootstrap addresses into the
// remembered ones (the store keeps them for later starts) and returns all.
func (n *Node) bootstrapPeers() ([]peer.AddrInfo, error) {
	var all []string
	err := n.db.Update(func(tx *store.Tx) error {
		for _, b := range append(n.cfg.Bootstrap, n.cfg.Join) {
			if b == "" {
				continue
			}
			if err := tx.AddBootstrap(b); err != nil {
				return err
			}
		}
		var err error
		all, err = tx.Bootstraps()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bootstrap peers: %w", err)
	}
	all = append(all, n.shippedBootstrap()...)
	var infos []peer.AddrInfo
	for _, s := range all {
		ai, err := parseBootstrap(s) // a multiaddr or an invite
		if err != nil {
			n.log.Warn("ignoring a remembered bootstrap address", "addr", s, "err", err)
			continue
		}
		if ai.ID == "" || (n.keys != nil && ai.ID == peerIDOf(n.keys)) {
			continue // never bootstrap from ourselves
		}
		infos = append(infos, ai)
	}
	return mergeAddrInfos(infos), nil
}

func peerIDOf(k *keys) peer.ID {
	id, _ := peer.IDFromPrivateKey(k.device)
	return id
}

func mergeAddrInfos(in []peer.AddrInfo) []peer.AddrInfo {
	byID := map[peer.ID]int{}
	var out []peer.AddrInfo
	for _, ai := range in {
		if i, ok := byID[ai.ID]; ok {
			out[i].Addrs = append(out[i].Addrs, ai.Addrs...)
			continue
		}
		byID[ai.ID] = len(out)
		out = append(out, ai)
	}
	return out
}

func (n *Node) startHost() error {
	boot, err := n.bootstrapPeers()
	if err != nil {
		return err
	}
	cfg := p2p.HostConfig{
		PrivKey:  n.keys.device,
		Listen:   n.listenAddrs(),
		Announce: n.cfg.Announce,
		Public:   n.cfg.Public,
		Logger:   n.log.With("component", "p2p"),
		Stats:    &n.metrics.host,
	}
	n.priv = n.newPrivacy(boot)
	if !n.cfg.Public {
		// Community nodes we bootstrap from double as our relays.
		cfg.StaticRelays = boot
		cfg.ForcePrivate = n.cfg.BehindNAT
		if n.priv.on {
			// Strangers reach us only through the relays: reserve slots
			// there at once, whatever AutoNAT would say.
			cfg.Direct = n.priv
			cfg.ForcePrivate = true
		}
	}
	if n.cfg.NewHost != nil {
		h, err := n.cfg.NewHost(n.keys.device)
		if err != nil {
			return fmt.Errorf("start libp2p host: %w", err)
		}
		n.host = h
		n.closers = append(n.closers, h.Close)
		return nil
	}
	h, err := p2p.NewHost(cfg)
	if err != nil && len(n.cfg.Listen) == 0 && !n.cfg.BehindNAT {
		// A remembered port may be taken now; fall back to fresh ones.
		n.log.Info("remembered listen ports unavailable, picking new ones", "err", err)
		cfg.Listen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1", "/ip6/::/tcp/0", "/ip6/::/udp/0/quic-v1"}
		h, err = p2p.NewHost(cfg)
	}
	if err != nil {
		return withHint(fmt.Errorf("start libp2p host: %w", err), "check --listen; a port may be in use by another program")
	}
	n.host = h
	n.closers = append(n.closers, h.Close)
	n.rememberPorts()
	return nil
}

func (n *Node) startDHT(ctx context.Context) error {
	dstore, err := n.dhtDatastore() // on disk for a public node (keep.go)
	if err != nil {
		return fmt.Errorf("start DHT: %w", err)
	}
	d, err := dht.New(dht.Config{
		Datastore:         dstore,
		Host:              n.host,
		Server:            n.cfg.Public || n.cfg.DHTServer,
		PoW:               n.cfg.Network.PoW,
		RecordTTL:         n.cfg.Network.RecordTTL,
		RepublishInterval: n.cfg.Network.RepublishInterval,
		Grace:             n.cfg.Network.Grace,
		CacheTTL:          n.cfg.Network.CacheTTL,
		NoKeep:            n.cfg.Network.NoKeep,
		NegativeCacheTTL:  min(n.cfg.Network.CacheTTL, 10*time.Second),
		Logger:            n.log.With("component", "dht"),
	})
	if err != nil {
		return fmt.Errorf("start DHT: %w", err)
	}
	n.closers = append(n.closers, d.Close)
	if err := d.Start(ctx); err != nil {
		return fmt.Errorf("start DHT: %w", err)
	}
	n.dht = d
	n.startKeep()
	return nil
}

// connectBootstrap dials every bootstrap peer at once and returns how many
// answered within the deadline.
func (n *Node) connectBootstrap(ctx context.Context) int {
	boot, err := n.bootstrapPeers()
	if err != nil {
		n.log.Warn("bootstrap", "err", err)
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, ai := range boot {
		wg.Go(func() {
			if err := n.host.Connect(ctx, ai); err != nil {
				n.log.Info("bootstrap peer unreachable", "peer", ai.ID, "err", err)
				return
			}
			mu.Lock()
			ok++
			mu.Unlock()
		})
	}
	wg.Wait()
	n.roundDone()
	return ok
}
