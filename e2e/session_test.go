package e2e

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
)

func TestConversationInOrder(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	sa, sb := pair(t, a, b, false)
	for turn := range 5 {
		for i := range 3 {
			mustDecrypt(t, sb, mustEncrypt(t, sa, fmt.Sprintf("a%d.%d", turn, i)), fmt.Sprintf("a%d.%d", turn, i))
		}
		for i := range 3 {
			mustDecrypt(t, sa, mustEncrypt(t, sb, fmt.Sprintf("b%d.%d", turn, i)), fmt.Sprintf("b%d.%d", turn, i))
		}
	}
	if !sa.Confirmed() || sa.handshake != nil {
		t.Fatal("initiator still unconfirmed after replies")
	}
	if sa.ID() != sb.ID() {
		t.Fatal("session ids differ between the two sides")
	}
}

func TestInitialMessageRepeatedUntilReply(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	bundle := b.st.Bundle()
	sa, prefix, err := InitiateSession(a.id, b.pub, bundle, a.r)
	if err != nil {
		t.Fatal(err)
	}
	m1 := mustEncrypt(t, sa, "one")
	m2 := mustEncrypt(t, sa, "two")
	if len(prefix) != initialPrefixSize || string(m2[:len(prefix)]) != string(prefix) {
		t.Fatal("second message before a reply does not carry the handshake")
	}
	// The first message is lost: the second still starts the session.
	sb, pt, err := AcceptSession(b.id, b.st, a.pub, m2, nil, b.r)
	if err != nil || string(pt) != "two" {
		t.Fatalf("accept from second message = %q, %v", pt, err)
	}
	// The first arrives late and decrypts with the skipped key.
	mustDecrypt(t, sb, m1, "one")
	if sb.Confirmed() {
		t.Fatal("responder confirmed before a plain message")
	}
	mustDecrypt(t, sa, mustEncrypt(t, sb, "reply"), "reply")
	m3 := mustEncrypt(t, sa, "three")
	if m3[1] != typeMessage {
		t.Fatal("message after reply still carries the handshake")
	}
	mustDecrypt(t, sb, m3, "three")
	if !sb.Confirmed() {
		t.Fatal("responder not confirmed after a plain message")
	}
}

func TestOutOfOrderAndLost(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	sa, sb := pair(t, a, b, false)
	rng := mrand.New(mrand.NewPCG(1, 2))
	for turn := range 6 {
		from, to := sa, sb
		if turn%2 == 1 {
			from, to = sb, sa
		}
		type sent struct {
			pt  string
			msg []byte
		}
		var batch []sent
		for i := range 20 {
			pt := fmt.Sprintf("t%d m%d", turn, i)
			batch = append(batch, sent{pt, mustEncrypt(t, from, pt)})
		}
		rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		for i, m := range batch {
			if i%5 == 4 {
				continue // lost
			}
			mustDecrypt(t, to, m.msg, m.pt)
		}
	}
}

func TestReplayRejected(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	sa, sb := pair(t, a, b, false)
	m1 := mustEncrypt(t, sa, "one")
	m2 := mustEncrypt(t, sa, "two")
	mustDecrypt(t, sb, m2, "two") // m1 becomes a skipped key
	mustDecrypt(t, sb, m1, "one")
	for _, m := range [][]byte{m1, m2} {
		before := marshalOrFatal(t, sb)
		_, err := sb.Decrypt(m, nil)
		if !errors.Is(err, ErrReplay) {
			t.Fatalf("replay: err = %v, want ErrReplay", err)
		}
		assertUnchanged(t, sb, before)
	}
	// A replay of the message that started a new receiving chain.
	r1 := mustEncrypt(t, sb, "reply")
	mustDecrypt(t, sa, r1, "reply")
	if _, err := sa.Decrypt(r1, nil); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay after ratchet: err = %v, want ErrReplay", err)
	}
	mustDecrypt(t, sb, mustEncrypt(t, sa, "still fine"), "still fine")
}

