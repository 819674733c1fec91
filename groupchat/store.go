package groupchat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/store"
)

// Stored data, in the store's groups keyspace (store.SpaceGroups), under
// grp/ and one letter:
//
//	grp/r/<group>                 the group's record (rec): this account's status in it, unread, last
//	grp/o/<group><hash>           an operation of its log (group.Op), branches that lost included
//	grp/k/<group>                 this device's sender key (own)
//	grp/c/<group><account><dev>   a member device's sender key, as received (chain)
//	grp/m/<group><at:8><id>       a message (stored), in the order it was stored here
//	grp/i/<group><id>             a message's at: its seen id
//	grp/p/<group><n:8>            a carrier waiting for what comes before it (pending)
//	grp/x/<when:8><group><id>     a message that disappears then (timer.go)
//	grp/a/<group><target><id>     an action that came before its target (early; actions.go)
//
// <account> is the account id's 32-byte hash (identity.AccountID.Hash);
// <dev> 8 bytes; <id> 16 bytes. Values are protobuf wire format.
var (
	pfxAll     = []byte("grp/") // every key of the keyspace
	pfxRec     = []byte("grp/r/")
	pfxOp      = []byte("grp/o/")
	pfxOwn     = []byte("grp/k/")
	pfxChain   = []byte("grp/c/")
	pfxMsg     = []byte("grp/m/")
	pfxMsgID   = []byte("grp/i/")
	pfxPending = []byte("grp/p/")
	pfxExpiry  = []byte("grp/x/")
	pfxEarly   = []byte("grp/a/")
)

