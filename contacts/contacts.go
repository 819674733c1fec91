// Package contacts is the local address book (DESIGN §5), the one place
// that reads and writes contacts: a contact is found by petname, handle or
// account id and pinned to the account key seen first (trust on first
// use); a name that later resolves to another key marks the contact and
// holds it back until the user compares safety numbers and confirms. Both
// messaging and calls ask the book who may reach this node (MessageFrom,
// CallFrom), so a block, a key change or a follow means the same to both.
//
// The book keeps contacts in the store and knows neither the network nor
// the API: the caller resolves a name once per operation and hands in the
// key it resolved to. It must not import the DHT, msg, call, node or api.
package contacts

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// Errors the book returns, each wrapped in a message that names the
// contact; branch with errors.Is.
var (
	// ErrNotFound means no contact goes by the name or account.
	ErrNotFound = errors.New("no such contact")
	// ErrPetnameTaken means another contact has the petname.
	ErrPetnameTaken = errors.New("petname is already used by another contact")
	// ErrInvalidPetname means a petname is empty, longer than 64
	// characters, padded with spaces or holds control characters.
	ErrInvalidPetname = errors.New("invalid petname")
	// ErrKeyChanged means a contact's handle now resolves to another key
	// than the one pinned: nothing is sent to it until the user verifies.
	ErrKeyChanged = errors.New("the contact's key changed")
)

// failure is an error in the user's words that errors.Is matches to its
// kind, one of the errors above.
type failure struct {
	kind error
	msg  string
}

func (f *failure) Error() string { return f.msg }
func (f *failure) Unwrap() error { return f.kind }

