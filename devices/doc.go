// Package devices keeps one account's devices in step (docs/DEVICES.md).
//
// So far it holds the sync layer (§2.2): the account's own state (contact
// names, trust and flags, settings, claims, the device roster, read marks) as
// registers that every device keeps a copy of. Each write is stamped with a
// Lamport clock and the DeviceID of the device that wrote it; an op applies
// where its stamp is above the one held (last writer wins), except that a
// read mark only moves forward and a revoked device stays revoked. The merge
// is commutative and idempotent, so siblings that exchange ops over their
// ordinary E2E sessions (the durable outbox, acks and mailboxes messages
// use) converge whatever order ops arrive in and however often.
//
// The package imports identity, store and internal/wire (and p2p, for the
// link protocol to come); not msg, dht, call, contacts or node: the node
// wires it to them through Appliers.
package devices
