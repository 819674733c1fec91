// Package turn is the TURN relay a public callsign node runs for calls
// (DESIGN §7): a pion/turn server over UDP, TCP and TLS with short-lived
// REST-style credentials, per-IP and per-user limits, and tuned sockets.
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
// # Transports
//
// UDP always; with ListenTCP also TURN over TCP ("turn:…?transport=tcp")
// and with ListenTLS TURN over TLS ("turns:…?transport=tcp", on 443 where
// the operator can, since that port gets through networks that block UDP
// and everything but the web). The relayed side is UDP in every case. The
// TLS certificate is the operator's, or a self-signed one (a node keeps it
// in its data directory, LoadOrCreateCertificate): members do not check a
// chain but pin the certificate's SHA-256, which they get with their
// credentials over the libp2p connection to the relay's node, already
// authenticated by its peer id. A connection whose TLS handshake fails or
// takes over 10 s is closed and frees its slot.
//
// # Limits
//
// The numbers are sized for real clients. A member's call gathers one
// allocation per TURN URL (UDP, TCP, TLS: 3), and coturn's uclient-style
// clients take two per client (an RTP/RTCP pair), so one credential (one
// member device) may hold 32 (Config.MaxAllocationsPerUser): 10 calls'
// gatherings or 16 pair clients, which also covers a node that crashed
// and called again before its old allocations expired. One IP may hold
// 256 (MaxAllocationsPerIP): members share public IPs behind home,
// office, campus and carrier-grade NATs, and the per-user cap, not the
// per-IP one, is what stops one member. The server holds at most 4096
// (MaxAllocations: one UDP socket each), and each IP may start 10 a
// second after a burst of 30 (AllocationRate, AllocationBurst: three
// calls' gatherings at once). Refusals are 486 Allocation Quota Reached.
//
// An allocation a client stops refreshing (a node that crashed or lost its
// network without deallocating) ends after AllocationLifetime, 10 min by
// default, or after the lifetime the request named (pion caps it below
// 1 h; pion's client, Chrome and Firefox name none), and frees its quota
// then: no restart is needed to let members back in. Stats reports the
// live allocations and the limits (callsign status shows them), and the
// bytes the relay sockets carried each way (counted as they pass through
// the socket each allocation gets from the relay address generator; the
// node exports them as metrics).
//
// New allocations are rate-limited per IP by a token bucket. Each
// allocation may permit at most MaxPermissionsPerAllocation peer IPs (403)
// and bind at most MaxChannelsPerAllocation channels (508 over UDP; a
// TURN-over-TCP client exceeding it is disconnected). Peers on loopback,
// unspecified or multicast addresses are refused unless AllowLoopbackPeers
// is set. TCP relays (RFC 6062) are not offered. TURN over TCP and TLS
// connections are capped in total and per IP (1024 and 128) and closed
// after 11 min of silence.
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
