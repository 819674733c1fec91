// Package p2p owns callsign's libp2p host construction and the framing every
// callsign stream protocol uses: length-prefixed frames with size caps,
// per-stream deadlines, request/response helpers that abort blocked I/O when
// their context ends, and a stream-handler wrapper with a per-peer rate
// limit, a concurrency cap and panic-free error handling.
//
// A handler may split its slots by peer (HandlerConfig.Known): known
// peers' streams take slots of their own; every other peer's share a
// smaller pool with a shorter deadline, where a new stream takes the place
// of the one whose peer has sent nothing for the longest. A handler that
// authenticates its peer inside the stream moves it to the known slots
// with Promote. Unknown peers can then never hold a slot a known peer
// needs, and idle streams can't lock anyone out.
//
// p2p must not import badger, pion or any callsign package: it knows
// nothing of handles, storage or media. (go-libp2p itself links pion for
// its WebRTC transport; this package does not enable that transport and
// never imports pion.)
//
// # Host
//
// NewHost builds a host with TCP and QUIC (v1) transports, Noise, yamux,
// identify, a resource manager with explicit limits, a connection manager,
// DCUtR hole punching, and, for a private host given static relays,
// AutoRelay. A public host runs the circuit relay v2 service with the limits
// in RelayLimits and the AutoNAT service. See HostConfig for the defaults.
// Given a HostStats (HostConfig.Stats), the host counts its resource
// manager's refusals by resource and scope and what its relay carries, as
// plain counters the node exports to an operator (p2p imports no metrics
// library).
//
// A private host given a DirectPolicy (HostConfig.Direct) keeps its own
// addresses to itself: it announces only its relay addresses (an address
// factory), a connection gater refuses direct connections from peers the
// policy refuses (and the direct dial hole punching would make to such a
// peer that reached us through a relay), and hole punching exchanges
// addresses only with peers the policy allows. Relayed connections are
// limited (circuit relay v2): a protocol that must work over them opens
// its streams with network.WithAllowLimitedConn, as msg does.
//
// # Frames
//
// Every callsign protocol on a stream exchanges frames:
//
//	frame  = length payload
//	length = unsigned LEB128 varint (1-9 bytes, minimal encoding), the
//	         payload length in bytes
//	payload = length bytes (a protobuf message for callsign protocols)
//
// A reader states its maximum; ReadFrame rejects a length above it with
// ErrFrameTooLarge before allocating, and rejects a non-minimal or
// overlong varint with ErrBadVarint. An empty payload is valid.
//
// # Request/response
//
// Request and Exchange write one request frame, half-close the stream,
// read one response frame and close. Handle serves that pattern; its
// handler returns the response payload or an error, and the stream is reset
// with one of the Code* error codes, which the requester sees through
// CodeOf:
//
//	code   name          meaning
//	0x100  bad-request   the request frame was malformed or refused by the handler
//	0x101  too-large     the request frame exceeded the handler's cap
//	0x102  rate-limited  the peer exceeded its per-peer rate
//	0x103  overloaded    too many streams in flight on this handler, or the
//	                     stream gave way to a newer one from an unknown peer
//	0x104  timeout       the stream's deadline passed
//	0x105  internal      the handler failed (a bug, logged)
//	0x106  closing       the handler is shutting down
package p2p
