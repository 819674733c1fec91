package store

// The DB methods below run the Tx accessor of the same name in a
// transaction of its own; see Tx for their semantics.

func update(db *DB, fn func(tx *Tx) error) error { return db.Update(fn) }

// Secrets returns the stored secrets, or ErrNotFound when none are stored.
func (db *DB) Secrets() (Secrets, error) { return view(db, (*Tx).Secrets) }

// PutSecrets replaces all secrets; a nil field deletes it.
func (db *DB) PutSecrets(s Secrets) error {
	return update(db, func(tx *Tx) error { return tx.PutSecrets(s) })
}

// PutPrekeys replaces the E2E prekey state.
func (db *DB) PutPrekeys(state []byte) error {
	return update(db, func(tx *Tx) error { return tx.PutPrekeys(state) })
}

// PutClaim stores or replaces a handle claim.
func (db *DB) PutClaim(c HandleClaim) error {
	return update(db, func(tx *Tx) error { return tx.PutClaim(c) })
}

// Claims lists the handle claims ordered by name.
func (db *DB) Claims() ([]HandleClaim, error) { return view(db, (*Tx).Claims) }

// DeleteClaim removes a handle claim.
func (db *DB) DeleteClaim(name string) error {
	return update(db, func(tx *Tx) error { return tx.DeleteClaim(name) })
}

// AddBootstrap remembers a bootstrap multiaddr.
func (db *DB) AddBootstrap(addr string) error {
	return update(db, func(tx *Tx) error { return tx.AddBootstrap(addr) })
}

// Bootstraps lists the bootstrap multiaddrs.
func (db *DB) Bootstraps() ([]string, error) { return view(db, (*Tx).Bootstraps) }

// RemoveBootstrap forgets a bootstrap multiaddr.
func (db *DB) RemoveBootstrap(addr string) error {
	return update(db, func(tx *Tx) error { return tx.RemoveBootstrap(addr) })
}

// ListenPorts returns the remembered listen ports, or ErrNotFound.
func (db *DB) ListenPorts() (ListenPorts, error) { return view(db, (*Tx).ListenPorts) }

// PutListenPorts remembers the listen ports.
func (db *DB) PutListenPorts(p ListenPorts) error {
	return update(db, func(tx *Tx) error { return tx.PutListenPorts(p) })
}

// CallSettings returns the stored call settings, or ErrNotFound.
func (db *DB) CallSettings() (CallSettings, error) { return view(db, (*Tx).CallSettings) }

// PutCallSettings stores the call settings.
func (db *DB) PutCallSettings(s CallSettings) error {
	return update(db, func(tx *Tx) error { return tx.PutCallSettings(s) })
}

// GetSetting returns a setting's raw value and whether it is set.
func (db *DB) GetSetting(name string) (v []byte, ok bool, err error) {
	err = db.View(func(tx *Tx) error {
		v, ok, err = tx.GetSetting(name)
		return err
	})
	return v, ok, err
}

// PutSetting stores a setting; nil deletes it.
func (db *DB) PutSetting(name string, value []byte) error {
	return update(db, func(tx *Tx) error { return tx.PutSetting(name, value) })
}

// Settings returns every setting.
func (db *DB) Settings() (map[string][]byte, error) { return view(db, (*Tx).Settings) }

// PutContact stores or replaces a contact; ErrPetnameTaken if its petname is used.
func (db *DB) PutContact(c Contact) error {
	return update(db, func(tx *Tx) error { return tx.PutContact(c) })
}

// Contact returns the contact for an account id, or ErrNotFound.
func (db *DB) Contact(account string) (Contact, error) {
	return view(db, func(tx *Tx) (Contact, error) { return tx.Contact(account) })
}

// ContactByPetname returns the contact with a petname, or ErrNotFound.
func (db *DB) ContactByPetname(petname string) (Contact, error) {
	return view(db, func(tx *Tx) (Contact, error) { return tx.ContactByPetname(petname) })
}

// Contacts lists every contact ordered by account id.
func (db *DB) Contacts() ([]Contact, error) { return view(db, (*Tx).Contacts) }

// DeleteContact removes a contact.
func (db *DB) DeleteContact(account string) error {
	return update(db, func(tx *Tx) error { return tx.DeleteContact(account) })
}
