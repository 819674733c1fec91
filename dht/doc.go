// Package dht is callsign's global address book: the record types, their
// codecs, validators and selectors, the incumbent guard, resolution,
// publish-and-confirm, republishing, replication to peers that become
// closest, and the resolve cache, on our own kad-dht network (protocol
// /callsign/kad/1.0.0). The threat model (Sybil and eclipse, what the rules
// assume and what they cost an attacker) is in docs/ADDRESSBOOK.md.
//
// It imports identity and libp2p (kad-dht, multistream-select) only. It
// must not import badger, pion or any other callsign package (messaging,
// media, storage belong to others; the node wires them together).
//
// # API
//
//	New(Config) (*DHT, error); (*DHT).Start(ctx) error; (*DHT).Close() error
//	(*DHT).Resolve(ctx, name) (*Resolution, error)       // "@alice", "alice~k3x9q2mf7v", "csa1..."
//	(*DHT).ResolveIdentity(ctx, identity.AccountID) (*IdentityRecord, error)
//	(*DHT).ClaimHandle(ctx, key, name, prev *HandleClaim) (*ClaimResult, error)
//	(*DHT).PublishIdentity(ctx, key, *IdentityRecord) (*IdentityRecord, error)
//	(*DHT).SetOwned(key, *IdentityRecord, []HandleClaim); (*DHT).OwnedClaims(); (*DHT).Republish(ctx)
//	(*DHT).Keep(key string, raw []byte) error               // a public node republishing members' records
//	(*DHT).Presign() ([]byte, error); (*DHT).SetHandoff(fn); (*DHT).HandOff(ctx) // the owner's schedule for keepers
//	(*DHT).AcceptKeep(ctx, req []byte) (int, error); (*DHT).KeptMembers() int    // the keeper's side (keep.go)
//	(*DHT).RoutingTableSize() int; (*DHT).FindPeer(ctx, peer.ID); (*DHT).Refresh(ctx) // peer routing
//	(*DHT).Requests() []RequestCount; (*DHT).Records(ctx) (Records, error) // for metrics (stats.go)
//
// # Records
//
// Identity record, at /csid/<account-id>: the account key, seq, issued and
// expires (at most 7 days after issued, and not more than 7 days plus clock
// skew after the validator's now), 1 to 8 device certificates of the
// account (valid now, no two with one peer id, X25519 key or
// identity.DeviceID), the E2E prekey bundle (opaque, at most 4 KiB), up to
// 8 mailbox and 8 relay multiaddrs, a display name (at most 64 bytes of
// UTF-8 without control characters), up to 16 claimed handles (normalised,
// no duplicates) and up to 8 attestations of at most 512 bytes. At most 16
// KiB encoded. Select: highest seq, then later issued, then the smaller
// encoding.
//
// The identity record has two kinds, at the same key and under the same
// signature label (docs/DEVICES.md §0.3). Kind 1 is the one above: one
// prekey bundle for all devices. Kind 3, which an account publishes once
// it has linked a second device, carries instead a bundle per device (each
// device's certificate and bundle in a DeviceEntry, the bundle opaque and
// at most 1,600 bytes, entries in ascending DeviceID order) and the
// DeviceIDs of up to 32 revoked devices (ascending, none of a listed
// device). IdentityRecord.Bundles is set exactly for kind 3;
// IdentityRecord.Bundle reads a device's bundle in either. Select orders
// both kinds by the rule above, so whichever has the higher seq wins. A
// kind above 3 is refused with an error that wraps internal/wire's
// ErrNewerVersion ("update callsign"). Nodes older than kind 3 refuse it as
// malformed: they don't store it, can't resolve the account from it, and
// keep serving its last kind-1 record until that expires; an older keeper
// refuses a schedule holding kind-3 records.
//
// Handle record, at /csname/<identity.HandleKey(name)> (a self-certifying
// name "alice~k3x9q2mf7v" at /csname/<name> itself, since its suffix must
// not be folded): the normalised name, owner key, seq, claimed_at (first
// claim, kept across republishes), issued, expires and the proof-of-work
// nonce. At most 1 KiB. Valid when the signature verifies, the name
// normalises to itself and maps to the key the record is stored under (so a
// record or its signature can't be replayed under another name), claimed_at
// <= issued <= now + 2 min, issued < expires <= issued + 7 days, now <
// expires, and either identity.VerifyHandlePoW holds (verified triples are
// cached in a bounded LRU) or, for a self-certifying name,
// identity.VerifySelfCert holds and the nonce is 0.
//
// # Wire format
//
// Protobuf wire format, written and read with internal/wire; the schema is
// records.proto. The DHT value is an Envelope:
//
//	Envelope         1 payload bytes (required)   2 signature bytes (required, <= 128)
//	IdentityPayload  1 kind = 1   2 account bytes   3 seq   4 issued   5 expires
//	                 6 devices bytes* (1..8, each <= 1024, identity.DeviceCert)
//	                 7 prekeys bytes (<= 4096)   8 mailboxes bytes* (<= 8)   9 relays bytes* (<= 8)
//	                 10 display_name string (<= 64)   11 handles string* (<= 16)
//	                 12 attestations bytes* (<= 8, each <= 512)
//	IdentityPayloadV2  1 kind = 3   2..5 as kind 1
//	                 6 devices DeviceEntry* (1..8, each <= 2048, ascending DeviceID)
//	                 7 revoked bytes* (0..32 identity.DeviceIDs of 8 bytes, ascending)
//	                 8..12 as kind 1
//	DeviceEntry      1 cert bytes (required, <= 256, identity.DeviceCert)   2 bundle bytes (required, <= 1600)
//	HandlePayload    1 kind = 2   2 name string   3 owner bytes   4 seq   5 claimed_at
//	                 6 issued   7 expires   8 pow_nonce
//
// Integers are varints; times are unix milliseconds. The signature is the
// account key's over the exact payload bytes, with label
// identity.LabelIdentityRecord or identity.LabelHandleRecord. Decoding is
// strict so every record has exactly one encoding: fields in ascending
// order, a singular field at most once and never with its zero value,
// repeated fields contiguous with non-empty elements, no unknown fields,
// minimal varints (tags, values, lengths), the kind first, every length
// within its cap, multiaddrs in canonical form. Records are signed, so the
// compatibility rule of docs/ARCHITECTURE.md ("Wire formats") keeps them to
// one byte form: no field is skipped, not even one in the additions range
// that frames between peers skip; a new field takes a new record kind (a
// new value of field 1), which older nodes refuse to store. Keep requests
// (below) are signed and strict the same way.
//
// # Incumbent guard
//
// A storing node refuses a handle record when the record it stores for the
// name is valid (or expired less than Config.Grace ago) and has another
// owner, or has the same owner and a higher seq. kad-dht's Select can't do
// this: it is stateless, sees two byte strings, and its callers pass them
// in different orders. So the refusal lives in a wrapper of the datastore
// kad-dht stores values in (guard.go), which has the stored record in hand;
// the refused PUT_VALUE fails and its stream is reset.
//
// A node that stores no record for the name (it joined after the claim, or
// became one of the closest when others left) asks the network first: a
// lookup of the key over the 2K = 40 closest peers (seeded with the peers
// it is connected to, bounded by the per-request timeout, each of its
// requests by a third of that, so that a peer that takes requests and never
// answers is a failed peer rather than a check that never ends). It refuses the
// record (ErrIncumbent) when valid records of other owners, unexpired or
// within grace, are found and are not outnumbered by the incoming owner's;
// a first claim finds none, and the incumbent's record reaching a node
// that became one of the closest finds its own holders in the majority. A
// lookup that does not finish in time refuses (ErrBusy: a partial view may
// be the attacker's servers alone, which answer first); one with no peer to
// ask accepts. Refusals are remembered for a minute, concurrent checks of
// one owner's record share one lookup, and at most 8 run at once (ErrBusy
// beyond). A PUT_VALUE therefore waits up to twice the per-request timeout
// for its answer, and a claim tries the peers that failed once more. The
// check costs a first record about one lookup: publish-and-confirm of a new
// claim in the 100-node simulation (BenchmarkPublishConfirm) takes ~8.8
// round trips instead of ~4.7; a republish to peers that hold the record,
// and every resolve, cost what they did.
//
// Select for handles orders by (claimed_at ascending, owner, seq
// descending, issued descending, encoding): deterministic for any argument
// order, and right in an honest network, but claimed_at is self-asserted
// and can be backdated, so nothing relies on Select: the guard keeps names
// with their incumbents and the read resolves them.
//
// # Resolution
//
// Resolve never uses kad-dht's GetValue. It runs its own iterative lookup:
// GET_VALUE (kad-dht's pb.Message) to up to 20 peers at a time; each answer
// carries the peer's record and closer peers; the lookup ends when the K =
// 20 closest peers that answer have all answered (or the deadline passes).
// Failed or malformed answers count as no answer: an answer must echo the
// request's type and key, carry a record only under that key, and fit in
// 128 KiB; every record is validated here. The local node's own record
// counts when the node is among the K closest, and so do the records of
// peers that answered on the way but ended up farther than the K closest.
// The rule over the valid records: StatusOK when they all name one owner,
// StatusConflict when they name two or more, whatever the counts (an
// incumbent outnumbered by servers that joined after its claim is still the
// incumbent, and a reader can't tell which side that is: it takes an
// attacker every one of the closest peers to take a name, and one to make
// it a visible conflict), StatusExpired when every record found has
// expired, StatusNotFound otherwise.
//
// Our GET_VALUE and PUT_VALUE requests go through the DHT's own sender
// (sender.go), not kad-dht's: one stream per request, opened on the network
// without waiting for identify on a new connection (multistream-select for
// /callsign/kad/1.0.0 travels lazily with the request), so asking a peer we
// are not connected to costs one round trip instead of two, and two
// lookups asking the same peer don't queue behind each other. Each request
// has a deadline (5 s) and the stream is reset when it passes.
//
// The owner's identity record needs no majority (only the account key signs
// one; the highest valid seq wins). Its lookup starts as soon as the first
// signed handle record arrives (the tally checks its proof of work later,
// and the lookup is redone for the majority owner if they differ), from
// the routing table and the peers that have answered the handle lookup so
// far. It answers once 3 peers (the local store counting as one) have
// returned valid records: the highest seq among them. The lookup runs on to
// the K closest in the background (at most 16 at a time, each bounded by
// QueryTimeout, owned by the DHT and cancelled by Close) and caches the
// highest seq it finds, so a stale record held by a few peers is replaced
// within a round trip or two; a cached handle resolution answers with the
// newer identity. With 16 running already, the lookup simply ends at the
// quorum. ResolveIdentity works the same way. The proof of work of each
// distinct handle record (up to 4 per Resolve) is checked as the record
// arrives, in parallel with the lookup, so the tally finds it verified.
//
// # Publishing
//
// kad-dht's PutValue reports success even when every peer refused, so
// ClaimHandle and PublishIdentity put to the K closest peers found by the
// lookup and read the record back (a claim reads it only from the peers
// that did not take it: a peer that answered the PUT_VALUE stored it, as a
// refusal resets the stream); a claim holds only when the
// read shows our account and no other. A new claim looks first and puts
// nothing when another owner's record (unexpired or within grace) is found.
// A claim we hold (prev, or our record on the network) is put whatever the
// lookup shows, to the peers that are the K closest now, and is kept on a
// conflict: the owner's node never gives up its name because someone
// else's record is seen; it logs the conflict and goes on republishing. The
// proof of work is solved only for a new claim; HandleClaim carries the
// nonce so the node can republish without solving again. kad-dht never
// republishes: the DHT republishes the records handed to SetOwned every
// RepublishInterval (default 12h), re-signed with the next seq and fresh
// times, and at once when the node regains peers after having none
// (reconnect.go). kad-dht drops a stored record MaxRecordAge after it
// arrived; that age is at least MaxTTL + Grace + 1h, so no valid record is
// dropped early. Records are stored in Config.Datastore (a public node's is
// on disk, package diskstore; the default is in memory). Records valid 72h from issue
// by default; a name nobody republishes expires, and after the 24h grace
// any other account can claim it.
//
// # Kept records
//
// A member away for up to KeepHorizon (90 days) stays resolvable while one
// of its community nodes is up, and the account key never leaves the
// member (keep.go; dates and rules in docs/ADDRESSBOOK.md). After every
// publication the owner presigns a schedule: for each key, one record
// every KeepStep (6 days) valid MaxTTL, none past 90 days, seqs above
// everything published; the node hands it to its keepers (a KeepRequest
// signed by the account key, strictly decoded, at most 1 MiB). A keeper
// checks every record as of its issue time, refuses backdated (signed
// more than KeepBackdate ago), out-of-window, foreign and stale schedules,
// stores it in its datastore under /cskeep/<account-id> (at most
// MaxKeepMembers), and every minute publishes each key's latest record
// whose window has started, republishing it with its own.
//
// # Replication
//
// Records follow the peers closest to their keys (replicate.go). Every
// ReplicateInterval (default 1m) the DHT compares its routing table with
// the last pass's; for each peer that is new and among the K nearest to
// the key of a record it has: a record it owns or keeps (Keep) is looked up
// again and put to every one of the K closest that answered without it; a
// record it stores for others is put to the new peer, when the node is
// among the K nearest itself (Kademlia's rule for a joining node). Peers
// that failed a push are tried on the next passes, up to 5.
//
// # Cache
//
// Resolutions are cached in a bounded LRU, 1 minute for found names and
// 10 seconds for the rest; a cached Resolve takes microseconds.
package dht
