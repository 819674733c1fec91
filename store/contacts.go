package store

import (
	"fmt"
	"time"
)

// Contact is an entry in the local address book. The key seen first is
// pinned (PubKey); when a peer shows a different key, KeyChanged is set and
// SeenPubKey holds the new key until the user re-verifies.
type Contact struct {
	Account    string // account id
	PubKey     []byte // pinned account public key
	Petname    string
	Handle     string
	AddedAt    time.Time
	PinnedAt   time.Time
	KeyChanged bool
	SeenPubKey []byte // the new key, when KeyChanged
	Verified   bool
	Following  bool
	Blocked    bool
	Accepted   bool
}

var (
	pfxContact = []byte("contact/")
	pfxPetname = []byte("petname/")
)

// PutContact stores or replaces the contact for c.Account and keeps the
// petname index. Petnames are unique byte for byte (the caller normalises
// them): a petname another contact holds returns ErrPetnameTaken. An empty
// petname is allowed and not indexed.
func (tx *Tx) PutContact(c Contact) error {
	if err := checkID("account", c.Account); err != nil {
		return err
	}
	if c.Petname != "" {
		if err := checkID("petname", c.Petname); err != nil {
			return err
		}
		owner, err := tx.getRaw(key(pfxPetname, []byte(c.Petname)))
		if err != nil && err != ErrNotFound {
			return err
		}
		if err == nil && string(owner) != c.Account {
			return fmt.Errorf("put contact: petname %q: %w", c.Petname, ErrPetnameTaken)
		}
	}
	old, err := getValue(tx, key(pfxContact, []byte(c.Account)), unmarshalContact)
	switch {
	case err == ErrNotFound:
	case err != nil:
		return err
	case old.Petname != "" && old.Petname != c.Petname:
		if err := tx.del(key(pfxPetname, []byte(old.Petname))); err != nil {
			return err
		}
	}
	if c.Petname != "" {
		if err := tx.setRaw(key(pfxPetname, []byte(c.Petname)), []byte(c.Account)); err != nil {
			return err
		}
	}
	return setValue(tx, key(pfxContact, []byte(c.Account)), &c, marshalContact)
}

// Contact returns the contact for an account id, or ErrNotFound.
func (tx *Tx) Contact(account string) (Contact, error) {
	if err := checkID("account", account); err != nil {
		return Contact{}, err
	}
	return getValue(tx, key(pfxContact, []byte(account)), unmarshalContact)
}

// ContactByPetname returns the contact with this petname, or ErrNotFound.
func (tx *Tx) ContactByPetname(petname string) (Contact, error) {
	if err := checkID("petname", petname); err != nil {
		return Contact{}, err
	}
	acct, err := tx.getRaw(key(pfxPetname, []byte(petname)))
	if err != nil {
		return Contact{}, err
	}
	return tx.Contact(string(acct))
}

// Contacts lists every contact ordered by account id.
func (tx *Tx) Contacts() ([]Contact, error) {
	return scanValues(tx, pfxContact, unmarshalContact)
}

// DeleteContact removes a contact and its petname; a missing one is not an error.
func (tx *Tx) DeleteContact(account string) error {
	c, err := tx.Contact(account)
	if err == ErrNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if c.Petname != "" {
		if err := tx.del(key(pfxPetname, []byte(c.Petname))); err != nil {
			return err
		}
	}
	return tx.del(key(pfxContact, []byte(account)))
}