func key(pfx []byte, parts ...[]byte) []byte {
	k := append([]byte(nil), pfx...)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// Status is this account's place in a group.
type Status uint8

const (
	// Invited: an admin added this account; it has not joined yet.
	Invited Status = iota + 1
	// Joined: a member.
	Joined
	// Left: this account left, or declined the invitation.
	Left
	// Removed: an admin removed this account.
	Removed
)

func (s Status) String() string {
	switch s {
	case Invited:
		return "invited"
	case Joined:
		return "joined"
	case Left:
		return "left"
	case Removed:
		return "removed"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// rec is a group's record:
//
//	field 1  status      uint
//	field 2  unread      uint
//	field 3  last_at     sint  unix nanoseconds
//	field 4  invited_by  bytes an account public key
//	field 5  request     bool  the invitation came from a stranger
//	field 6  pending     uint  the next pending carrier's number
type rec struct {
	status    Status
	unread    uint64
	lastAt    time.Time
	invitedBy []byte
	request   bool
	pending   uint64
}

func (r *rec) marshal() []byte {
	var e wire.Encoder
	e.Uint(1, uint64(r.status))
	e.Uint(2, r.unread)
	if !r.lastAt.IsZero() {
		e.Sint(3, r.lastAt.UnixNano())
	}
	e.Bytes(4, r.invitedBy)
	e.Bool(5, r.request)
	e.Uint(6, r.pending)
	return e.B
}

var errCorrupt = errors.New("corrupt group record")

func unmarshalRec(b []byte) (rec, error) {
	var r rec
	d := wire.NewFrameDecoder(b, errCorrupt, maxSkipped)
	r.status = Status(d.Uint(1, uint64(Removed)))
	r.unread = d.Uint(2, 1<<40)
	if v := d.Sint(3, 1, 1<<62); v != 0 {
		r.lastAt = time.Unix(0, v)
	}
	r.invitedBy = d.Bytes(4, identity.AccountPubSize, identity.AccountPubSize)
	r.request = d.Bool(5)
	r.pending = d.Uint(6, 1<<62)
	return r, d.End()
}

// own is this device's sender key in a group:
//
//	field 1  epoch    uint
//	field 2  gen      uint   its generation, from 1
//	field 3  made     sint   when it was made, unix nanoseconds
//	field 4  key      bytes  e2e.SenderKey
//	field 5  shared   bytes  repeated, the accounts (hashes) it was sent to
//	field 6  initial  bytes  its share at iteration 0 (e2e.SenderKeyShare), for a member device that asks
//	field 7  seq      uint   the log's seq when it was made: who was added later gets no earlier message
type own struct {
	epoch   uint64
	gen     uint64
	made    time.Time
	key     []byte
	shared  [][]byte
	initial []byte
	seq     uint64
}

func (o *own) marshal() []byte {
	var e wire.Encoder
	e.Uint(1, o.epoch)
	e.Uint(2, o.gen)
	e.Sint(3, o.made.UnixNano())
	e.Bytes(4, o.key)
	for _, s := range o.shared {
		e.Bytes(5, s)
	}
	e.Bytes(6, o.initial)
	e.Uint(7, o.seq)
	return e.B
}

func unmarshalOwn(b []byte) (own, error) {
	var o own
	d := wire.NewFrameDecoder(b, errCorrupt, maxSkipped)
	o.epoch = d.Uint(1, 1<<32)
	o.gen = d.Uint(2, 1<<32)
	o.made = time.Unix(0, d.Sint(3, 1, 1<<62))
	o.key = d.Bytes(4, 1, 1024)
	o.shared = d.RepeatedBytes(5, group.MaxMembers, 1, 64)
	o.initial = d.Bytes(6, 1, 256)
	o.seq = d.Uint(7, 1<<40)
	return o, d.End()
}

// chain is a member device's sender key as received:
//
//	field 1  epoch  uint
//	field 2  gen    uint
//	field 3  chain  bytes  e2e.ReceiverChain
type chain struct {
	epoch uint64
	gen   uint64
	chain []byte
}

func (c *chain) marshal() []byte {
	var e wire.Encoder
	e.Uint(1, c.epoch)
	e.Uint(2, c.gen)
	e.Bytes(3, c.chain)
	return e.B
}

func unmarshalChain(b []byte) (chain, error) {
	var c chain
	d := wire.NewFrameDecoder(b, errCorrupt, maxSkipped)
	c.epoch = d.Uint(1, 1<<32)
	c.gen = d.Uint(2, 1<<32)
	c.chain = d.Bytes(3, 1, 1<<20)
	return c, d.End()
}

// stored is a message as kept:
//
//	field 1  id       bytes 16
//	field 2  from     bytes the sender's account id (text)
//	field 3  dev      bytes 8, the sending device
//	field 4  sent_at  sint
//	field 5  at       sint  when it was stored here
//	field 6  text     bytes
//	field 7  file     bytes
//	field 8  out      bool  sent by this account
//	field 9  read     bool
//	field 10 expires  uint  seconds after at that it disappears (0: it stays)
//	field 11 reply_to bytes 16, the message it quotes
//	field 12 reaction bytes repeated: field 1 a member's account id, field 2 its emoji
//	field 13 edited   bool
//	field 14 deleted  bool  deleted for everyone (no text, no file)
//	field 15 recipients uint  this account's: the other member accounts when it was sent
//	field 16 delivered  bytes this account's: 8 × n, the first 8 bytes of the account
//	                          hashes of the members that have it (receipts.go)
//	field 17 read_by    bytes the same, of those that read it
type stored struct {
	id        [16]byte
	from      identity.AccountID
	dev       identity.DeviceID
	sentAt    time.Time
	at        time.Time
	text      []byte
	file      []byte
	out       bool
	read      bool
	expires   time.Duration
	replyTo   []byte
	reactions []Reaction
	edited    bool
	deleted   bool
	// Receipts of a message this account sent (receipts.go).
	recipients int
	delivered  []byte
	readBy     []byte
}

func (m *stored) marshal() []byte {
	var e wire.Encoder
	e.Bytes(1, m.id[:])
	e.String(2, string(m.from))
	e.Bytes(3, m.dev[:])
	e.Sint(4, m.sentAt.UnixNano())
	e.Sint(5, m.at.UnixNano())
	e.Bytes(6, m.text)
	e.Bytes(7, m.file)
	e.Bool(8, m.out)
	e.Bool(9, m.read)
	e.Uint(10, uint64(m.expires/time.Second))
	e.Bytes(11, m.replyTo)
	for _, r := range m.reactions {
		e.Bytes(12, marshalReaction(r))
	}
	e.Bool(13, m.edited)
	e.Bool(14, m.deleted)
	e.Uint(15, uint64(m.recipients))
	e.Bytes(16, m.delivered)
	e.Bytes(17, m.readBy)
	return e.B
}

func unmarshalStored(b []byte) (stored, error) {
	var m stored
	d := wire.NewFrameDecoder(b, errCorrupt, maxSkipped)
	copy(m.id[:], d.Fixed(1, 16))
	m.from = identity.AccountID(d.String(2, 1, 128))
	copy(m.dev[:], d.Fixed(3, len(m.dev)))
	m.sentAt = time.Unix(0, d.Sint(4, 1, 1<<62))
	m.at = time.Unix(0, d.Sint(5, 1, 1<<62))
	m.text = d.Bytes(6, 1, MaxText)
	m.file = d.Bytes(7, 1, MaxFileRef)
	m.out = d.Bool(8)
	m.read = d.Bool(9)
	m.expires = time.Duration(d.Uint(10, uint64(group.MaxTimer/time.Second))) * time.Second
	m.replyTo = d.OptFixed(11, 16)
	for _, b := range d.RepeatedBytes(12, maxReactions, 1, 256) {
		r, err := unmarshalReaction(b)
		if err != nil {
			return stored{}, err
		}
		m.reactions = append(m.reactions, r)
	}
	m.edited = d.Bool(13)
	m.deleted = d.Bool(14)
	m.recipients = int(d.Uint(15, group.MaxMembers))
	m.delivered = d.Bytes(16, 8, 8*group.MaxMembers)
	m.readBy = d.Bytes(17, 8, 8*group.MaxMembers)
	if err := d.End(); err != nil {
		return stored{}, err
	}
	if len(m.delivered)%8 != 0 || len(m.readBy)%8 != 0 {
		return stored{}, fmt.Errorf("%w: receipts of %d and %d bytes", errCorrupt, len(m.delivered), len(m.readBy))
	}
	return m, nil
}

// pendingCarrier is a carrier kept until what it follows arrives:
//
//	field 1  from     bytes the sender's account id (text)
//	field 2  dev      bytes 8
//	field 3  body     bytes the carrier
//	field 4  request  bool  the sender was a stranger (Receive's request)
type pendingCarrier struct {
	from    identity.AccountID
	dev     identity.DeviceID
	body    []byte
	request bool
}

func (p *pendingCarrier) marshal() []byte {
	var e wire.Encoder
	e.String(1, string(p.from))
	e.Bytes(2, p.dev[:])
	e.Bytes(3, p.body)
	e.Bool(4, p.request)
	return e.B
}

func unmarshalPending(b []byte) (pendingCarrier, error) {
	var p pendingCarrier
	d := wire.NewFrameDecoder(b, errCorrupt, maxSkipped)
	p.from = identity.AccountID(d.String(1, 1, 128))
	copy(p.dev[:], d.Fixed(2, len(p.dev)))
	p.body = d.Bytes(3, 1, maxCarrier)
	p.request = d.Bool(4)
	return p, d.End()
}

// data is the groups keyspace in one transaction.
type data struct{ sp *store.Space }

func in(tx *store.Tx) data { return data{tx.Space(store.SpaceGroups)} }

func get[T any](d data, k []byte, dec func([]byte) (T, error)) (T, bool, error) {
	var zero T
	b, err := d.sp.Get(k)
	if errors.Is(err, store.ErrNotFound) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, err
	}
	v, err := dec(b)
	if err != nil {
		return zero, false, fmt.Errorf("%w: %q: %v", store.ErrCorrupt, k, err)
	}
	return v, true, nil
}

func (d data) rec(g group.ID) (rec, bool, error) { return get(d, key(pfxRec, g[:]), unmarshalRec) }

func (d data) putRec(g group.ID, r rec) error { return d.sp.Set(key(pfxRec, g[:]), r.marshal()) }

// groupRec is a group's id and its record.
type groupRec struct {
	g group.ID
	r rec
}

// recs returns every group's record. A damaged one is handed to damaged
// (its error a store.Corrupt): nil passes over it, an error stops there.
func (d data) recs(damaged func(error) error) ([]groupRec, error) {
	var out []groupRec
	err := d.sp.Scan(pfxRec, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		b, err := val()
		if err != nil {
			return false, err
		}
		var g group.ID
		r, err := unmarshalRec(b)
		if err == nil && len(k) != len(pfxRec)+len(g) {
			err = errors.New("a record's key of the wrong length")
		}
		if err != nil {
			return true, damaged(store.Corrupt(k, err))
		}
		copy(g[:], k[len(pfxRec):])
		out = append(out, groupRec{g, r})
		return true, nil
	})
	return out, err
}

// ops reads a group's operations.
func (d data) ops(g group.ID) ([]group.Op, error) {
	var out []group.Op
	err := d.sp.Scan(key(pfxOp, g[:]), nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		b, err := val()
		if err != nil {
			return false, err
		}
		o, err := group.Unmarshal(b)
		if err != nil {
			return false, fmt.Errorf("%w: %q: %v", store.ErrCorrupt, k, err)
		}
		out = append(out, o)
		return true, nil
	})
	return out, err
}

