package store

import (
	"errors"
	"fmt"
)

// ErrAccountInUse means the store's account has been used (a handle, a
// contact, a conversation or a call), so nothing may take its place.
var ErrAccountInUse = errors.New("this node's account is in use")

// usedBy are the prefixes whose entries make an account used, each with
// what a person calls it.
var usedBy = []struct {
	prefix []byte
	what   string
}{
	{pfxClaim, "a handle"},
	{pfxContact, "contacts"},
	{pfxConv, "conversations"},
	{pfxMsg, "messages"},
	{pfxCall, "calls"},
}

// AccountUse says what the store's account holds that a person would
// miss: "" when nothing, else the first of "a handle", "contacts",
// "conversations", "messages", "calls" found. A store with no account is
// unused.
func (tx *Tx) AccountUse() (string, error) {
	for _, u := range usedBy {
		found := false
		err := tx.scan(u.prefix, nil, false, func([]byte, func() ([]byte, error)) (bool, error) {
			found = true
			return false, nil
		})
		if err != nil {
			return "", err
		}
		if found {
			return u.what, nil
		}
	}
	return "", nil
}

// DiscardUnusedAccount deletes the account a node made at its first start
// (its key, its device keys, its prekeys and its sessions), so that an
// account brought from a backup or a link can take its place
// (docs/DEVICES.md §1, "a fresh one"). It refuses with ErrAccountInUse,
// saying what the account holds, unless AccountUse is "". What belongs to
// the machine stays: listen ports, community nodes, settings, a public
// node's mailbox.
func (tx *Tx) DiscardUnusedAccount() error {
	use, err := tx.AccountUse()
	if err != nil {
		return err
	}
	if use != "" {
		return fmt.Errorf("%w: it holds %s", ErrAccountInUse, use)
	}
	for _, k := range [][]byte{keySecSeed, keySecDevice, keySecX25519, keySecPrekeys} {
		if err := tx.del(k); err != nil {
			return err
		}
	}
	for _, p := range [][]byte{pfxSession, pfxQueue, pfxMsgID, pfxOut} {
		var keys [][]byte
		err := tx.scan(p, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
			keys = append(keys, append([]byte(nil), k...))
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.del(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// keyRestoring marks a restore that has begun writing (conf/restoring,
// empty): its history goes in batches before the account, so until the
// last transaction removes it the store holds a part of a backup and no
// account.
var keyRestoring = []byte("conf/restoring")

// ErrRestoreInterrupted means a restore began writing and did not finish:
// running it again completes it.
var ErrRestoreInterrupted = errors.New("a restore was interrupted")

// BeginRestore marks the store as being restored into.
func (tx *Tx) BeginRestore() error { return tx.setRaw(keyRestoring, nil) }

// EndRestore removes the mark BeginRestore set.
func (tx *Tx) EndRestore() error { return tx.del(keyRestoring) }

// Restoring reports whether a restore began and has not ended.
func (tx *Tx) Restoring() (bool, error) { return tx.has(keyRestoring) }

// keyReplaceDevices marks an account restored from a backup whose device
// takes the place of the account's others (conf/replace-devices, empty):
// the node's first publication revokes every other device the account's
// record names, and removes the mark.
var keyReplaceDevices = []byte("conf/replace-devices")

// SetReplaceDevices sets or removes the mark that this device replaces the
// account's others at its next publication.
func (tx *Tx) SetReplaceDevices(on bool) error {
	if on {
		return tx.setRaw(keyReplaceDevices, nil)
	}
	return tx.del(keyReplaceDevices)
}

// ReplaceDevices reports whether this device replaces the account's others
// at its next publication.
func (tx *Tx) ReplaceDevices() (bool, error) { return tx.has(keyReplaceDevices) }

// keyRevoked marks a device its account revoked (conf/revoked, empty): it
// learnt so from its own record, and sends and publishes nothing more.
var keyRevoked = []byte("conf/revoked")

// SetRevoked marks this device as revoked by its account; it is final.
func (tx *Tx) SetRevoked() error { return tx.setRaw(keyRevoked, nil) }

// Revoked reports whether this device learnt its account revoked it.
func (tx *Tx) Revoked() (bool, error) { return tx.has(keyRevoked) }
