package store

import (
	"encoding/binary"
	"fmt"
)

// A mailbox also holds its members' one-time prekeys (package mailbox),
// each handed out once and deleted in the transaction that hands it out:
//
//	mbox/k/<account:32><kind:1><id:4>         the prekey as the member uploaded it
//	                                          (e2e.MarshalOneTimePrekey)
//	mbox/j/<account:32><dev:8><kind:1><id:4>  the same, of the member's device dev
//
// kind is MailboxPrekeyX25519 or MailboxPrekeyPQ; id is the prekey's own
// id, big-endian, so the oldest (lowest id) is handed out first. mbox/k/
// holds the account's keys: those of its first device (MailboxDevice.First).
var (
	pfxMboxPrekey    = []byte("mbox/k/")
	pfxMboxDevPrekey = []byte("mbox/j/")
)

// Kinds of a mailbox's one-time prekeys.
const (
	MailboxPrekeyX25519 byte = 1
	MailboxPrekeyPQ     byte = 2
)

// mboxPrekeyPrefix returns the key prefix of account's (dev nil) or its
// device dev's one-time prekeys of kind.
func mboxPrekeyPrefix(account, dev []byte, kind byte) ([]byte, error) {
	if err := checkMboxAccount(account); err != nil {
		return nil, err
	}
	if kind != MailboxPrekeyX25519 && kind != MailboxPrekeyPQ {
		return nil, fmt.Errorf("%w: mailbox prekey kind %d", ErrInvalid, kind)
	}
	if dev == nil {
		return key(pfxMboxPrekey, account, []byte{kind}), nil
	}
	if len(dev) != MailboxDeviceSize {
		return nil, fmt.Errorf("%w: mailbox device id of %d bytes", ErrInvalid, len(dev))
	}
	return key(pfxMboxDevPrekey, account, dev, []byte{kind}), nil
}

// PutMailboxPrekey stores one of account's one-time prekeys of kind.
func (tx *Tx) PutMailboxPrekey(account []byte, kind byte, id uint32, data []byte) error {
	return tx.PutMailboxDevicePrekey(account, nil, kind, id, data)
}

// PutMailboxDevicePrekey stores one of the one-time prekeys of kind of
// account's device dev (nil: the account's, as PutMailboxPrekey).
func (tx *Tx) PutMailboxDevicePrekey(account, dev []byte, kind byte, id uint32, data []byte) error {
	p, err := mboxPrekeyPrefix(account, dev, kind)
	if err != nil {
		return err
	}
	return tx.setRaw(binary.BigEndian.AppendUint32(p, id), data)
}

// TakeMailboxPrekey deletes account's oldest one-time prekey of kind and
// returns it; ErrNotFound when there is none. The deletion is durable when
// the transaction commits.
func (tx *Tx) TakeMailboxPrekey(account []byte, kind byte) ([]byte, error) {
	return tx.TakeMailboxDevicePrekey(account, nil, kind)
}

// TakeMailboxDevicePrekey is TakeMailboxPrekey for account's device dev
// (nil: the account's keys).
func (tx *Tx) TakeMailboxDevicePrekey(account, dev []byte, kind byte) ([]byte, error) {
	p, err := mboxPrekeyPrefix(account, dev, kind)
	if err != nil {
		return nil, err
	}
	var k, v []byte
	err = tx.scan(p, nil, false, func(key []byte, val func() ([]byte, error)) (bool, error) {
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
	return tx.DeleteMailboxDevicePrekeys(account, nil, kind)
}

// DeleteMailboxDevicePrekeys is DeleteMailboxPrekeys for account's device
// dev (nil: the account's keys).
func (tx *Tx) DeleteMailboxDevicePrekeys(account, dev []byte, kind byte) (int, error) {
	p, err := mboxPrekeyPrefix(account, dev, kind)
	if err != nil {
		return 0, err
	}
	var keys [][]byte
	err = tx.scan(p, nil, false, func(key []byte, _ func() ([]byte, error)) (bool, error) {
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
	return tx.countPrekeys(pfxMboxPrekey, MailboxAccountSize)
}

// MailboxDevicePrekeyCounts counts every member device's one-time prekeys
// of each kind: account key || device id (40 bytes, as a string) ->
// [X25519 count, PQ count].
func (tx *Tx) MailboxDevicePrekeyCounts() (map[string][2]int, error) {
	return tx.countPrekeys(pfxMboxDevPrekey, MailboxAccountSize+MailboxDeviceSize)
}

func (tx *Tx) countPrekeys(pfx []byte, idLen int) (map[string][2]int, error) {
	out := map[string][2]int{}
	err := tx.scan(pfx, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
		rest := k[len(pfx):]
		if len(rest) != idLen+1+4 || (rest[idLen] != MailboxPrekeyX25519 && rest[idLen] != MailboxPrekeyPQ) {
			return true, nil // not ours to judge here; never handed out
		}
		a := string(rest[:idLen])
		c := out[a]
		c[rest[idLen]-1]++
		out[a] = c
		return true, nil
	})
	return out, err
}
