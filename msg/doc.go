// Package msg owns end-to-end encrypted message delivery between accounts:
// the /callsign/msg/1.1.0 (and 1.0.0), /callsign/signal/1.0.0 and
// /callsign/prekey/1.0.0 stream protocols, the durable outbox with
// retries, the call signals' lane beside it, the recipient's dedup and
// group commit, read receipts, the limits on what strangers may leave
// (message requests, first-contact stamps, stream slots), and this
// device's e2e prekeys (rotation, one-time prekeys).
//
// msg builds on e2e (PQXDH and the Double Ratchet), store (every state
// change is one badger transaction), p2p (framing, handlers) and identity
// (accounts, device certificates). It must not import dht, node, api,
// media, badger or pion: the node resolves accounts (Directory) and decides
// who may message (Policy) and passes both in.
//
// # Storage
//
// msg owns its stored data: conversations, messages and their index, the
// queued messages' copies, the outbox of control messages, the seen ids and
// the sessions (store.go, queue.go), their encodings (storecodec.go, spec
// comments there; the key layout in store/doc.go) and their check for
// `callsign store verify` (Check). It keeps them in the keyspace the store
// hands it in each transaction, store.Tx.Space(store.SpaceMsg), through
// the small KV interface (Get, Has, Set, Delete, Scan over sealed raw values):
// Data, from In(tx), is msg's data in that transaction, so a message, the
// ratchet state it advanced and the prekeys it used commit together. The
// node's backend reads conversations and messages the same way
// (msg.In(tx).Messages). Stored values keep one byte form; a change takes
// a store schema version with a migration in store, which keeps the forms
// it converts.
//
// # Delivery guarantees
//
// Send writes the message (state queued) and queues it in one transaction
// and returns; the Sends waiting together share one transaction (group
// commit). A text message waits in the outbox as a copy for the peer's
// device holding the envelope, named by its index entry (Data.InsertQueued;
// the ack deletes the copy and rewrites the entry, Data.Dequeue); read
// receipts have outbox entries (call signals have none: see "Call
// signals"). When the peer's session is in memory and nothing older waits
// to be sealed (and, for a peer in a call, fewer than 512 sealed messages
// wait for acks), the message is sealed in that same transaction: message, sealed Deliver frame and
// the ratchet state it advanced commit together, and the frame stays in
// memory so sending it reads nothing back.
// Otherwise (no session yet, older entries, a restart) the per-peer
// sender goroutine seals queued entries lazily, in queue order, once:
// the ratchet state and the sealed frames of a batch
// are written in one transaction. Either way a crash never desynchronises
// a session, and every retry resends the same bytes. The sender applies
// the acks that arrived together in one transaction. The recipient acknowledges a frame only
// after the message (whose index entry is its seen id), the conversation and
// the ratchet state are committed in one transaction; it deduplicates by
// message id before decrypting, with one read (Data.IDUse), so a
// message is never shown twice. Unacknowledged entries are
// retried with exponential backoff (Config.RetryMin..RetryMax, ±20%
// jitter); a peer connecting, or Kick, retries at once. States:
// queued → sent (written to the stream) → delivered (acked) → read (read
// receipt), or failed (refused by the recipient, Event.Reason says why;
// not retried: it leaves the outbox). One refusal is retried: a device
// that can't open the session its frames were sealed in (it does not know
// the prekeys the session started from, or lost it) has the sender drop
// that session, unseal what waits for the device and start a new one from
// its bundle, at most once per 10 minutes per device (outbox.go,
// restartSession).
//
// # An account's devices
//
// A message goes to each device of its recipient's record (a lane per
// device, lanes.go) and is delivered at the first device's ack. The
// sender's other devices (siblings) get a copy of what it sends (Content
// kind 4), hear what it read (kind 5), and carry the account's shared
// state as sync batches that msg moves without reading (kind 6: QueueSync,
// Config.OnSync, sync.go). A text names the recipient's devices it went to
// (Content addition 16); a device that knows a sibling the sender left out
// relays the text to it (kind 7, repair.go). Kinds 4 to 7 are taken only
// from a device of this account, and only its devices send them.
//
// # Group chats
//
// A group's operations, sender keys and messages travel as group carriers
// (Content kind 8; QueueGroup, Config.OnGroup; groupcarrier.go): bytes msg
// does not read, queued in one transaction as a control message for each
// device of each member account (out/<id>\0<dev>, a fresh id per account),
// acknowledged and retried like a read receipt, and, unlike one,
// deposited at the recipient's mailboxes when its device can't be reached.
// The recipient applies a carrier through OnGroup in a transaction of its
// own before its seen id commits (package groupchat), so one that comes
// twice changes nothing; a carrier OnGroup refuses is refused with its
// reason and leaves the sender's outbox; a blocked sender's is
// acknowledged unread. Any device may send one, this account's own
// included. A carrier waiting for a device that leaves its account's
// record (restored or revoked) goes to the devices the record names now
// that have none, sealed again from the content its entry keeps beside
// the frame sealed for the device that left (OutboxEntry.Content).
//
// # Replies, reactions, edits and deletes
//
// A reply is a text naming the message it quotes (Content addition 18,
// Message.ReplyTo). A reaction, an edit or a delete for everyone is a text
// too (addition 19, Message.Action; SendAction), delivered like any other
// and folded into its target wherever it lands (Data.ApplyAction): the
// target's Reactions (one per side), Edited or Deleted. Where it is
// received it is never stored itself (its id is kept as seen); the sending
// device keeps it, unshown, because its outbox names it. An edit or a
// delete is applied only to a message of the action's own sender, within
// EditWindow (24 h) of the target's sending, and never to a deleted
// message or an action; anything else is acknowledged and changes
// nothing. An older version shows the action's body instead: "reacted 👍
// to a message", the edited text, "deleted a message".
//
// # Disappearing messages
//
// A conversation's timer (Conversation.Timer; SetTimer) is set by either
// side with a text that says so (Content additions 20 and 21), which sets
// it on both sides and on both accounts' other devices. Every text sent
// while it is on carries it (addition 20) and is deleted, with its index
// entry, from each device At + Expires after that device stored it
// (timer.go: the sweep, every 2 s, in the conversations whose Expiring
// count says they hold such texts); EventDeleted hands the node the
// message so it deletes the attachment too. A text still in the sender's
// outbox waits for its ack first. The timer changes stay as the
// conversation's record.
//
// # Attachments
//
// A text may carry an attachment's reference (Content addition 17,
// Message.File; SendFile): bytes msg neither reads nor checks, which the
// node makes and reads (package files: the file itself moves over its own
// protocol, fetched by the recipient's node). The body is then the
// caption, possibly empty; copies and relays for siblings carry it too.
// An older device skips the addition only when it is under 1 KiB of
// skipped additions (a reference without a thumbnail), and otherwise
// refuses the text as malformed, which its sender sees as failed.
//
// # Call signals
//
// SendSignal carries a call signal (an opaque payload for the recipient's
// Config.OnSignal: invite, ringing, accept, ICE candidate, decline, busy,
// cancel, hangup, and the node's addresses signal) on the peer's signal
// lane: a goroutine per peer and a stream of its own,
// /callsign/signal/1.0.0, beside the stream that carries text messages,
// so a signal never waits behind queued texts, a backed-up inbox or the
// texts' frame budget at the recipient. Signals to one peer keep the
// order SendSignal was called in.
//
// A signal is sealed in the same Double Ratchet session as the texts (a
// control frame, like a read receipt) and nothing of it is stored but
// the ratchet state it advanced: that is committed, in one transaction
// for the signals sealed together, before any of their frames leaves the
// process, so a crash never reuses a message key (it loses the signals,
// whose life ends with the process). SendSignal returns once the
// recipient acknowledged the signal (stored or duplicate) and otherwise
// fails with ErrSignalUndelivered: the peer can't be looked up, reached
// or given a session, it refuses the signal, or its life ends first. The
// life is ctx's deadline, at most SignalLife (30 s, the longest a call
// rings); the call package gives each signal 10 s, and the final one
// (hangup, cancel, decline) 2 s. Nothing is retried past it and nothing is
// queued to go later, whatever the kind: an invite that can't ring now
// must not ring minutes later, a candidate or an accept is useless once
// its call has moved on, and a hangup that can't be delivered is made up
// for by the peer's own ring timeout or its media noticing the DTLS close.
// Within its life a frame written to a stream that breaks before its ack
// is written once more, on a new stream, with the same bytes (the
// recipient drops the duplicate by id and acks it); a stream that stays
// silent past the oldest frame's life is reset, so the recipient can't
// act on it late.
//
// A signal sealed while texts wait for their acks overtakes them, so the
// recipient skips (and keeps) the message keys of the texts still on
// their way, at most e2e.MaxSkip per message: a signal overtakes at most
// e2e.MaxSkip - 64 (936) sealed frames waiting for acks and otherwise
// waits for acks, within its life. For a peer in a call (signalled within
// the last signal's life), Send seals a text when it queues it only while
// fewer than 512 sealed frames wait (beyond, the sender goroutine seals
// them as it writes them, at most its window of 512 ahead), so texts sent
// during a call never hold its signals up. Other peers' texts are sealed
// when queued however many wait, because sealing them later costs bulk
// sends a quarter more CPU per message: an invite sent behind more than
// 936 sealed texts the recipient is not acknowledging (a backed-up inbox)
// waits for their acks and fails at the end of its life.
//
// A peer of the version before the lane does not serve
// /callsign/signal/1.0.0; libp2p's protocol negotiation then picks its
// /callsign/msg/1.1.0 (or 1.0.0), and the lane writes the same frames on
// a msg stream of its own, which that peer reads as it always did.
//
// # Wire: /callsign/signal/1.0.0
//
// The same Deliver and Ack frames as /callsign/msg/1.1.0 (below), one Ack
// per Deliver, in order, first-contact stamps included, with these
// restrictions, checked before anything is decrypted: a frame is at most
// about 35 KiB (MaxSignal and the e2e, Content and Deliver overhead, plus
// 512 bytes of additions); its kind is 3 (a control frame); its
// certificate verifies for the stream's remote peer and another account;
// and Config.AcceptSignal accepts its sender. Anything else resets the
// stream (too-large, bad-request, or refused for the sender) with nothing
// stored: no session accepted, no one-time prekey used, no seen id. A
// frame whose Content is not a call signal is refused (Ack refused,
// "malformed content", the session kept in step); a signal whose id was
// seen is acked duplicate and not handed to OnSignal again; a ciphertext
// replayed under another id does not decrypt and is refused. The lane has
// its own stream slots (256 for contacts' devices, 64 shared by others,
// as on msg) and its own frame budget per peer, 50 a second (burst 100),
// apart from the texts'. Its versions follow the compatibility rule
// like msg's: additions to the Deliver and Ack frames, and to the Content,
// are the same, and a frame this version can't read resets the stream.
//
// # Wire: /callsign/msg/1.1.0
//
// The sender opens a stream (allowed over limited, relayed connections)
// and writes Deliver frames; the recipient answers each with an Ack frame,
// in the same order. Frames are p2p frames (uvarint length, payload) whose
// payload is protobuf wire format (internal/wire, schema in msg.proto):
// fields in ascending order, each at most once unless repeated, minimal
// varints, no zero values encoded. They follow the compatibility rule of
// docs/ARCHITECTURE.md ("Wire formats"): fields 1 to 15 are the core, and
// an unknown one is an error; fields 16 and up are additions, and a
// decoder reads those it knows and skips the others (well-formed, in
// ascending order, at most 512 bytes of additions per frame), so a later
// version can add one without breaking this one. A frame above the cap
// (MaxMessage + the e2e and Deliver overhead + 512, about 69 KiB by
// default) or one that does not parse resets the stream.
//
//	Deliver (sender → recipient)
//	field 1   id          bytes   16 random bytes, the message id
//	field 2   sender      bytes   32 bytes, the sender's Ed25519 account key
//	field 3   cert        bytes   the sender's device certificate (identity.DeviceCert);
//	                              its peer id must be the stream's remote peer
//	field 4   kind        varint  1 initial, 2 ratchet (a text message),
//	                              3 control (read receipt or call signal)
//	field 5   ciphertext  bytes   the e2e message; associated data
//	                              "callsign/v1/msg" || 0x00 || id || kind
//	field 16  stamp       bytes   8 bytes, a first-contact stamp (see below);
//	                              outside the encryption, so the sealed frame
//	                              in the outbox is resent as it is, with it
//
//	Ack (recipient → sender)
//	field 1   id          bytes   16 bytes, the Deliver's id
//	field 2   status      varint  1 stored, 2 duplicate, 3 refused, 4 stamp
//	field 3   reason      bytes   UTF-8, at most 128 bytes; only with refused
//	field 16  stamp_bits  varint  1..64, with stamp only (and then present):
//	                              the work the stamp must show
//
// Status 4 (stamp) means the frame was not read (not decrypted: the
// session did not move): the sender computes a stamp of stamp_bits and
// sends the frame and those after it again, with the stamp. A sender
// computes at most MaxStampBits; asked for more, it takes the answer as
// refused.
//
// # Wire: /callsign/msg/1.0.0
//
// The version before additions, still served (and spoken to a peer that
// offers nothing newer, chosen by libp2p's protocol negotiation): the same
// frames with fields 1 to 5 and statuses 1 to 3 only, no unknown field of
// any number. A 1.0.0 sender can't pay for a first contact: the frames of
// its first contact with a 1.1.0 recipient are refused ("first contact
// needs a proof of work (msg 1.1.0): update callsign") and fail for good;
// between contacts, and from a 1.1.0 sender to a 1.0.0 recipient, nothing
// changes.
//
// Inside the ratchet, the plaintext is a Content (whichever way it came:
// a stream of either version or a mailbox), a frame of its own with its
// own version:
//
//	field 1  kind     varint  1 text, 2 read receipt, 3 call signal
//	field 2  seq      varint  text: the sender's per-conversation sequence
//	field 3  sent_at  varint  text: the sender's clock, unix nanoseconds
//	field 4  body     bytes   text: the message (absent when empty);
//	                          signal: the payload, 1..MaxSignal bytes
//	field 5  ids      bytes   receipt, repeated 1..512 times: 16-byte ids read
//	field 15 version  varint  absent: 1, the only version so far
//	fields 16 and up          additions, skipped when unknown (at most 1 KiB)
//
// A Content of a later version is refused with the reason "content of a
// newer version: the recipient must update callsign", which the sender
// shows on the failed message; one with unknown additions is read as the
// parts this version knows.
//
// The recipient refuses (Ack refused, nothing stored, stream kept) a frame
// whose certificate does not verify or is for another peer or account, that
// does not decrypt (tampered, replayed, unknown prekey), whose Content is
// malformed, whose stamp is wrong, or that is over the request limits
// below. A blocked sender (Policy Drop) gets "stored" and nothing is
// stored. A sender that is not a contact (Policy Request) lands in a
// conversation flagged as a request. Read receipts are sent only to
// contacts (Policy Deliver).
//
// # Strangers
//
// Message requests are capped, per sender and in all (Config.MaxRequests
// and the rest): by default 100 messages and 1 MiB of text waiting from
// one stranger, 1000 messages and 10 MiB from all of them. A stranger's
// waiting requests are its incoming messages since this account last wrote
// to it, counted from the store at Start and kept in memory. A message
// over a cap is decrypted (the session stays in step) but not stored, and
// refused: "message requests: too many of yours wait to be accepted", or
// "...: the recipient's requests are full"; the sender's copy fails with
// that reason. Accepting a request (the Policy now says Deliver, the
// conversation is no request) frees its share.
//
// A first contact costs the sender work: a frame from a sender the Policy
// classifies as Request, with no conversation here, is only read with a
// stamp, an 8-byte nonce such that
//
//	argon2id(password = "callsign/v1/msg-stamp" || 0x00 || sender account key[32] ||
//	         recipient account key[32] || nonce, salt = "callsign/v1/msg-stamp",
//	         time = 1, memory = 1 MiB, threads = 1, keyLen = 32)
//
// starts with Config.StampBits zero bits (default 8). Once a conversation
// exists, no stamp is asked. Why a proof of work and not a rate limit per
// new identity: identities cost nothing to make (a key pair and a
// self-signed device certificate), so any limit per identity is dodged by
// making more of them, and a global limit on new identities lets a flood
// lock real strangers out. A stamp puts a price on each identity instead:
// 256 argon2id evaluations on average, about 0.3 s of one core (0.7 s for
// one sender in ten; BenchmarkStamp), paid once per recipient, before the
// first message is read, and hardly noticed by a person writing to
// someone new; the 1000 identities that would fill the total cap cost an
// attacker five minutes of a core per recipient, and memory-hard
// evaluations leave GPUs little advantage. It is bound to both accounts,
// so one stamp opens one door. Checking one costs the recipient one
// evaluation (about 1.2 ms, 1 MiB): at most 10 a second (burst 20), two at
// a time; beyond, the stream is reset as overloaded and the sender retries
// later. Contacts never pay.
//
// Streams: the handler's slots are split (p2p.HandlerConfig.Known). A
// stream from a device the service knows belongs to a contact (looked up
// to send to it, or seen before with the contact's certificate) takes one
// of 256 slots; any other shares a pool of 64 with a one-minute lifetime
// and 10 s to send each frame (a contact's: 60 s), and when that pool is
// full, the stream whose peer has sent nothing for the longest gives way
// to the new one. A stream whose first frame shows a contact's
// certificate moves to the contacts' slots (p2p.Promote). So strangers
// can't hold up a contact's delivery, whether or not the contact's device
// is known yet.
//
// Each remote peer has a token bucket of frames (Config.PeerRate,
// PeerBurst); beyond it the recipient stops reading that peer's streams, so
// a flood costs it bounded memory: at most maxStreamsPerPeer streams per
// peer, each holding one read buffer and one batch of at most 64 frames or
// 512 KiB.
//
// # Mailboxes
//
// When a delivery attempt reaches nobody, the queued text messages'
// sealed Deliver frames go, each in a sealed-sender box, to (up to two
// of) the recipient's mailboxes (Recipient.Mailboxes, package mailbox);
// a message a mailbox stored durably is StateSent, and it stays in the
// outbox until the recipient's own ack makes it StateDelivered. A
// mailbox's refusal (over quota, not a member...) leaves it StateQueued
// with an EventState whose Reason says so, and it is tried again. A
// recipient reading its mailbox can't ask for a first-contact stamp, so
// deposits carry one of DefaultStampBits, computed once per recipient
// (and ignored by a recipient that has a conversation with the sender). This
// account drains its own mailboxes (Config.Mailboxes) at Start, every
// Config.MailboxPoll and on DrainMailboxes, through the same checks,
// dedup and commit as a stream's frames, and acknowledges each envelope
// after that commit. msg/mailbox.go has the details.
//
// # Wire: /callsign/prekey/1.0.0
//
// Before starting a session the sender asks the recipient's device for a
// bundle with one-time prekeys, one request frame and one response frame
// (p2p.Request), and falls back to the bundle published in the identity
// record when the device can't be reached; then it first asks (up to two
// of) the recipient's mailboxes for one-time prekeys the device left there
// (mailbox.FetchPrekeys, by the recipient's token; msg/prekeys.go), and
// uses them with the published bundle if they verify:
//
//	PrekeyRequest
//	field 1  account  bytes  32 bytes, the account key the requester expects
//
//	PrekeyResponse
//	field 1  bundle   bytes  e2e.MarshalBundle, at most e2e.MaxBundleSize
//
// Both skip unknown additions (fields 16 and up), like the msg frames.
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
// Each of this account's mailboxes gets a batch of 50 of each kind,
// issued and persisted before the upload, whenever its answer to a
// registration or a drain says it holds fewer than 10; the batch replaces
// what it held. e2e.MaxOneTimePrekeys (300 of each kind) leaves room for
// the direct pool and a batch at each mailbox before the oldest are
// evicted. The device's signed ML-KEM prekey is also the KEM key mailbox
// boxes are sealed to; a replaced one still opens them for
// e2e.PQPrekeyKeep.
package msg
