package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

var groupAD1 = []byte("group 1, epoch 3, from alice's phone")

func sealN(t testing.TB, s *SenderKey, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for range n {
		m, err := s.Seal(groupAD1, fmt.Appendf(nil, "message %d", s.Iteration()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func mustOpen(t testing.TB, r *ReceiverChain, m []byte, want string) {
	t.Helper()
	pt, err := r.Open(groupAD1, m)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if string(pt) != want {
		t.Fatalf("Open = %q, want %q", pt, want)
	}
}

// shareOverTheWire is a share as another member device receives it.
func shareOverTheWire(t testing.TB, s *SenderKey) *ReceiverChain {
	t.Helper()
	sh, err := UnmarshalSenderKeyShare(MarshalSenderKeyShare(s.Share()))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReceiverChain(sh)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSenderKey(t *testing.T) {
	s, err := NewSenderKey(detRand(7))
	if err != nil {
		t.Fatal(err)
	}
	early := sealN(t, s, 2) // sealed before the member got the share
	r := shareOverTheWire(t, s)
	ms := sealN(t, s, 5)

	mustOpen(t, r, ms[0], "message 2")
	mustOpen(t, r, ms[3], "message 5") // two skipped
	mustOpen(t, r, ms[1], "message 3") // late, from a skipped key
	before := r.Marshal()
	for name, m := range map[string][]byte{"replayed": ms[0], "replayed skipped": ms[1], "sealed before the share": early[1]} {
		if _, err := r.Open(groupAD1, m); !errors.Is(err, ErrReplay) {
			t.Errorf("%s: %v, want ErrReplay", name, err)
		}
	}
	if !bytes.Equal(r.Marshal(), before) {
		t.Errorf("a refused message changed the chain")
	}

	// Another member of the group (who holds the chain key, not the
	// signing key) forges a message: refused.
	forger, _ := NewSenderKey(detRand(8))
	forger.id, forger.ck, forger.n = s.id, s.ck, s.n
	forged := sealN(t, forger, 1)[0]
	// A message moved to another group or epoch, or tampered with.
	tampered := bytes.Clone(ms[4])
	tampered[len(tampered)-sigSize-3] ^= 1
	for name, c := range map[string]struct {
		ad, m []byte
		want  error
	}{
		"forged by a member":        {groupAD1, forged, ErrBadSignature},
		"another group's ad":        {[]byte("group 2"), ms[4], ErrBadSignature},
		"ciphertext changed":        {groupAD1, tampered, ErrBadSignature},
		"truncated":                 {groupAD1, ms[4][:len(ms[4])-1], ErrMalformed},
		"empty":                     {groupAD1, nil, ErrMalformed},
		"another sender's chain id": {groupAD1, func() []byte { o, _ := NewSenderKey(nil); return sealN(t, o, 1)[0] }(), ErrMalformed},
	} {
		if _, err := r.Open(c.ad, c.m); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if !bytes.Equal(r.Marshal(), before) {
		t.Errorf("a refused message changed the chain")
	}

	// Stored and restored, both sides carry on where they stood.
	s2, err := UnmarshalSenderKey(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	r2, err := UnmarshalReceiverChain(r.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	mustOpen(t, r2, ms[2], "message 4")
	mustOpen(t, r2, ms[4], "message 6")
	mustOpen(t, r2, sealN(t, s2, 1)[0], "message 7")
}

func TestSenderKeySkipBounded(t *testing.T) {
	s, _ := NewSenderKey(detRand(9))
	r := shareOverTheWire(t, s)
	ms := sealN(t, s, MaxGroupSkip+2)
	before := r.Marshal()
	if _, err := r.Open(groupAD1, ms[MaxGroupSkip+1]); !errors.Is(err, ErrTooManySkipped) {
		t.Fatalf("a message %d ahead: %v, want ErrTooManySkipped", MaxGroupSkip+1, err)
	}
	if !bytes.Equal(r.Marshal(), before) {
		t.Errorf("the refused message changed the chain")
	}
	mustOpen(t, r, ms[MaxGroupSkip], fmt.Sprint("message ", MaxGroupSkip))
	mustOpen(t, r, ms[MaxGroupSkip+1], fmt.Sprint("message ", MaxGroupSkip+1))
	mustOpen(t, r, ms[5], "message 5")
	if len(r.skipped) != MaxGroupSkip-1 {
		t.Errorf("%d skipped keys kept, want %d", len(r.skipped), MaxGroupSkip-1)
	}
	if _, err := UnmarshalReceiverChain(r.Marshal()); err != nil {
		t.Errorf("a chain with %d skipped keys does not restore: %v", len(r.skipped), err)
	}
}

func FuzzGroupOpen(f *testing.F) {
	s, _ := NewSenderKey(detRand(10))
	sh := s.Share()
	for _, m := range sealN(f, s, 3) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, m []byte) {
		r, err := NewReceiverChain(sh)
		if err != nil {
			t.Fatal(err)
		}
		before := r.Marshal()
		if _, err := r.Open(groupAD1, m); err != nil && !bytes.Equal(r.Marshal(), before) {
			t.Fatalf("refused (%v) but changed the chain", err)
		}
		GroupMessageChain(m)
	})
}

func FuzzUnmarshalGroupKeys(f *testing.F) {
	s, _ := NewSenderKey(detRand(11))
	r := shareOverTheWire(f, s)
	ms := sealN(f, s, 4)
	if _, err := r.Open(groupAD1, ms[3]); err != nil {
		f.Fatal(err)
	}
	f.Add(byte(0), s.Marshal())
	f.Add(byte(1), MarshalSenderKeyShare(s.Share()))
	f.Add(byte(2), r.Marshal())
	f.Fuzz(func(t *testing.T, which byte, b []byte) {
		var out []byte
		switch which % 3 {
		case 0:
			k, err := UnmarshalSenderKey(b)
			if err != nil {
				return
			}
			out = k.Marshal()
		case 1:
			sh, err := UnmarshalSenderKeyShare(b)
			if err != nil {
				return
			}
			if _, err := NewReceiverChain(sh); err != nil {
				t.Fatalf("a decoded share makes no chain: %v", err)
			}
			out = MarshalSenderKeyShare(sh)
		case 2:
			c, err := UnmarshalReceiverChain(b)
			if err != nil {
				return
			}
			out = c.Marshal()
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("accepted bytes re-encode differently")
		}
	})
}

// BenchmarkGroupEncrypt is the cost of sending one 1 KiB message to a group
// of n members: one Seal with a sender key, whatever n, beside a Double
// Ratchet Encrypt per member (what a group without sender keys pays).
func BenchmarkGroupEncrypt(b *testing.B) {
	for _, n := range []int{2, 10, 100, 1000} {
		b.Run(fmt.Sprintf("members=%d/senderkey", n), func(b *testing.B) {
			s, _ := NewSenderKey(nil)
			b.SetBytes(int64(len(bench1KiB)))
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := s.Seal(groupAD1, bench1KiB); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("members=%d/pairwise", n), func(b *testing.B) {
			a, c := newParty(b, 1), newParty(b, 2)
			sa, sc := pair(b, a, c, false)
			mustDecrypt(b, sa, mustEncrypt(b, sc, "confirm"), "confirm")
			b.SetBytes(int64(len(bench1KiB)))
			defer cpuPerOp(b)()
			for b.Loop() {
				for range n - 1 {
					if _, err := sa.Encrypt(bench1KiB, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
