// Package identity owns who is who in callsign: account keys (Ed25519) and device
// certificates, account ids, handle syntax and normalisation, confusable folding of handles
// into DHT keys, self-certifying handles, the handle proof of work, and safety numbers.
//
// It is pure: functions over bytes, strings and time. It must not import the network (net,
// libp2p), storage (badger) or media (pion); the module's deps test enforces this. Callers
// pass time in; nothing here reads the clock, and only GenerateAccountKey (with a nil reader)
// reads crypto/rand. Everything is safe for concurrent use.
//
// # Keys
//
// An account is an Ed25519 key: AccountKey (private) and AccountPub (public). They are
// distinct types that can't be compared with == (use AccountPub.Equal) and that never print
// key material. Every signature is over label || 0x00 || msg with one of the Label constants,
// so a signature made for one purpose never verifies for another. ParseAccountPub accepts only
// canonical encodings of curve points that are not of small order.
//
// # Account ids
//
// AccountID is "csa1" + base32 of a 20-byte labelled SHA-256 of the key + a 6-character
// Bech32m checksum; see AccountID.
//
// # Device certificates
//
// A DeviceCert binds a device (libp2p peer id bytes, opaque here) and its X25519 E2E key to an
// account. Wire format (protobuf wire format, read with internal/wire's strict decoder; the
// schema is in devicecert.proto):
//
//	field 1  account  bytes   32 bytes, Ed25519 public key
//	field 2  peer_id  bytes   1..64 bytes
//	field 3  x25519   bytes   32 bytes, not all zero
//	field 4  created  varint  unix seconds, > 0
//	field 5  expires  varint  unix seconds, > created
//	field 6  sig      bytes   64 bytes, Ed25519 over LabelDeviceCert || 0x00 || fields 1..5
//
// The encoding is strict: every field exactly once, in this order, with minimal varints and no
// unknown fields, so each certificate has one byte form; at most MaxDeviceCertSize bytes. A
// certificate is signed, so by the compatibility rule of docs/ARCHITECTURE.md ("Wire formats")
// not even a field in the additions range (16 and up) that frames between peers skip is
// accepted: a new field takes a new label (LabelDeviceCert is "callsign/v1/...").
//
// # Handles
//
// NormalizeHandle turns what a user typed into the canonical handle (PRECIS
// UsernameCaseMapped plus callsign's rules: 3..32 runes, one script, digits 0-9, separators
// ". _ -" inside the name only, "~" reserved). HandleKey folds a normalised handle into the
// key body a handle record lives under (/csname/<key>), mapping lookalikes — "paypal",
// "paypa1", "pay.pal", "pаypal" with a Cyrillic а — to one key so only one of them can be
// held. The folding table is part of the protocol and documented at HandleKey.
//
// A self-certifying handle is "name~suffix": suffix is the first 10 characters of lowercase
// base32 of SHA-256(LabelSelfCert || 0x00 || name || 0x00 || pubkey). DESIGN.md shows 8
// characters; we use 10 (50 bits) so that grinding a key whose suffix matches someone else's
// costs about 2^50 key generations — centuries of CPU time — instead of days.
//
// # Proof of work
//
// A handle record carries a nonce that makes claiming names expensive: argon2id (memory-hard)
// over the name and the owner's key must start with PoWParams.Bits(name) zero bits, more for
// names under 8 runes. Verification is one argon2id evaluation (about 15 ms with defaults),
// because every DHT node that stores or reads a handle record checks it.
//
// # Safety numbers
//
// SafetyNumber gives 60 digits that two people compare (or scan) to check their keys; it
// is symmetric in its arguments.
package identity
