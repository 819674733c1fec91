package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A public node's mailbox (package mailbox) keeps its members and the
// sealed envelopes waiting for them here, beside everything else the node
// stores, so they share the store's encryption at rest, its value sealing
// and its durability (a deposit is acknowledged after its commit):
//
//	mbox/m/<account:32>                  MailboxMember (binary, valuecodec.go)
//	mbox/e/<account:32><seq:8>           MailboxEnvelope: expires (8 bytes, big-endian
//	                                     unix nanoseconds) || digest (16) || sealed envelope
//	mbox/d/<account:32><digest:16>       seq (8 bytes): the waiting envelope with this
//	                                     digest, so a replayed deposit is not stored twice
//
// The account is the member's (the recipient's) 32-byte account key. Nothing
// about the depositor is kept: no sender, no peer id, no address.
var (
	pfxMboxMember = []byte("mbox/m/")
	pfxMboxEnv    = []byte("mbox/e/")
	pfxMboxDigest = []byte("mbox/d/")
)

// MailboxAccountSize and MailboxDigestSize are the sizes of a mailbox
// member's account key and of an envelope digest.
const (
	MailboxAccountSize = 32
	MailboxDigestSize  = 16
)

// MailboxMember is an account registered with this node's mailbox.
type MailboxMember struct {
	Account    []byte    // 32-byte Ed25519 account key
	Peers      [][]byte  // peer ids of the devices allowed to drain (at most 64)
	Registered time.Time // last registration
	Count      int       // envelopes waiting
	Bytes      int64     // their sealed bytes
	Next       uint64    // the next envelope's sequence number
}

// MailboxEnvelope is one sealed envelope waiting for a member.
type MailboxEnvelope struct {
	Seq     uint64
	Expires time.Time
	Digest  []byte // MailboxDigestSize bytes
	Data    []byte
}

func checkMboxAccount(a []byte) error {
	if len(a) != MailboxAccountSize {
		return fmt.Errorf("%w: mailbox account of %d bytes", ErrInvalid, len(a))
	}
	return nil
}

func mboxEnvKey(account []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(key(pfxMboxEnv, account), seq)
}

// MailboxMember returns the member with this account key, or ErrNotFound.
func (tx *Tx) MailboxMember(account []byte) (MailboxMember, error) {
	if err := checkMboxAccount(account); err != nil {
		return MailboxMember{}, err
	}
	return getValue(tx, key(pfxMboxMember, account), unmarshalMailboxMember)
}

// PutMailboxMember writes m.
func (tx *Tx) PutMailboxMember(m MailboxMember) error {
	if err := checkMboxAccount(m.Account); err != nil {
		return err
	}
	return setValue(tx, key(pfxMboxMember, m.Account), &m, marshalMailboxMember)
}

// MailboxMembers returns every member, in account key order.
func (tx *Tx) MailboxMembers() ([]MailboxMember, error) {
	var out []MailboxMember
	err := tx.scan(pfxMboxMember, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		b, err := val()
		var m MailboxMember
		if err == nil {
			m, err = decodeValue(k, b, unmarshalMailboxMember)
		}
		if err != nil {
			if tx.passOver(err) {
				return true, nil
			}
			return false, err
		}
		out = append(out, m)
		return true, nil
	})
	return out, err
}

// PutMailboxEnvelope stores e for account, with its digest entry.
func (tx *Tx) PutMailboxEnvelope(account []byte, e MailboxEnvelope) error {
	if err := checkMboxAccount(account); err != nil {
		return err
	}
	if len(e.Digest) != MailboxDigestSize {
		return fmt.Errorf("%w: mailbox digest of %d bytes", ErrInvalid, len(e.Digest))
	}
	v := make([]byte, 0, 8+MailboxDigestSize+len(e.Data))
	v = binary.BigEndian.AppendUint64(v, uint64(e.Expires.UnixNano()))
	v = append(append(v, e.Digest...), e.Data...)
	if err := tx.setRaw(mboxEnvKey(account, e.Seq), v); err != nil {
		return err
	}
	return tx.setRaw(key(pfxMboxDigest, account, e.Digest), binary.BigEndian.AppendUint64(nil, e.Seq))
}

// MailboxDigest reports whether an envelope with this digest waits for
// account.
func (tx *Tx) MailboxDigest(account, digest []byte) (bool, error) {
	if err := checkMboxAccount(account); err != nil {
		return false, err
	}
	return tx.has(key(pfxMboxDigest, account, digest))
}

func decodeMboxEnv(k, v []byte) (MailboxEnvelope, error) {
	if len(v) < 8+MailboxDigestSize || len(k) != len(pfxMboxEnv)+MailboxAccountSize+8 {
		return MailboxEnvelope{}, corrupt(bytes.Clone(k), &corruptCause{"short mailbox envelope"})
	}
	return MailboxEnvelope{
		Seq:     binary.BigEndian.Uint64(k[len(k)-8:]),
		Expires: time.Unix(0, int64(binary.BigEndian.Uint64(v))),
		Digest:  bytes.Clone(v[8 : 8+MailboxDigestSize]),
		Data:    v[8+MailboxDigestSize:],
	}, nil
}

// MailboxEnvelopes returns account's envelopes from sequence number from
// on, in order: at most limit of them and, past the first, at most
// maxBytes of data.
func (tx *Tx) MailboxEnvelopes(account []byte, from uint64, limit int, maxBytes int) ([]MailboxEnvelope, error) {
	if err := checkMboxAccount(account); err != nil {
		return nil, err
	}
	var out []MailboxEnvelope
	size := 0
	err := tx.scan(key(pfxMboxEnv, account), mboxEnvKey(account, from), false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		v, err := val()
		if err != nil {
			if tx.passOver(err) {
				return true, nil
			}
			return false, err
		}
		e, err := decodeMboxEnv(k, v)
		if err != nil {
			return false, err
		}
		if len(out) > 0 && size+len(e.Data) > maxBytes {
			return false, nil
		}
		out = append(out, e)
		size += len(e.Data)
		return len(out) < limit, nil
	})
	return out, err
}

// DeleteMailboxEnvelope deletes account's envelope seq and its digest
// entry and returns it; ErrNotFound when it is not there.
func (tx *Tx) DeleteMailboxEnvelope(account []byte, seq uint64) (MailboxEnvelope, error) {
	if err := checkMboxAccount(account); err != nil {
		return MailboxEnvelope{}, err
	}
	k := mboxEnvKey(account, seq)
	v, err := tx.getRaw(k)
	if err != nil {
		return MailboxEnvelope{}, err
	}
	e, err := decodeMboxEnv(k, v)
	if err != nil {
		return MailboxEnvelope{}, err
	}
	if err := tx.del(k); err != nil {
		return e, err
	}
	if err := tx.del(key(pfxMboxDigest, account, e.Digest)); err != nil && !errors.Is(err, ErrNotFound) {
		return e, err
	}
	return e, nil
}
