// Package msg owns end-to-end encrypted message delivery between accounts:
// the /callsign/msg/1.0.0 and /callsign/prekey/1.0.0 stream protocols, the
// durable outbox with retries, the recipient's dedup and group commit, read
// receipts, and this device's e2e prekeys (rotation, one-time prekeys).
//
// msg builds on e2e (PQXDH and the Double Ratchet), store (every state
// change is one badger transaction), p2p (framing, handlers) and identity
// (accounts, device certificates). It must not import dht, node, api,
// media, badger or pion: the node resolves accounts (Directory) and decides
// who may message (Policy) and passes both in.
//
// # Delivery guarantees
//
// Send writes the message (state queued) and queues it in one transaction
// and returns; the Sends waiting together share one transaction (group
// commit). A text message waits in the outbox as its own index entry, which
// holds the envelope (store.Tx.InsertQueued; the ack rewrites it with
// Dequeue), so queuing and acknowledging write one entry each; control
// messages (read receipts, call signals) have outbox entries. When the peer's session is in memory and
// nothing older waits to be sealed, the message is sealed in that same
// transaction: message, sealed Deliver frame and the ratchet state it
// advanced commit together, and the frame stays in memory so sending it
// reads nothing back (SendSignal seals a call signal the same way).
// Otherwise (no session yet, older entries, a restart) the per-peer
// sender goroutine seals queued entries lazily, in queue order, once:
// the ratchet state and the sealed frames of a batch
// are written in one transaction. Either way a crash never desynchronises
// a session, and every retry resends the same bytes. The sender applies
// the acks that arrived together in one transaction. The recipient acknowledges a frame only
// after the message (whose index entry is its seen id), the conversation and
// the ratchet state are committed in one transaction; it deduplicates by
// message id before decrypting, with one read (store.Tx.IDUse), so a
// message is never shown twice. Unacknowledged entries are
// retried with exponential backoff (Config.RetryMin..RetryMax, ±20%
// jitter); a peer connecting, or Kick, retries at once. States:
// queued → sent (written to the stream) → delivered (acked) → read (read
// receipt), or failed (refused by the recipient; not retried).
//
// # Wire: /callsign/msg/1.0.0
//
// The sender opens a stream (allowed over limited, relayed connections)
// and writes Deliver frames; the recipient answers each with an Ack frame,
// in the same order. Frames are p2p frames (uvarint length, payload) whose
// payload is protobuf wire format, written and read by hand: fields in
// ascending order, each at most once, minimal varints, no zero values
// encoded, no unknown fields, so every message has one byte form. A frame
// above the cap (MaxMessage + the e2e and Deliver overhead, about 68 KiB by
// default) or one that does not parse resets the stream.
//
//	Deliver (sender → recipient)
//	field 1  id          bytes   16 random bytes, the message id
//	field 2  sender      bytes   32 bytes, the sender's Ed25519 account key
//	field 3  cert        bytes   the sender's device certificate (identity.DeviceCert);
//	                             its peer id must be the stream's remote peer
//	field 4  kind        varint  1 initial, 2 ratchet (a text message), 3 receipt
//	field 5  ciphertext  bytes   the e2e message; associated data
//	                             "callsign/v1/msg" || 0x00 || id || kind
//
//	Ack (recipient → sender)
//	field 1  id      bytes   16 bytes, the Deliver's id
//	field 2  status  varint  1 stored, 2 duplicate, 3 refused
//	field 3  reason  bytes   UTF-8, at most 128 bytes; only with refused
//
// Inside the ratchet, the plaintext is a Content:
//
//	field 1  kind     varint  1 text, 2 read receipt
//	field 2  seq      varint  text: the sender's per-conversation sequence
//	field 3  sent_at  varint  text: the sender's clock, unix nanoseconds
//	field 4  body     bytes   text: the message (absent when empty)
//	field 5  ids      bytes   receipt, repeated 1..512 times: 16-byte ids read
//
// The recipient refuses (Ack refused, nothing stored, stream kept) a frame
// whose certificate does not verify or is for another peer or account, that
// does not decrypt (tampered, replayed, unknown prekey) or whose Content is
// malformed. A blocked sender (Policy Drop) gets "stored" and nothing is
// stored. A sender that is not a contact (Policy Request) lands in a
// conversation flagged as a request. Read receipts are sent only to
// contacts (Policy Deliver).
//
// Each remote peer has a token bucket of frames (Config.PeerRate,
// PeerBurst); beyond it the recipient stops reading that peer's streams, so
// a flood costs it bounded memory: at most maxStreamsPerPeer streams per
// peer, each holding one read buffer and one batch of at most 64 frames or
// 512 KiB.
//
// # Wire: /callsign/prekey/1.0.0
//
// Before starting a session the sender asks the recipient's device for a
// bundle with one-time prekeys, one request frame and one response frame
// (p2p.Request), and falls back to the bundle published in the identity
// record when the device can't be reached:
//
//	PrekeyRequest
//	field 1  account  bytes  32 bytes, the account key the requester expects
//
//	PrekeyResponse
//	field 1  bundle   bytes  e2e.MarshalBundle, at most e2e.MaxBundleSize
//
// The device marks the one-time prekeys issued and persists that before it
// answers, so no two requesters get the same ones. Requests are limited to
// 2 per second per peer (burst 10).
//
// # Prekeys
//
// The prekey state lives in store Secrets.Prekeys. Signed and ML-KEM
// prekeys rotate every e2e.PrekeyRotation (checked hourly and at Start);
// BundleChanged then fires so the node republishes the identity record.
// One-time prekeys are topped up to 50 more when fewer than 20 remain.
package msg
