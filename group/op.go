package group

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
)

// Limits of a group and of its log.
const (
	MaxMembers = 1000 // members at once
	MaxNameLen = 100  // bytes of a group's name (UTF-8)
	// MaxOps bounds a log: past it a group is re-created (GROUPS.md §1.5
	// plans a signed snapshot instead).
	MaxOps = 16384
	// MaxForks bounds the operations kept on one parent: concurrent admins
	// fork the log now and then; more than this is someone flooding it.
	MaxForks = 8
	// MinTimer and MaxTimer bound the disappearing-message timer (0 is
	// off).
	MinTimer = 5 * time.Second
	MaxTimer = 366 * 24 * time.Hour
	// MaxOpSize bounds an encoded operation.
	MaxOpSize = 512
)

// ID is a group's id: 16 random bytes chosen by its creator.
type ID [16]byte

// String is the id in lower-case hex.
func (id ID) String() string { return fmt.Sprintf("%x", id[:]) }

// Hash identifies an operation: the labelled SHA-256 of its signed bytes.
type Hash [32]byte

// String is the hash's first 8 bytes in hex, enough for logs.
func (h Hash) String() string { return fmt.Sprintf("%x", h[:8]) }

// Kind is what an operation does.
type Kind uint8

const (
	// Create starts the log (seq 0, no parent); its author is the first
	// admin and Name the group's name.
	Create Kind = 1 + iota
	// Add makes Subject a member (an admin's operation).
	Add
	// Remove takes Subject out of the group (an admin's operation; an
	// admin leaving signs Leave).
	Remove
	// Promote makes member Subject an admin.
	Promote
	// Demote makes admin Subject a member again (not the last admin).
	Demote
	// Leave takes its author out of the group (any member).
	Leave
	// Rename sets Name (an admin's operation).
	Rename
	// SetTimer sets the disappearing-message timer (an admin's
	// operation): Timer, 0 for off.
	SetTimer
	maxKind = SetTimer
)

var kindNames = [...]string{Create: "create", Add: "add", Remove: "remove", Promote: "promote",
	Demote: "demote", Leave: "leave", Rename: "rename", SetTimer: "timer"}

