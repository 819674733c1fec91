package p2p

import (
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// HostStats counts what a host's resource manager refused and what its
// circuit relay carried, for an operator's metrics. NewHost feeds the one
// given in HostConfig.Stats; the zero value is ready, its methods are safe
// for concurrent use, and it must not be copied once in use. It holds plain
// counters: the caller decides how to export them (p2p imports no metrics
// library).
type HostStats struct {
	refusals [numRefusals]atomic.Uint64

	relayBytes        atomic.Uint64 // bytes copied between the two ends of circuits, both ways
	relayCircuits     atomic.Int64  // circuits open now
	relayCircuitsAll  atomic.Uint64 // circuits opened
	relayReservations atomic.Int64  // reservations held now
}

// Refusal is how many times the resource manager refused a resource at
// one kind of scope.
type Refusal struct {
	// Resource is "conn", "stream" or "memory".
	Resource string
	// Scope is the kind of scope whose limit refused it:
	//   - "open": a connection or stream as it opened, at the system's or the
	//     transient scope's limits, or (a stream) its peer's;
	//   - "peer": a connection as it was attached to its peer;
	//   - "protocol", "protocol-peer": a stream as its protocol was set, at
	//     the protocol's limits or one peer's share of them;
	//   - "service", "service-peer": the same for a service (relay,
	//     identify, ...);
	//   - "any": memory, refused at any scope.
	Scope string
	Count uint64
}

// The refusals a HostStats counts, in the order Refusals returns them.
const (
	refuseConnOpen = iota
	refuseConnPeer
	refuseStreamOpen
	refuseStreamProtocol
	refuseStreamProtocolPeer
	refuseStreamService
	refuseStreamServicePeer
	refuseMemory
	numRefusals
)

var refusalLabels = [numRefusals][2]string{
	refuseConnOpen:           {"conn", "open"},
	refuseConnPeer:           {"conn", "peer"},
	refuseStreamOpen:         {"stream", "open"},
	refuseStreamProtocol:     {"stream", "protocol"},
	refuseStreamProtocolPeer: {"stream", "protocol-peer"},
	refuseStreamService:      {"stream", "service"},
	refuseStreamServicePeer:  {"stream", "service-peer"},
	refuseMemory:             {"memory", "any"},
}

// Refusals returns every kind of refusal with its count so far, zeros
// included, always in the same order.
func (s *HostStats) Refusals() []Refusal {
	out := make([]Refusal, numRefusals)
	for i := range out {
		out[i] = Refusal{Resource: refusalLabels[i][0], Scope: refusalLabels[i][1], Count: s.refusals[i].Load()}
	}
	return out
}

// RelayStats is what a public host's circuit relay (v2) carried.
type RelayStats struct {
	Bytes        uint64 // bytes relayed, both directions together
	Circuits     int64  // circuits open now
	CircuitsAll  uint64 // circuits opened since the host started
	Reservations int64  // reservations held now
}

// Relay returns the relay's figures; all zero on a host that runs no relay.
func (s *HostStats) Relay() RelayStats {
	return RelayStats{
		Bytes:        s.relayBytes.Load(),
		Circuits:     s.relayCircuits.Load(),
		CircuitsAll:  s.relayCircuitsAll.Load(),
		Reservations: s.relayReservations.Load(),
	}
}

// rcmgrReporter is the resource manager's MetricsReporter over a
// HostStats. The resource manager calls it on every allocation, so the
// Allow methods do nothing.
type rcmgrReporter struct{ s *HostStats }

var _ rcmgr.MetricsReporter = rcmgrReporter{}

func (r rcmgrReporter) BlockConn(network.Direction, bool) { r.s.refusals[refuseConnOpen].Add(1) }
func (r rcmgrReporter) BlockStream(peer.ID, network.Direction) {
	r.s.refusals[refuseStreamOpen].Add(1)
}
func (r rcmgrReporter) BlockPeer(peer.ID)         { r.s.refusals[refuseConnPeer].Add(1) }
func (r rcmgrReporter) BlockProtocol(protocol.ID) { r.s.refusals[refuseStreamProtocol].Add(1) }
func (r rcmgrReporter) BlockService(string)       { r.s.refusals[refuseStreamService].Add(1) }
func (r rcmgrReporter) BlockServicePeer(string, peer.ID) {
	r.s.refusals[refuseStreamServicePeer].Add(1)
}
func (r rcmgrReporter) BlockMemory(int) { r.s.refusals[refuseMemory].Add(1) }
func (r rcmgrReporter) BlockProtocolPeer(protocol.ID, peer.ID) {
	r.s.refusals[refuseStreamProtocolPeer].Add(1)
}

func (rcmgrReporter) AllowConn(network.Direction, bool)      {}
func (rcmgrReporter) AllowStream(peer.ID, network.Direction) {}
func (rcmgrReporter) AllowPeer(peer.ID)                      {}
func (rcmgrReporter) AllowProtocol(protocol.ID)              {}
func (rcmgrReporter) AllowService(string)                    {}
func (rcmgrReporter) AllowMemory(int)                        {}

// relayTracer is the circuit relay's MetricsTracer over a HostStats. It
// replaces go-libp2p's own, which would register with Prometheus' global
// registry, which callsign does not serve.
type relayTracer struct{ s *HostStats }

var _ relay.MetricsTracer = relayTracer{}

func (t relayTracer) ConnectionOpened() {
	t.s.relayCircuits.Add(1)
	t.s.relayCircuitsAll.Add(1)
}
func (t relayTracer) ConnectionClosed(time.Duration) { t.s.relayCircuits.Add(-1) }
func (t relayTracer) ReservationAllowed(renewal bool) {
	if !renewal {
		t.s.relayReservations.Add(1)
	}
}
func (t relayTracer) ReservationClosed(n int) { t.s.relayReservations.Add(-int64(n)) }
func (t relayTracer) BytesTransferred(n int) {
	if n > 0 {
		t.s.relayBytes.Add(uint64(n))
	}
}

func (relayTracer) RelayStatus(bool)                      {}
func (relayTracer) ConnectionRequestHandled(pbv2.Status)  {}
func (relayTracer) ReservationRequestHandled(pbv2.Status) {}
