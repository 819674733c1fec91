package group

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func keys(t testing.TB, n int) []*identity.AccountKey {
	t.Helper()
	out := make([]*identity.AccountKey, n)
	for i := range out {
		seed := make([]byte, identity.AccountSeedSize)
		seed[0], seed[1] = byte(i), 0x5a
		k, err := identity.AccountKeyFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = k
	}
	return out
}

func mustNext(t testing.TB, l *Log, k *identity.AccountKey, o Op) Op {
	t.Helper()
	op, err := l.Next(k, o, t0.Add(time.Duration(l.Len())*time.Second))
	if err != nil {
		t.Fatalf("%v by %v: %v", o.Kind, k.Public().ID(), err)
	}
	return op
}

// names lists the members as "a*" (admin) or "a" by their index in ks.
func names(s *State, ks []*identity.AccountKey) string {
	var out []string
	for _, m := range s.Members() {
		i := slices.IndexFunc(ks, func(k *identity.AccountKey) bool { return k.Public().Equal(m.Account) })
		n := fmt.Sprint(i)
		if m.Admin {
			n += "*"
		}
		out = append(out, n)
	}
	return strings.Join(out, " ")
}

func newGroup(t testing.TB, ks []*identity.AccountKey, members int) *Log {
	t.Helper()
	l, err := New(ks[0], "Climbing club", t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ks[1:members] {
		mustNext(t, l, ks[0], Op{Kind: Add, Subject: k.Public()})
	}
	return l
}

// copyOf is another member's log: the same operations, loaded from their
// wire form as a member receives them.
func copyOf(t testing.TB, l *Log) *Log {
	t.Helper()
	var ops []Op
	for _, o := range l.Ops() {
		d, err := Unmarshal(o.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, d)
	}
	c, err := Load(ops)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMembership(t *testing.T) {
	ks := keys(t, 5)
	l := newGroup(t, ks, 4)
	if got, want := names(l.State(), ks), "0* 1 2 3"; got != want {
		t.Fatalf("members %q, want %q", got, want)
	}
	mustNext(t, l, ks[0], Op{Kind: Promote, Subject: ks[1].Public()})
	mustNext(t, l, ks[1], Op{Kind: Remove, Subject: ks[2].Public()})
	mustNext(t, l, ks[1], Op{Kind: Rename, Name: "Bouldering"})
	mustNext(t, l, ks[1], Op{Kind: SetTimer, Timer: time.Hour})
	mustNext(t, l, ks[3], Op{Kind: Leave})
	s := l.State()
	if got, want := names(s, ks), "0* 1*"; got != want {
		t.Errorf("members %q, want %q", got, want)
	}
	if s.Name != "Bouldering" || s.Timer != time.Hour || s.Epoch != 2 || s.Seq != 8 {
		t.Errorf("state %q timer %v epoch %d seq %d, want Bouldering 1h 2 8", s.Name, s.Timer, s.Epoch, s.Seq)
	}
	// Every member that loads the same operations sees the same group.
	c := copyOf(t, l)
	if c.Head() != l.Head() || names(c.State(), ks) != names(s, ks) || c.State().Epoch != s.Epoch {
		t.Errorf("a member's copy has head %v members %q, want %v %q", c.Head(), names(c.State(), ks), l.Head(), names(s, ks))
	}
	// The last admin leaving hands the group to the member of longest
	// standing.
	mustNext(t, l, ks[1], Op{Kind: Add, Subject: ks[4].Public()})
	mustNext(t, l, ks[0], Op{Kind: Demote, Subject: ks[1].Public()})
	mustNext(t, l, ks[0], Op{Kind: Leave})
	if got, want := names(l.State(), ks), "1* 4"; got != want {
		t.Errorf("after the last admin left: members %q, want %q", got, want)
	}
}

// TestRefused is the bad input for membership: every refusal names
// its reason and leaves the log as it was.
func TestRefused(t *testing.T) {
	ks := keys(t, 6)
	l := newGroup(t, ks, 3) // 0 admin; 1, 2 members
	removed := mustNext(t, l, ks[0], Op{Kind: Remove, Subject: ks[2].Public()})
	other := newGroup(t, ks, 1)

	sign := func(k *identity.AccountKey, o Op) Op {
		t.Helper()
		if o.Group == (ID{}) {
			o.Group = l.ID()
		}
		if o.Seq == 0 && o.Kind != Create {
			o.Seq, o.Parent = l.State().Seq+1, l.Head()
		}
		if o.At.IsZero() {
			o.At = t0
		}
		if err := o.sign(k); err != nil {
			t.Fatal(err)
		}
		return o
	}
	forged := sign(ks[1], Op{Kind: Add, Subject: ks[3].Public()})
	forged.Author = ks[0].Public() // claims the admin signed it
	tampered := sign(ks[0], Op{Kind: Add, Subject: ks[3].Public()})
	tampered.Subject = ks[4].Public()
	skipped := sign(ks[0], Op{Kind: Add, Subject: ks[3].Public()})
	skipped.Seq++
	skipped = sign(ks[0], skipped)
	orphan := sign(ks[0], Op{Kind: Add, Subject: ks[3].Public(), Seq: 9, Parent: Hash{1}})

	for _, c := range []struct {
		name string
		op   Op
		want error
	}{
		{"a member adds (not an admin)", sign(ks[1], Op{Kind: Add, Subject: ks[3].Public()}), ErrNotAllowed},
		{"a stranger adds", sign(ks[5], Op{Kind: Add, Subject: ks[3].Public()}), ErrNotAllowed},
		{"a signature by someone else", forged, ErrBadSignature},
		{"a field changed after signing", tampered, ErrBadSignature},
		{"replayed", removed, ErrReplayed},
		{"out of order: the parent unknown", orphan, ErrUnknownParent},
		{"a seq that skips one", skipped, ErrMalformed},
		{"another group's operation", sign(ks[0], Op{Kind: Add, Subject: ks[3].Public(), Group: other.ID(), Seq: 1, Parent: other.Head()}), ErrOtherGroup},
		{"a removed member speaks", sign(ks[2], Op{Kind: Leave}), ErrNotAllowed},
		{"a removed member renames", sign(ks[2], Op{Kind: Rename, Name: "mine"}), ErrNotAllowed},
		{"a timer from a non-member", sign(ks[5], Op{Kind: SetTimer, Timer: time.Minute}), ErrNotAllowed},
		{"a timer from a member who is not an admin", sign(ks[1], Op{Kind: SetTimer, Timer: time.Minute}), ErrNotAllowed},
		{"a member added twice", sign(ks[0], Op{Kind: Add, Subject: ks[1].Public()}), ErrNotAllowed},
		{"a non-member removed", sign(ks[0], Op{Kind: Remove, Subject: ks[5].Public()}), ErrNotAllowed},
		{"the last admin demoted", sign(ks[0], Op{Kind: Demote, Subject: ks[0].Public()}), ErrNotAllowed},
		{"an admin removes itself", sign(ks[0], Op{Kind: Remove, Subject: ks[0].Public()}), ErrNotAllowed},
		{"a second create", sign(ks[0], Op{Kind: Create, Name: "x", Group: l.ID()}), ErrUnknownParent},
	} {
		t.Run(c.name, func(t *testing.T) {
			head, n, members := l.Head(), l.Len(), names(l.State(), ks)
			err := l.Add(c.op)
			if !errors.Is(err, c.want) {
				t.Fatalf("Add: %v, want %v", err, c.want)
			}
			if l.Head() != head || l.Len() != n || names(l.State(), ks) != members {
				t.Errorf("the log changed: head %v→%v, %d→%d ops, members %q→%q", head, l.Head(), n, l.Len(), members, names(l.State(), ks))
			}
			// The same bytes from the network are refused the same way
			// (or earlier, by the decoder).
			if o, err := Unmarshal(c.op.Marshal()); err == nil {
				if err := l.Add(o); !errors.Is(err, c.want) {
					t.Errorf("Add after Unmarshal: %v, want %v", err, c.want)
				}
			} else if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformed) {
				t.Errorf("Unmarshal: %v", err)
			}
		})
	}
	// Next refuses what Add would.
	if _, err := l.Next(ks[1], Op{Kind: Add, Subject: ks[3].Public()}, t0); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Next by a member who is not an admin: %v", err)
	}
	if _, err := l.Next(ks[0], Op{Kind: Rename, Name: " padded"}, t0); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Next with a bad name: %v", err)
	}
}

