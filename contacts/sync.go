package contacts

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/store"
)

// A contact is synced between an account's devices as three groups, each
// a register of its own, so that a rename on one device and a block on
// another both hold (docs/DEVICES.md §2.2):
//
//	name   field 1 petname, field 2 handle
//	trust  field 1 the pinned account key, field 2 verified
//	flags  field 1 blocked, field 2 following, field 3 accepted
//
// A key change seen on one device is not synced: each device resolves the
// contact's handle itself and sees it, and confirming the new key
// (Verify) is synced as a new contact and the old one removed.

// errSynced is wrapped by the errors of ApplySynced for a value a sibling
// sent that does not parse or does not hold.
var errSynced = errors.New("synced contact is malformed")

// maxSyncedAdditions caps the unknown additions skipped in a group.
const maxSyncedAdditions = 256

// Groups returns the encoded groups of c, as ApplySynced takes them: never
// nil, even when every field is empty.
func Groups(c store.Contact) (name, trust, flags []byte) {
	n, t, f := wire.Encoder{B: []byte{}}, wire.Encoder{B: []byte{}}, wire.Encoder{B: []byte{}}
	n.String(1, c.Petname)
	n.String(2, c.Handle)
	t.Bytes(1, c.PubKey)
	t.Bool(2, c.Verified)
	f.Bool(1, c.Blocked)
	f.Bool(2, c.Following)
	f.Bool(3, c.Accepted)
	return n.B, t.B, f.B
}

// Synced is what a device holds of a contact from its siblings: each group
// as Groups encodes it, nil when none is held that is newer than a removal.
type Synced struct {
	Name, Trust, Flags []byte
	// Removed: the newest change is the contact's removal.
	Removed bool
}

// ApplySynced makes account's contact what its siblings' newest changes
// say, in tx: removed, or created (when a trust group is held: it carries
// the key) and updated from each group held; a group not held leaves that
// part of the contact as it is here. A petname another contact holds here
// gets a suffix from the account id. It writes through the store directly
// and calls no hook: a change a sibling made is not handed on again.
// changed reports whether the contact was written or deleted.
func (b *Book) ApplySynced(tx *store.Tx, account string, s Synced) (changed bool, err error) {
	id, err := identity.ParseAccountID(account)
	if err != nil {
		return false, fmt.Errorf("%w: account %q: %v", errSynced, account, err)
	}
	c, err := tx.Contact(account)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	if s.Removed {
		if !exists {
			return false, nil
		}
		return true, tx.DeleteContact(account)
	}
	old := c
	if s.Trust != nil {
		d := wire.NewFrameDecoder(s.Trust, errSynced, maxSyncedAdditions)
		pub := d.Bytes(1, 1, 1024)
		verified := d.Bool(2)
		if err := d.End(); err != nil {
			return false, fmt.Errorf("%w: trust of %s: %v", errSynced, account, err)
		}
		key, err := identity.ParseAccountPub(pub)
		if err != nil || key.ID() != id {
			return false, fmt.Errorf("%w: trust of %s: a key that is not the account's", errSynced, account)
		}
		if !exists {
			now := b.now().UTC()
			c = store.Contact{Account: account, PubKey: bytes.Clone(pub), Petname: account, AddedAt: now, PinnedAt: now}
			exists = true
		}
		c.Verified = verified
	}
	if !exists {
		return false, nil // the trust group, with the key, comes later
	}
	if s.Name != nil {
		d := wire.NewFrameDecoder(s.Name, errSynced, maxSyncedAdditions)
		petname := d.String(1, 0, 256)
		handle := d.String(2, 0, 256)
		if err := d.End(); err != nil {
			return false, fmt.Errorf("%w: name of %s: %v", errSynced, account, err)
		}
		if err := CheckPetname(petname); err != nil {
			return false, fmt.Errorf("%w: %v", errSynced, err)
		}
		if handle != "" {
			if _, err := identity.NormalizeHandle(handle); err != nil && !identity.IsSelfCert(handle) {
				return false, fmt.Errorf("%w: handle of %s: %v", errSynced, account, err)
			}
		}
		c.Handle = handle
		c.Petname = freePetname(tx, petname, account, c.Petname)
	}
	wasAccepted := old.Accepted
	if s.Flags != nil {
		d := wire.NewFrameDecoder(s.Flags, errSynced, maxSyncedAdditions)
		c.Blocked, c.Following, c.Accepted = d.Bool(1), d.Bool(2), d.Bool(3)
		if err := d.End(); err != nil {
			return false, fmt.Errorf("%w: flags of %s: %v", errSynced, account, err)
		}
	}
	if contactEqual(old, c) {
		return false, nil
	}
	if err := tx.PutContact(c); err != nil {
		return false, err
	}
	if c.Accepted && !wasAccepted && b.accepted != nil {
		if err := b.accepted(tx, account); err != nil {
			return false, err
		}
	}
	return true, nil
}

// freePetname is want when no other contact holds it here, else want with
// a suffix from the account id, else keep (the contact's petname here).
func freePetname(tx *store.Tx, want, account, keep string) string {
	for _, p := range []string{want, want + "-" + account[4:10]} {
		if other, err := tx.ContactByPetname(p); err != nil || other.Account == account {
			return p
		}
	}
	return keep
}

func contactEqual(a, b store.Contact) bool {
	return a.Account == b.Account && bytes.Equal(a.PubKey, b.PubKey) && a.Petname == b.Petname && a.Handle == b.Handle &&
		a.Verified == b.Verified && a.Blocked == b.Blocked && a.Following == b.Following && a.Accepted == b.Accepted &&
		a.KeyChanged == b.KeyChanged
}

// OnChange has the book call changed in the transaction of every change a
// user makes to a contact (old nil: it was added; c nil: it was removed),
// and committed after that transaction commits. The node hands the
// changes to the account's other devices this way. A key-changed mark
// (Observe) is not a change of this kind. Call before the book is used.
func (b *Book) OnChange(changed func(tx *store.Tx, old, c *store.Contact) error, committed func()) {
	b.changed, b.committed = changed, committed
}

// update runs fn in a transaction and then the committed hook.
func (b *Book) update(fn func(tx *store.Tx) error) error {
	err := b.db.Update(fn)
	if err == nil && b.committed != nil {
		b.committed()
	}
	return err
}

// put stores c, old being the contact as it was (nil: none), and tells
// the changed hook.
func (b *Book) put(tx *store.Tx, old *store.Contact, c store.Contact) error {
	if err := tx.PutContact(c); err != nil {
		return err
	}
	if b.changed == nil {
		return nil
	}
	return b.changed(tx, old, &c)
}

// remove deletes c and tells the changed hook.
func (b *Book) remove(tx *store.Tx, c store.Contact) error {
	if err := tx.DeleteContact(c.Account); err != nil {
		return err
	}
	if b.changed == nil {
		return nil
	}
	return b.changed(tx, &c, nil)
}
