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
//	mbox/v/<account:32><dev:8>           MailboxDevice (binary, valuecodec.go): a device of
//	                                     the member, registered with its certificate
//	mbox/f/<account:32><dev:8><seq:8>    a device's own queue: MailboxEnvelope as under mbox/e/
//	mbox/g/<account:32><dev:8><digest:16> seq (8 bytes): mbox/d/ of a device's queue
//
// The account is the member's (the recipient's) 32-byte account key, dev
// the DeviceID of one of its devices (identity.DeviceID). mbox/e/ and
// mbox/d/ are the account's queue, the only one before devices had their
// own (package mailbox says which device drains it); a sequence number is
// the member's, unique across its queues. Nothing about the depositor is
// kept: no sender, no peer id, no address.
var (
	pfxMboxMember    = []byte("mbox/m/")
	pfxMboxEnv       = []byte("mbox/e/")
	pfxMboxDigest    = []byte("mbox/d/")
	pfxMboxDevice    = []byte("mbox/v/")
	pfxMboxDevEnv    = []byte("mbox/f/")
	pfxMboxDevDigest = []byte("mbox/g/")
)

// MailboxAccountSize, MailboxDeviceSize and MailboxDigestSize are the sizes
// of a mailbox member's account key, of a device id and of an envelope
// digest.
const (
	MailboxAccountSize = 32
	MailboxDeviceSize  = 8
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

// MailboxDevice is a device of a mailbox member, registered with its
// certificate: the value under mbox/v/<Account><ID>.
type MailboxDevice struct {
	Account []byte // 32-byte Ed25519 account key
	ID      []byte // MailboxDeviceSize bytes: the DeviceID of its certificate
	Peer    []byte // its peer id, which drains its queue
	// First marks the member's first device: its queue is the account's
	// (mbox/e/), and so are its one-time prekeys (mbox/k/).
	First bool
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

// mboxQueue is the key prefixes of one of a member's queues.
type mboxQueue struct {
	env, digest []byte // the envelopes' and digests' key prefixes, ending in the queue's id
}

// mboxQueueOf returns account's queue (dev nil) or its device dev's.
func mboxQueueOf(account, dev []byte) (mboxQueue, error) {
	if err := checkMboxAccount(account); err != nil {
		return mboxQueue{}, err
	}
	if dev == nil {
		return mboxQueue{key(pfxMboxEnv, account), key(pfxMboxDigest, account)}, nil
	}
	if len(dev) != MailboxDeviceSize {
		return mboxQueue{}, fmt.Errorf("%w: mailbox device id of %d bytes", ErrInvalid, len(dev))
	}
	return mboxQueue{key(pfxMboxDevEnv, account, dev), key(pfxMboxDevDigest, account, dev)}, nil
}

func (q mboxQueue) envKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(q.env), seq)
}

