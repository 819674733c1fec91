package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// DefaultListen are the listen addresses used when HostConfig.Listen is nil:
// every interface, a random port, TCP and QUIC, IPv4 and IPv6.
var DefaultListen = []string{
	"/ip4/0.0.0.0/tcp/0",
	"/ip4/0.0.0.0/udp/0/quic-v1",
	"/ip6/::/tcp/0",
	"/ip6/::/udp/0/quic-v1",
}

// Resource manager limits: go-libp2p's default scaling limits (plus its
// default service limits for identify, ping, autonat, relay and holepunch)
// scaled to these totals, rather than to 1/8 of the machine's memory and
// half its file descriptors, so a node behaves the same on a laptop and a
// VPS. Scaled this way the system scope allows 80 inbound and 160
// connections in all, 1280 inbound and 2560 streams in all, and 384 MiB;
// a protocol without limits of its own (every callsign protocol, kad
// included) 576 inbound streams from all peers together.
//
// Three limits are tighter or looser than go-libp2p's, so that a few peers
// opening every stream they may can't lock the others out (a dozen did,
// with kad streams):
//
//   - One peer may hold protocolPeerStreamsInbound inbound streams of such
//     a protocol at once (go-libp2p: 64 plus 4 per GiB, which let twelve
//     peers take all 576 of kad's). No callsign protocol needs more: msg
//     allows 4 streams per peer, prekey and TURN carry one request each,
//     and a lookup asks a peer one request at a time on a stream of its
//     own (a member resolving a name runs two lookups, and at most 16
//     background identity lookups).
//   - One peer may hold peerStreamsInbound inbound streams in all
//     (go-libp2p: 256 plus 128 per GiB), so that twelve peers can't take
//     all the system's 1280.
//   - Streams not yet through protocol negotiation (the transient scope)
//     may be as many as the system allows (go-libp2p: 1/8 as many), since
//     each peer's share is capped already: a flood of new streams from a
//     few peers, refused or reset a moment later, no longer leaves
//     everyone else's new streams refused.
const (
	rcmgrMemory = 256 << 20 // bytes
	rcmgrFDs    = 512

	protocolPeerStreamsInbound = 32
	peerStreamsInbound         = 96
)

// Defaults for HostConfig fields left zero.
const (
	DefaultConnLow  = 64
	DefaultConnHigh = 192
)

// RelayLimits bound the circuit relay v2 service a public host runs. Zero
// fields take the defaults in their comments, sized for callsign's small
// messages and signalling, not for bulk data or media (calls use TURN).
type RelayLimits struct {
	// Duration a relayed connection may live; 0 = 2 min.
	Duration time.Duration
	// Data relayed per connection in each direction; 0 = 1 MiB.
	Data int64
	// ReservationTTL is how long a reservation lasts before it must be
	// refreshed; 0 = 1 h.
	ReservationTTL time.Duration
	// MaxReservations across all peers; 0 = 256.
	MaxReservations int
	// MaxCircuits open per peer; 0 = 16.
	MaxCircuits int
	// MaxReservationsPerIP; 0 = 8.
	MaxReservationsPerIP int
	// MaxReservationsPerASN; 0 = 32.
	MaxReservationsPerASN int
}

