package group

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/callsign/callsign/identity"
)

// Log is a group's membership log: operations chained by their parents'
// hashes, each signed by its author and valid in the state at its parent.
// The group is the fold of the log's chain, so members that hold the same
// operations see the same members.
//
// Concurrent operations fork the log (two on one parent). The chain takes,
// at each fork, the operation whose author ranks first in the state at the
// parent: admins before members, the admin of longest standing first, then
// the member of longest standing; of one author's operations, the lower
// hash. The rank comes from the log's shared past, so nobody can buy a win
// by grinding hashes: a junior admin's removal of a senior one loses to
// the senior's concurrent operation whatever the hashes. Operations of the
// losing branch stay in the log (so every member, in whatever order ops
// arrive, picks the same chain); their authors re-issue them on the new
// head when they are still allowed there (Orphans, Reissue).
//
// A Log is not safe for concurrent use.
type Log struct {
	entries map[Hash]*entry
	root    Hash
	chain   []Hash // the chain, root first
	state   *State // at the chain's head
}

type entry struct {
	op       Op
	hash     Hash
	children []Hash
}

// New creates a group named name with k's account as its first admin and
// returns its log. A nil rand means crypto/rand.
func New(k *identity.AccountKey, name string, at time.Time, rnd io.Reader) (*Log, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	o := Op{Kind: Create, Name: name, At: at}
	if _, err := io.ReadFull(rnd, o.Group[:]); err != nil {
		return nil, fmt.Errorf("new group: %w", err)
	}
	if err := o.sign(k); err != nil {
		return nil, err
	}
	return start(o), nil
}

func start(o Op) *Log {
	h := o.Hash()
	return &Log{entries: map[Hash]*entry{h: {op: o, hash: h}}, root: h, chain: []Hash{h}, state: genesis(&o, h)}
}

// Load rebuilds a log from its operations (as Ops or Chain returned them,
// or as a member sent them): the create operation and what follows it, in
// any order. Every operation must be valid; none may be missing.
func Load(ops []Op) (*Log, error) {
	if len(ops) == 0 || len(ops) > MaxOps {
		return nil, fmt.Errorf("%w: a log of %d operations", ErrMalformed, len(ops))
	}
	ops = slices.Clone(ops)
	slices.SortStableFunc(ops, func(a, b Op) int { return cmp.Compare(a.Seq, b.Seq) })
	first := ops[0]
	if err := first.check(); err != nil || first.Kind != Create {
		return nil, fmt.Errorf("%w: the log does not start with its create operation", ErrMalformed)
	}
	if !first.Author.Verify(identity.LabelGroupOp, first.signed(), first.Sig) {
		return nil, ErrBadSignature
	}
	l := start(first)
	for _, o := range ops[1:] {
		if err := l.Add(o); err != nil {
			return nil, fmt.Errorf("operation %d (%v): %w", o.Seq, o.Kind, err)
		}
	}
	return l, nil
}

// ID is the group's id.
func (l *Log) ID() ID { return l.state.Group }

// State is the group at the head of the chain (a copy).
func (l *Log) State() *State { return l.state.clone() }

// Head is the last operation of the chain.
func (l *Log) Head() Hash { return l.chain[len(l.chain)-1] }

// Len is the number of operations held, forks included.
func (l *Log) Len() int { return len(l.entries) }

// Has reports whether the log holds the operation.
func (l *Log) Has(h Hash) bool { return l.entries[h] != nil }

// Chain returns the chain's operations, the create operation first: what a
// new member needs to see the group.
func (l *Log) Chain() []Op {
	out := make([]Op, len(l.chain))
	for i, h := range l.chain {
		out[i] = l.entries[h].op
	}
	return out
}

// Ops returns every operation held, forks included, parents before
// children: what another member needs to pick the same chain.
func (l *Log) Ops() []Op {
	out := make([]Op, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e.op)
	}
	slices.SortFunc(out, func(a, b Op) int {
		if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
			return c
		}
		ha, hb := a.Hash(), b.Hash()
		return bytes.Compare(ha[:], hb[:])
	})
	return out
}

