// Package turn is the TURN relay a public callsign node runs for calls
// (DESIGN §7): a pion/turn server with short-lived REST-style credentials,
// per-IP and per-user limits, and tuned sockets.
//
// It owns the relay's listeners, its credential scheme and its abuse
// limits. It must not import libp2p, badger, or other callsign packages:
// the node hands credentials to callers over libp2p and wires the URLs
// into media's ICE configuration.
//
// # Credentials (the TURN REST API convention, coturn's use-auth-secret)
//
//	username = <expiry-unix-seconds> ":" <user id>
//	password = base64std(HMAC-SHA1(secret, username))
//	key      = MD5(username ":" realm ":" password)   (RFC 8489 long-term)
//
// The expiry is 1 to 12 decimal digits without a leading zero; the user id
// is 1 to 128 characters of [A-Za-z0-9._~+/=@_-] (Credentials replaces any
// other id by "h-" and a hash of it). The server accepts a new allocation
// only if the realm is its own, the username parses, now < expiry <=
// now + CredentialTTL + 1 min, and the request's MESSAGE-INTEGRITY verifies
// under the key (pion/stun compares in constant time). Refresh,
// CreatePermission and ChannelBind on an existing allocation of the same
// user id also accept a username up to RefreshGrace past its expiry, so a
// call outlives its credential. Passwords and keys are never logged.
//
// # Limits
//
// Allocations are capped per client IP, per user id and in total, and new
// ones are rate-limited per IP by a token bucket (refusal: 486 Allocation
// Quota Reached). Each allocation may permit at most
// MaxPermissionsPerAllocation peer IPs (403) and bind at most
// MaxChannelsPerAllocation channels (508 over UDP; a TURN-over-TCP client
// exceeding it is disconnected). Peers on loopback, unspecified or
// multicast addresses are refused unless AllowLoopbackPeers is set. TCP
// relays (RFC 6062) are not offered. TURN over
// TCP connections are capped in total and per IP and closed after 11 min
// of silence.
//
// # Performance
//
// Listener and relay sockets get 4 MiB buffers (the default ~200 KiB queue
// overflows under bursts), and on Linux the UDP port is served by several
// SO_REUSEPORT sockets, each read by its own pion goroutine. A classic BPF
// program picks the socket by client IP, because pion keeps one allocation
// table per socket and an RTP/RTCP port-pair reservation arrives from two
// ports of one host. See docs/benchmarks/turn.md for the measurements
// against coturn (bench/turn/run.sh).
package turn
