package p2p

import (
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// DirectPolicy says which peers may hold a direct (not relayed) connection
// to a host that keeps its own addresses to itself (HostConfig.Direct).
type DirectPolicy interface {
	// AllowDirect reports whether p may connect to this host directly and
	// be told its direct addresses. It is called for every new connection
	// and hole punch; it must be fast and safe for concurrent use.
	AllowDirect(p peer.ID) bool
}

// InboundPolicy, implemented beside DirectPolicy, may let in a direct
// inbound connection from a peer AllowDirect refuses: a peer that already
// knows this host's address (a new device of the account, which read it
// from a link code). Hole punching and the dials of this host still follow
// AllowDirect alone.
type InboundPolicy interface {
	AllowInbound(p peer.ID) bool
}

// isCircuit reports whether a is a relayed (/p2p-circuit) address.
func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// circuitOnly keeps the relay addresses of in: a host with a DirectPolicy
// announces nothing else (identify, its signed peer record, and so the
// addresses DHT servers hand out for it).
func circuitOnly(in []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(in))
	for _, a := range in {
		if isCircuit(a) {
			out = append(out, a)
		}
	}
	return out
}

// directGater keeps peers the DirectPolicy refuses off direct connections:
//
//   - an inbound direct connection from such a peer is refused once its
//     handshake shows who it is (it may still come through a relay);
//   - an outbound direct connection to such a peer is refused while the
//     peer holds a relayed connection it opened to us: the dial libp2p's
//     hole punching makes ahead of the punch, which would hand the peer
//     our address. Other outbound dials (DHT servers, relays) go ahead.
//
// Relayed connections are always allowed.
type directGater struct {
	policy DirectPolicy
	net    atomic.Pointer[network.Network] // set once the host exists
}

func (g *directGater) InterceptPeerDial(peer.ID) bool               { return true }
func (g *directGater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (g *directGater) InterceptAccept(network.ConnMultiaddrs) bool  { return true }

func (g *directGater) InterceptSecured(dir network.Direction, p peer.ID, cm network.ConnMultiaddrs) bool {
	if isCircuit(cm.RemoteMultiaddr()) || g.policy.AllowDirect(p) {
		return true
	}
	if dir == network.DirInbound {
		ip, ok := g.policy.(InboundPolicy)
		return ok && ip.AllowInbound(p)
	}
	return !g.reachedUsThroughRelay(p)
}

func (g *directGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// reachedUsThroughRelay reports whether p holds an inbound relayed
// connection to this host.
func (g *directGater) reachedUsThroughRelay(p peer.ID) bool {
	n := g.net.Load()
	if n == nil {
		return false
	}
	for _, c := range (*n).ConnsToPeer(p) {
		if c.Stat().Direction == network.DirInbound && isCircuit(c.RemoteMultiaddr()) {
			return true
		}
	}
	return false
}

// punchFilter lets hole punching run only with peers the policy allows:
// anyone else is sent none of our addresses and none of theirs is dialled.
type punchFilter struct{ policy DirectPolicy }

func (f punchFilter) FilterLocal(p peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	if f.policy.AllowDirect(p) {
		return addrs
	}
	return nil
}

func (f punchFilter) FilterRemote(p peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	if f.policy.AllowDirect(p) {
		return addrs
	}
	return nil
}
