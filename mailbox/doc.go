// Package mailbox holds sealed envelopes on a public (community) node for
// its members while they are offline: the /callsign/mailbox/1.0.0
// protocol (register, deposit, drain, acknowledge, and the one-time
// prekeys a member leaves for first contacts: upload, fetch), its storage,
// quotas, expiry and rate limits, the sealed-sender box senders put a msg
// frame in, and the rotating recipient tokens deposits are addressed by.
// It also parks the attachments of the messages it holds (Parked files,
// below). Server is the mailbox; Register, Deposit, Drain, Ack,
// UploadPrekeys, FetchPrekeys and Park are its clients' side.
//
// mailbox builds on store, p2p, identity, e2e (only to check uploaded
// one-time prekeys by e2e's own rules: their encoding and the account's
// signature) and files (the parked files' directory and their transfer). It must not import msg, dht, node, api, media or pion: the
// envelopes it carries are opaque to it (msg seals a Deliver frame into
// one and opens it again on the member's device).
//
// # Storage
//
// The envelopes live in the node's one store, under their own prefix
// (store/mailbox.go: mbox/m/, mbox/e/, mbox/d/, mbox/v/, mbox/f/,
// mbox/g/), not in a second badger:
// they get the store's encryption at rest and per-value sealing for free,
// one data directory stays one thing to back up, lock and verify, and a
// second badger would double the node's memory tables and caches. The
// one-time prekeys are there too (store/mailbox_prekeys.go: mbox/k/,
// mbox/j/). A deposit is answered only after the transaction that holds it
// commits (store's durability: it survives kill -9); a drained envelope is
// deleted only when the member acknowledges it, which it does after its
// own commit. Each member's entry keeps its count, bytes and next sequence
// number, over all its queues; all writes go through one mutex, so they
// never conflict.
//
// # Queues per device
//
// A member may register several devices (up to 8 peer ids; registering a
// ninth drops the least recently registered, whose queue then waits until
// it expires). Each registration's certificate names the device
// (identity.DeviceID of its X25519 key, stored in mbox/v/ with its peer
// id), and each device has its own queue of envelopes and its own
// one-time prekeys: a deposit or fetch by a device token (below) is for
// that device; a drain, ack or upload from a device's peer is of its queue
// and keys only, so a device never drains, acknowledges or uploads for its
// sibling (an ack of a sequence number of another queue changes nothing).
//
// The account's queue and keys (mbox/e/, mbox/d/, mbox/k/), all there was
// before devices had queues, are those of the member's first device: the
// first to register with its certificate here, which for a member
// registered before this version is its one device (it keeps its queue and
// keys, untouched, and drains them as before, also before it registers
// again), and which is the device a sender's box for the account token is
// sealed to (its certificate and bundle are the record's, kind 1). So the
// account token, and the first device's own device token, both reach that
// queue; other devices' queues and keys are under mbox/f/, mbox/g/ and
// mbox/j/ (account, device id). The role is not handed on: if the first
// device is dropped, the account's queue waits until it expires. Once a
// device holds it, a peer id registered before this version and not since
// is refused ("register again") rather than let drain the first device's
// queue. Sequence numbers are the member's, so they are unique over its
// queues; a drain answers the oldest of the device's queue.
//
// # Wire: /callsign/mailbox/1.0.0
//
// One request frame and one response frame per stream (p2p.Request,
// p2p.Handle: uvarint length, payload), payloads in protobuf wire format
// written by hand (internal/wire, schema in mailbox.proto: fields in
// ascending order, each once unless repeated, minimal varints, no zero
// values), a request at most 1 MiB, a response at most 1 MiB + 128 KiB.
// The protocol id is the version. Request and Response follow the
// compatibility rule of docs/ARCHITECTURE.md ("Wire formats"): an unknown
// field numbered 1..15 is refused, unknown additions (16 and up, at most
// 1 KiB of them) are skipped, so a newer member or mailbox can add a field
// without a new protocol id. A drain Entry is strict (no unknown field):
// what an entry gains goes in a Response addition. Sealed boxes carry their
// own version byte (below).
//
//	Request
//	field 1  op         varint  1 register, 2 deposit, 3 drain, 4 ack
//	field 2  account    bytes   register: the member's 32-byte account key
//	field 3  cert       bytes   register: the device certificate (identity.DeviceCert);
//	                            its peer id must be the stream's remote peer
//	field 4  time       varint  register: the signer's clock, unix seconds (±10 min)
//	field 5  signature  bytes   register: 64 bytes, Ed25519 by account over
//	                            "callsign/v1/mailbox-register" || 0x00 || len(mailbox) (1) ||
//	                            mailbox peer id || account || len(cert) (1) || cert || time (8, BE)
//	field 6  token      bytes   deposit: 16 bytes, the recipient token (below): the
//	                            member's (Token) or one of its devices' (DeviceToken)
//	field 7  envelope   bytes   deposit: repeated 1..256, each a sealed box (below),
//	                            at most Config.MaxEnvelope (default 80 KiB)
//	field 8  max        varint  drain: 1..256 envelopes wanted
//	field 9  seq        varint  ack: repeated 1..256, sequence numbers to delete
//	field 10 prekey     bytes   upload (op 5): repeated 0..100, X25519 one-time prekeys
//	field 11 pqprekey   bytes   upload: repeated 0..100, ML-KEM-768 one-time prekeys;
//	                            each of both a OneTimePrekey (e2e.MarshalOneTimePrekey:
//	                            field 1 id varint, field 2 public key, 32 or 1184 bytes,
//	                            field 3 the account's 64-byte signature), at most 1,300 bytes;
//	                            an upload carries at least one
//	field 6  token      bytes   fetch (op 6): the member's recipient token, as for a deposit
//
// Exactly the fields of the op must be present. A drain, ack or upload is
// for the member one of whose registered devices is the stream's remote
// peer: the libp2p connection authenticates it (the registration proved
// the account certified that peer id), no one else can drain, delete or
// upload; an upload needs no signature of its own beyond that connection
// to this mailbox (the connection is the device's key at work, and is
// bound to this mailbox's peer id), but every key in it must carry the
// member account's e2e signature for its kind.
//
//	Response
//	field 1  status     varint  1 ok, 2 not a member, 3 over quota, 4 too large,
//	                            5 expired, 6 malformed, 7 rate limited,
//	                            8 full (no more members), 9 forbidden, 10 duplicate
//	field 2  reason     bytes   UTF-8, at most 128 bytes, with a refusal
//	field 3  result     varint  deposit: repeated, one status per envelope, in order:
//	                            1 stored durably, 10 the same bytes already wait
//	                            (a replayed deposit is stored once), 3 or 4 refused
//	field 4  entry      bytes   drain: repeated, oldest first, at most 1 MiB of data
//	                            past the first: Entry{field 1 seq varint, field 2 data bytes}
//	field 5  waiting    varint  drain: envelopes still waiting after these;
//	                            register, ack and upload: envelopes waiting
//	field 6  prekey     bytes   fetch: an X25519 one-time prekey, handed out once (as uploaded)
//	field 7  pqprekey   bytes   fetch: an ML-KEM-768 one-time prekey, handed out once
//	field 8  prekeys    varint  register, drain, ack, upload: X25519 one-time prekeys held, 0..100
//	field 9  pqprekeys  varint  same, ML-KEM-768 ones
//	field 16 per_device varint  register: 1, this mailbox keeps a queue per device and
//	                            takes device tokens (an older one omits it, and answers
//	                            a device token 2, not a member)
//
// Waiting, prekeys and pqprekeys are the requesting device's: its queue's
// and its keys'. A request that does not parse gets status 6 (malformed)
// and changes nothing; the stream and the node carry on. A deposit for a
// token no member has, or a device token of a device the member has not
// registered here, is 2 (not a member); for a token of a day more than one
// day past, 5 (expired). A peer may deposit Config.DepositRate envelopes a
// second (burst DepositBurst; default 500, 5000), beyond which it gets 7
// (rate limited) with nothing read or stored; streams are limited to 100 a
// second per peer and 32 at once. Quotas are per member, all its queues
// together: at most Config.MaxCount envelopes and MaxBytes bytes waiting
// (default 10,000 and 100 MiB); at most MaxMembers members (default 1000).
// An envelope, in any queue, waits at most Config.Expiry (default 30
// days), then it is deleted (at the next drain, or by the hourly sweep)
// and the sender's own outbox, which keeps every message until the
// recipient acknowledges it, is what still holds the message.
//
// # One-time prekeys
//
// A member leaves batches of its one-time prekeys (e2e's OPK and PQOPK,
// signed by its account key) at each of its mailboxes, like Signal's
// server: an upload's keys of a kind replace every key of that kind the
// mailbox held for the member, at most Config.MaxPrekeys (default 100) of
// each; the mailbox checks each key's encoding and signature against the
// member's account and stores all or nothing (a non-member's upload is 2,
// a bad signature or another account's key 9, more than MaxPrekeys 4, a
// key that does not parse or repeats 6). The answers to register, drain,
// ack and upload say how many of each are left, and the member uploads a
// new batch when they run low (msg: 50 of each when either falls below
// 10). Keys are per device (see Queues per device): an upload replaces
// the uploading device's keys, the account's for the first device.
//
// A sender that can't reach a recipient's device for a first contact asks
// one of its mailboxes for keys by the recipient's token (the deposit's,
// so the fetch names the member no more than a deposit does): the
// account's token for the first device's keys, a device token for that
// device's. The mailbox deletes the oldest key of each kind it holds for
// it in a transaction that
// commits before it answers, so no key is handed out twice, even across a
// crash. The sender checks the keys' signatures (e2e.Bundle.Verify) and
// starts PQXDH with them and the record's signed prekeys; the member
// deletes a one-time prekey's private half when the handshake uses it, so
// it is never accepted twice.
//
// Draining a member's keys with a flood is the classic attack. It is
// bounded twice: one peer may fetch Config.FetchRate a second (burst
// FetchBurst; default one in 6 s, 10), beyond which it gets 7 (rate
// limited); and whoever asks, the mailbox hands out MemberRate keys of a
// member's device a second (burst MemberBurst; default one in 2 min, 20;
// each device's keys are rationed apart, as a member's were), so many
// peers together take at most about 30 an hour plus the burst. Past
// either bound, or with no keys left, a fetch answers ok with no key and
// the sender starts PQXDH with the signed prekey and the ML-KEM
// last-resort prekey of the identity record, as without a mailbox: first
// contact keeps working, with the one-time keys' extra forward secrecy
// lost only for the handshakes made during the flood.
//
// # Sealed sender
//
// The sender puts its msg Deliver frame (message id, sender account key,
// device certificate, ratchet ciphertext) in a box sealed to two keys of
// the recipient's device: the X25519 key of its certificate and the
// ML-KEM-768 last-resort prekey of the bundle in its identity record
// (PQSPK, signed by the account; the record carries no other ML-KEM key,
// so the record's format did not change). Version 2, the only one sealed:
//
//	box    = 0x02 || id (16) || PQSPK id (4, BE) || ephemeral X25519 key (32) ||
//	         ML-KEM-768 ciphertext (1088) || ChaCha20-Poly1305(k, nonce 0, frame, ad = header)
//	header = the box up to the AEAD ciphertext (1,141 bytes)
//	k      = HKDF-SHA256(ikm = ML-KEM shared secret || X25519(ephemeral, recipient),
//	                     salt = header || recipient X25519 key,
//	                     info = "callsign/v1/mailbox-seal-hybrid")
//
// so the sender's identity travels only inside the encryption, which a
// recorded box keeps from a future quantum attacker unless both X25519
// and ML-KEM fall; the recipient opens the box and hands the frame to
// msg, which checks the certificate and the ratchet exactly as for a
// frame from a stream (the certificate's peer id standing in for the
// stream's). A box costs 1,157 bytes over its frame (version 1: 49).
//
// The recipient keeps a replaced PQSPK for e2e.PQPrekeyKeep (45 days) for
// these boxes, longer than the mailbox's 30-day expiry plus a record's 7
// days. Version 1 boxes (X25519 only, sealed before version 2),
//
//	box = 0x01 || ephemeral X25519 key (32) || ChaCha20-Poly1305(k, nonce 0, frame, ad)
//	k   = HKDF-SHA256(ikm = X25519(ephemeral, recipient), salt = ephemeral || recipient,
//	                  info = "callsign/v1/mailbox-seal"), ad = "callsign/v1/mailbox-seal"
//
// still open, so envelopes that waited through an upgrade are not lost.
//
// A mailbox counts a replayed deposit once by a digest: for a version 2
// box, of its version and id, SHA-256("callsign/v1/mailbox-digest" ||
// 0x00 || 0x02 || id)[:16]; for anything else, SHA-256 of all its bytes.
// A sender derives the id from its own secret, the recipient's X25519 key
// and the frame (SealFrom), so a frame sealed again after a restart gets
// the same id though not the same bytes: Go's ML-KEM encapsulates only
// with randomness it draws itself (crypto/mlkem/mlkemtest's derandomized
// Encapsulate768 is for known-answer tests only), so the box itself can't
// be deterministic. The id tells the mailbox only that two deposits carry
// the same message, as equal bytes did.
//
// # Recipient tokens
//
// A deposit names its recipient by a token, not an account id:
//
//	token = HMAC-SHA256(key = member's account key,
//	                    "callsign/v1/mailbox-token" || 0x00 || mailbox peer id || day (8, BE))[:16]
//
// day being whole UTC days since 1970. It changes every day and differs
// between mailboxes, so tokens seen at one mailbox, or on different days,
// don't match each other; every sender to a member uses the same token on
// a given day, so a token tells no sender from another. The mailbox
// accepts yesterday's, today's and tomorrow's tokens (clocks differ), and
// answers a token of the week before with "expired".
//
// A sender that reads a member's devices (identity record kind 3) and a
// mailbox's per_device addresses each device apart, by the same days:
//
//	device token = HMAC-SHA256(key = member's account key,
//	                           "callsign/v1/mailbox-device-token" || 0x00 || mailbox peer id ||
//	                           DeviceID (8) || day (8, BE))[:16]
//
// The mailbox computes them for each device registered with it, as it
// does the member's. (msg does not use them yet: until kind 3 is
// published, a member has one device, whose queue is the account's.)
//
// # Parked files
//
// A message deposited here may name an attachment (a files.Ref: the sealed
// file's hash and its key, inside the box). The sender's node parks the
// sealed file beside it (Park), for the member the deposit's token named,
// and the member's devices fetch it from here when they can't reach any of
// the sender's (package node says when). Parking needs Config.FilesDir; the
// files live there, sealed under their own keys, which the mailbox never
// sees, and the index (which member, which file, its size and expiry) in
// the store: mbox/p/<account:32><hash:32> → expires (8 bytes, big-endian
// unix nanoseconds) || sealed size (8), in the mailbox's keyspace
// (store.SpaceMailbox).
//
// /callsign/mailbox/park/1.0.0 takes a file: the sender writes a request
// frame, the mailbox answers with a response frame, the sender writes the
// sealed bytes from where that says, and the mailbox answers once more
// when it has them all (p2p frames, protobuf wire format, no unknown
// fields):
//
//	ParkRequest
//	field 1  token   bytes   16, a recipient token, as for a deposit
//	field 2  hash    bytes   32, the SHA-256 of the sealed file
//	field 3  size    varint  its sealed size, ≥ 1
//
//	ParkResponse
//	field 1  status  varint  as Response's: 1 ok (send the bytes from have;
//	                         the last answer: the file is whole and checked),
//	                         10 duplicate (the whole file is here already),
//	                         2 not a member, 5 expired, 4 too large, 3 over quota,
//	                         7 rate limited (this file is arriving on another
//	                         stream), 6 malformed (also: the bytes hash to
//	                         another file, which is deleted)
//	field 2  reason  bytes   UTF-8, at most 128 bytes, with a refusal
//	field 3  have    varint  with the first ok: the sealed bytes held already
//
// A park cut short keeps what arrived (a ".part" file) and the next park
// of the file, from any sender, resumes there. The file appears under its
// hash only whole and matching it. Quotas, counted from the first request
// (a file arriving counts): one file at most Config.MaxFile of plaintext
// (default 100 MiB), Config.MaxFileBytes of sealed bytes parked per
// member (default 1 GiB) and Config.MaxFilesTotal for all (default 10
// GiB). A park that would take a member past its quota deletes the
// member's parked files that expire first until it fits (anyone may park
// for a member, as anyone may deposit: junk must not keep the member's
// next files out for a month; what goes still waits on its sender's
// devices); past the total, or a file larger than the member's quota, it
// is refused. A parked file is deleted Config.FileExpiry after it was last
// parked (default Expiry, 30 days), by the hourly sweep; a file parked
// for two members is held once and deleted after the last. Streams are
// limited to 2 a second per peer and 8 at once; each read or write waits
// at most files.IdleTimeout (30 s).
//
// /callsign/mailbox/file/1.0.0 serves the parked files in the form of
// files.Protocol, to the registered devices of a member it is parked for
// and to no one else: the libp2p connection authenticates the device, as
// for a drain. To anyone else a file is "not found", as one never parked.
//
// # What a mailbox still learns
//
// Not the plaintext, not who wrote (the sender's account and device are
// inside the box) and not which deposits come from the same sender by
// their content. It does learn, and an operator can log: the depositing
// node's connection (its libp2p peer id and IP address: a sender that
// deposits from its own node is seen as that node; linking it to an
// account takes looking that peer id up in the DHT), the time and size of
// each deposit and the number of envelopes in it, the member each deposit
// is for and, by a device token, for which of its devices (the mailbox
// computes its members' tokens), how many devices a member has registered
// here and their DeviceIDs, when each device drains and from which
// address, and how much waits for each. Of parked files it learns the same
// of each park and fetch (who connects, when, for which member, the
// file's size), and that a file parked twice, for one member or two, is
// the same file (its hash); not its name, type or content. From
// one-time prekeys it learns, likewise: that the fetching connection is
// about to write to the member the token names for the first time (the
// same connection's deposit usually follows), when, and how many first
// contacts a member gets (the keys it hands out) and when the member
// uploads; the keys are public and signed, so it can't forge one or read
// anything with one. A mailbox that hands a key out twice gets the second
// first contact refused by the recipient ("session: unknown prekey": a
// one-time prekey is accepted once), which is no more than a mailbox
// dropping an envelope can do. The store keeps only the
// member's account key, its devices' peer ids and DeviceIDs, their
// one-time prekeys, and per envelope its queue, its expiry, a digest and
// the box: nothing about the depositor or the fetcher.
package mailbox