func (l *RelayLimits) resources() relay.Resources {
	var in RelayLimits
	if l != nil {
		in = *l
	}
	r := relay.DefaultResources()
	r.Limit = &relay.RelayLimit{Duration: or(in.Duration, 2*time.Minute), Data: or(in.Data, 1<<20)}
	r.ReservationTTL = or(in.ReservationTTL, time.Hour)
	r.MaxReservations = or(in.MaxReservations, 256)
	r.MaxCircuits = or(in.MaxCircuits, 16)
	r.MaxReservationsPerIP = or(in.MaxReservationsPerIP, 8)
	r.MaxReservationsPerASN = or(in.MaxReservationsPerASN, 32)
	return r
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// HostConfig configures NewHost. Zero values mean the default in each
// field's comment.
type HostConfig struct {
	// PrivKey is the device's libp2p key. Required.
	PrivKey crypto.PrivKey
	// Listen multiaddrs (TCP or QUIC v1 over ip4/ip6). nil = DefaultListen;
	// an empty non-nil slice listens nowhere (an outbound-only host).
	Listen []string
	// Announce replaces the addresses the host advertises (observed and
	// listen addresses) with these; relay (/p2p-circuit) addresses are kept.
	// nil = advertise what libp2p finds.
	Announce []string
	// Public runs the services of a community node: circuit relay v2 with
	// RelayLimits, and the AutoNAT service. A public host considers itself
	// publicly reachable from the start.
	Public bool
	// StaticRelays are relays a private host reserves slots at through
	// AutoRelay. Ignored when Public.
	StaticRelays []peer.AddrInfo
	// ForcePrivate makes the host consider itself unreachable at once, so
	// AutoRelay reserves relay slots without waiting for AutoNAT (tests, or
	// a host known to be behind NAT). Ignored when Public.
	ForcePrivate bool
	// ConnLow and ConnHigh are the connection manager's watermarks:
	// 0 = 64 and 192.
	ConnLow, ConnHigh int
	// RelayLimits for the relay service when Public; nil = the defaults
	// documented on RelayLimits.
	RelayLimits *RelayLimits
	// Direct, on a host that is not Public, keeps the host's own
	// addresses from everyone Direct refuses: the host announces only its
	// relay (/p2p-circuit) addresses, so identify and the addresses DHT
	// servers hand out for it never show its IP; a direct connection from
	// a refused peer is refused (it may come through a relay), and hole
	// punching runs only with allowed peers. Give it StaticRelays, or no
	// one can reach the host. nil = everyone may connect directly and the
	// host announces what libp2p finds.
	Direct DirectPolicy
	// NATPortMap asks the router for a port mapping (UPnP, NAT-PMP).
	// Default off.
	NATPortMap bool
	// Logger for the host's own messages; nil discards. (go-libp2p's global
	// logging is routed by the caller.)
	Logger *slog.Logger
	// Stats, when set, counts the resource manager's refusals and what the
	// relay service carries (stats.go). nil = not counted.
	Stats *HostStats
}

// NewHost builds and starts a libp2p host from cfg. It validates every
// multiaddr and returns an error naming the bad one. The caller closes the
// host.
func NewHost(cfg HostConfig) (host.Host, error) {
	if cfg.PrivKey == nil {
		return nil, errors.New("new host: PrivKey is required")
	}
	listen := cfg.Listen
	if listen == nil {
		listen = DefaultListen
	}
	listenAddrs, err := parseListen(listen)
	if err != nil {
		return nil, fmt.Errorf("new host: %w", err)
	}
	announce, err := parseAddrs("announce", cfg.Announce)
	if err != nil {
		return nil, fmt.Errorf("new host: %w", err)
	}
	for i, ai := range cfg.StaticRelays {
		if ai.ID == "" || len(ai.Addrs) == 0 {
			return nil, fmt.Errorf("new host: static relay %d: needs a peer id and at least one address", i)
		}
	}
	low, high := or(cfg.ConnLow, DefaultConnLow), or(cfg.ConnHigh, DefaultConnHigh)
	if low < 0 || high < low {
		return nil, fmt.Errorf("new host: connection watermarks low=%d high=%d: need 0 <= low <= high", low, high)
	}
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("new host: connection manager: %w", err)
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	limits.ProtocolPeerBaseLimit.StreamsInbound = protocolPeerStreamsInbound
	limits.ProtocolPeerLimitIncrease.StreamsInbound = 0
	limits.PeerBaseLimit.StreamsInbound = peerStreamsInbound
	limits.PeerLimitIncrease.StreamsInbound = 0
	limits.TransientBaseLimit.StreamsInbound = limits.SystemBaseLimit.StreamsInbound
	limits.TransientLimitIncrease.StreamsInbound = limits.SystemLimitIncrease.StreamsInbound
	limits.TransientBaseLimit.Streams = limits.SystemBaseLimit.Streams
	limits.TransientLimitIncrease.Streams = limits.SystemLimitIncrease.Streams
	var rmOpts []rcmgr.Option
	relayOpts := []relay.Option{relay.WithResources(cfg.RelayLimits.resources())}
	if cfg.Stats != nil {
		rmOpts = append(rmOpts, rcmgr.WithMetrics(rcmgrReporter{cfg.Stats}))
		relayOpts = append(relayOpts, relay.WithMetricsTracer(relayTracer{cfg.Stats}))
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Scale(rcmgrMemory, rcmgrFDs)), rmOpts...)
	if err != nil {
		cm.Close()
		return nil, fmt.Errorf("new host: resource manager: %w", err)
	}

	opts := []libp2p.Option{
		libp2p.Identity(cfg.PrivKey),
		libp2p.ListenAddrs(listenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.EnableRelay(),
	}
	var factory func([]ma.Multiaddr) []ma.Multiaddr
	if announce != nil {
		factory = announceFactory(announce)
	}
	var gater *directGater
	if cfg.Direct != nil && !cfg.Public {
		gater = &directGater{policy: cfg.Direct}
		inner := factory
		factory = func(in []ma.Multiaddr) []ma.Multiaddr {
			if inner != nil {
				in = inner(in)
			}
			return circuitOnly(in)
		}
		opts = append(opts,
			libp2p.ConnectionGater(gater),
			libp2p.EnableHolePunching(holepunch.WithAddrFilter(punchFilter{cfg.Direct})))
	} else {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	if len(listenAddrs) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	if cfg.NATPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	if factory != nil {
		opts = append(opts, libp2p.AddrsFactory(factory))
	}
	if cfg.Public {
		opts = append(opts,
			libp2p.ForceReachabilityPublic(),
			libp2p.EnableRelayService(relayOpts...),
			libp2p.EnableNATService(),
		)
	} else {
		if cfg.ForcePrivate {
			opts = append(opts, libp2p.ForceReachabilityPrivate())
		}
		if len(cfg.StaticRelays) > 0 {
			opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(cfg.StaticRelays))
		}
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		// libp2p closes the managers it was given when construction fails.
		return nil, fmt.Errorf("new host: %w", err)
	}
	if gater != nil {
		nw := h.Network()
		gater.net.Store(&nw)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Debug("libp2p host started", "peer", h.ID(), "addrs", h.Addrs(), "public", cfg.Public)
	return h, nil
}

// announceFactory advertises the announced addresses instead of the
// discovered ones, keeping relay addresses AutoRelay adds.
func announceFactory(announce []ma.Multiaddr) func([]ma.Multiaddr) []ma.Multiaddr {
	return func(in []ma.Multiaddr) []ma.Multiaddr {
		out := append([]ma.Multiaddr(nil), announce...)
		for _, a := range in {
			if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
				out = append(out, a)
			}
		}
		return out
	}
}

func parseAddrs(what string, ss []string) ([]ma.Multiaddr, error) {
	if ss == nil {
		return nil, nil
	}
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%s address %q: %w", what, s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// parseListen accepts /ip4|ip6/<addr>/tcp/<port> and
// /ip4|ip6/<addr>/udp/<port>/quic-v1, the transports the host runs.
func parseListen(ss []string) ([]ma.Multiaddr, error) {
	addrs, err := parseAddrs("listen", ss)
	if err != nil {
		return nil, err
	}
	for i, a := range addrs {
		if !IsTransportAddr(a) {
			return nil, fmt.Errorf("listen address %q: want /ip4|ip6/<ip>/tcp/<port> or /ip4|ip6/<ip>/udp/<port>/quic-v1", ss[i])
		}
	}
	return addrs, nil
}

// IsTransportAddr reports whether a is /ip4|ip6/<ip>/tcp/<port> or
// /ip4|ip6/<ip>/udp/<port>/quic-v1: an address of one of the transports
// the host runs, with nothing relayed, no DNS name and no peer id.
func IsTransportAddr(a ma.Multiaddr) bool {
	var codes []int
	for _, c := range a {
		codes = append(codes, c.Protocol().Code)
	}
	return len(codes) >= 2 && (codes[0] == ma.P_IP4 || codes[0] == ma.P_IP6) &&
		(len(codes) == 2 && codes[1] == ma.P_TCP ||
			len(codes) == 3 && codes[1] == ma.P_UDP && codes[2] == ma.P_QUIC_V1)
}
