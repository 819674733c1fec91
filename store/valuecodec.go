package store

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/callsign/callsign/internal/wire"
)

// errCorrupt is wrapped by every decoding error; it wraps ErrCorrupt.
var errCorrupt error = &corruptCause{"malformed stored value"}

// newReader is the strict decoder of a stored value: a stored value has
// one byte form, so no unknown field of any number is read past
// (docs/ARCHITECTURE.md, "Wire formats"; a new field takes a schema
// version and a migration). Byte slices it returns alias the input (the
// accessors decode values they own).
func newReader(b []byte) *wire.Decoder { return wire.NewDecoder(b, errCorrupt) }

// checkNanos rejects a time wire.Encoder.Time cannot write.
func checkNanos(what string, t time.Time) error {
	if !wire.TimeFits(t) {
		return fmt.Errorf("%w: %s %v is out of range", ErrInvalid, what, t)
	}
	return nil
}

// Binary encodings (schema 8) of the values that were JSON until schema 7:
// HandleClaim, ListenPorts, Contact, Call, MailboxMember and CallSettings;
// and MailboxDevice, added with devices.
// The canonical form of every stored value (values.proto): protobuf wire
// format, fields ascending and each once (a repeated field contiguous),
// zero values omitted, minimal varints, no unknown field of any number;
// times are zigzag unix nanoseconds, absent for the zero time.Time.
//
//	HandleClaim
//	field 1  name        bytes   ≤ maxIDLen, required
//	field 2  nonce       varint
//	field 3  seq         varint
//	field 4  claimed_at  varint  zigzag unix ns
//
//	ListenPorts
//	field 1  tcp   varint  ≤ 65535
//	field 2  quic  varint  ≤ 65535
//
//	Contact
//	field 1  account      bytes   ≤ maxIDLen, required
//	field 2  pubkey       bytes   ≤ maxKeyLen
//	field 3  petname      bytes   ≤ maxIDLen
//	field 4  handle       bytes   ≤ maxIDLen
//	field 5  added_at     varint  zigzag unix ns
//	field 6  pinned_at    varint  zigzag unix ns
//	field 7  key_changed  varint  1
//	field 8  seen_pubkey  bytes   ≤ maxKeyLen
//	field 9  verified     varint  1
//	field 10 following    varint  1
//	field 11 blocked      varint  1
//	field 12 accepted     varint  1
//
//	Call
//	field 1  id                bytes   ≤ maxIDLen, required
//	field 2  peer              bytes   ≤ maxIDLen
//	field 3  direction         bytes   ≤ maxWordLen ("in", "out")
//	field 4  start             varint  zigzag unix ns, required
//	field 5  duration          varint  zigzag ns
//	field 6  end_reason        bytes   ≤ maxWordLen
//	field 7  path              bytes   ≤ maxWordLen
//	field 8  packets_sent      varint
//	field 9  packets_received  varint
//	field 10 bytes_sent        varint
//	field 11 bytes_received    varint
//	field 12 loss              fixed64 IEEE 754 double
//	field 13 rtt               varint  zigzag ns
//	field 14 blocked           varint  1
//
//	MailboxMember
//	field 1  account     bytes   MailboxAccountSize, required
//	field 2  peers       bytes   repeated, ≤ maxMailboxPeers, each ≤ maxKeyLen
//	field 3  registered  varint  zigzag unix ns
//	field 4  count       varint  zigzag, int32 range
//	field 5  bytes       varint  zigzag
//	field 6  next        varint
//
//	MailboxDevice (account and device id are in its key)
//	field 1  peer   bytes   ≤ maxKeyLen, required
//	field 2  first  varint  1
//
//	CallSettings
//	field 1  policy        bytes   ≤ maxWordLen
//	field 2  always_relay  varint  1
//	field 3  autoanswer    varint  1
//	field 4  record_dir    bytes   ≤ maxPathLen
//	field 5  rules         bytes   repeated CallRule, ascending by account,
//	                               no account twice, ≤ maxCallRules
//
//	CallRule
//	field 1  account  bytes  ≤ maxIDLen, required
//	field 2  rule     bytes  ≤ maxWordLen, required

const (
	maxKeyLen       = 1024    // a public key or a peer id
	maxWordLen      = 64      // a short enumerated word (a direction, a reason, a policy)
	maxPathLen      = 4096    // a file system path
	maxMailboxPeers = 64      // devices a mailbox member lets drain
	maxCallRules    = 1 << 16 // per-contact call overrides
)