func TestTamperedMessageRejected(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	sa, sb := pair(t, a, b, false)
	mustDecrypt(t, sa, mustEncrypt(t, sb, "reply"), "reply")
	for _, tc := range []struct {
		name string
		from *Session
		to   *Session
	}{{"same chain", sa, sb}, {"new chain", sb, sa}} {
		m := mustEncrypt(t, tc.from, "attack at dawn")
		before := marshalOrFatal(t, tc.to)
		for i := range m {
			bad := append([]byte(nil), m...)
			bad[i] ^= 0x01
			if pt, err := tc.to.Decrypt(bad, nil); err == nil {
				t.Fatalf("%s: flipped byte %d decrypted to %q", tc.name, i, pt)
			}
		}
		if _, err := tc.to.Decrypt(m[:len(m)-1], nil); err == nil {
			t.Fatalf("%s: truncated message decrypted", tc.name)
		}
		if _, err := tc.to.Decrypt(m, []byte("other ad")); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("%s: wrong ad: err = %v, want ErrDecrypt", tc.name, err)
		}
		assertUnchanged(t, tc.to, before)
		mustDecrypt(t, tc.to, m, "attack at dawn")
	}
}

func TestTamperedInitialMessageRejected(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	if err := b.st.GenerateOneTime(b.id, 1, epoch, b.r); err != nil {
		t.Fatal(err)
	}
	bundle := b.st.IssueBundle()
	sa, _, err := InitiateSession(a.id, b.pub, bundle, a.r)
	if err != nil {
		t.Fatal(err)
	}
	m := mustEncrypt(t, sa, "hi")
	stBefore, _ := b.st.Marshal()
	// Every byte; the ML-KEM ciphertext in steps to keep the test fast.
	for i := 0; i < len(m); i++ {
		bad := append([]byte(nil), m...)
		bad[i] ^= 0x80
		if _, pt, err := AcceptSession(b.id, b.st, a.pub, bad, nil, b.r); err == nil {
			t.Fatalf("flipped byte %d accepted, plaintext %q", i, pt)
		}
	}
	stAfter, _ := b.st.Marshal()
	if string(stBefore) != string(stAfter) {
		t.Fatal("failed accepts changed the prekey state")
	}
	sb, pt, err := AcceptSession(b.id, b.st, a.pub, m, nil, b.r)
	if err != nil || string(pt) != "hi" {
		t.Fatalf("accept original = %q, %v", pt, err)
	}
	// A tampered repeat of the handshake is refused by the session too.
	m2 := mustEncrypt(t, sa, "again")
	before := marshalOrFatal(t, sb)
	for i := range m2 {
		bad := append([]byte(nil), m2...)
		bad[i] ^= 0x80
		if _, err := sb.Decrypt(bad, nil); err == nil {
			t.Fatalf("flipped byte %d of repeated initial message decrypted", i)
		}
	}
	assertUnchanged(t, sb, before)
	mustDecrypt(t, sb, m2, "again")
}

func TestRestartFromMarshalledState(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	sa, sb := pair(t, a, b, false)
	restore := func(s *Session) *Session {
		t.Helper()
		enc := marshalOrFatal(t, s)
		r, err := UnmarshalSession(enc)
		if err != nil {
			t.Fatal(err)
		}
		if again := marshalOrFatal(t, r); string(again) != string(enc) {
			t.Fatal("marshal after unmarshal differs")
		}
		return r
	}
	// Unconfirmed initiator: the handshake survives the restart.
	sa = restore(sa)
	m := mustEncrypt(t, sa, "before reply")
	if m[1] != typeInitial {
		t.Fatal("restored unconfirmed session stopped sending the handshake")
	}
	mustDecrypt(t, sb, m, "before reply")

	var late [][]byte
	for i := range 4 {
		late = append(late, mustEncrypt(t, sb, fmt.Sprint("late", i)))
	}
	mustDecrypt(t, sa, mustEncrypt(t, sb, "now"), "now") // 4 skipped keys on a
	sa, sb = restore(sa), restore(sb)
	for i, m := range late {
		mustDecrypt(t, sa, m, fmt.Sprint("late", i))
	}
	for turn := range 4 {
		sa, sb = restore(sa), restore(sb)
		mustDecrypt(t, sb, mustEncrypt(t, sa, fmt.Sprint("a", turn)), fmt.Sprint("a", turn))
		mustDecrypt(t, sa, mustEncrypt(t, sb, fmt.Sprint("b", turn)), fmt.Sprint("b", turn))
	}
}

