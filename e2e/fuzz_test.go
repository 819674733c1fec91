package e2e

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// goldenBytes returns a golden value for seeding fuzzers.
func goldenBytes(f *testing.F, key string) []byte {
	m, err := parseGolden()
	if err != nil {
		f.Fatal(err)
	}
	b, err := hex.DecodeString(m[key])
	if err != nil || len(b) == 0 {
		f.Fatalf("golden %s missing", key)
	}
	return b
}

func FuzzUnmarshalBundle(f *testing.F) {
	b := newParty(f, 2)
	if err := b.st.GenerateOneTime(b.id, 1, epoch, b.r); err != nil {
		f.Fatal(err)
	}
	for _, bundle := range []Bundle{b.st.Bundle(), b.st.IssueBundle()} {
		enc, err := MarshalBundle(bundle)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := UnmarshalBundle(data)
		if err != nil {
			return
		}
		// Strict: an accepted encoding is the only one for its value.
		enc, err := MarshalBundle(got)
		if err != nil {
			t.Fatalf("accepted bundle does not re-encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("accepted a second encoding:\n in %x\nout %x", data, enc)
		}
		_ = got.Verify(b.pub) // must not panic
	})
}

func FuzzUnmarshalSession(f *testing.F) {
	a, b := newParty(f, 1), newParty(f, 2)
	sa, sb := pair(f, a, b, false)
	f.Add(marshalOrFatal(f, sa))
	mustDecrypt(f, sa, mustEncrypt(f, sb, "x"), "x")
	mustEncrypt(f, sb, "skipped")
	mustDecrypt(f, sa, mustEncrypt(f, sb, "y"), "y")
	f.Add(marshalOrFatal(f, sa))
	f.Add(marshalOrFatal(f, sb))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := UnmarshalSession(data)
		if err != nil {
			return
		}
		enc := marshalOrFatal(t, s)
		if !bytes.Equal(enc, data) {
			t.Fatalf("accepted a second encoding:\n in %x\nout %x", data, enc)
		}
		// A restored session must not panic on use.
		if m, err := s.Encrypt([]byte("z"), nil); err == nil {
			_, _ = s.Decrypt(m, nil)
		}
	})
}

func FuzzUnmarshalSessionSet(f *testing.F) {
	a, b := newParty(f, 1), newParty(f, 2)
	var set SessionSet
	if err := set.Initiate(a.id, b.pub, b.st.Bundle(), a.r); err != nil {
		f.Fatal(err)
	}
	enc, err := set.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	var empty SessionSet
	enc, _ = empty.Marshal()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := UnmarshalSessionSet(data)
		if err != nil {
			return
		}
		enc, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("accepted a second encoding:\n in %x\nout %x", data, enc)
		}
	})
}

func FuzzUnmarshalPrekeyState(f *testing.F) {
	b := newParty(f, 2)
	if err := b.st.GenerateOneTime(b.id, 2, epoch, b.r); err != nil {
		f.Fatal(err)
	}
	b.st.IssueBundle()
	enc, err := b.st.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := UnmarshalPrekeyState(data)
		if err != nil {
			return
		}
		enc, err := st.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("accepted a second encoding:\n in %x\nout %x", data, enc)
		}
		_ = st.Bundle()
	})
}

// FuzzParseMessage checks the wire decoders: no panic, and an accepted
// message re-encodes to exactly its input.
func FuzzParseMessage(f *testing.F) {
	f.Add(goldenBytes(f, "handshake.first.message"))
	f.Add(goldenBytes(f, "handshake.reply.message"))
	f.Add(goldenBytes(f, "handshake.second.message"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if h, ct, err := parseMessage(data); err == nil {
			re := append(appendHeader(nil, h.dh[:], h.pn, h.n), ct...)
			if !bytes.Equal(re, data) {
				t.Fatalf("message re-encodes differently")
			}
		}
		if m, err := parseInitial(data); err == nil {
			re := append(m.appendPrefix(nil), m.msg...)
			if !bytes.Equal(re, data) {
				t.Fatalf("initial message re-encodes differently")
			}
		}
		ik, err := InitiatorKey(data)
		if (err == nil) != initialWellFormed(data) || (err == nil && len(ik) != keySize) {
			t.Fatalf("InitiatorKey = %x, %v on a message parseInitial judges otherwise", ik, err)
		}
	})
}

// initialWellFormed reports whether parseInitial accepts b.
func initialWellFormed(b []byte) bool { _, err := parseInitial(b); return err == nil }

// FuzzDecrypt feeds arbitrary bytes to a live session (and to the
// responder's handshake): nothing panics, nothing decrypts, and the state
// is unchanged.
func FuzzDecrypt(f *testing.F) {
	a, b := newParty(f, 1), newParty(f, 2)
	// Seeds are well-formed messages of another session between the same
	// parties, so the fuzzer starts from valid layouts.
	oa, ob := pair(f, a, b, true) // its one-time prekey is consumed
	f.Add(mustEncrypt(f, oa, "seed"), []byte(nil))
	f.Add(mustEncrypt(f, ob, "seed"), []byte("ad"))
	sa, sb := pair(f, a, b, false)
	f.Add(goldenBytes(f, "handshake.first.message"), []byte("ad"))
	f.Add(goldenBytes(f, "handshake.reply.message"), []byte(nil))
	beforeA, beforeB := marshalOrFatal(f, sa), marshalOrFatal(f, sb)
	stBefore, err := b.st.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg, ad []byte) {
		if pt, err := sa.Decrypt(msg, ad); err == nil {
			t.Fatalf("garbage decrypted to %q", pt)
		}
		if pt, err := sb.Decrypt(msg, ad); err == nil {
			t.Fatalf("garbage decrypted to %q", pt)
		}
		if _, pt, err := AcceptSession(b.id, b.st, a.pub, msg, ad, b.r); err == nil {
			t.Fatalf("garbage handshake accepted with plaintext %q", pt)
		}
		assertUnchanged(t, sa, beforeA)
		assertUnchanged(t, sb, beforeB)
		if st, _ := b.st.Marshal(); !bytes.Equal(st, stBefore) {
			t.Fatal("failed accept changed the prekey state")
		}
	})
}
