package store

import (
	"fmt"
	"time"
)

// Contact is an entry in the local address book. The key seen first is
// pinned (PubKey); when a peer shows a different key, KeyChanged is set and
// SeenPubKey holds the new key until the user re-verifies.
type Contact struct {
	Account    string    `json:"account"` // account id
	PubKey     []byte    `json:"pubkey"`  // pinned account public key
	Petname    string    `json:"petname,omitempty"`
	Handle     string    `json:"handle,omitempty"`
	AddedAt    time.Time `json:"added_at"`
	PinnedAt   time.Time `json:"pinned_at"`
	KeyChanged bool      `json:"key_changed,omitempty"`
	SeenPubKey []byte    `json:"seen_pubkey,omitempty"` // the new key, when KeyChanged
	Verified   bool      `json:"verified,omitempty"`
	Following  bool      `json:"following,omitempty"`
	Blocked    bool      `json:"blocked,omitempty"`
	Accepted   bool      `json:"accepted,omitempty"`
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
	var old Contact
	err := tx.getJSON(key(pfxContact, []byte(c.Account)), &old)
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
	return tx.setJSON(key(pfxContact, []byte(c.Account)), c)
}

// Contact returns the contact for an account id, or ErrNotFound.
func (tx *Tx) Contact(account string) (Contact, error) {
	if err := checkID("account", account); err != nil {
		return Contact{}, err
	}
	var c Contact
	err := tx.getJSON(key(pfxContact, []byte(account)), &c)
	return c, err
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
	return scanJSON[Contact](tx, pfxContact)
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