func marshalClaim(c *HandleClaim) ([]byte, error) {
	if err := checkNanos("claim time", c.ClaimedAt); err != nil {
		return nil, err
	}
	e := wire.Encoder{B: make([]byte, 0, 32+len(c.Name))}
	e.String(1, c.Name)
	e.Uint(2, c.Nonce)
	e.Uint(3, c.Seq)
	e.Time(4, c.ClaimedAt)
	return e.B, nil
}

func unmarshalClaim(b []byte) (HandleClaim, error) {
	var c HandleClaim
	d := newReader(b)
	c.Name = d.String(1, 1, maxIDLen)
	c.Nonce = d.Uint(2, math.MaxUint64)
	c.Seq = d.Uint(3, math.MaxUint64)
	c.ClaimedAt = d.Time(4)
	if err := d.End(); err != nil {
		return HandleClaim{}, err
	}
	if c.Name == "" {
		return HandleClaim{}, fmt.Errorf("%w: claim without a name", errCorrupt)
	}
	return c, nil
}

func marshalListenPorts(p *ListenPorts) ([]byte, error) {
	if p.TCP < 0 || p.TCP > math.MaxUint16 || p.QUIC < 0 || p.QUIC > math.MaxUint16 {
		return nil, fmt.Errorf("%w: listen ports %d/%d", ErrInvalid, p.TCP, p.QUIC)
	}
	var e wire.Encoder
	e.Uint(1, uint64(p.TCP))
	e.Uint(2, uint64(p.QUIC))
	return e.B, nil
}

func unmarshalListenPorts(b []byte) (ListenPorts, error) {
	d := newReader(b)
	p := ListenPorts{TCP: int(d.Uint(1, math.MaxUint16)), QUIC: int(d.Uint(2, math.MaxUint16))}
	return p, d.End()
}

func marshalContact(c *Contact) ([]byte, error) {
	if len(c.PubKey) > maxKeyLen || len(c.SeenPubKey) > maxKeyLen {
		return nil, fmt.Errorf("%w: contact key longer than %d bytes", ErrInvalid, maxKeyLen)
	}
	if len(c.Handle) > maxIDLen {
		return nil, fmt.Errorf("%w: contact handle longer than %d bytes", ErrInvalid, maxIDLen)
	}
	for _, t := range []time.Time{c.AddedAt, c.PinnedAt} {
		if err := checkNanos("contact time", t); err != nil {
			return nil, err
		}
	}
	e := wire.Encoder{B: make([]byte, 0, 64+len(c.Account)+len(c.PubKey)+len(c.Petname)+len(c.Handle)+len(c.SeenPubKey))}
	e.String(1, c.Account)
	e.Bytes(2, c.PubKey)
	e.String(3, c.Petname)
	e.String(4, c.Handle)
	e.Time(5, c.AddedAt)
	e.Time(6, c.PinnedAt)
	e.Bool(7, c.KeyChanged)
	e.Bytes(8, c.SeenPubKey)
	e.Bool(9, c.Verified)
	e.Bool(10, c.Following)
	e.Bool(11, c.Blocked)
	e.Bool(12, c.Accepted)
	return e.B, nil
}

// unmarshalContact decodes a stored Contact; its keys alias b.
func unmarshalContact(b []byte) (Contact, error) {
	var c Contact
	d := newReader(b)
	c.Account = d.String(1, 1, maxIDLen)
	c.PubKey = d.Bytes(2, 1, maxKeyLen)
	c.Petname = d.String(3, 1, maxIDLen)
	c.Handle = d.String(4, 1, maxIDLen)
	c.AddedAt = d.Time(5)
	c.PinnedAt = d.Time(6)
	c.KeyChanged = d.Bool(7)
	c.SeenPubKey = d.Bytes(8, 1, maxKeyLen)
	c.Verified = d.Bool(9)
	c.Following = d.Bool(10)
	c.Blocked = d.Bool(11)
	c.Accepted = d.Bool(12)
	if err := d.End(); err != nil {
		return Contact{}, err
	}
	if c.Account == "" {
		return Contact{}, fmt.Errorf("%w: contact without an account", errCorrupt)
	}
	return c, nil
}

