package contacts

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/callsign/callsign/store"
)

// TestOnChange: each change a person makes is handed to the hook, with the
// contact before and after, in its transaction; a key-changed mark is not.
func TestOnChange(t *testing.T) {
	b, _ := newBook(t)
	var got []string
	commits := 0
	b.OnChange(func(tx *store.Tx, old, c *store.Contact) error {
		s := func(c *store.Contact) string {
			if c == nil {
				return "-"
			}
			return fmt.Sprintf("%s/%v/%v", c.Petname, c.Blocked, c.Verified)
		}
		got = append(got, s(old)+" > "+s(c))
		return nil
	}, func() { commits++ })
	bob, other := newKey(t), newKey(t)
	if _, err := b.Pin(bob, "bob", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Pin(bob, "bob", "bobby"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetFlag(bob.ID(), nil, "bobby", Blocked, true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Observe("bob", other); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify("bobby", other); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove("bobby"); err != nil {
		t.Fatal(err)
	}
	want := []string{"- > bob/false/false", "bob/false/false > bobby/false/false", "bobby/false/false > bobby/true/false",
		"bobby/true/false > -", "- > bobby/true/true", "bobby/true/true > -"}
	if !slices.Equal(got, want) || commits != 5 {
		t.Fatalf("changes %q after %d commits, want %q after 5", got, commits, want)
	}
	// A hook's error undoes the change.
	b.OnChange(func(*store.Tx, *store.Contact, *store.Contact) error { return errors.New("full") }, nil)
	if _, err := b.Pin(bob, "bob", ""); err == nil {
		t.Fatal("a change the hook refused succeeded")
	}
	if cs, _ := b.List(); len(cs) != 0 {
		t.Fatalf("contacts %+v after a refused change", cs)
	}
}

// TestApplySynced: a sibling's groups make the contact here; a group not
// held leaves its part as it is; a removal removes; a key that is not the
// account's, a petname that can't be one or a group that does not parse is
// refused (errSynced); a petname held here by another contact gets a
// suffix; accepting on a sibling accepts here.
func TestApplySynced(t *testing.T) {
	b, db := newBook(t)
	bob, carol := newKey(t), newKey(t)
	apply := func(account string, s Synced) (bool, error) {
		var changed bool
		err := db.Update(func(tx *store.Tx) (err error) { changed, err = b.ApplySynced(tx, account, s); return err })
		return changed, err
	}
	bobC := store.Contact{Account: bob.ID().String(), PubKey: bob.Bytes(), Petname: "bob", Handle: "bob", Blocked: true}
	name, trust, flags := Groups(bobC)
	if ch, err := apply(bobC.Account, Synced{Name: name, Flags: flags}); err != nil || ch {
		t.Fatalf("groups without the key: %v %v, want nothing yet", ch, err)
	}
	if ch, err := apply(bobC.Account, Synced{Name: name, Trust: trust, Flags: flags}); err != nil || !ch {
		t.Fatalf("every group: %v %v", ch, err)
	}
	c, err := b.Get(bob.ID())
	if err != nil || c.Petname != "bob" || c.Handle != "bob" || !c.Blocked || c.Verified {
		t.Fatalf("Bob from his groups: %+v %v", c, err)
	}
	// Unblocked on a sibling: every flag off is a group all the same.
	bobC.Blocked = false
	_, _, flags = Groups(bobC)
	if ch, err := apply(bobC.Account, Synced{Flags: flags}); err != nil || !ch {
		t.Fatalf("unblocked: %v %v", ch, err)
	}
	if c, _ := b.Get(bob.ID()); c.Blocked || c.Petname != "bob" {
		t.Fatalf("Bob unblocked: %+v", c)
	}
	// Carol named "bob" on the sibling: a suffix here.
	carolC := store.Contact{Account: carol.ID().String(), PubKey: carol.Bytes(), Petname: "bob", Accepted: true}
	cn, ct, cf := Groups(carolC)
	if _, err := apply(carolC.Account, Synced{Name: cn, Trust: ct, Flags: cf}); err != nil {
		t.Fatal(err)
	}
	if c, err := b.Get(carol.ID()); err != nil || c.Petname != "bob-"+carolC.Account[4:10] || !c.Accepted {
		t.Fatalf("Carol named like Bob: %+v %v", c, err)
	}

	// Hostile groups: refused, nothing written.
	wrongKey := store.Contact{Account: carolC.Account, PubKey: bob.Bytes(), Petname: "x"}
	_, badTrust, _ := Groups(wrongKey)
	badName, _, _ := Groups(store.Contact{Petname: " padded"})
	for what, s := range map[string]Synced{
		"another account's key": {Trust: badTrust},
		"a bad petname":         {Name: badName},
		"a group of garbage":    {Flags: []byte{0xff, 0xff}},
	} {
		if _, err := apply(carolC.Account, s); !errors.Is(err, errSynced) {
			t.Errorf("%s: %v, want errSynced", what, err)
		}
	}
	if _, err := apply("not an account", Synced{Trust: ct}); !errors.Is(err, errSynced) {
		t.Errorf("a group for no account: %v", err)
	}
	if c, _ := b.Get(carol.ID()); c.Petname != "bob-"+carolC.Account[4:10] {
		t.Fatalf("Carol after refused groups: %+v", c)
	}

	if ch, err := apply(bobC.Account, Synced{Removed: true}); err != nil || !ch {
		t.Fatalf("removed: %v %v", ch, err)
	}
	if _, err := b.Get(bob.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Bob after his removal: %v", err)
	}
}

// FuzzApplySynced: whatever bytes a sibling sends as groups, ApplySynced
// returns an error or a contact the store holds; it never panics.
func FuzzApplySynced(f *testing.F) {
	c := store.Contact{Petname: "bob", Handle: "bob", Verified: true, Blocked: true}
	n, tr, fl := Groups(c)
	f.Add(n, tr, fl)
	f.Add([]byte{}, []byte{0x0a, 0x01, 0x00}, []byte{0x08, 0x02})
	f.Fuzz(func(t *testing.T, name, trust, flags []byte) {
		b, db := newBook(t)
		key := newKey(t)
		if len(trust) > 0 && trust[0] == 0xff {
			_, trust, _ = Groups(store.Contact{PubKey: key.Bytes(), Verified: trust[len(trust)-1]&1 == 1})
		}
		err := db.Update(func(tx *store.Tx) error {
			_, err := b.ApplySynced(tx, key.ID().String(), Synced{Name: name, Trust: trust, Flags: flags})
			return err
		})
		if err == nil {
			if _, gerr := b.Get(key.ID()); gerr != nil && !errors.Is(gerr, ErrNotFound) {
				t.Fatalf("the contact after an accepted group: %v", gerr)
			}
		}
	})
}