func fail(kind error, format string, args ...any) error {
	return &failure{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// Book is the address book over a store. It is safe for concurrent use;
// each method is one store transaction (Observe: two, see there).
type Book struct {
	db       *store.DB
	accepted func(tx *store.Tx, account string) error
	now      func() time.Time

	changed   func(tx *store.Tx, old, c *store.Contact) error // see OnChange
	committed func()
}

// New returns the book kept in db. accepted (nil: none) runs in the
// transaction that accepts an account (Accept), so that what it writes
// commits with the contact: the node passes msg.AcceptRequest, which
// turns the account's message request into a conversation. (The book
// knows no messaging: msg asks the book, not the reverse.)
func New(db *store.DB, accepted func(tx *store.Tx, account string) error) *Book {
	return &Book{db: db, accepted: accepted, now: time.Now}
}

// Find looks a contact up by petname, account id or handle (as typed or
// normalised), in that order; ErrNotFound when none matches.
func (b *Book) Find(name string) (store.Contact, error) {
	var c store.Contact
	err := b.db.View(func(tx *store.Tx) error {
		var err error
		c, err = find(tx, name)
		return err
	})
	return c, err
}

func find(tx *store.Tx, name string) (store.Contact, error) {
	if c, err := tx.ContactByPetname(name); err == nil {
		return c, nil
	}
	if c, err := tx.Contact(name); err == nil {
		return c, nil
	}
	norm, _ := identity.NormalizeHandle(name)
	cs, err := tx.Contacts()
	if err != nil {
		return store.Contact{}, err
	}
	for _, c := range cs {
		if c.Handle == name || (norm != "" && c.Handle == norm) {
			return c, nil
		}
	}
	return store.Contact{}, fail(ErrNotFound, "no contact %q", name)
}

// Get returns the contact for account; ErrNotFound when it is none.
func (b *Book) Get(account identity.AccountID) (store.Contact, error) {
	c, err := b.db.Contact(account.String())
	if errors.Is(err, store.ErrNotFound) {
		return store.Contact{}, fail(ErrNotFound, "no contact %q", account)
	}
	return c, err
}

// List returns every contact.
func (b *Book) List() ([]store.Contact, error) {
	var cs []store.Contact
	err := b.db.View(func(tx *store.Tx) error {
		var err error
		cs, err = tx.Contacts()
		return err
	})
	return cs, err
}

// Petname is the petname of a contact, "" for an account that is not one.
func (b *Book) Petname(account string) string {
	c, err := b.db.Contact(account)
	if err != nil {
		return ""
	}
	return c.Petname
}

// Petnames maps the contacts' account ids to their petnames.
func (b *Book) Petnames() map[string]string {
	out := map[string]string{}
	cs, _ := b.List()
	for _, c := range cs {
		out[c.Account] = c.Petname
	}
	return out
}

// Remove removes the contact name refers to (see Find).
func (b *Book) Remove(name string) error {
	return b.update(func(tx *store.Tx) error {
		c, err := find(tx, name)
		if err != nil {
			return err
		}
		return b.remove(tx, c)
	})
}

// Trust is what the book says about a key a name resolved to.
type Trust struct {
	// Pinned: the key is a contact's pinned key (and no contact holds the
	// name under another key).
	Pinned bool
	// Changed: a contact known by this handle is pinned to another key.
	Changed bool
	// Marked is the contact just marked key-changed by this observation;
	// nil when it was marked already (or nothing changed). The caller
	// raises it as a warning.
	Marked *KeyChange
}

// KeyChange is a contact whose handle now resolves to another key.
type KeyChange struct {
	Contact store.Contact // as marked
	Handle  string
	Now     identity.AccountID // the account the handle resolves to now
}

// Observe compares what handle name resolved to, owner, with the contacts
// (trust on first use): pinned when owner is a contact; changed when a
// contact holds name under another key. A change is remembered on the
// contact (KeyChanged, SeenPubKey) until the user confirms the new key.
// A self-certifying handle can't change key, and an account id (name "")
// has none to compare.
func (b *Book) Observe(name string, owner identity.AccountPub) (Trust, error) {
	var t Trust
	id := owner.ID().String()
	var mark *store.Contact
	err := b.db.View(func(tx *store.Tx) error {
		cs, err := tx.Contacts()
		for _, c := range cs {
			switch {
			case c.Account == id:
				t.Pinned = true
			case name != "" && c.Handle == name && !identity.IsSelfCert(name):
				t.Changed = true
				if !c.KeyChanged || !bytes.Equal(c.SeenPubKey, owner.Bytes()) {
					mark = &c
				}
			}
		}
		return err
	})
	if err == nil && mark != nil {
		// Marked in a transaction of its own (most observations change
		// nothing and stay read-only), on the contact as it is now, so a
		// concurrent edit (a petname, a block) is not overwritten.
		account, seen := mark.Account, owner.Bytes()
		err = b.db.Update(func(tx *store.Tx) error {
			c, err := tx.Contact(account)
			if errors.Is(err, store.ErrNotFound) {
				return nil // removed meanwhile: nothing to mark
			}
			if err != nil {
				return err
			}
			c.KeyChanged, c.SeenPubKey = true, seen
			t.Marked = &KeyChange{Contact: c, Handle: name, Now: owner.ID()}
			return tx.PutContact(c)
		})
	}
	if t.Changed {
		t.Pinned = false
	}
	return t, err
}

// CheckPetname says whether p may be a petname (ErrInvalidPetname).
func CheckPetname(p string) error {
	if !utf8.ValidString(p) || utf8.RuneCountInString(p) > 64 || strings.TrimSpace(p) != p || p == "" {
		return fail(ErrInvalidPetname, "invalid petname %q", p)
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return fail(ErrInvalidPetname, "invalid petname %q: control characters", p)
		}
	}
	return nil
}

// Pin makes owner a contact known by handle (the name it was found by;
// "" for none) and petname ("" = the handle, else the account id), its key
// pinned now (trust on first use). Adding a contact again re-pins its key
// and keeps its flags.
func (b *Book) Pin(owner identity.AccountPub, handle, petname string) (store.Contact, error) {
	if petname == "" {
		petname = handle
	}
	if petname == "" {
		petname = owner.ID().String()
	}
	if err := CheckPetname(petname); err != nil {
		return store.Contact{}, err
	}
	now := b.now().UTC()
	c := store.Contact{Account: owner.ID().String(), PubKey: owner.Bytes(), Petname: petname, Handle: handle,
		AddedAt: now, PinnedAt: now}
	err := b.update(func(tx *store.Tx) error {
		var was *store.Contact
		if old, err := tx.Contact(c.Account); err == nil {
			c.AddedAt, c.Verified, c.Following, c.Blocked, c.Accepted = old.AddedAt, old.Verified, old.Following, old.Blocked, old.Accepted
			was = &old
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if other, err := tx.ContactByPetname(petname); err == nil && other.Account != c.Account {
			return fail(ErrPetnameTaken, "petname %q is already used for %s", petname, other.Account)
		}
		return b.put(tx, was, c)
	})
	if err != nil {
		return store.Contact{}, err
	}
	return c, nil
}

// newContact is a contact for owner, pinned now, named by the first global
// handle its record claims (else the first handle, else its account id).
func (b *Book) newContact(owner identity.AccountPub, handles []string) store.Contact {
	now := b.now().UTC()
	c := store.Contact{Account: owner.ID().String(), PubKey: owner.Bytes(), AddedAt: now, PinnedAt: now}
	for _, h := range handles {
		if !identity.IsSelfCert(h) {
			c.Handle = h
			break
		}
	}
	if c.Handle == "" && len(handles) > 0 {
		c.Handle = handles[0]
	}
	c.Petname = c.Handle
	if c.Petname == "" {
		c.Petname = c.Account
	}
	return c
}

// Accept lets account write to this node: it becomes a contact (owner,
// when it is not one yet, pinned now and named by the handles its record
// claims; owner is then required) that is accepted and not blocked, and
// (through New's accepted) its conversation is no longer a request. A petname another contact holds
// gets a suffix from the account id.
func (b *Book) Accept(account identity.AccountID, owner *identity.AccountPub, handles []string) (store.Contact, error) {
	var c store.Contact
	err := b.update(func(tx *store.Tx) error {
		var err error
		c, err = tx.Contact(account.String())
		was := &c
		switch {
		case errors.Is(err, store.ErrNotFound) && owner != nil && owner.ID() == account:
			c, was = b.newContact(*owner, handles), nil
		case errors.Is(err, store.ErrNotFound):
			return fail(ErrNotFound, "no contact %q and no key to pin", account)
		case err != nil:
			return err
		}
		if was != nil {
			old := c
			was = &old
		}
		c.Accepted, c.Blocked = true, false
		if other, err := tx.ContactByPetname(c.Petname); err == nil && other.Account != c.Account {
			c.Petname = c.Petname + "-" + c.Account[4:10]
		}
		if err := b.put(tx, was, c); err != nil {
			return err
		}
		if b.accepted == nil {
			return nil
		}
		return b.accepted(tx, c.Account)
	})
	return c, err
}

// Flag is a contact's flag a user sets.
type Flag string

// The flags.
const (
	Blocked   Flag = "block"
	Following Flag = "follow"
)

// SetFlag sets or clears flag on account's contact. Setting one on an
// account that is not a contact makes it one, owner pinned now and known
// by name (a handle or a petname; an account id or a name that can't be
// a petname names it by its account id); clearing one there is
// ErrNotFound.
func (b *Book) SetFlag(account identity.AccountID, owner *identity.AccountPub, name string, flag Flag, on bool) (store.Contact, error) {
	if flag != Blocked && flag != Following {
		return store.Contact{}, fmt.Errorf("bug: unknown contact flag %q", flag)
	}
	var c store.Contact
	err := b.update(func(tx *store.Tx) error {
		var err error
		c, err = tx.Contact(account.String())
		var was *store.Contact
		if err == nil {
			old := c
			was = &old
		}
		switch {
		case errors.Is(err, store.ErrNotFound) && (!on || owner == nil || owner.ID() != account):
			return fail(ErrNotFound, "no contact %q", name)
		case errors.Is(err, store.ErrNotFound):
			now := b.now().UTC()
			c = store.Contact{Account: account.String(), PubKey: owner.Bytes(), Petname: name, AddedAt: now, PinnedAt: now}
			if h, err := identity.NormalizeHandle(name); err == nil {
				c.Handle = h
			}
			if CheckPetname(name) != nil || strings.HasPrefix(name, "csa1") {
				c.Petname = c.Account
			}
		case err != nil:
			return err
		}
		switch flag {
		case Blocked:
			c.Blocked = on
		case Following:
			c.Following = on
		}
		err = b.put(tx, was, c)
		if errors.Is(err, store.ErrPetnameTaken) {
			return fail(ErrPetnameTaken, "petname %q is already used by another contact", c.Petname)
		}
		return err
	})
	return c, err
}

// Key is the key to compare safety numbers with for c: the key its handle
// resolves to now after a key change, else the pinned one.
func Key(c store.Contact) (identity.AccountPub, error) {
	b := c.PubKey
	if c.KeyChanged && len(c.SeenPubKey) > 0 {
		b = c.SeenPubKey
	}
	pub, err := identity.ParseAccountPub(b)
	if err != nil {
		return identity.AccountPub{}, fmt.Errorf("contact %s has no usable key: %w", c.Petname, err)
	}
	return pub, nil
}

// Verify marks the contact name refers to verified, the user having
// compared the safety number for key (see Key): after a key change, it is
// re-pinned to key, the new one.
func (b *Book) Verify(name string, key identity.AccountPub) (store.Contact, error) {
	var c store.Contact
	err := b.update(func(tx *store.Tx) error {
		var err error
		if c, err = find(tx, name); err != nil {
			return err
		}
		if cur, err := Key(c); err != nil || !cur.Equal(key) {
			return fail(ErrKeyChanged, "the key of %s changed again; compare the new safety number", c.Petname)
		}
		old := c
		was := &old
		if c.KeyChanged {
			// Re-pinned: another account, so another contact.
			if err := b.remove(tx, c); err != nil {
				return err
			}
			c.Account, c.PubKey, c.SeenPubKey, c.KeyChanged = key.ID().String(), key.Bytes(), nil, false
			c.PinnedAt = b.now().UTC()
			was = nil
			if prev, err := tx.Contact(c.Account); err == nil {
				was = &prev
			}
		}
		c.Verified = true
		return b.put(tx, was, c)
	})
	return c, err
}
