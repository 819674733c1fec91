package mailbox

import (
	"errors"
	"fmt"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
)

// errMalformed is wrapped by every decoding error of this package.
var errMalformed = errors.New("malformed mailbox frame")

// Operations (Request field 1).
const (
	opRegister = 1
	opDeposit  = 2
	opDrain    = 3
	opAck      = 4
	opUpload   = 5 // a member's one-time prekeys
	opFetch    = 6 // one-time prekeys of the member a token names
)

// Status is a mailbox's answer to a request, or to one deposited envelope.
type Status uint64

// Statuses (Response field 1, and field 3 per deposited envelope).
const (
	StatusOK          Status = 1  // done: registered, stored durably, drained, deleted
	StatusNotMember   Status = 2  // the token (deposit, fetch) or peer (drain, ack, upload) names no member, or no device of one registered here
	StatusOverQuota   Status = 3  // the member's count or bytes quota is full
	StatusTooLarge    Status = 4  // an envelope over the size cap
	StatusExpired     Status = 5  // the token is of a day that has passed; or a registration's time is stale
	StatusMalformed   Status = 6  // the request does not parse
	StatusRateLimited Status = 7  // this peer deposits faster than the mailbox allows
	StatusFull        Status = 8  // registration: the mailbox has as many members as it takes
	StatusForbidden   Status = 9  // registration: bad signature or certificate, or not from the certified device
	StatusDuplicate   Status = 10 // deposit: the same envelope already waits (not stored twice)
	maxStatus                = StatusDuplicate
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNotMember:
		return "not a member"
	case StatusOverQuota:
		return "over quota"
	case StatusTooLarge:
		return "too large"
	case StatusExpired:
		return "expired"
	case StatusMalformed:
		return "malformed"
	case StatusRateLimited:
		return "rate limited"
	case StatusFull:
		return "mailbox full"
	case StatusForbidden:
		return "forbidden"
	case StatusDuplicate:
		return "duplicate"
	}
	return fmt.Sprintf("status %d", uint64(s))
}

// Limits of the wire format.
const (
	TokenSize       = 16
	maxPerDeposit   = 256     // envelopes in one deposit
	maxPerDrain     = 256     // envelopes in one drain answer, and seqs in one ack
	maxRequest      = 1 << 20 // a request frame
	maxDrainBytes   = 1 << 20 // envelope bytes in one drain answer (past the first)
	maxResponse     = maxDrainBytes + 128<<10
	maxReason       = 128
	signatureSize   = 64
	maxEnvelopeWire = 128 << 10 // the decoder's bound; Config.MaxEnvelope is the policy
	maxPrekeysWire  = 100       // one-time prekeys of each kind in one upload
	maxPrekeyWire   = e2e.MaxOneTimePrekeySize
	// maxAdditions caps the bytes of unknown additions (fields 16 and up,
	// a later version's) a request or response may carry; they are skipped.
	maxAdditions = 1 << 10
)

// LabelRegister labels a member's registration signature.
const LabelRegister = "callsign/v1/mailbox-register"

// request is a decoded Request frame; which fields are set depends on op.
type request struct {
	op        uint64
	account   []byte   // register
	cert      []byte   // register
	time      uint64   // register: unix seconds
	signature []byte   // register
	token     []byte   // deposit
	envelopes [][]byte // deposit
	max       uint64   // drain
	seqs      []uint64 // ack
	prekeys   [][]byte // upload: X25519 one-time prekeys
	pqPrekeys [][]byte // upload: ML-KEM-768 one-time prekeys
	skipped   []byte   // additions this version does not know
}

func (r *request) marshal() []byte {
	e := wire.Encoder{}
	e.Uint(1, r.op)
	e.Bytes(2, r.account)
	e.Bytes(3, r.cert)
	e.Uint(4, r.time)
	e.Bytes(5, r.signature)
	e.Bytes(6, r.token)
	for _, v := range r.envelopes {
		e.Bytes(7, v)
	}
	e.Uint(8, r.max)
	for _, s := range r.seqs {
		e.Uint(9, s)
	}
	for _, k := range r.prekeys {
		e.Bytes(10, k)
	}
	for _, k := range r.pqPrekeys {
		e.Bytes(11, k)
	}
	e.Raw(r.skipped)
	return e.B
}