// Add verifies o (its signature, its group, that its parent is held and
// that its author may do it there) and adds it. The chain may move to
// another branch. A refusal leaves the log as it was.
func (l *Log) Add(o Op) error {
	if err := o.check(); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if o.Group != l.state.Group {
		return ErrOtherGroup
	}
	h := o.Hash()
	if l.entries[h] != nil {
		return ErrReplayed
	}
	if !o.Author.Verify(identity.LabelGroupOp, o.signed(), o.Sig) {
		return ErrBadSignature
	}
	p := l.entries[o.Parent]
	if p == nil || o.Kind == Create {
		return ErrUnknownParent
	}
	if len(l.entries) >= MaxOps {
		return fmt.Errorf("%w: %d operations in the log", ErrFull, MaxOps)
	}
	if len(p.children) >= MaxForks {
		return fmt.Errorf("%w: %d operations on one parent", ErrFull, MaxForks)
	}
	onHead := o.Parent == l.Head()
	var at *State
	if onHead {
		at = l.state
	} else {
		at = l.stateAt(o.Parent)
	}
	if err := at.allowed(&o); err != nil {
		return err
	}
	l.entries[h] = &entry{op: o, hash: h}
	p.children = append(p.children, h)
	if onHead {
		l.state.apply(&o, h)
		l.chain = append(l.chain, h)
		return nil
	}
	l.rechain()
	return nil
}

// stateAt folds the log from its root to the operation h.
func (l *Log) stateAt(h Hash) *State {
	var path []*entry
	for e := l.entries[h]; ; e = l.entries[e.op.Parent] {
		path = append(path, e)
		if e.hash == l.root {
			break
		}
	}
	slices.Reverse(path)
	s := genesis(&path[0].op, path[0].hash)
	for _, e := range path[1:] {
		s.apply(&e.op, e.hash)
	}
	return s
}

// rechain walks from the root taking the winning operation at each fork.
func (l *Log) rechain() {
	root := l.entries[l.root]
	s := genesis(&root.op, root.hash)
	chain := []Hash{l.root}
	for e := root; len(e.children) > 0; {
		e = l.best(s, e.children)
		s.apply(&e.op, e.hash)
		chain = append(chain, e.hash)
	}
	l.chain, l.state = chain, s
}

// best is the winner among the children of the operation s is the state
// at (see Log).
func (l *Log) best(s *State, children []Hash) *entry {
	var win *entry
	for _, h := range children {
		e := l.entries[h]
		if win == nil || l.beats(s, e, win) {
			win = e
		}
	}
	return win
}

func (l *Log) beats(s *State, a, b *entry) bool {
	ma, mb := s.members[key(a.op.Author)], s.members[key(b.op.Author)]
	if c := s.compareRank(ma, mb); c != 0 {
		return c < 0
	}
	return bytes.Compare(a.hash[:], b.hash[:]) < 0
}

// Orphans returns the operations of author's that lost at a fork (they are
// not on the chain), oldest first: its node re-issues each with Reissue.
func (l *Log) Orphans(author identity.AccountPub) []Op {
	on := make(map[Hash]bool, len(l.chain))
	for _, h := range l.chain {
		on[h] = true
	}
	var out []Op
	for h, e := range l.entries {
		if !on[h] && e.op.Author.Equal(author) {
			out = append(out, e.op)
		}
	}
	slices.SortFunc(out, func(a, b Op) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// Next signs an operation by k's account on the head of the chain and adds
// it: o gives its Kind and, as the kind needs, Subject, Name or Timer; the
// rest is filled in. The new operation is returned for sending.
func (l *Log) Next(k *identity.AccountKey, o Op, at time.Time) (Op, error) {
	o = Op{Group: l.state.Group, Seq: l.state.Seq + 1, Parent: l.Head(), Kind: o.Kind,
		Subject: o.Subject, Name: o.Name, Timer: o.Timer, At: at}
	if o.Kind == Create {
		return Op{}, fmt.Errorf("%w: create starts a group (New)", ErrNotAllowed)
	}
	if err := o.sign(k); err != nil {
		return Op{}, err
	}
	if err := l.Add(o); err != nil {
		return Op{}, err
	}
	return o, nil
}

// Reissue signs orphan's change again on the head of the chain, if it is
// still allowed there and still changes something: a removal of someone
// the winning branch removed already is dropped (ErrNotAllowed).
func (l *Log) Reissue(k *identity.AccountKey, orphan Op, at time.Time) (Op, error) {
	switch {
	case orphan.Kind == Rename && orphan.Name == l.state.Name,
		orphan.Kind == SetTimer && orphan.Timer == l.state.Timer:
		return Op{}, fmt.Errorf("%w: the group has that %v already", ErrNotAllowed, orphan.Kind)
	}
	return l.Next(k, orphan, at)
}