func (d data) putOp(o group.Op) error {
	h := o.Hash()
	return d.sp.Set(key(pfxOp, o.Group[:], h[:]), o.Marshal())
}

func (d data) own(g group.ID) (own, bool, error) { return get(d, key(pfxOwn, g[:]), unmarshalOwn) }
func (d data) putOwn(g group.ID, o own) error    { return d.sp.Set(key(pfxOwn, g[:]), o.marshal()) }
func (d data) deleteOwn(g group.ID) error        { return d.sp.Delete(key(pfxOwn, g[:])) }

func chainKey(g group.ID, from identity.AccountID, dev identity.DeviceID) []byte {
	return key(pfxChain, g[:], from.Hash(), dev[:])
}

func (d data) chain(g group.ID, from identity.AccountID, dev identity.DeviceID) (chain, bool, error) {
	return get(d, chainKey(g, from, dev), unmarshalChain)
}

func (d data) putChain(g group.ID, from identity.AccountID, dev identity.DeviceID, c chain) error {
	return d.sp.Set(chainKey(g, from, dev), c.marshal())
}

// deleteChains deletes the sender keys received from acct's devices (every
// member's when acct is "").
func (d data) deleteChains(g group.ID, acct identity.AccountID) error {
	pfx := key(pfxChain, g[:])
	if acct != "" {
		pfx = append(pfx, acct.Hash()...)
	}
	return d.deleteAll(pfx)
}

