package store

import "time"

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

// PutConversation stores or replaces a conversation summary.
func (db *DB) PutConversation(c Conversation) error {
	return update(db, func(tx *Tx) error { return tx.PutConversation(c) })
}

// Conversation returns the conversation with peer, or ErrNotFound.
func (db *DB) Conversation(peer string) (Conversation, error) {
	return view(db, func(tx *Tx) (Conversation, error) { return tx.Conversation(peer) })
}

// Conversations lists every conversation ordered by peer id.
func (db *DB) Conversations() ([]Conversation, error) { return view(db, (*Tx).Conversations) }

// DeleteConversation removes a conversation and all its messages, in
// batches of 1000 messages (each batch atomic, the whole not).
func (db *DB) DeleteConversation(peer string) error {
	for {
		n := 0
		err := db.Update(func(tx *Tx) error {
			var err error
			n, err = tx.deleteMessages(peer, 1000)
			return err
		})
		if err != nil {
			return err
		}
		if n < 1000 {
			break
		}
	}
	return update(db, func(tx *Tx) error { return tx.DeleteConversation(peer) })
}

// PutMessage stores or replaces a message.
func (db *DB) PutMessage(m Message) error {
	return update(db, func(tx *Tx) error { return tx.PutMessage(m) })
}

// AddMessage stores a message unless its id is taken; false when it is.
func (db *DB) AddMessage(m Message) (added bool, err error) {
	err = db.Update(func(tx *Tx) error {
		added, err = tx.AddMessage(m)
		return err
	})
	return added, err
}

// Message returns one message, or ErrNotFound.
func (db *DB) Message(peer, id string) (Message, error) {
	return view(db, func(tx *Tx) (Message, error) { return tx.Message(peer, id) })
}

// SetMessageState changes one message's State.
func (db *DB) SetMessageState(peer, id, state string) error {
	return update(db, func(tx *Tx) error { return tx.SetMessageState(peer, id, state) })
}

// DeleteMessage removes one message.
func (db *DB) DeleteMessage(peer, id string) error {
	return update(db, func(tx *Tx) error { return tx.DeleteMessage(peer, id) })
}

// Messages returns one page of a conversation, oldest first, and the next cursor.
func (db *DB) Messages(peer string, p Page) (msgs []Message, next string, err error) {
	err = db.View(func(tx *Tx) error {
		msgs, next, err = tx.Messages(peer, p)
		return err
	})
	return msgs, next, err
}

// PutOutbox stores or replaces an outbox entry.
func (db *DB) PutOutbox(e OutboxEntry) error {
	return update(db, func(tx *Tx) error { return tx.PutOutbox(e) })
}

// Outbox returns an outbox entry, or ErrNotFound.
func (db *DB) Outbox(id string) (OutboxEntry, error) {
	return view(db, func(tx *Tx) (OutboxEntry, error) { return tx.Outbox(id) })
}

// DeleteOutbox removes an outbox entry.
func (db *DB) DeleteOutbox(id string) error {
	return update(db, func(tx *Tx) error { return tx.DeleteOutbox(id) })
}

// DueOutbox lists up to limit entries due at now, earliest first.
func (db *DB) DueOutbox(now time.Time, limit int) ([]OutboxEntry, error) {
	return view(db, func(tx *Tx) ([]OutboxEntry, error) { return tx.DueOutbox(now, limit) })
}

// NextOutboxDue returns the earliest NextAttempt, false when the outbox is empty.
func (db *DB) NextOutboxDue() (at time.Time, ok bool, err error) {
	err = db.View(func(tx *Tx) error {
		at, ok, err = tx.NextOutboxDue()
		return err
	})
	return at, ok, err
}

// MarkSeen records a message id from peer; true the first time.
func (db *DB) MarkSeen(peer, id string, at time.Time) (first bool, err error) {
	err = db.Update(func(tx *Tx) error {
		first, err = tx.MarkSeen(peer, id, at)
		return err
	})
	return first, err
}

// Seen reports whether a message id from peer was marked seen.
func (db *DB) Seen(peer, id string) (bool, error) {
	return view(db, func(tx *Tx) (bool, error) { return tx.Seen(peer, id) })
}

// PruneSeen forgets dedup entries first seen before cutoff, in batches of
// 1000, and returns how many it removed.
func (db *DB) PruneSeen(cutoff time.Time) (int, error) {
	total := 0
	for {
		var n int
		var more bool
		err := db.Update(func(tx *Tx) error {
			var err error
			n, more, err = tx.pruneSeen(cutoff, 1000)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// Session returns the session state for peer, or ErrNotFound.
func (db *DB) Session(peer string) ([]byte, error) {
	return view(db, func(tx *Tx) ([]byte, error) { return tx.Session(peer) })
}

// PutSession replaces the session state for peer.
func (db *DB) PutSession(peer string, state []byte) error {
	return update(db, func(tx *Tx) error { return tx.PutSession(peer, state) })
}

// DeleteSession removes the session state for peer.
func (db *DB) DeleteSession(peer string) error {
	return update(db, func(tx *Tx) error { return tx.DeleteSession(peer) })
}