func mboxDeviceKey(account, dev []byte) ([]byte, error) {
	if err := checkMboxAccount(account); err != nil {
		return nil, err
	}
	if len(dev) != MailboxDeviceSize {
		return nil, fmt.Errorf("%w: mailbox device id of %d bytes", ErrInvalid, len(dev))
	}
	return key(pfxMboxDevice, account, dev), nil
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

// PutMailboxDevice writes d.
func (tx *Tx) PutMailboxDevice(d MailboxDevice) error {
	k, err := mboxDeviceKey(d.Account, d.ID)
	if err != nil {
		return err
	}
	return setValue(tx, k, &d, marshalMailboxDevice)
}

// DeleteMailboxDevice deletes account's device dev (nothing if it is not
// there); its queue and one-time prekeys are left alone.
func (tx *Tx) DeleteMailboxDevice(account, dev []byte) error {
	k, err := mboxDeviceKey(account, dev)
	if err != nil {
		return err
	}
	if err := tx.del(k); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// MailboxDevices returns every member's devices, in account and device id
// order.
func (tx *Tx) MailboxDevices() ([]MailboxDevice, error) {
	var out []MailboxDevice
	err := tx.scan(pfxMboxDevice, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		b, err := val()
		var d MailboxDevice
		if err == nil {
			if len(k) != len(pfxMboxDevice)+MailboxAccountSize+MailboxDeviceSize {
				err = corrupt(bytes.Clone(k), &corruptCause{"mailbox device key"})
			} else {
				d, err = decodeValue(k, b, unmarshalMailboxDevice)
			}
		}
		if err != nil {
			if tx.passOver(err) {
				return true, nil
			}
			return false, err
		}
		rest := k[len(pfxMboxDevice):]
		d.Account = bytes.Clone(rest[:MailboxAccountSize])
		d.ID = bytes.Clone(rest[MailboxAccountSize:])
		out = append(out, d)
		return true, nil
	})
	return out, err
}

// PutMailboxEnvelope stores e for account, with its digest entry.
func (tx *Tx) PutMailboxEnvelope(account []byte, e MailboxEnvelope) error {
	return tx.PutMailboxDeviceEnvelope(account, nil, e)
}

// PutMailboxDeviceEnvelope stores e in the queue of account's device dev
// (nil: the account's queue, as PutMailboxEnvelope), with its digest entry.
func (tx *Tx) PutMailboxDeviceEnvelope(account, dev []byte, e MailboxEnvelope) error {
	q, err := mboxQueueOf(account, dev)
	if err != nil {
		return err
	}
	if len(e.Digest) != MailboxDigestSize {
		return fmt.Errorf("%w: mailbox digest of %d bytes", ErrInvalid, len(e.Digest))
	}
	v := make([]byte, 0, 8+MailboxDigestSize+len(e.Data))
	v = binary.BigEndian.AppendUint64(v, uint64(e.Expires.UnixNano()))
	v = append(append(v, e.Digest...), e.Data...)
	if err := tx.setRaw(q.envKey(e.Seq), v); err != nil {
		return err
	}
	return tx.setRaw(key(q.digest, e.Digest), binary.BigEndian.AppendUint64(nil, e.Seq))
}

// MailboxDigest reports whether an envelope with this digest waits for
// account.
func (tx *Tx) MailboxDigest(account, digest []byte) (bool, error) {
	return tx.MailboxDeviceDigest(account, nil, digest)
}

// MailboxDeviceDigest reports whether an envelope with this digest waits
// in the queue of account's device dev (nil: the account's queue).
func (tx *Tx) MailboxDeviceDigest(account, dev, digest []byte) (bool, error) {
	q, err := mboxQueueOf(account, dev)
	if err != nil {
		return false, err
	}
	return tx.has(key(q.digest, digest))
}

func decodeMboxEnv(q mboxQueue, k, v []byte) (MailboxEnvelope, error) {
	if len(v) < 8+MailboxDigestSize || len(k) != len(q.env)+8 {
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
	return tx.MailboxDeviceEnvelopes(account, nil, from, limit, maxBytes)
}

// MailboxDeviceEnvelopes is MailboxEnvelopes for the queue of account's
// device dev (nil: the account's queue).
func (tx *Tx) MailboxDeviceEnvelopes(account, dev []byte, from uint64, limit int, maxBytes int) ([]MailboxEnvelope, error) {
	q, err := mboxQueueOf(account, dev)
	if err != nil {
		return nil, err
	}
	var out []MailboxEnvelope
	size := 0
	err = tx.scan(q.env, q.envKey(from), false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		v, err := val()
		if err != nil {
			if tx.passOver(err) {
				return true, nil
			}
			return false, err
		}
		e, err := decodeMboxEnv(q, k, v)
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
	return tx.DeleteMailboxDeviceEnvelope(account, nil, seq)
}

// DeleteMailboxDeviceEnvelope is DeleteMailboxEnvelope in the queue of
// account's device dev (nil: the account's queue).
func (tx *Tx) DeleteMailboxDeviceEnvelope(account, dev []byte, seq uint64) (MailboxEnvelope, error) {
	q, err := mboxQueueOf(account, dev)
	if err != nil {
		return MailboxEnvelope{}, err
	}
	k := q.envKey(seq)
	v, err := tx.getRaw(k)
	if err != nil {
		return MailboxEnvelope{}, err
	}
	e, err := decodeMboxEnv(q, k, v)
	if err != nil {
		return MailboxEnvelope{}, err
	}
	if err := tx.del(k); err != nil {
		return e, err
	}
	if err := tx.del(key(q.digest, e.Digest)); err != nil && !errors.Is(err, ErrNotFound) {
		return e, err
	}
	return e, nil
}

// MailboxDeviceQueued counts the envelopes in every device queue, reading
// keys only: account key || device id (40 bytes, as a string) -> count.
func (tx *Tx) MailboxDeviceQueued() (map[string]int, error) {
	out := map[string]int{}
	err := tx.scan(pfxMboxDevEnv, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
		rest := k[len(pfxMboxDevEnv):]
		if len(rest) != MailboxAccountSize+MailboxDeviceSize+8 {
			return true, nil // not ours to judge here; never drained
		}
		out[string(rest[:MailboxAccountSize+MailboxDeviceSize])]++
		return true, nil
	})
	return out, err
}
