// Package e2e owns callsign's end-to-end encryption: the PQXDH handshake
// and the Double Ratchet, as pure functions over bytes and state. It does
// no I/O, starts no goroutines and keeps no clocks: the caller (node) passes
// in time and randomness, stores the state this package hands back, and
// moves the bytes.
//
// It must not import other callsign packages, libp2p, badger, pion or net;
// it uses only the standard library's crypto (ecdh X25519, mlkem
// ML-KEM-768, ed25519, sha256, hmac, hkdf), golang.org/x/crypto
// (chacha20poly1305) and protowire.
//
// # Keys
//
// A party is identified by its Ed25519 account key (Identity.Signer) and an
// X25519 identity key IK (Identity.DH). Every public key a party publishes
// is signed by the account key over
//
//	"callsign/v1/prekey" || 0x00 || kind || id (uint32 big endian) || public key
//
// with kind 0 for IK (id 0), 1 for the signed X25519 prekey SPK, 2 for the
// ML-KEM-768 last-resort prekey PQSPK, 3 for an X25519 one-time prekey OPK,
// 4 for an ML-KEM-768 one-time prekey PQOPK. Prekey ids are at least 1 and
// unique within a PrekeyState. PrekeyState rotates SPK and PQSPK every
// PrekeyRotation and accepts a replaced one for PrekeyGrace; a replaced
// PQSPK is kept longer, PQPrekeyKeep, because a mailbox's sealed box is
// sealed to it (DecapsulatePQ) and may wait 30 days (a handshake with it
// still needs the SPK of its bundle, so PQXDH's window stays PrekeyGrace).
//
// One-time prekeys are handed out once: one at a time in a bundle a
// device asks for (IssueBundle), or in batches a member uploads to its
// mailboxes (IssueOneTime; the mailbox hands each out once, in the
// MarshalOneTimePrekey form, and checks VerifyOneTimePrekey on upload).
// Either way they are marked issued and never handed out again; the
// handshake that uses one deletes it.
//
// # Handshake: PQXDH, adapted
//
// This follows Signal's PQXDH (revision 3) with curve X25519, hash SHA-256,
// KEM ML-KEM-768, and these adaptations:
//
//   - IK is bound to the account key by the signature above, in the bundle
//     and in the initial message, and the responder checks the initiator's
//     against the account key the caller says sent the message; a wrong
//     one is ErrBadSignature.
//   - SK = HKDF-SHA256(salt = 32 zero bytes, IKM = F || DH1 || DH2 || DH3
//     [|| DH4] || SS, info = "callsign/v1/pqxdh"), F = 32 0xFF bytes, with
//     DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B),
//     DH4 = DH(EK_A, OPK_B) when a one-time prekey was used, and SS the
//     ML-KEM shared secret encapsulated to PQOPK_B if the bundle had one,
//     else to PQSPK_B.
//   - AD = Ed25519_A || IK_A || Ed25519_B || IK_B (A the initiator), 128
//     bytes; it prefixes the associated data of every message of the
//     session, in both directions.
//   - X25519 public keys must be canonical (top bit clear, below 2^255-19)
//     and not of low order, so a handshake has one byte form.
//   - Until the initiator has received a reply, every message it sends
//     carries the handshake (an initial message), so losing the first one
//     loses nothing. A session's id is SHA-256 of the handshake prefix.
//   - Without a one-time prekey a replayed initial message would start a
//     second session; SessionSet refuses the ids of sessions it holds or
//     retired, and signed prekey rotation bounds the rest.
//
// # Session: the Double Ratchet
//
// Signal's Double Ratchet without header encryption. The initiator's first
// remote ratchet key is SPK_B; the responder's first ratchet key pair is
// SPK_B's. KDF_RK is HKDF-SHA256(salt = root key, IKM = DH output, info =
// "callsign/v1/ratchet-root") to 64 bytes (root key, chain key). KDF_CK is
// HMAC-SHA256(chain key, 0x01) for the message key and HMAC-SHA256(chain
// key, 0x02) for the next chain key. A message key is expanded with
// HKDF-SHA256(salt = 32 zero bytes, info = "callsign/v1/message-keys") into
// a 32-byte ChaCha20-Poly1305 key and a 12-byte nonce. The AEAD's
// associated data is AD || message header (42 bytes) || the caller's ad.
// One message may skip at most MaxSkip keys per chain; at most
// MaxSkippedKeys are stored, oldest evicted. A used key is deleted, so a
// replay fails (ErrReplay). Decrypt works on locals and commits only after
// the message authenticated: a failed call leaves the state unchanged.
//
// # Both sides initiating at once
//
// SessionSet holds a peer's sessions (at most MaxSessions). When a session
// the peer started arrives while our active session is one we started and
// the peer has not confirmed, both sides initiated at once: the session
// whose initiator has the lexicographically smaller Ed25519 account key
// (between two devices of one account, the smaller X25519 identity key)
// wins and becomes (or stays) active on both sides. The loser stays in the
// set, so messages already sent on it still decrypt. Any other session the
// peer starts becomes active (the peer lost its state). If a plain message
// arrives on an inactive session that wins the tie-break against an
// unconfirmed active one (an initial message that was overtaken), the
// winner becomes active again, so the two sides converge.
//
// # Wire format
//
// All integers are big endian. A ratchet message:
//
//	off  len  field
//	0    1    version = 1
//	1    1    type = 1 (message)
//	2    32   sender's ratchet public key (X25519)
//	34   4    PN, messages in the sender's previous sending chain
//	38   4    N, message number in the current sending chain
//	42   n    ChaCha20-Poly1305 ciphertext and 16-byte tag, n <= MaxPlaintext+16
//
// An initial message (MaxInitialMessageSize at most):
//
//	off   len   field
//	0     1     version = 1
//	1     1     type = 2 (initial)
//	2     32    IK_A, initiator's X25519 identity key
//	34    64    initiator's Ed25519 signature over IK_A (kind 0, id 0)
//	98    32    EK_A, ephemeral X25519 key
//	130   4     id of SPK_B used
//	134   1     kind of the PQ prekey used: 2 (PQSPK) or 4 (PQOPK)
//	135   4     id of that PQ prekey
//	139   4     id of OPK_B used, 0 if none
//	143   1088  ML-KEM-768 ciphertext
//	1231  ...   a ratchet message, as above
//
// Bundle, Session, SessionSet and PrekeyState use the protobuf wire format
// (schema in e2e.proto) with internal/wire's strict decoder: a bundle is
// signed and the rest is stored, so by the compatibility rule of
// docs/ARCHITECTURE.md ("Wire formats") none of them skips any unknown
// field, not even an addition (16 and up); they change with their version
// field (stored state) or a new label. Fields in ascending order, zero
// values omitted, no unknown or duplicate fields, canonical varints, exact
// key lengths, a leading version field for stored state. An accepted
// encoding is the only one for its value. Stored encodings hold private
// keys and must be kept encrypted at rest.
//
// # Concurrency
//
// Session, SessionSet and PrekeyState are plain values: not safe for
// concurrent use. The caller serialises access per peer and persists the
// new state in the same transaction as the message it produced or
// consumed.
package e2e
