package group

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/callsign/callsign/identity"
)

// Member is one member of a group as the log has it.
type Member struct {
	Account identity.AccountPub
	Admin   bool
	// Since is the seq of the operation that added the member (0 for the
	// creator); AdminSince that of the one that last made it an admin.
	// Together they rank members at a fork (see Log).
	Since, AdminSince uint64
}

// State is a group as a fold of its log up to one operation.
type State struct {
	Group ID
	Name  string
	Timer time.Duration
	// Epoch counts the removals and departures: each starts a new epoch,
	// and a member's next message uses a key the departed never had
	// (GROUPS.md §1.3).
	Epoch uint64
	Seq   uint64 // of the last operation applied
	Head  Hash   // the last operation applied

	members map[[identity.AccountPubSize]byte]*Member
}

func key(p identity.AccountPub) (k [identity.AccountPubSize]byte) {
	copy(k[:], p.Bytes())
	return k
}

// Members returns the members, admins first, each group in the order they
// became what they are.
func (s *State) Members() []Member {
	out := make([]Member, 0, len(s.members))
	for _, m := range s.members {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int { return s.compareRank(&a, &b) })
	return out
}

// Member returns the account's membership, if it is a member.
func (s *State) Member(a identity.AccountPub) (Member, bool) {
	if m := s.members[key(a)]; m != nil {
		return *m, true
	}
	return Member{}, false
}

// Len is the number of members.
func (s *State) Len() int { return len(s.members) }

func (s *State) clone() *State {
	c := *s
	c.members = make(map[[identity.AccountPubSize]byte]*Member, len(s.members))
	for k, m := range s.members {
		mc := *m
		c.members[k] = &mc
	}
	return &c
}

// compareRank orders members by standing: admins before members, the
// longer an admin (or member) the earlier, then by key.
func (s *State) compareRank(a, b *Member) int {
	if a.Admin != b.Admin {
		if a.Admin {
			return -1
		}
		return 1
	}
	if a.Admin {
		if c := cmp.Compare(a.AdminSince, b.AdminSince); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(a.Since, b.Since); c != 0 {
		return c
	}
	ka, kb := key(a.Account), key(b.Account)
	return slices.Compare(ka[:], kb[:])
}

// allowed reports why o may not follow s, or nil. o's form and signature
// are checked already.
func (s *State) allowed(o *Op) error {
	if o.Group != s.Group {
		return ErrOtherGroup
	}
	if o.Seq != s.Seq+1 {
		return fmt.Errorf("%w: seq %d after %d", ErrMalformed, o.Seq, s.Seq)
	}
	author := s.members[key(o.Author)]
	if author == nil {
		return fmt.Errorf("%w: %v by %v, who is not a member", ErrNotAllowed, o.Kind, o.Author.ID())
	}
	if o.Kind != Leave && !author.Admin {
		return fmt.Errorf("%w: %v by %v, who is not an admin", ErrNotAllowed, o.Kind, o.Author.ID())
	}
	var subject *Member
	if o.Kind.hasSubject() {
		subject = s.members[key(o.Subject)]
	}
	switch o.Kind {
	case Add:
		if subject != nil {
			return fmt.Errorf("%w: %v is a member already", ErrNotAllowed, o.Subject.ID())
		}
		if len(s.members) >= MaxMembers {
			return fmt.Errorf("%w: %d members", ErrFull, MaxMembers)
		}
	case Remove, Promote, Demote:
		if subject == nil {
			return fmt.Errorf("%w: %v is not a member", ErrNotAllowed, o.Subject.ID())
		}
		switch {
		case o.Kind == Remove && subject == author:
			return fmt.Errorf("%w: an admin leaves with leave, not remove", ErrNotAllowed)
		case o.Kind == Promote && subject.Admin:
			return fmt.Errorf("%w: %v is an admin already", ErrNotAllowed, o.Subject.ID())
		case o.Kind == Demote && !subject.Admin:
			return fmt.Errorf("%w: %v is not an admin", ErrNotAllowed, o.Subject.ID())
		case o.Kind == Demote && s.admins() == 1:
			return fmt.Errorf("%w: the last admin stays one (promote another first)", ErrNotAllowed)
		}
	case Create:
		return fmt.Errorf("%w: a second create", ErrMalformed)
	}
	return nil
}

func (s *State) admins() int {
	n := 0
	for _, m := range s.members {
		if m.Admin {
			n++
		}
	}
	return n
}

// apply folds o, which allowed accepted, into s.
func (s *State) apply(o *Op, h Hash) {
	s.Seq, s.Head = o.Seq, h
	switch o.Kind {
	case Add:
		s.members[key(o.Subject)] = &Member{Account: o.Subject, Since: o.Seq}
	case Remove:
		delete(s.members, key(o.Subject))
		s.Epoch++
	case Leave:
		delete(s.members, key(o.Author))
		s.Epoch++
	case Promote:
		m := s.members[key(o.Subject)]
		m.Admin, m.AdminSince = true, o.Seq
	case Demote:
		s.members[key(o.Subject)].Admin = false
	case Rename:
		s.Name = o.Name
	case SetTimer:
		s.Timer = o.Timer
	}
	if len(s.members) > 0 && s.admins() == 0 {
		// The last admin left: the member who has been one longest
		// becomes the admin, the same at every member.
		ms := slices.Collect(maps.Values(s.members))
		first := slices.MinFunc(ms, func(a, b *Member) int { return s.compareRank(a, b) })
		first.Admin, first.AdminSince = true, o.Seq
	}
}

// genesis is the state the create operation o makes.
func genesis(o *Op, h Hash) *State {
	s := &State{Group: o.Group, Name: o.Name, Head: h,
		members: map[[identity.AccountPubSize]byte]*Member{}}
	s.members[key(o.Author)] = &Member{Account: o.Author, Admin: true}
	return s
}