func (d data) deleteAll(pfx []byte) error {
	var keys [][]byte
	err := d.sp.Scan(pfx, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
		keys = append(keys, append([]byte(nil), k...))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := d.sp.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// message reads message id of g; ok is false when it is not here.
func (d data) message(g group.ID, id [16]byte) (m stored, ok bool, err error) {
	at, err := d.sp.Get(key(pfxMsgID, g[:], id[:]))
	if errors.Is(err, store.ErrNotFound) {
		return stored{}, false, nil
	}
	if err != nil {
		return stored{}, false, err
	}
	k := key(pfxMsg, g[:], at, id[:])
	v, err := d.sp.Get(k)
	if errors.Is(err, store.ErrNotFound) {
		return stored{}, false, nil // expired: its id stays, so it is not taken again
	}
	if err != nil {
		return stored{}, false, err
	}
	if m, err = unmarshalStored(v); err != nil {
		return stored{}, false, store.Corrupt(k, err)
	}
	return m, true, nil
}

// hasMessage reports whether message id of g is stored (or was).
func (d data) hasMessage(g group.ID, id [16]byte) (bool, error) {
	return d.sp.Has(key(pfxMsgID, g[:], id[:]))
}

func (d data) putMessage(g group.ID, m stored) error {
	at := be64(uint64(m.at.UnixNano()))
	if err := d.sp.Set(key(pfxMsgID, g[:], m.id[:]), at); err != nil {
		return err
	}
	if m.expires > 0 {
		when := be64(uint64(m.at.Add(m.expires).UnixNano()))
		if err := d.sp.Set(key(pfxExpiry, when, g[:], m.id[:]), nil); err != nil {
			return err
		}
	}
	return d.sp.Set(key(pfxMsg, g[:], at, m.id[:]), m.marshal())
}

// messages pages through g's messages: limit of them before cursor (a
// stored key's tail; nil: the newest), newest first.
func (d data) messages(g group.ID, before []byte, limit int, fn func(k []byte, m stored) bool) error {
	pfx := key(pfxMsg, g[:])
	var start []byte
	if before != nil {
		start = key(pfx, before)
	}
	n := 0
	return d.sp.Scan(pfx, start, true, func(k []byte, val func() ([]byte, error)) (bool, error) {
		if start != nil && string(k) >= string(start) {
			return true, nil
		}
		b, err := val()
		if err != nil {
			return false, err
		}
		m, err := unmarshalStored(b)
		if err != nil {
			return false, fmt.Errorf("%w: %q: %v", store.ErrCorrupt, k, err)
		}
		n++
		return fn(k[len(pfx):], m) && n < limit, nil
	})
}
