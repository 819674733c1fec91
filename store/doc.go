// Package store owns callsign's one embedded database: a badger/v4 key-value
// store encrypted at rest, every value sealed, its key layout, its schema
// version and migrations, and the typed accessors the rest of the node uses
// (secrets, handle claims, bootstrap peers, settings, contacts, the call
// log, a public node's mailbox). Messaging's data (conversations, messages,
// the outbox, the seen ids, sessions) is msg's: msg keeps it in a keyspace
// of its own in each transaction (Tx.Space, "Keyspaces" below), with its
// own encodings, and store knows only its prefixes, to give them to msg,
// name their entries in damage reports, and migrate what older schemas
// wrote there.
//
// store must not import libp2p, pion, net/http or any callsign package but
// internal/wire: every value it keeps is plain bytes, strings, integers and
// times.
//
// # Encryption at rest
//
// The database lives in Dir/store and is encrypted with badger's own
// encryption (AES-256 with data keys rotated by badger, wrapped by a 32-byte
// master key). The master key comes from one of two places:
//
//   - Passphrase: Argon2id(passphrase, salt, t=3, m=64 MiB, p=4) gives a 32-byte
//     secret; HKDF-SHA256 expands it into the badger key ("callsign/v1/store-key")
//     and a key-check value ("callsign/v1/store-key-check"). Dir/store.salt holds
//     the parameters, the random 16-byte salt and the key-check value, so a wrong
//     passphrase is detected before badger opens anything: Open returns
//     ErrWrongPassphrase and no file in Dir changes.
//   - Key file: without a passphrase, a random 32-byte key in Dir/store.key,
//     created with mode 0600. Open refuses a key file that is readable by group
//     or others.
//
// A passphrase given to a key-file store returns ErrHasKeyFile; none given to a
// passphrase store returns ErrNeedPassphrase.
//
// badger's encryption hides the data but does not authenticate it (AES-CTR),
// so on top of it every value is sealed (schema 7, seal.go): XChaCha20-Poly1305
// under HKDF-SHA256-Expand(store key, "callsign/v1/store-value"), with the
// entry's key as associated data, so a value changed on disk, or moved under
// another key, fails to open. See "Integrity" below.
//
// store.salt layout (58 bytes, integers big-endian):
//
//	offset size field
//	0      8    magic "CSSALT\x00\x01"
//	8      4    Argon2id time cost (t)
//	12     4    Argon2id memory in KiB (m)
//	16     1    Argon2id lanes (p)
//	17     1    reserved, 0
//	18     16   salt
//	34     24   key check: first 24 bytes of HKDF(secret, "callsign/v1/store-key-check")
//
// # Key layout
//
// Every key starts with a prefix naming its kind. Variable-length components
// that are followed by more key bytes end in a 0x00 separator, so none of them
// may contain 0x00 (accessors reject such input). No value is JSON (since
// schema 8): a structured value has a strict binary encoding, specified in
// valuecodec.go (HandleClaim, ListenPorts, CallSettings, Contact, Call,
// MailboxMember, MailboxDevice) and values.proto, and for msg's keyspace
// (marked msg below) in msg/storecodec.go (Message, OutboxEntry,
// Conversation, the msgid/ entry):
// protobuf wire format read with internal/wire's strict decoder, one byte
// form per value. By the compatibility rule of docs/ARCHITECTURE.md, "Wire
// formats", a stored value accepts no unknown field of any number, and a new
// field takes a schema version with a migration. The rest are raw bytes or
// fixed layouts, as noted. Every value below is stored sealed (seal.go): the
// layouts are of the plaintext.
//
//	meta/schema                          schema version, unsigned varint (sealed from 7 on)
//	meta/migrate-cursor                  raw: the last key a batched migration converted
//	sec/<field>                          raw secret bytes; field is seed, device-key, x25519, prekeys
//	claim/<name>                         HandleClaim (binary)
//	boot/<multiaddr>                     empty: a bootstrap peer
//	conf/listen-ports                    ListenPorts (binary)
//	conf/call-settings                   CallSettings (binary)
//	conf/restoring                       empty: a restore has begun writing (unused.go); a
//	                                     node refuses to start until it is run again
//	conf/revoked                         empty: this device's account revoked it (final)
//	conf/replace-devices                 empty: this device, restored from a backup, revokes
//	                                     the account's other devices at its next publication
//	set/<key>                            raw setting bytes, uninterpreted (a structured
//	                                     value gets a type and an encoding instead)
//	contact/<account>                    Contact (binary)
//	petname/<petname>                    raw account id (unique petname index)
//	conv/<peer>                          msg: Conversation (binary)
//	msg/<peer>0x00<at:8><id>             msg: Message (binary); at is big-endian unix nanoseconds
//	                                     (local order)
//	msgid/<peer>0x00<id>                 msg: direction, the message's time (with peer and id,
//	                                     its msg/ key) and state (msgIndex): lookup by id, and
//	                                     a state change writes only these ~15 bytes; or, for
//	                                     an id seen with no message kept (a control message, a
//	                                     deleted incoming message), 0x00 and the time first
//	                                     seen. One read here dedups an incoming id. A queued
//	                                     outgoing message's entry also names the devices it
//	                                     is queued for (kind 3, msg/queue.go)
//	out/<id>                             msg: OutboxEntry (binary) of a control message (a
//	                                     read receipt); msg reads them all at start-up (the
//	                                     outbox holds only unacknowledged messages)
//	out/<id>0x00<dev:8>                  msg: OutboxEntry of a control message for one device
//	                                     (a copy of a sent message for another device of this
//	                                     account, whose peer is this account)
//	dq/<peer>0x00<dev:8>0x00<id>         msg: a queued text message's copy for one device of
//	                                     peer: its sealed envelope (empty: not sealed yet; a
//	                                     zero dev: the device was not known). Start-up reads
//	                                     them all (msg/queue.go)
//	sess/<peer>0x00<dev:8>               msg: e2e session set with one device of peer (e2e
//	                                     SessionSet; schema 8 kept one set per peer, under
//	                                     sess/<peer>)
//	call/<start:8><id>                   Call (binary; call log, at most MaxCalls)
//	mbox/…                               a public node's mailbox: members, their devices,
//	                                     queues and one-time prekeys (mailbox.go,
//	                                     mailbox_prekeys.go)
//
// # Schema
//
// meta/schema holds the layout version (currently 9). Open refuses a newer
// version with ErrSchemaTooNew and runs the migration hooks in migrations to
// bring an older one up to date. A hook runs in one transaction with the
// version bump, or, when its work does not fit one transaction, in batches
// that each commit (meta/migrate-cursor remembers the last key done) with
// the version bumped by the last one; a crash between batches resumes.
//
//	1 → 2  conv/, msg/ and out/ values: JSON → binary (migrate_msg.go); the outbox
//	       index outdue/<next:8><id> is deleted (it cost every message two
//	       writes and a read, and only served listing the outbox at startup)
//	2 → 3  a message's state moves from its msg/ value into its msgid/ entry
//	3 → 4  seen/<peer>0x00<id> entries become seen markers under msgid/ (an
//	       incoming message cost a read and a write more while both existed)
//	4 → 5  msgid/ entries hold the message's time instead of its whole msg/ key
//	       (~100 bytes less in each of the three index writes per message)
//	5 → 6  a text message's out/ entry moves into its msgid/ entry (queued, with
//	       the envelope) and qstart/<peer> is set: queuing and acknowledging a
//	       message write one entry each instead of two
//	6 → 7  every value is sealed (seal.go), in key order, in batches; a value
//	       badger cannot read back, or whose log entry Open found damaged, is
//	       left raw, so that it is reported as damaged instead of sealed as if
//	       it were the value
//	7 → 8  every JSON value gets its binary encoding (valuecodec.go): claim/,
//	       conf/listen-ports, contact/, call/, mbox/m/; the node's JSON call
//	       settings under set/calls move to conf/call-settings. Opened,
//	       converted and sealed again, in key order, in batches; a value
//	       already binary is left alone (a crash between batches resumes),
//	       and so is one that does not open or parse, which reads and Verify
//	       then report as damaged
//	8 → 9  per device of a contact (docs/DEVICES.md): sess/<peer> is split
//	       into one set per device its sessions are with, sess/<peer>0x00<dev>;
//	       a queued message's envelope moves from its msgid/ entry to
//	       dq/<peer>0x00<dev>0x00<id>, dev the device of the peer's active
//	       session (zero when there is none), and the entry names that
//	       device; qstart/ is deleted. Batched and resumable; a value that
//	       does not open or parse is left where it is, for Verify to name
//
// # Integrity
//
// Damaged data is reported as damage, never returned as data. An accessor
// (and a Space's Get and Scan) that reads a value which fails
// authentication, which badger cannot read back (value-log CRC, missing
// value-log data) or which does not decode returns a *CorruptError naming
// the entry (ErrCorrupt, IsCorrupt; Corrupt makes one for a keyspace's
// owner whose value does not decode). What msg does with one (a page of
// messages holding one fails as a whole; the scans it runs at start-up
// pass over it) is msg's. What badger itself checks: the CRC of each
// value-log entry before it is decoded (VerifyValueChecksum) and the checksum
// of each table block read from disk (ChecksumVerificationMode OnBlockRead).
//
// Open checks badger's files before badger opens them (files.go), because
// badger turns some damage into silent loss: a table block that fails its
// checksum makes badger's iterators stop without an error (a scan skips the
// rest of the table; a compaction drops it), and badger cuts its newest value
// log at the first entry whose CRC fails, losing every value after it. So Open
// verifies every block of every table (and refuses a damaged one: a
// *CorruptError naming the file and the keys of the damaged block), and walks
// the newest value log and any memtable WAL: an entry whose CRC fails but which
// valid entries follow gets its CRC rewritten in place (the stored CRC is
// logged), so that badger keeps the file and only that entry's value is
// damaged; damage it cannot frame, or a damaged flag that would make badger
// cut the file, makes Open refuse.
//
// DB.Verify (and Verify, for a store that is not open) walks every entry:
// authenticates each value and decodes it, the values of a keyspace with the
// check its owner gives (Options.Checks; msg.Check decodes messaging's and
// checks that messages and their index entries point at each other), and
// reports each damaged item with its kind and ids (Damage); and checks every
// table block. `callsign store verify` runs it on a stopped node's data
// directory.
//
// # Keyspaces
//
// A package above store that owns a part of the key layout gets it from
// each transaction as a Space (Tx.Space(owner)): Get, Has, Set, Delete and
// Scan over raw value bytes, limited to the owner's prefixes (a key outside
// them is ErrInvalid), sealed and opened like every value. The owner
// encodes its values; the transaction is the caller's, so what the owner
// writes commits together with everything else the caller writes in it
// (msg: a message, its ratchet state and the prekeys it used, in one
// commit). SpaceMsg is msg's: conv/, dq/, msg/, msgid/, out/, sess/.
// SpaceDevices is devices': dev/ (new prefixes, no migration).
// SpaceGroups is groupchat's: grp/ (new prefix, no migration).
// SpaceMailbox is the mailbox's, for its parked files: mbox/p/ (new
// prefix, no migration; the mailbox's other entries have typed accessors).
// The migrations of those prefixes (schemas 1 to 6) are store's, and keep
// frozen copies of the forms they read and wrote (migrate_msg.go).
//
// # Transactions
//
// DB.Update and DB.View run a closure over a Tx that has the same typed
// accessors as DB and hands out the keyspaces, so a caller can write, for
// example, ratchet state, the message it produced and the prekeys it used
// in one atomic badger transaction.
// Update retries the closure when badger reports a conflict (at most
// maxConflictRetries times), so the closure must have no side effects outside
// the Tx. A transaction too big for badger returns ErrTxnTooBig.
//
// # Tuning
//
// badger runs small: 8 MiB memtables (2 of them), values of 1 KiB and more go
// to the value log, 64 MiB value log files, 8 MiB block cache, 8 MiB index
// cache, no compression; value-log CRCs and table-block checksums verified
// on read (their cost, and that of sealing: docs/benchmarks/store.md). A value-log GC loop owned by the DB runs every
// GCInterval and is stopped by Close. Keeping values up to 64 KiB in the
// LSM tree instead was measured slower (more memtable flushes and
// compaction for the same messages; docs/benchmarks/store.md).
//
// # Durability
//
// SyncWrites is off, deliberately. When Update returns, the transaction is
// in badger's write-ahead files (the memtable WAL and the value log, both
// written through mmap before the commit returns), so it survives the
// process dying at any point, kill -9 included: the kernel owns those
// pages and writes them back. What SyncWrites would add is surviving a
// power cut or kernel crash within the few seconds before writeback, at
// the price of an fsync per commit. Everything callsign calls durable
// (the msg layer acknowledges a message only after its commit) means
// "survives a crash of the process".
//
// Conflict detection stays on: callers run read-modify-write closures
// (contacts, conversations, counters) from several goroutines, and badger's
// conflict check is what makes Update retry them instead of losing an
// update. Its cost is a fingerprint per key read, small beside the write.
package store