func (k Kind) String() string {
	if k >= Create && k <= maxKind {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// hasSubject reports whether operations of kind k name a member.
func (k Kind) hasSubject() bool { return k == Add || k == Remove || k == Promote || k == Demote }

// Errors an operation is refused with; each refusal wraps one of them.
var (
	// ErrMalformed: the bytes are not an operation.
	ErrMalformed = errors.New("malformed group operation")
	// ErrBadSignature: the author's signature does not verify.
	ErrBadSignature = errors.New("group operation not signed by its author")
	// ErrOtherGroup: the operation belongs to another group.
	ErrOtherGroup = errors.New("operation of another group")
	// ErrReplayed: the log already holds the operation.
	ErrReplayed = errors.New("group operation already applied")
	// ErrUnknownParent: the operation follows one this log does not hold
	// (out of order: the sender should send what comes before it).
	ErrUnknownParent = errors.New("group operation out of order: its parent is unknown")
	// ErrNotAllowed: the author may not do this in the group as it was at
	// the operation's parent (not a member, not an admin, a member added
	// twice, ...).
	ErrNotAllowed = errors.New("group operation not allowed")
	// ErrFull: the group or its log is at a limit.
	ErrFull = errors.New("group is full")
)

// Op is one signed operation of a group's log.
type Op struct {
	Group   ID
	Seq     uint64 // 0 for Create, then its parent's + 1
	Parent  Hash   // zero for Create
	Kind    Kind
	Subject identity.AccountPub // Add, Remove, Promote, Demote
	Name    string              // Create, Rename
	Timer   time.Duration       // SetTimer: whole seconds, 0 or MinTimer..MaxTimer
	At      time.Time           // when the author signed it (informative)
	Author  identity.AccountPub
	Sig     []byte
}

// hashLabel labels the hash of an operation's bytes.
const hashLabel = "callsign/v1/group-op-hash"

// signed is the encoding of everything but the signature (fields 1–9).
func (o *Op) signed() []byte {
	var e wire.Encoder
	e.Bytes(1, o.Group[:])
	e.Uint(2, o.Seq)
	if o.Parent != (Hash{}) {
		e.Bytes(3, o.Parent[:])
	}
	e.Uint(4, uint64(o.Kind))
	if !o.Subject.IsZero() {
		e.Bytes(5, o.Subject.Bytes())
	}
	e.String(6, o.Name)
	e.Uint(7, uint64(o.Timer/time.Second))
	e.Time(8, o.At)
	e.Bytes(9, o.Author.Bytes())
	return e.B
}

// Marshal is the operation's wire form (GroupOp): the signed fields and
// the signature as field 10.
func (o *Op) Marshal() []byte {
	e := wire.Encoder{B: o.signed()}
	e.Bytes(10, o.Sig)
	return e.B
}

// Hash is the operation's id.
func (o *Op) Hash() Hash {
	h := sha256.New()
	h.Write([]byte(hashLabel))
	h.Write([]byte{0})
	h.Write(o.Marshal())
	return Hash(h.Sum(nil))
}

// Unmarshal decodes an operation and checks its form and its author's
// signature (not whether the author may do it: that is Log.Add's).
func Unmarshal(b []byte) (Op, error) {
	if len(b) > MaxOpSize {
		return Op{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxOpSize)
	}
	d := wire.NewDecoder(b, ErrMalformed)
	var o Op
	copy(o.Group[:], d.Fixed(1, len(o.Group)))
	o.Seq = d.Uint(2, MaxOps-1)
	copy(o.Parent[:], d.OptFixed(3, len(o.Parent)))
	o.Kind = Kind(d.Uint(4, uint64(maxKind)))
	if s := d.OptFixed(5, identity.AccountPubSize); s != nil {
		p, err := identity.ParseAccountPub(s)
		if err != nil {
			d.Fail("subject: %v", err)
		}
		o.Subject = p
	}
	o.Name = d.String(6, 1, MaxNameLen)
	o.Timer = time.Duration(d.Uint(7, uint64(MaxTimer/time.Second))) * time.Second
	o.At = d.Time(8)
	a, err := identity.ParseAccountPub(d.Fixed(9, identity.AccountPubSize))
	if err != nil {
		d.Fail("author: %v", err)
	}
	o.Author = a
	o.Sig = append([]byte(nil), d.Fixed(10, identity.SignatureSize)...)
	if err := d.End(); err != nil {
		return Op{}, err
	}
	if err := o.check(); err != nil {
		return Op{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !o.Author.Verify(identity.LabelGroupOp, o.signed(), o.Sig) {
		return Op{}, ErrBadSignature
	}
	return o, nil
}

// check validates the fields each kind needs and nothing else.
func (o *Op) check() error {
	if o.Kind < Create || o.Kind > maxKind {
		return fmt.Errorf("unknown kind %d", o.Kind)
	}
	if (o.Kind == Create) != (o.Seq == 0) {
		return errors.New("create is the first operation, and only it")
	}
	if (o.Seq == 0) != (o.Parent == Hash{}) {
		return errors.New("the parent is missing, or given to the first operation")
	}
	if o.Kind.hasSubject() == o.Subject.IsZero() {
		return fmt.Errorf("%v with a subject missing or not expected", o.Kind)
	}
	named := o.Kind == Create || o.Kind == Rename
	if named != (o.Name != "") {
		return fmt.Errorf("%v with a name missing or not expected", o.Kind)
	}
	if named {
		if err := CheckName(o.Name); err != nil {
			return err
		}
	}
	if o.Kind != SetTimer && o.Timer != 0 {
		return fmt.Errorf("%v with a timer", o.Kind)
	}
	if o.Timer != 0 && (o.Timer < MinTimer || o.Timer > MaxTimer || o.Timer%time.Second != 0) {
		return fmt.Errorf("timer %v: 0 or whole seconds from %v to %v", o.Timer, MinTimer, MaxTimer)
	}
	if o.At.IsZero() || !wire.TimeFits(o.At) {
		return errors.New("no signing time")
	}
	if o.Author.IsZero() {
		return errors.New("no author")
	}
	return nil
}

// CheckName reports whether s may name a group: 1 to MaxNameLen bytes of
// UTF-8 without control characters or surrounding spaces.
func CheckName(s string) error {
	switch {
	case s == "":
		return errors.New("a group needs a name")
	case len(s) > MaxNameLen:
		return fmt.Errorf("group name of %d bytes, at most %d", len(s), MaxNameLen)
	case !utf8.ValidString(s):
		return errors.New("group name is not UTF-8")
	case strings.TrimSpace(s) != s:
		return errors.New("group name starts or ends with a space")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New("group name holds a control character")
	}
	return nil
}

// sign fills in the author and the signature.
func (o *Op) sign(k *identity.AccountKey) error {
	o.Author = k.Public()
	o.At = o.At.Round(0)
	if err := o.check(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	o.Sig = k.Sign(identity.LabelGroupOp, o.signed())
	return nil
}
