package store

import (
	"bytes"
	"fmt"
)

// A Space is the part of one transaction that a package above store keeps
// its own values in: the keys under the prefixes that package owns (see
// "Key layout" in the package doc), read and written as plain bytes whose
// encoding is the owner's. Every value is sealed and opened exactly as the
// store's own (seal.go): a value changed on disk or moved under another
// key reads as a *CorruptError naming the entry. A Space lives as long as
// its Tx and shares its atomicity: what the owner writes through it
// commits, or not, with everything else the transaction writes.
type Space struct {
	tx       *Tx
	owner    string
	prefixes [][]byte
}

// Owners of keyspaces, as Tx.Space and Options.Checks name them.
const (
	// SpaceMsg is the messaging layer's (package msg): conversations,
	// messages and their index, queue starts, the outbox of control
	// messages, and sessions.
	SpaceMsg = "msg"
	// SpaceDevices is the linked-devices layer's (package devices): the
	// synced registers of the account's own state and their clock.
	SpaceDevices = "devices"
	// SpaceGroups is the group chats' (package groupchat): each group's
	// log, this account's status in it, sender keys and messages.
	SpaceGroups = "groups"
	// SpaceMailbox is a public node's mailbox's (package mailbox) for
	// what it keeps in its own encoding: the files parked for members.
	SpaceMailbox = "mailbox"
)

// The prefixes of msg's keyspace (layouts in the package doc, "Key
// layout"; encodings in msg/storecodec.go).
var (
	pfxConv       = []byte("conv/")
	pfxMsg        = []byte("msg/")
	pfxMsgID      = []byte("msgid/")
	pfxOut        = []byte("out/")
	pfxQueueStart = []byte("qstart/")
	pfxSession    = []byte("sess/")
	// pfxQueue: dq/<peer>\0<dev>\0<id>, a queued message's copy for one
	// device of peer (schema 9; qstart/ was schemas 6 to 8's).
	pfxQueue = []byte("dq/")
	sep      = []byte{0}

	// pfxDevices is devices' keyspace (layout in devices/replica.go).
	pfxDevices = []byte("dev/")

	// pfxGroups is groupchat's keyspace (layout in groupchat/store.go).
	pfxGroups = []byte("grp/")

	// PrefixMailboxFiles is the mailbox's parked files: mbox/p/<member
	// account:32><file hash:32> (layout in mailbox/park.go).
	PrefixMailboxFiles = []byte("mbox/p/")
)

// spaces are the prefixes each owner's Space may touch. The migrations
// (migrate.go) still know the layouts under them as they were.
var spaces = map[string][][]byte{
	SpaceMsg:     {pfxConv, pfxQueue, pfxMsg, pfxMsgID, pfxOut, pfxSession},
	SpaceDevices: {pfxDevices},
	SpaceGroups:  {pfxGroups},
	SpaceMailbox: {PrefixMailboxFiles},
}

// Space returns owner's keyspace in tx. It panics for an owner that has
// none: the owners are fixed at compile time.
func (tx *Tx) Space(owner string) *Space {
	prefixes, ok := spaces[owner]
	if !ok {
		panic(fmt.Sprintf("bug: store has no keyspace for %q", owner))
	}
	return &Space{tx: tx, owner: owner, prefixes: prefixes}
}

// spaceOf names the owner of the keyspace k is in, or "".
func spaceOf(k []byte) string {
	for owner, prefixes := range spaces {
		for _, p := range prefixes {
			if bytes.HasPrefix(k, p) {
				return owner
			}
		}
	}
	return ""
}

// check rejects a key outside the space: the owner's bug, returned as an
// error rather than written where another owner's data is.
func (s *Space) check(k []byte) error {
	for _, p := range s.prefixes {
		if bytes.HasPrefix(k, p) {
			return nil
		}
	}
	return fmt.Errorf("%w: key %q is outside the %s keyspace", ErrInvalid, k, s.owner)
}

// Get returns the value under k in a new slice the caller owns; or
// ErrNotFound, or a *CorruptError when the value does not read back or
// fails authentication.
func (s *Space) Get(k []byte) ([]byte, error) {
	if err := s.check(k); err != nil {
		return nil, err
	}
	return s.tx.getRaw(k)
}

// Has reports whether a value is stored under k, without reading it.
func (s *Space) Has(k []byte) (bool, error) {
	if err := s.check(k); err != nil {
		return false, err
	}
	return s.tx.has(k)
}

// Set writes v, sealed, under k. It fails in a View.
func (s *Space) Set(k, v []byte) error {
	if err := s.check(k); err != nil {
		return err
	}
	return s.tx.setRaw(k, v)
}

// Delete removes k; a missing key is not an error.
func (s *Space) Delete(k []byte) error {
	if err := s.check(k); err != nil {
		return err
	}
	return s.tx.del(k)
}

// Scan calls fn for each key under prefix in key order (or reverse), from
// start (nil: the first key, or the last one in reverse; otherwise a key
// under prefix), with the value loaded lazily by val, in a new slice, or
// a *CorruptError. The key is valid only during the call. fn returns
// false to stop; its error ends the scan and is returned. A reverse scan
// from nil assumes no key under prefix continues with a 0xff byte.
func (s *Space) Scan(prefix, start []byte, reverse bool, fn func(k []byte, val func() ([]byte, error)) (bool, error)) error {
	if err := s.check(prefix); err != nil {
		return err
	}
	if start != nil && !bytes.HasPrefix(start, prefix) {
		return fmt.Errorf("%w: scan start %q is not under %q", ErrInvalid, start, prefix)
	}
	return s.tx.scan(prefix, start, reverse, fn)
}

// Corrupt returns err, an error about the value under k (one that does not
// decode, or that points at an entry that is missing), as a *CorruptError
// naming the entry, unless it already is one. An err that does not wrap
// ErrCorrupt is taken as a failure to read the value.
func Corrupt(k []byte, err error) error { return corrupt(bytes.Clone(k), err) }

// A Check decodes and cross-checks the values of one owner's keyspace for
// Verify. Verify calls it for each entry of the keyspace whose value
// authenticates, with its key k and value v, and with the keyspace sp in
// Verify's snapshot, to look at the entries the value points at. It
// returns what is wrong with the entry ("" for nothing), and calls report
// for damage it finds in another entry (such as a message missing behind
// its index entry).
type Check func(sp *Space, k, v []byte, report func(k []byte, problem string)) string