// TestForkConverges: two admins act at once on the same head. Every
// member picks the same branch whichever arrives first, the admin of
// longer standing wins whatever the hashes, and the loser's change is
// re-issued on the winner.
func TestForkConverges(t *testing.T) {
	ks := keys(t, 6)
	l := newGroup(t, ks, 4)
	mustNext(t, l, ks[0], Op{Kind: Promote, Subject: ks[1].Public()})
	// 0 (the creator) and 1 (promoted later) act concurrently: 1 removes
	// 0 and adds 4; 0 removes 1 and renames. Their logs fork at head.
	a, b := copyOf(t, l), copyOf(t, l)
	junior := []Op{
		mustNext(t, a, ks[1], Op{Kind: Remove, Subject: ks[0].Public()}),
		mustNext(t, a, ks[1], Op{Kind: Add, Subject: ks[4].Public()}),
	}
	senior := []Op{
		mustNext(t, b, ks[0], Op{Kind: Remove, Subject: ks[1].Public()}),
		mustNext(t, b, ks[0], Op{Kind: Rename, Name: "Senior's"}),
	}
	// Members receive the two branches in opposite orders.
	for _, o := range senior {
		if err := a.Add(o); err != nil {
			t.Fatalf("a adds the senior branch: %v", err)
		}
	}
	for _, o := range junior {
		if err := b.Add(o); err != nil {
			t.Fatalf("b adds the junior branch: %v", err)
		}
	}
	if a.Head() != b.Head() {
		t.Fatalf("members disagree: heads %v and %v", a.Head(), b.Head())
	}
	if got, want := names(a.State(), ks), "0* 2 3"; got != want || a.State().Name != "Senior's" {
		t.Errorf("after the fork: members %q name %q, want %q and the senior's rename", got, a.State().Name, want)
	}
	// The junior's operations lost; its node re-issues them: the removal
	// of the senior is no longer its to make (it was removed), nothing is.
	orphans := a.Orphans(ks[1].Public())
	if len(orphans) != 2 || orphans[0].Hash() != junior[0].Hash() {
		t.Fatalf("orphans %v, want the junior's two", orphans)
	}
	for _, o := range orphans {
		if _, err := a.Reissue(ks[1], o, t0); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("re-issue of %v by a removed admin: %v, want ErrNotAllowed", o.Kind, err)
		}
	}
	if len(a.Orphans(ks[0].Public())) != 0 {
		t.Errorf("the winner has orphans")
	}

	// A fork between an admin and a member's leave: the leave loses and
	// is re-issued on top, where it still applies.
	c := copyOf(t, a)
	rename := mustNext(t, a, ks[0], Op{Kind: Rename, Name: "Later"})
	leave := mustNext(t, c, ks[2], Op{Kind: Leave})
	if err := a.Add(leave); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(rename); err != nil {
		t.Fatal(err)
	}
	if a.Head() != c.Head() || a.Head() != rename.Hash() {
		t.Fatalf("the admin's rename should win over a member's leave")
	}
	again, err := c.Reissue(ks[2], c.Orphans(ks[2].Public())[0], t0)
	if err != nil {
		t.Fatalf("re-issue of a leave: %v", err)
	}
	if err := a.Add(again); err != nil {
		t.Fatal(err)
	}
	if got, want := names(a.State(), ks), "0* 3"; got != want || a.Head() != c.Head() {
		t.Errorf("after the re-issued leave: members %q, want %q (heads agree: %v)", got, want, a.Head() == c.Head())
	}
}