func unmarshalRequest(b []byte) (request, error) {
	var r request
	d := wire.NewFrameDecoder(b, errMalformed, maxAdditions)
	r.op = d.Uint(1, opFetch)
	r.account = d.Bytes(2, identity.AccountPubSize, identity.AccountPubSize)
	r.cert = d.Bytes(3, 1, identity.MaxDeviceCertSize)
	r.time = d.Uint(4, 1<<40)
	r.signature = d.Bytes(5, signatureSize, signatureSize)
	r.token = d.Bytes(6, TokenSize, TokenSize)
	r.envelopes = d.RepeatedBytes(7, maxPerDeposit, 1, maxEnvelopeWire)
	r.max = d.Uint(8, maxPerDrain)
	for d.More(9) && d.Err() == nil {
		if len(r.seqs) == maxPerDrain {
			d.Fail("more than %d sequence numbers", maxPerDrain)
			break
		}
		r.seqs = append(r.seqs, d.Uint(9, 1<<62))
	}
	r.prekeys = d.RepeatedBytes(10, maxPrekeysWire, 1, maxPrekeyWire)
	r.pqPrekeys = d.RepeatedBytes(11, maxPrekeysWire, 1, maxPrekeyWire)
	if err := d.End(); err != nil {
		return request{}, err
	}
	r.skipped = d.Skipped()
	// Which fields each op takes: every other field must be absent.
	var set uint
	for i, present := range []bool{r.account != nil, r.cert != nil, r.time != 0, r.signature != nil,
		r.token != nil, r.envelopes != nil, r.max != 0, r.seqs != nil, r.prekeys != nil || r.pqPrekeys != nil} {
		if present {
			set |= 1 << i
		}
	}
	const (
		fRegister = 1<<0 | 1<<1 | 1<<2 | 1<<3
		fToken    = 1 << 4
		fEnv      = 1 << 5
		fMax      = 1 << 6
		fSeqs     = 1 << 7
		fPrekeys  = 1 << 8
	)
	want := map[uint64]uint{opRegister: fRegister, opDeposit: fToken | fEnv, opDrain: fMax,
		opAck: fSeqs, opUpload: fPrekeys, opFetch: fToken}
	if w, known := want[r.op]; !known || set != w {
		return request{}, fmt.Errorf("%w: fields do not match operation %d", errMalformed, r.op)
	}
	return r, nil
}

// Entry is one envelope handed out by a drain.
type Entry struct {
	Seq  uint64
	Data []byte
}

// response is a decoded Response frame.
type response struct {
	status  Status
	reason  string
	results []Status // deposit: one per envelope
	entries []Entry  // drain
	waiting uint64   // drain: envelopes left after these; register: envelopes waiting
	// fetch: one one-time prekey of each kind (e2e.MarshalOneTimePrekey),
	// either absent when none is handed out
	prekey, pqPrekey []byte
	// register, drain, ack, upload: the member's one-time prekeys held here
	prekeys, pqPrekeys uint64
	// register (addition 16): the mailbox keeps a queue per device and
	// takes device tokens (DeviceToken); an older mailbox omits it
	perDevice bool
	skipped   []byte // additions this version does not know
}

func (r *response) marshal() []byte {
	e := wire.Encoder{}
	e.Uint(1, uint64(r.status))
	e.Bytes(2, []byte(r.reason))
	for _, s := range r.results {
		e.Uint(3, uint64(s))
	}
	for _, en := range r.entries {
		ee := wire.Encoder{B: make([]byte, 0, len(en.Data)+16)}
		ee.Uint(1, en.Seq)
		ee.Bytes(2, en.Data)
		e.Bytes(4, ee.B)
	}
	e.Uint(5, r.waiting)
	e.Bytes(6, r.prekey)
	e.Bytes(7, r.pqPrekey)
	e.Uint(8, r.prekeys)
	e.Uint(9, r.pqPrekeys)
	e.Bool(16, r.perDevice)
	e.Raw(r.skipped)
	return e.B
}

func unmarshalResponse(b []byte) (response, error) {
	var r response
	d := wire.NewFrameDecoder(b, errMalformed, maxAdditions)
	r.status = Status(d.Uint(1, uint64(maxStatus)))
	reason := d.Bytes(2, 1, maxReason)
	r.reason = string(reason)
	for d.More(3) && d.Err() == nil {
		if len(r.results) == maxPerDeposit {
			d.Fail("more than %d results", maxPerDeposit)
			break
		}
		r.results = append(r.results, Status(d.Uint(3, uint64(maxStatus))))
	}
	for d.More(4) && d.Err() == nil {
		if len(r.entries) == maxPerDrain {
			d.Fail("more than %d entries", maxPerDrain)
			break
		}
		eb := d.Bytes(4, 1, maxEnvelopeWire+16)
		if d.Err() != nil {
			break
		}
		ed := wire.NewDecoder(eb, errMalformed) // strict: see the package doc
		seq := ed.Uint(1, 1<<62)
		data := ed.Bytes(2, 1, maxEnvelopeWire)
		if err := ed.End(); err != nil {
			return response{}, err
		}
		if seq == 0 || data == nil {
			return response{}, fmt.Errorf("%w: entry without seq or data", errMalformed)
		}
		r.entries = append(r.entries, Entry{Seq: seq, Data: data})
	}
	r.waiting = d.Uint(5, 1<<40)
	r.prekey = d.Bytes(6, 1, maxPrekeyWire)
	r.pqPrekey = d.Bytes(7, 1, maxPrekeyWire)
	r.prekeys = d.Uint(8, maxPrekeysWire)
	r.pqPrekeys = d.Uint(9, maxPrekeysWire)
	r.perDevice = d.Bool(16)
	if err := d.End(); err != nil {
		return response{}, err
	}
	r.skipped = d.Skipped()
	if r.status == 0 {
		return response{}, fmt.Errorf("%w: no status", errMalformed)
	}
	for _, s := range r.results {
		if s == 0 {
			return response{}, fmt.Errorf("%w: zero result", errMalformed)
		}
	}
	return r, nil
}
