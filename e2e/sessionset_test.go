package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

type setParty struct {
	*testParty
	set *SessionSet
}

func (p *setParty) send(t *testing.T, pt string) []byte {
	t.Helper()
	m, err := p.set.Encrypt([]byte(pt), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (p *setParty) recv(t *testing.T, from *setParty, m []byte, want string) {
	t.Helper()
	pt, _, err := p.set.Decrypt(p.id, p.st, from.pub, m, nil, p.r)
	if err != nil {
		t.Fatalf("decrypt %q: %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("decrypt = %q, want %q", pt, want)
	}
}

// restart replaces the set with its marshalled and restored copy.
func (p *setParty) restart(t *testing.T) {
	t.Helper()
	enc, err := p.set.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if p.set, err = UnmarshalSessionSet(enc); err != nil {
		t.Fatal(err)
	}
}

func newSetPair(t *testing.T) (small, large *setParty) {
	a, b := &setParty{newParty(t, 1), &SessionSet{}}, &setParty{newParty(t, 2), &SessionSet{}}
	if bytes.Compare(a.pub, b.pub) > 0 {
		a, b = b, a
	}
	return a, b
}

func TestSimultaneousInitiation(t *testing.T) {
	for _, order := range []string{"small first", "large first"} {
		t.Run(order, func(t *testing.T) {
			s, l := newSetPair(t)
			if err := s.set.Initiate(s.id, l.pub, l.st.Bundle(), s.r); err != nil {
				t.Fatal(err)
			}
			if err := l.set.Initiate(l.id, s.pub, s.st.Bundle(), l.r); err != nil {
				t.Fatal(err)
			}
			winner := s.set.Active().ID()
			s1, s2 := s.send(t, "s1"), s.send(t, "s2")
			l1, l2 := l.send(t, "l1"), l.send(t, "l2")

			// The initial messages cross.
			if order == "small first" {
				l.recv(t, s, s1, "s1")
				s.recv(t, l, l1, "l1")
			} else {
				s.recv(t, l, l1, "l1")
				l.recv(t, s, s1, "s1")
			}
			if s.set.Active().ID() != winner || l.set.Active().ID() != winner {
				t.Fatal("the two sides did not settle on the smaller key's session")
			}
			// The loser's messages still decrypt on both sides.
			s.recv(t, l, l2, "l2")
			l.recv(t, s, s2, "s2")
			for i := range 3 {
				msg := fmt.Sprint("after", i)
				l.recv(t, s, s.send(t, msg), msg)
				s.recv(t, l, l.send(t, msg), msg)
			}
			if s.set.Active().ID() != winner || l.set.Active().ID() != winner {
				t.Fatal("active session changed after settling")
			}
			if !s.set.Active().Confirmed() || !l.set.Active().Confirmed() {
				t.Fatal("winning session not confirmed on both sides")
			}
			s.restart(t)
			l.restart(t)
			l.recv(t, s, s.send(t, "restarted"), "restarted")
			s.recv(t, l, l.send(t, "restarted"), "restarted")
		})
	}
}

// Two devices of one account share the account key: the tie-break falls to
// their X25519 identity keys, and the two sides still settle on one session.
func TestSimultaneousInitiationSiblings(t *testing.T) {
	a := &setParty{newParty(t, 1), &SessionSet{}}
	b := &setParty{newParty(t, 2), &SessionSet{}}
	// b is a second device of a's account: a's account key, its own X25519 key.
	b.id.Signer, b.pub = a.id.Signer, a.pub
	st, err := NewPrekeyState(b.id, epoch, b.r)
	if err != nil {
		t.Fatal(err)
	}
	b.st = st
	if bytes.Compare(a.id.DH.PublicKey().Bytes(), b.id.DH.PublicKey().Bytes()) > 0 {
		a, b = b, a
	}
	if err := a.set.Initiate(a.id, b.pub, b.st.Bundle(), a.r); err != nil {
		t.Fatal(err)
	}
	if err := b.set.Initiate(b.id, a.pub, a.st.Bundle(), b.r); err != nil {
		t.Fatal(err)
	}
	winner := a.set.Active().ID()
	a1, b1 := a.send(t, "a1"), b.send(t, "b1")
	b.recv(t, a, a1, "a1")
	a.recv(t, b, b1, "b1")
	for i := range 2 {
		msg := fmt.Sprint("after", i)
		b.recv(t, a, a.send(t, msg), msg)
		a.recv(t, b, b.send(t, msg), msg)
	}
	if a.set.Active().ID() != winner || b.set.Active().ID() != winner {
		t.Fatal("two devices of one account did not settle on the smaller identity key's session")
	}
}

// An initial message that arrives after the peer already settled on our
// session must not leave the two sides on different sessions.
func TestLateInitialFromLoser(t *testing.T) {
	s, l := newSetPair(t)
	if err := s.set.Initiate(s.id, l.pub, l.st.Bundle(), s.r); err != nil {
		t.Fatal(err)
	}
	if err := l.set.Initiate(l.id, s.pub, s.st.Bundle(), l.r); err != nil {
		t.Fatal(err)
	}
	winner := s.set.Active().ID()
	lLate := l.send(t, "late") // delayed in the network
	l.recv(t, s, s.send(t, "s1"), "s1")
	s.recv(t, l, l.send(t, "l reply"), "l reply") // s's session confirmed
	s.recv(t, l, lLate, "late")
	l.recv(t, s, s.send(t, "s2"), "s2")
	s.recv(t, l, l.send(t, "l2"), "l2")
	l.recv(t, s, s.send(t, "s3"), "s3")
	if s.set.Active().ID() != winner || l.set.Active().ID() != winner {
		t.Fatal("sides disagree on the active session after a late initial message")
	}
}

func TestPeerStartsOver(t *testing.T) {
	s, l := newSetPair(t)
	if err := s.set.Initiate(s.id, l.pub, l.st.Bundle(), s.r); err != nil {
		t.Fatal(err)
	}
	l.recv(t, s, s.send(t, "hi"), "hi")
	s.recv(t, l, l.send(t, "hello"), "hello")
	// l loses its state and starts again; s must follow even though its own
	// session would win a tie-break.
	l.set = &SessionSet{}
	if err := l.set.Initiate(l.id, s.pub, s.st.Bundle(), l.r); err != nil {
		t.Fatal(err)
	}
	s.recv(t, l, l.send(t, "new phone"), "new phone")
	if s.set.Active().ID() != l.set.Active().ID() {
		t.Fatal("s did not switch to the session its peer started over with")
	}
	l.recv(t, s, s.send(t, "welcome back"), "welcome back")
}

func TestSessionSetRefusesReplayedInitial(t *testing.T) {
	s, l := newSetPair(t)
	var first []byte
	for i := range MaxSessions + 1 {
		l.set = &SessionSet{}
		if err := l.set.Initiate(l.id, s.pub, s.st.Bundle(), l.r); err != nil {
			t.Fatal(err)
		}
		m := l.send(t, fmt.Sprint(i))
		if i == 0 {
			first = m
		}
		s.recv(t, l, m, fmt.Sprint(i))
		if _, accepted, err := s.set.Decrypt(s.id, s.st, l.pub, m, nil, s.r); err == nil || accepted {
			t.Fatalf("duplicate initial message: accepted=%v err=%v", accepted, err)
		}
	}
	if s.set.Len() != MaxSessions {
		t.Fatalf("set holds %d sessions, want %d", s.set.Len(), MaxSessions)
	}
	s.restart(t)
	if _, _, err := s.set.Decrypt(s.id, s.st, l.pub, first, nil, s.r); !errors.Is(err, ErrReplay) {
		t.Fatalf("initial message of a retired session: err = %v, want ErrReplay", err)
	}
	if _, err := (&SessionSet{}).Encrypt([]byte("x"), nil); !errors.Is(err, ErrNoSession) {
		t.Fatalf("encrypt without session: err = %v, want ErrNoSession", err)
	}
}

func TestIsInitial(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	sa, sb := pair(t, a, b, false)
	if !IsInitial(mustEncrypt(t, sa, "x")) {
		t.Fatal("unconfirmed initiator's message not reported as initial")
	}
	if IsInitial(mustEncrypt(t, sb, "y")) || IsInitial(nil) || IsInitial([]byte{9, 2}) {
		t.Fatal("non-initial message reported as initial")
	}
}

// TestInitiatorKey: the receiver can read which identity key an initial message started
// its session with before accepting it, and nothing else reads as an initial message.
func TestInitiatorKey(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	sa, _, err := InitiateSession(a.id, b.pub, b.st.Bundle(), a.r)
	if err != nil {
		t.Fatal(err)
	}
	m := mustEncrypt(t, sa, "first")
	ik, err := InitiatorKey(m)
	if err != nil || !bytes.Equal(ik, a.id.DH.PublicKey().Bytes()) {
		t.Fatalf("InitiatorKey = %x, %v; want the initiator's identity key %x", ik, err, a.id.DH.PublicKey().Bytes())
	}
	_, sb := pair(t, a, b, false)
	for name, m := range map[string][]byte{"ratchet message": mustEncrypt(t, sb, "reply"), "cut initial": m[:len(m)-20], "empty": nil} {
		if _, err := InitiatorKey(m); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: InitiatorKey err = %v, want ErrMalformed", name, err)
		}
	}
}
