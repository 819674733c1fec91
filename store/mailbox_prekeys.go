package store

import (
	"encoding/binary"
	"fmt"
)

// A mailbox also holds its members' one-time prekeys (package mailbox),
// each handed out once and deleted in the transaction that hands it out:
//
//	mbox/k/<account:32><kind:1><id:4>    the prekey as the member uploaded it
//	                                     (e2e.MarshalOneTimePrekey)
//
// kind is MailboxPrekeyX25519 or MailboxPrekeyPQ; id is the prekey's own
// id, big-endian, so the oldest (lowest id) is handed out first.
var pfxMboxPrekey = []byte("mbox/k/")

// Kinds of a mailbox's one-time prekeys.
const (
	MailboxPrekeyX25519 byte = 1
	MailboxPrekeyPQ     byte = 2
)

func mboxPrekeyPrefix(account []byte, kind byte) []byte {
	return key(pfxMboxPrekey, account, []byte{kind})
}

func checkMboxPrekeyKind(kind byte) error {
	if kind != MailboxPrekeyX25519 && kind != MailboxPrekeyPQ {
		return fmt.Errorf("%w: mailbox prekey kind %d", ErrInvalid, kind)
	}
	return nil
}

// PutMailboxPrekey stores one of account's one-time prekeys of kind.
func (tx *Tx) PutMailboxPrekey(account []byte, kind byte, id uint32, data []byte) error {
	if err := checkMboxAccount(account); err != nil {
		return err
	}
	if err := checkMboxPrekeyKind(kind); err != nil {
		return err
	}
	return tx.setRaw(binary.BigEndian.AppendUint32(mboxPrekeyPrefix(account, kind), id), data)
}

// TakeMailboxPrekey deletes account's oldest one-time prekey of kind and
// returns it; ErrNotFound when there is none. The deletion is durable when
// the transaction commits.
func (tx *Tx) TakeMailboxPrekey(account []byte, kind byte) ([]byte, error) {
	if err := checkMboxAccount(account); err != nil {
		return nil, err
	}
	if err := checkMboxPrekeyKind(kind); err != nil {
		return nil, err
	}
	var k, v []byte
	err := tx.scan(mboxPrekeyPrefix(account, kind), nil, false, func(key []byte, val func() ([]byte, error)) (bool, error) {
		var err error
		k = append([]byte(nil), key...)
		v, err = val()
		return false, err
	})
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, ErrNotFound
	}
	return v, tx.del(k)
}

// DeleteMailboxPrekeys deletes every one-time prekey of kind account has
// and returns how many there were.
func (tx *Tx) DeleteMailboxPrekeys(account []byte, kind byte) (int, error) {
	if err := checkMboxAccount(account); err != nil {
		return 0, err
	}
	if err := checkMboxPrekeyKind(kind); err != nil {
		return 0, err
	}
	var keys [][]byte
	err := tx.scan(mboxPrekeyPrefix(account, kind), nil, false, func(key []byte, _ func() ([]byte, error)) (bool, error) {
		keys = append(keys, append([]byte(nil), key...))
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := tx.del(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// MailboxPrekeyCounts counts every member's one-time prekeys of each kind:
// account key (32 bytes, as a string) -> [X25519 count, PQ count].
func (tx *Tx) MailboxPrekeyCounts() (map[string][2]int, error) {
	out := map[string][2]int{}
	err := tx.scan(pfxMboxPrekey, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
		rest := k[len(pfxMboxPrekey):]
		if len(rest) != MailboxAccountSize+1+4 || checkMboxPrekeyKind(rest[MailboxAccountSize]) != nil {
			return true, nil // not ours to judge here; never handed out
		}
		a := string(rest[:MailboxAccountSize])
		c := out[a]
		c[rest[MailboxAccountSize]-1]++
		out[a] = c
		return true, nil
	})
	return out, err
}
