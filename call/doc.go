// Package call owns callsign's voice and video calls between accounts
// (DESIGN §7): each call's lifecycle (its one state machine: states,
// transitions, end reasons, the ring timeout, the call log entry), the
// signalling between two nodes, the call policy gate in front of it, the
// choice of direct or relayed media, and the TURN credential protocol
// public nodes serve. The peer connections themselves are media's: a
// media.Call reports what its engine detects (connected and over which
// path, ICE failed, DTLS failed, closed by the remote, no path in time),
// and this package decides what that means for the call. The relay is
// turn's.
//
// It must not import node, api, dht, msg, store or badger. The node hands
// it what it needs through small interfaces declared here: a Signaler that
// carries signals inside the E2E session, a Policy that says who may call,
// and a CallLog that persists Records.
//
// # Using it
//
// One Service per node: New(Config), Start(ctx), Close(). The node calls
// HandleSignal for every decrypted signal; the user calls Dial, Answer,
// Decline and Hangup; OnEvent reports incoming calls and state changes.
// A call goes
//
//	outgoing: calling → ringing → connecting → active → ended
//	incoming:           ringing → connecting → active → ended
//
// and ends exactly once with a Reason: hangup, remote-hangup,
// declined, busy, missed, cancelled, unavailable, failed, ice-failed or
// timeout. One call runs at a time: a second invite gets "busy" and Dial
// fails with ErrInCall.
//
// # The state machine
//
// One pure function (next, machine.go) says what every event does in
// every phase; a Call only feeds it events and carries out the step it
// returns (the new state, the end and its reason, the signal the peer must
// hear), under the call's lock. Its phases are the states above plus
// "answering" (answered, the answer not yet applied; shown as the state
// before it). Its events:
//
//	this end     Hangup, Decline, Answer (and the answer applied or
//	             failed), Fail (a lost browser tab), the invite not
//	             delivered (unavailable), the ring timeout, the service
//	             closing
//	the peer     ringing, accept, decline(declined|unavailable|missed),
//	             busy, cancel[(missed)], hangup[(failed)]
//	media        Connected (connecting → active), ICEFailed (ice-failed),
//	             DTLSFailed (failed), SetupTimeout (timeout), RemoteClosed
//	             (remote-hangup: the peer's DTLS close, which may beat its
//	             hangup signal), and media's events ending (failed)
//
// An event out of place (a second answer, a ringing after the accept, a
// peer's cancel to the caller, anything after the end) changes nothing
// and sends nothing. Hanging up an unanswered call cancels it (caller) or
// declines it (callee); the ring timeout ends it as missed at both ends;
// an end this side detected in media (ice-failed, failed, timeout) tells
// the peer hangup(failed) and forgets the relays' fallback credentials,
// since no path worked. machine_test.go holds the whole table.
//
// # Sending signals
//
// Each call hands its signals to a goroutine of its own, which gives them
// to the Signaler one at a time, in order; SendSignal returns once the
// peer's device has the signal, so the call's state machine never waits
// on the network. Dial returns once the invite is delivered, or the call
// has ended at once as unavailable because the callee's device is
// offline, unreachable or refused the invite (nothing is queued to ring
// later): the caller can't tell that from a policy's refusal. Once a call
// has ended, only the signal that tells the peer (cancel, decline, busy,
// hangup) is still sent, within 2 s; candidates and the like are dropped.
//
// # Security
//
// Signals travel only inside the E2E session between the two accounts, so
// the DTLS fingerprint in each SDP is bound to the identities that session
// authenticated: a relay, the DHT or anyone on the path can't substitute
// their own media endpoint. For every invite the service decodes only the
// fixed header (type and call id, within MaxSignalSize) and asks
// Policy.Check first; a refused caller gets a decline "unavailable" and
// nothing else (it can't tell a refusal from an absent user), the call log
// gets a Blocked record (at most one per caller per 10 s), and the SDP is
// never parsed. An admitted call's offer is read by media.ValidateSDP only
// when the user answers. Calls the policy marks RelayOnly (non-contacts by
// default) and every call when "always relay" is on gather relay
// candidates only, so the other end never learns this node's addresses.
//
// # Signalling wire format
//
// Each signal is one protobuf message (internal/wire, schema in call.proto:
// fields in ascending order, each at most once, minimal varints for tags,
// values and lengths, no zero values or empty strings), at most
// MaxSignalSize bytes. Signals are frames between peers, so they follow
// the compatibility rule of docs/ARCHITECTURE.md ("Wire formats"): an
// unknown field numbered 1..15 is refused, a newer peer's additions
// (fields 16 and up, at most 1 KiB) are skipped, and a signal of a later
// version (field 15) is dropped like an undecodable one:
//
//	field 1 type      varint  required, first: 1 invite, 2 ringing,
//	                          3 accept, 4 candidate, 5 decline, 6 busy,
//	                          7 cancel, 8 hangup
//	field 2 call_id   bytes   required, second: exactly 16 random bytes
//	                          chosen by the caller (text form: 32 hex digits)
//	field 3 sdp       bytes   invite (offer) and accept (answer) only,
//	                          1 to 16384 bytes
//	field 4 candidate bytes   candidate only: one trickled ICE candidate as
//	                          RTCIceCandidateInit JSON, 1 to 1024 bytes
//	field 5 reason    varint  decline: 1 declined, 2 unavailable, 3 missed
//	                          (required); cancel: 3 missed (optional);
//	                          hangup: 4 failed (optional); others: absent
//	field 15 version  varint  absent: 1, the only version so far
//	fields 16 and up          additions, skipped when unknown
//
// The exchange:
//
//	caller                                 callee
//	invite(offer) ───────────────────────> policy; busy?; ring
//	              <─────────────────────── ringing | decline(unavailable) | busy
//	candidate ───────────────────────────> (held until answered)
//	              <─────────────────────── accept(answer) | decline(declined)
//	              <─────────────────────── candidate
//	cancel ──────────────────────────────> (caller gave up while ringing)
//	hangup ──────────────────────────────> (either side, any time)
//
// Candidates flow both ways from the moment each side starts gathering;
// those that arrive before the answer is applied are held (at most 64).
// When nothing answers within Config.RingTimeout both ends give up: the
// caller sends cancel(missed), the callee decline(missed), and both record
// ReasonMissed. Signals for an unknown call id, from another account
// than the call's peer, or out of place for the call's state are ignored
// (logged at debug); undecodable ones are dropped.
//
// # TURN credentials: /callsign/turn/2.1.0 (and 2.0.0)
//
// A public node (Config.TURN set) serves short-lived credentials for its
// TURN server to its members. The requester opens a stream, writes one
// request frame (p2p framing, at most 64 bytes) and half-closes; the
// server answers one frame of at most 2 KiB and closes:
//
//	request
//	field 1 account  bytes   required, alone: the requester's account id
//	                         in its canonical text form ("csa1…", 42 bytes)
//	response
//	field 1 username bytes   required, turn's "<expiry-unix>:<user>" form;
//	                         the user is the requester's peer id, so the
//	                         TURN server's per-user caps apply per peer
//	field 2 password bytes   required, at most 128 bytes
//	field 3 expires  varint  required, unix seconds
//	field 4 url      bytes   1 to 4 times: "turn:" or "turns:", a
//	                         literal IP and port, optional
//	                         "?transport=udp|tcp"
//	field 5 tls pin  bytes   optional, last, exactly 32: the SHA-256 of
//	                         the certificate of the "turns:" URL's server
//
// The relay's TURN listens on UDP and, on a public node, also on TCP and
// TLS (turn's package doc), so a member on a network that blocks UDP still
// reaches it. Its TLS certificate is often self-signed: the member's media
// engine accepts exactly the certificate field 5 names, which is as
// trustworthy as the response itself, read from the relay's node over a
// libp2p connection authenticated by its peer id. Request and response
// skip a newer peer's additions (fields 16 and up) like signals; the
// protocol id is their version. 2.0.0 is the same
// exchange without field 5 and without "turns:" URLs (its decoder refuses
// both); a relay serves both, and a member asks 2.0.0 only of a relay that
// does not speak 2.1.0.
//
// Who is served: a member (Config.TURNMembers decides), whose stream
// arrives on a direct (not relayed) libp2p connection, at most 6 requests
// at once and then one per 2 s per peer (beyond it the stream is reset
// with p2p.CodeRateLimited). Anyone else's stream is reset with
// p2p.CodeBadRequest and gets nothing. Credentials are good for the TURN
// server's CredentialTTL (10 min by default); the TURN server itself
// refuses expired and forged ones.
//
// A member of a public node is an account whose identity record, as the
// DHT holds it, lists the node among its relays (a multiaddr ending in
// /p2p/<the node's peer id>), asking from a peer that the same record
// certifies as one of the account's devices. Every node that joins
// through a public node (`callsign up --bootstrap`) lists it that way in
// the record it publishes, so a member needs no extra step; a stranger
// who merely connects has no such record, and can't borrow a member's,
// since the peer id it connects with must be one of that member's
// devices (the connection's Noise handshake proves the peer's key).
// Membership is open, as communities are: anyone may publish a record
// naming the node and so become a member. What it buys is that every
// allocation belongs to an account that chose this community in a signed,
// published record, instead of to any peer id that connects.
// The node (node/members.go) looks the account up on the first request
// (at most 8 lookups at once), remembers a member for an hour, never
// beyond the record's or the device certificate's expiry, and serves a
// remembered member's streams from a pool strangers can't fill.
//
// A calling or answering node asks up to three of Config.Relays() in
// parallel (3 s at most) afresh for every call, before it creates the peer
// connection, and passes the credentials as the call's ICE servers, so
// relay candidates are gathered at once alongside host and
// server-reflexive ones, and a relay-only call has its relay from the
// start. Asking per call means a relay that restarted on other ports or
// with another secret is used as it is now, never through credentials for
// what it was. The last credentials from each relay are kept only as a
// fallback for a request that fails (rate limit, no answer in time) other
// than by refused membership, until 2 min before they expire, and all are
// forgotten when a call ends because no path worked.
//
// # Goroutines
//
// The service runs one goroutine for inbound signals (HandleSignal only
// queues, at most 256) and one per call, which sends that call's signals
// in order, forwards its candidates, feeds what media detects and the ring
// timer to the state machine, and tears the call down (closing its
// media.Call, which the peer hears as a DTLS close). Close ends every call, sending a hangup
// (within 2 s), and waits for all of them.
package call
