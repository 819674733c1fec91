package group

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// FuzzUnmarshal: operation bytes from the network never panic the decoder,
// and whatever it accepts has one byte form.
func FuzzUnmarshal(f *testing.F) {
	ks := keys(f, 3)
	l := newGroup(f, ks, 3)
	mustNext(f, l, ks[0], Op{Kind: SetTimer, Timer: time.Minute})
	mustNext(f, l, ks[0], Op{Kind: Rename, Name: "ü"})
	for _, o := range l.Ops() {
		f.Add(o.Marshal())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := Unmarshal(b)
		if err != nil {
			return
		}
		if !bytes.Equal(o.Marshal(), b) {
			t.Fatalf("accepted bytes re-encode differently")
		}
	})
}

// FuzzForks: any sequence of operations by members and strangers, on any
// parent, leaves a log that a member receiving the same operations in
// another order agrees with, and a group that has an admin while it has
// members.
func FuzzForks(f *testing.F) {
	ks := keys(f, 6)
	f.Add([]byte{0, 1, 1, 0, 0, 1, 2, 1, 1, 3, 2, 2, 1, 2, 0, 2, 0, 1, 0, 2, 2, 5, 0, 1})
	f.Add([]byte{0, 1, 1, 0, 0, 3, 1, 1, 1, 2, 0, 2, 0, 2, 1, 2, 0, 5, 0, 3, 2, 5, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		l := newGroup(t, ks, 1)
		for i := 0; i+4 <= len(b) && l.Len() < 64; i += 4 {
			ops := l.Ops()
			parent := ops[int(b[i+3])%len(ops)]
			o := Op{Group: l.ID(), Seq: parent.Seq + 1, Parent: parent.Hash(), Kind: Kind(b[i+1]%uint8(maxKind-1)) + Add,
				At: t0.Add(time.Duration(i) * time.Second)}
			if o.Kind.hasSubject() {
				o.Subject = ks[int(b[i+2])%len(ks)].Public()
			}
			switch o.Kind {
			case Rename:
				o.Name = string(rune('a' + b[i+2]%26))
			case SetTimer:
				o.Timer = time.Duration(b[i+2]) * time.Minute
			}
			if o.sign(ks[int(b[i])%len(ks)]) != nil {
				continue
			}
			_ = l.Add(o) // refusals are the point of some inputs
		}
		// Another member gets the same operations with each seq's in the
		// opposite order.
		ops := l.Ops()
		slices.Reverse(ops)
		c, err := Load(ops)
		if err != nil {
			t.Fatalf("Load of a log's own operations: %v", err)
		}
		if c.Head() != l.Head() {
			t.Fatalf("members disagree: heads %v and %v", c.Head(), l.Head())
		}
		s := l.State()
		if s.Len() > 0 && s.admins() == 0 {
			t.Fatalf("a group of %d members without an admin", s.Len())
		}
		if got, want := names(c.State(), ks), names(s, ks); got != want {
			t.Fatalf("members %q and %q", got, want)
		}
	})
}
