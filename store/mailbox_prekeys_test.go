package store

import (
	"bytes"
	"errors"
	"testing"
)

// TestMailboxPrekeys: a mailbox hands out each of a member's one-time
// prekeys once, oldest first, and the hand-out survives a reopen.
func TestMailboxPrekeys(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, nil)
	acct := bytes.Repeat([]byte{7}, MailboxAccountSize)
	other := bytes.Repeat([]byte{8}, MailboxAccountSize)
	if err := db.Update(func(tx *Tx) error {
		for _, id := range []uint32{30, 10, 20} {
			if err := tx.PutMailboxPrekey(acct, MailboxPrekeyX25519, id, []byte{byte(id)}); err != nil {
				return err
			}
		}
		if err := tx.PutMailboxPrekey(acct, MailboxPrekeyPQ, 11, []byte{11}); err != nil {
			return err
		}
		return tx.PutMailboxPrekey(other, MailboxPrekeyX25519, 5, []byte{5})
	}); err != nil {
		t.Fatal(err)
	}
	var got []byte
	if err := db.Update(func(tx *Tx) error {
		var err error
		got, err = tx.TakeMailboxPrekey(acct, MailboxPrekeyX25519)
		return err
	}); err != nil || !bytes.Equal(got, []byte{10}) {
		t.Fatalf("take = %v, %v; want the oldest, 10", got, err)
	}
	db.Close()
	db = openT(t, dir, nil)
	defer db.Close()
	if err := db.View(func(tx *Tx) error {
		c, err := tx.MailboxPrekeyCounts()
		if err != nil {
			return err
		}
		if c[string(acct)] != [2]int{2, 1} || c[string(other)] != [2]int{1, 0} {
			t.Errorf("counts after a reopen = %v", c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error {
		n, err := tx.DeleteMailboxPrekeys(acct, MailboxPrekeyX25519)
		if err != nil || n != 2 {
			t.Errorf("deleted %d, %v; want 2", n, err)
		}
		if _, err := tx.TakeMailboxPrekey(acct, MailboxPrekeyX25519); !errors.Is(err, ErrNotFound) {
			t.Errorf("take from none: %v", err)
		}
		if err := tx.PutMailboxPrekey(acct, 3, 1, []byte{1}); !errors.Is(err, ErrInvalid) {
			t.Errorf("unknown kind: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
