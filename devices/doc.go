// Package devices keeps one account's devices in step (docs/DEVICES.md).
//
// It holds the sync layer (§2.2): the account's own state (contact
// names, trust and flags, settings, claims, the device roster, read marks) as
// registers that every device keeps a copy of. Each write is stamped with a
// Lamport clock and the DeviceID of the device that wrote it; an op applies
// where its stamp is above the one held (last writer wins), except that a
// read mark only moves forward and a revoked device stays revoked. The merge
// is commutative and idempotent, so siblings that exchange ops over their
// ordinary E2E sessions (the durable outbox, acks and mailboxes messages
// use) converge whatever order ops arrive in and however often.
//
// It also holds linking (§1): the link code (linkcode.go, "callsign:link/"
// + base32 + checksum, like p2p/invite's join code) and the protocol
// /callsign/link/1.0.0 (link.go) by which an existing device E hands the
// account to a new device N. E's Linker holds one PendingLink at a time,
// in memory; N runs Join with the code. N proves the code's secret (the
// code is spent then; three wrong proofs spend it too), the two run a
// committed X25519 exchange bound to both peer ids (linkcrypto.go), and a
// person confirms the same six-digit SAS on both screens before E seals the
// account to N. What the account, N's answer and the history chunks hold is
// opaque here: the node supplies and checks them through LinkOffer and
// JoinConfig. Frames and limits are in linkframe.go and link.proto.
//
// And it holds the backup file's container (backup.go, §5): items sealed
// in chunks under a key from the passphrase by Argon2id, with a header
// checked before Argon2id runs and an End that counts and hashes the items,
// so a restore can authenticate the whole file before it writes anything.
// What the items hold is the node's.
//
// The package imports identity, store, internal/wire, internal/textcode,
// p2p (its frames and reset codes) and p2p/invite (its address check) and
// libp2p's core types; not msg, dht, call, contacts, node, api or pion
// directly: the node wires it to them through Appliers, the link's
// callbacks and by registering Linker.ServeStream.
package devices
