// Package mailbox holds sealed envelopes on a public (community) node for
// its members while they are offline: the /callsign/mailbox/1.0.0
// protocol (register, deposit, drain, acknowledge), its storage, quotas,
// expiry and rate limits, the sealed-sender box senders put a msg frame
// in, and the rotating recipient tokens deposits are addressed by. Server
// is the mailbox; Register, Deposit, Drain and Ack are its clients' side.
//
// mailbox builds on store, p2p and identity. It must not import msg, dht,
// node, api, media or pion: what it carries is opaque to it (msg seals a
// Deliver frame into it and opens it again on the member's device).
//
// # Storage
//
// The envelopes live in the node's one store, under their own prefix
// (store/mailbox.go: mbox/m/, mbox/e/, mbox/d/), not in a second badger:
// they get the store's encryption at rest and per-value sealing for free,
// one data directory stays one thing to back up, lock and verify, and a
// second badger would double the node's memory tables and caches. A
// deposit is answered only after the transaction that holds it commits
// (store's durability: it survives kill -9); a drained envelope is deleted
// only when the member acknowledges it, which it does after its own
// commit. Each member's entry keeps its count, bytes and next sequence
// number; all writes go through one mutex, so they never conflict.
//
// # Wire: /callsign/mailbox/1.0.0
//
// One request frame and one response frame per stream (p2p.Request,
// p2p.Handle: uvarint length, payload), payloads in protobuf wire format
// written by hand (internal/wire: fields in ascending order, each once
// unless repeated, minimal varints, no zero values, no unknown fields), a
// request at most 1 MiB, a response at most 1 MiB + 128 KiB.
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
//	field 6  token      bytes   deposit: 16 bytes, the recipient token (below)
//	field 7  envelope   bytes   deposit: repeated 1..256, each a sealed box (below),
//	                            at most Config.MaxEnvelope (default 80 KiB)
//	field 8  max        varint  drain: 1..256 envelopes wanted
//	field 9  seq        varint  ack: repeated 1..256, sequence numbers to delete
//
// Exactly the fields of the op must be present. A drain or ack is for the
// member one of whose registered devices is the stream's remote peer: the
// libp2p connection authenticates it (the registration proved the account
// certified that peer id), no one else can drain or delete.
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
//	                            register and ack: envelopes waiting
//
// A request that does not parse gets status 6 (malformed) and changes
// nothing; the stream and the node carry on. A deposit for a token no
// member has is 2 (not a member); for a token of a day more than one day
// past, 5 (expired). A peer may deposit Config.DepositRate envelopes a
// second (burst DepositBurst; default 500, 5000), beyond which it gets 7
// (rate limited) with nothing read or stored; streams are limited to 100
// a second per peer and 32 at once. Quotas are per member: at most
// Config.MaxCount envelopes and MaxBytes bytes waiting (default 10,000
// and 100 MiB); at most MaxMembers members (default 1000). An envelope
// waits at most Config.Expiry (default 30 days), then it is deleted (at
// the next drain, or by the hourly sweep) and the sender's own outbox,
// which keeps every message until the recipient acknowledges it, is what
// still holds the message.
//
// # Sealed sender
//
// The sender puts its msg Deliver frame (message id, sender account key,
// device certificate, ratchet ciphertext) in a box sealed to the
// recipient device's X25519 key from its certificate:
//
//	box = 0x01 || ephemeral X25519 key (32) || ChaCha20-Poly1305(k, nonce 0, frame, ad)
//	k   = HKDF-SHA256(ikm = X25519(ephemeral, recipient), salt = ephemeral || recipient,
//	                  info = "callsign/v1/mailbox-seal"), ad = "callsign/v1/mailbox-seal"
//
// so the sender's identity travels only inside the encryption; the
// recipient opens the box and hands the frame to msg, which checks the
// certificate and the ratchet exactly as for a frame from a stream (the
// certificate's peer id standing in for the stream's). The box is X25519
// only: a future quantum attacker who recorded it learns the sender's
// identity, not the message, which the ratchet's PQXDH start protects.
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
// # What a mailbox still learns
//
// Not the plaintext, not who wrote (the sender's account and device are
// inside the box) and not which deposits come from the same sender by
// their content. It does learn, and an operator can log: the depositing
// node's connection (its libp2p peer id and IP address: a sender that
// deposits from its own node is seen as that node; linking it to an
// account takes looking that peer id up in the DHT), the time and size of
// each deposit and the number of envelopes in it, the member each deposit
// is for (the mailbox computes its members' tokens), when the member
// drains and from which device and address, and how much waits. The store
// keeps only the member's account key, device peer ids, and per envelope
// its expiry, a digest and the box: nothing about the depositor.
package mailbox