func TestLongConversation(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	sa, sb := pair(t, a, b, true)
	rng := mrand.New(mrand.NewPCG(3, 4))
	var inflightA, inflightB [][2]string // undelivered: msg, plaintext
	send := func(from *Session, q *[][2]string, i int) {
		pt := fmt.Sprint("msg", i)
		*q = append(*q, [2]string{string(mustEncrypt(t, from, pt)), pt})
	}
	deliver := func(to *Session, q *[][2]string) {
		if len(*q) == 0 {
			return
		}
		j := rng.IntN(len(*q))
		m := (*q)[j]
		*q = append((*q)[:j], (*q)[j+1:]...)
		mustDecrypt(t, to, []byte(m[0]), m[1])
	}
	for i := range 2000 {
		switch rng.IntN(4) {
		case 0:
			send(sa, &inflightA, i)
		case 1:
			send(sb, &inflightB, i)
		case 2:
			deliver(sb, &inflightA)
		case 3:
			deliver(sa, &inflightB)
		}
	}
	for len(inflightA) > 0 {
		deliver(sb, &inflightA)
	}
	for len(inflightB) > 0 {
		deliver(sa, &inflightB)
	}
	if len(sa.skipped) != 0 || len(sb.skipped) != 0 {
		t.Fatalf("skipped keys left after delivering everything: %d, %d", len(sa.skipped), len(sb.skipped))
	}
	if sa.pn == 0 && sb.pn == 0 {
		t.Fatal("conversation never turned the DH ratchet")
	}
}

func TestSkippedKeyBounds(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	sa, sb := pair(t, a, b, false)

	// One message may not skip more than MaxSkip keys in a chain.
	var first []byte
	for i := range MaxSkip + 1 {
		m := mustEncrypt(t, sa, fmt.Sprint(i))
		if i == 0 {
			first = m
		}
	}
	over := mustEncrypt(t, sa, "over")
	before := marshalOrFatal(t, sb)
	if _, err := sb.Decrypt(over, nil); !errors.Is(err, ErrTooManySkipped) {
		t.Fatalf("err = %v, want ErrTooManySkipped", err)
	}
	assertUnchanged(t, sb, before)
	mustDecrypt(t, sb, first, "0")
	mustDecrypt(t, sb, over, "over") // now only MaxSkip keys away
	if len(sb.skipped) != MaxSkip {
		t.Fatalf("skipped keys = %d, want %d", len(sb.skipped), MaxSkip)
	}

	// Across chains the store is capped and the oldest keys go first.
	oldest := mustEncrypt(t, sa, "oldest") // never delivered
	var keep [][]byte
	for chain := range 2 {
		mustDecrypt(t, sa, mustEncrypt(t, sb, "turn"), "turn")
		var last []byte
		for i := range MaxSkip {
			last = mustEncrypt(t, sa, fmt.Sprint(chain, i))
		}
		keep = append(keep, last)
		mustDecrypt(t, sb, mustEncrypt(t, sa, "tick"), "tick")
	}
	if len(sb.skipped) != MaxSkippedKeys {
		t.Fatalf("skipped keys = %d, want cap %d", len(sb.skipped), MaxSkippedKeys)
	}
	// Its key is gone; the message now looks like one far ahead of a new
	// chain, and is refused either way.
	if _, err := sb.Decrypt(oldest, nil); err == nil {
		t.Fatal("message whose skipped key was evicted decrypted")
	}
	mustDecrypt(t, sb, keep[1], fmt.Sprint(1, MaxSkip-1))
}

func TestEncryptLimits(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	sa, sb := pair(t, a, b, false)
	big := make([]byte, MaxPlaintext)
	m, err := sa.Encrypt(big, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Decrypt(m, nil); err != nil {
		t.Fatalf("max-size message: %v", err)
	}
	if _, err := sa.Encrypt(make([]byte, MaxPlaintext+1), nil); err == nil {
		t.Fatal("plaintext over MaxPlaintext accepted")
	}
}