// TestForkGrinding: a junior admin signing many versions of its removal
// of the senior (each with another hash) never wins against the senior's
// concurrent operation.
func TestForkGrinding(t *testing.T) {
	ks := keys(t, 3)
	l := newGroup(t, ks, 3)
	mustNext(t, l, ks[0], Op{Kind: Promote, Subject: ks[1].Public()})
	senior, err := copyOf(t, l).Next(ks[0], Op{Kind: Remove, Subject: ks[1].Public()}, t0)
	if err != nil {
		t.Fatal(err)
	}
	wins := 0
	for i := range MaxForks - 1 {
		g := copyOf(t, l)
		o, err := g.Next(ks[1], Op{Kind: Remove, Subject: ks[0].Public()}, t0.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Add(senior); err != nil {
			t.Fatal(err)
		}
		if g.Head() != senior.Hash() {
			wins++
		}
		if o.Hash() == senior.Hash() {
			t.Fatal("same hash")
		}
	}
	if wins > 0 {
		t.Errorf("the junior's removal of the senior won %d times of %d", wins, MaxForks-1)
	}
}

func TestForksBounded(t *testing.T) {
	ks := keys(t, 2)
	l := newGroup(t, ks, 1)
	base := copyOf(t, l)
	for i := range MaxForks + 1 {
		c := copyOf(t, base)
		o, err := c.Next(ks[0], Op{Kind: Rename, Name: fmt.Sprint("name ", i)}, t0)
		if err != nil {
			t.Fatal(err)
		}
		err = l.Add(o)
		if i < MaxForks && err != nil {
			t.Fatalf("fork %d: %v", i, err)
		}
		if i == MaxForks && !errors.Is(err, ErrFull) {
			t.Fatalf("fork %d past the limit: %v, want ErrFull", i, err)
		}
	}
}

func TestMarshalCanonical(t *testing.T) {
	ks := keys(t, 2)
	l := newGroup(t, ks, 2)
	o := mustNext(t, l, ks[0], Op{Kind: SetTimer, Timer: 90 * time.Second})
	b := o.Marshal()
	d, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Hash() != o.Hash() || d.Timer != 90*time.Second || !d.At.Equal(o.At) {
		t.Errorf("round trip changed the operation: %+v", d)
	}
	// One byte form: a trailing duplicate field, a bad length or too many
	// bytes are refused.
	for _, bad := range [][]byte{append(b, b[len(b)-66:]...), b[:len(b)-1], make([]byte, MaxOpSize+1)} {
		if _, err := Unmarshal(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Unmarshal of %d bad bytes: %v, want ErrMalformed", len(bad), err)
		}
	}
	for _, name := range []string{"", " x", "x\n", strings.Repeat("é", 51), "\xff"} {
		if CheckName(name) == nil {
			t.Errorf("CheckName(%q) accepted", name)
		}
	}
}

// TestLoadRefusesGaps: a log with an operation missing is refused as a
// whole.
func TestLoadRefusesGaps(t *testing.T) {
	ks := keys(t, 4)
	l := newGroup(t, ks, 4)
	ops := l.Chain()
	if _, err := Load(append(ops[:1:1], ops[2:]...)); !errors.Is(err, ErrUnknownParent) {
		t.Errorf("Load with the second operation missing: %v, want ErrUnknownParent", err)
	}
	if _, err := Load(ops[1:]); !errors.Is(err, ErrMalformed) {
		t.Errorf("Load without the create operation: %v, want ErrMalformed", err)
	}
	if _, err := Load(ops); err != nil {
		t.Errorf("Load of the whole chain: %v", err)
	}
}