func marshalCall(c *Call) ([]byte, error) {
	for _, w := range []string{c.Direction, c.EndReason, c.Path} {
		if len(w) > maxWordLen {
			return nil, fmt.Errorf("%w: call field %q longer than %d bytes", ErrInvalid, w, maxWordLen)
		}
	}
	if len(c.Peer) > maxIDLen {
		return nil, fmt.Errorf("%w: call peer longer than %d bytes", ErrInvalid, maxIDLen)
	}
	if err := checkNanos("call start", c.Start); err != nil {
		return nil, err
	}
	e := wire.Encoder{B: make([]byte, 0, 96+len(c.ID)+len(c.Peer)+len(c.EndReason))}
	e.String(1, c.ID)
	e.String(2, c.Peer)
	e.String(3, c.Direction)
	e.Time(4, c.Start)
	e.Sint(5, int64(c.Duration))
	e.String(6, c.EndReason)
	e.String(7, c.Path)
	e.Uint(8, c.PacketsSent)
	e.Uint(9, c.PacketsReceived)
	e.Uint(10, c.BytesSent)
	e.Uint(11, c.BytesReceived)
	e.Double(12, c.Loss)
	e.Sint(13, int64(c.RTT))
	e.Bool(14, c.Blocked)
	return e.B, nil
}

func unmarshalCall(b []byte) (Call, error) {
	var c Call
	d := newReader(b)
	c.ID = d.String(1, 1, maxIDLen)
	c.Peer = d.String(2, 1, maxIDLen)
	c.Direction = d.String(3, 1, maxWordLen)
	c.Start = d.Time(4)
	c.Duration = time.Duration(d.Sint(5, math.MinInt64, math.MaxInt64))
	c.EndReason = d.String(6, 1, maxWordLen)
	c.Path = d.String(7, 1, maxWordLen)
	c.PacketsSent = d.Uint(8, math.MaxUint64)
	c.PacketsReceived = d.Uint(9, math.MaxUint64)
	c.BytesSent = d.Uint(10, math.MaxUint64)
	c.BytesReceived = d.Uint(11, math.MaxUint64)
	c.Loss = d.Double(12)
	c.RTT = time.Duration(d.Sint(13, math.MinInt64, math.MaxInt64))
	c.Blocked = d.Bool(14)
	if err := d.End(); err != nil {
		return Call{}, err
	}
	if c.ID == "" || c.Start.IsZero() {
		return Call{}, fmt.Errorf("%w: call without an id or a start", errCorrupt)
	}
	return c, nil
}

func marshalMailboxMember(m *MailboxMember) ([]byte, error) {
	if err := checkMboxAccount(m.Account); err != nil {
		return nil, err
	}
	if len(m.Peers) > maxMailboxPeers {
		return nil, fmt.Errorf("%w: %d mailbox peers, at most %d", ErrInvalid, len(m.Peers), maxMailboxPeers)
	}
	n := 0
	for _, p := range m.Peers {
		if len(p) == 0 || len(p) > maxKeyLen {
			return nil, fmt.Errorf("%w: mailbox peer id of %d bytes", ErrInvalid, len(p))
		}
		n += 2 + len(p)
	}
	if m.Count < 0 || m.Count > math.MaxInt32 || m.Bytes < 0 {
		return nil, fmt.Errorf("%w: mailbox count %d, bytes %d", ErrInvalid, m.Count, m.Bytes)
	}
	if err := checkNanos("registration time", m.Registered); err != nil {
		return nil, err
	}
	e := wire.Encoder{B: make([]byte, 0, 48+len(m.Account)+n)}
	e.Bytes(1, m.Account)
	for _, p := range m.Peers {
		e.Bytes(2, p)
	}
	e.Time(3, m.Registered)
	e.Sint(4, int64(m.Count))
	e.Sint(5, m.Bytes)
	e.Uint(6, m.Next)
	return e.B, nil
}

// unmarshalMailboxMember decodes a stored MailboxMember; its byte slices
// alias b.
func unmarshalMailboxMember(b []byte) (MailboxMember, error) {
	var m MailboxMember
	d := newReader(b)
	m.Account = d.Fixed(1, MailboxAccountSize)
	m.Peers = d.RepeatedBytes(2, maxMailboxPeers, 1, maxKeyLen)
	m.Registered = d.Time(3)
	m.Count = int(d.Sint(4, 1, math.MaxInt32))
	m.Bytes = d.Sint(5, 1, math.MaxInt64)
	m.Next = d.Uint(6, math.MaxUint64)
	if err := d.End(); err != nil {
		return MailboxMember{}, err
	}
	return m, nil
}

func marshalMailboxDevice(d *MailboxDevice) ([]byte, error) {
	if len(d.Peer) == 0 || len(d.Peer) > maxKeyLen {
		return nil, fmt.Errorf("%w: mailbox device peer id of %d bytes", ErrInvalid, len(d.Peer))
	}
	e := wire.Encoder{B: make([]byte, 0, 8+len(d.Peer))}
	e.Bytes(1, d.Peer)
	e.Bool(2, d.First)
	return e.B, nil
}

// unmarshalMailboxDevice decodes a stored MailboxDevice (without the
// account and device id of its key); its byte slices alias b.
func unmarshalMailboxDevice(b []byte) (MailboxDevice, error) {
	var m MailboxDevice
	d := newReader(b)
	m.Peer = d.Bytes(1, 1, maxKeyLen)
	m.First = d.Bool(2)
	if err := d.End(); err != nil {
		return MailboxDevice{}, err
	}
	if m.Peer == nil {
		return MailboxDevice{}, fmt.Errorf("%w: mailbox device without a peer id", errCorrupt)
	}
	return m, nil
}

func marshalCallSettings(s *CallSettings) ([]byte, error) {
	if len(s.Policy) > maxWordLen || len(s.RecordDir) > maxPathLen {
		return nil, fmt.Errorf("%w: call policy or record directory too long", ErrInvalid)
	}
	if len(s.Rules) > maxCallRules {
		return nil, fmt.Errorf("%w: %d call rules, at most %d", ErrInvalid, len(s.Rules), maxCallRules)
	}
	accounts := make([]string, 0, len(s.Rules))
	for a, r := range s.Rules {
		if err := checkID("call rule account", a); err != nil {
			return nil, err
		}
		if r == "" || len(r) > maxWordLen {
			return nil, fmt.Errorf("%w: call rule %q for %q", ErrInvalid, r, a)
		}
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	e := wire.Encoder{B: make([]byte, 0, 16+len(s.Policy)+len(s.RecordDir))}
	e.String(1, s.Policy)
	e.Bool(2, s.AlwaysRelay)
	e.Bool(3, s.AutoAnswer)
	e.String(4, s.RecordDir)
	for _, a := range accounts {
		var r wire.Encoder
		r.String(1, a)
		r.String(2, s.Rules[a])
		e.Bytes(5, r.B)
	}
	return e.B, nil
}

func unmarshalCallSettings(b []byte) (CallSettings, error) {
	var s CallSettings
	d := newReader(b)
	s.Policy = d.String(1, 1, maxWordLen)
	s.AlwaysRelay = d.Bool(2)
	s.AutoAnswer = d.Bool(3)
	s.RecordDir = d.String(4, 1, maxPathLen)
	rules := d.RepeatedBytes(5, maxCallRules, 1, 2*(maxIDLen+8))
	if err := d.End(); err != nil {
		return CallSettings{}, err
	}
	var last string
	for i, rb := range rules {
		rd := newReader(rb)
		a := rd.String(1, 1, maxIDLen)
		r := rd.String(2, 1, maxWordLen)
		if err := rd.End(); err != nil {
			return CallSettings{}, fmt.Errorf("call rule: %w", err)
		}
		if a == "" || r == "" || strings.IndexByte(a, 0) >= 0 {
			return CallSettings{}, fmt.Errorf("%w: call rule without an account or a rule", errCorrupt)
		}
		if i > 0 && a <= last {
			return CallSettings{}, fmt.Errorf("%w: call rules out of order", errCorrupt)
		}
		if s.Rules == nil {
			s.Rules = make(map[string]string, len(rules))
		}
		s.Rules[a], last = r, a
	}
	return s, nil
}

// isJSONValue reports whether a stored value is in the JSON form of
// schema 7 and before: JSON objects start with '{' (0x7b), which as a
// protobuf tag would be field 15 with the deprecated group wire type, a
// tag no encoder here writes.
func isJSONValue(b []byte) bool { return bytes.HasPrefix(b, []byte("{")) }

// MarshalCall encodes a call log entry in its stored form, which is also
// how a device hands a call it made to its siblings.
func MarshalCall(c Call) ([]byte, error) { return marshalCall(&c) }

// UnmarshalCall decodes what MarshalCall encoded, checked as strictly as
// the store reads its own values (ErrInvalid).
func UnmarshalCall(b []byte) (Call, error) {
	c, err := unmarshalCall(b)
	if err != nil {
		return Call{}, fmt.Errorf("%w: call: %v", ErrInvalid, err)
	}
	return c, nil
}

// MarshalCallSettings encodes call settings in their stored form.
func MarshalCallSettings(s CallSettings) ([]byte, error) { return marshalCallSettings(&s) }

// UnmarshalCallSettings decodes what MarshalCallSettings encoded (ErrInvalid).
func UnmarshalCallSettings(b []byte) (CallSettings, error) {
	cs, err := unmarshalCallSettings(b)
	if err != nil {
		return CallSettings{}, fmt.Errorf("%w: call settings: %v", ErrInvalid, err)
	}
	return cs, nil
}
