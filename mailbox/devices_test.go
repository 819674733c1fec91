package mailbox

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// newDevice returns another device of m's account: its own host, X25519
// key, certificate and prekeys.
func newDevice(t testing.TB, b *box, m *member) *member {
	t.Helper()
	h := newPeer(t, b)
	dh, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := identity.IssueDeviceCert(m.acct, []byte(h.ID()), dh.PublicKey().Bytes(), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	id := e2e.Identity{Signer: ed25519.NewKeyFromSeed(m.acct.Seed()), DH: dh}
	st, err := e2e.NewPrekeyState(id, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &member{h: h, acct: m.acct, dh: dh, cert: cert, id: id, st: st}
}

// twoDevices returns two devices of one new account, both registered at
// b, the first one first.
func twoDevices(t testing.TB, b *box) (a1, a2 *member) {
	t.Helper()
	a1 = newMember(t, b)
	a2 = newDevice(t, b, a1)
	a1.register(t, b)
	a2.register(t, b)
	return a1, a2
}

func (m *member) devToken(b *box, at time.Time) []byte {
	return DeviceToken(m.acct.Public().Bytes(), []byte(b.h.ID()), m.cert.DeviceID(), Day(at))
}

func (m *member) registerHeld(t testing.TB, b *box) Held {
	t.Helper()
	h, err := Register(context.Background(), m.h, b.h.ID(), m.acct, m.cert, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// deposit deposits envs by tok from a fresh peer and wants each stored,
// or refused with want.
func deposit(t testing.TB, b *box, tok []byte, want Status, envs ...[]byte) {
	t.Helper()
	res, err := Deposit(context.Background(), newPeer(t, b), b.h.ID(), tok, envs)
	if err != nil && refusal(err) != want {
		t.Fatalf("deposit: %v, want %v", err, want)
	}
	for i, r := range res {
		if r != want {
			t.Fatalf("deposit: envelope %d is %v, want %v", i, r, want)
		}
	}
}

// drainAll drains m's queue at b (without acknowledging) and returns the
// plaintexts, in order, and the entries.
func drainAll(t testing.TB, b *box, m *member) ([]string, []Entry) {
	t.Helper()
	got, held, err := Drain(context.Background(), m.h, b.h.ID(), 256)
	if err != nil {
		t.Fatal(err)
	}
	if held.Waiting != 0 {
		t.Fatalf("%d still waiting after a drain of %d", held.Waiting, len(got))
	}
	var texts []string
	for _, e := range got {
		pt, err := m.open(e.Data)
		if err != nil {
			t.Fatalf("a drained envelope does not open with this device's keys: %v", err)
		}
		texts = append(texts, string(pt))
	}
	return texts, got
}

func seqsOf(es []Entry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPerDeviceQueues: two devices of one account registered at one
// mailbox; deposits by each device's token reach only that device's drain,
// in order, once; the account token reaches the first device; the quota is
// the member's, all queues together; and all of it survives a restart.
func TestPerDeviceQueues(t *testing.T) {
	b := newBox(t, func(c *Config) { c.MaxCount = 7 })
	ctx := context.Background()
	a1 := newMember(t, b)
	a2 := newDevice(t, b, a1)
	if h := a1.registerHeld(t, b); !h.PerDevice {
		t.Fatalf("registration says %+v; want PerDevice", h)
	}
	if h := a2.registerHeld(t, b); !h.PerDevice || h.Waiting != 0 {
		t.Fatalf("the second device's registration says %+v", h)
	}
	if st := b.srv.Stats(); st.Members != 1 || st.Devices != 2 {
		t.Fatalf("the mailbox holds %+v; want 1 member with 2 devices", st)
	}
	now := time.Now()
	deposit(t, b, a2.devToken(b, now), StatusOK, sealFor(t, a2, "two-1"))
	deposit(t, b, a1.devToken(b, now), StatusOK, sealFor(t, a1, "one-1"))
	deposit(t, b, a2.devToken(b, now), StatusOK, sealFor(t, a2, "two-2"), sealFor(t, a2, "two-3"))
	deposit(t, b, a1.token(b, now), StatusOK, sealFor(t, a1, "one-2")) // the account's token: the first device's
	replay := sealFor(t, a2, "two-4")
	deposit(t, b, a2.devToken(b, now), StatusOK, replay)
	deposit(t, b, a2.devToken(b, now), StatusDuplicate, replay)

	b.close()
	b.open()
	if st := b.srv.Stats(); st.Waiting != 6 || st.Devices != 2 {
		t.Fatalf("after a restart the mailbox holds %+v; want 6 envelopes, 2 devices", st)
	}
	one, e1 := drainAll(t, b, a1)
	two, e2 := drainAll(t, b, a2)
	if !equalStrings(one, []string{"one-1", "one-2"}) || !equalStrings(two, []string{"two-1", "two-2", "two-3", "two-4"}) {
		t.Fatalf("the first device drained %q, the second %q", one, two)
	}
	// The quota is the member's: 6 wait, 7 is the most, whoever they are for.
	deposit(t, b, a1.devToken(b, now), StatusOK, sealFor(t, a1, "one-3"))
	deposit(t, b, a2.devToken(b, now), StatusOverQuota, sealFor(t, a2, "two-5"))
	deposit(t, b, a1.token(b, now), StatusOverQuota, sealFor(t, a1, "one-4"))

	// Acknowledged, they are gone from that device's queue only, once.
	if left, err := Ack(ctx, a2.h, b.h.ID(), seqsOf(e2)); err != nil || left != 0 {
		t.Fatalf("the second device's ack: %d left, %v", left, err)
	}
	if again, _ := drainAll(t, b, a2); len(again) != 0 {
		t.Fatalf("drained %q again after the ack", again)
	}
	if left, err := Ack(ctx, a1.h, b.h.ID(), seqsOf(e1)); err != nil || left != 1 {
		t.Fatalf("the first device's ack: %d left, %v; want 1 (one-3)", left, err)
	}
	if rest, _ := drainAll(t, b, a1); !equalStrings(rest, []string{"one-3"}) {
		t.Fatalf("the first device then drained %q", rest)
	}
	// Room again for the second device.
	deposit(t, b, a2.devToken(b, now), StatusOK, sealFor(t, a2, "two-5"))
	if st := b.srv.Stats(); st.Waiting != 2 {
		t.Fatalf("%d waiting; want 2", st.Waiting)
	}
}

// TestDevicePrekeys: each device's one-time prekeys are its own: uploaded
// from it, handed out by its device token (the first device's also by the
// account's token), once each, across a restart.
func TestDevicePrekeys(t *testing.T) {
	b := newBox(t, nil)
	ctx := context.Background()
	a1, a2 := twoDevices(t, b)
	x1, pq1 := a1.batch(t, 2)
	x2, pq2 := a2.batch(t, 3)
	if h := a1.upload(t, b, x1, pq1); h.Prekeys != 2 || h.PQPrekeys != 2 {
		t.Fatalf("the first device's upload: %+v", h)
	}
	if h := a2.upload(t, b, x2, pq2); h.Prekeys != 3 || h.PQPrekeys != 3 {
		t.Fatalf("the second device's upload: %+v; want its own 3 of each", h)
	}
	if gx, gpq := b.srv.Prekeys(a1.acct.Public().Bytes()); gx != 2 || gpq != 2 {
		t.Fatalf("the account holds %d, %d; want the first device's 2, 2", gx, gpq)
	}
	now := time.Now()
	fetch := func(tok []byte) (*e2e.OneTimePrekey, *e2e.OneTimePrekey) {
		t.Helper()
		x, pq, err := FetchPrekeys(ctx, newPeer(t, b), b.h.ID(), tok)
		if err != nil || x == nil || pq == nil {
			t.Fatalf("fetch: %v %v %v", x, pq, err)
		}
		return x, pq
	}
	x, pq := fetch(a2.devToken(b, now))
	if x.ID != x2[0].ID || pq.ID != pq2[0].ID {
		t.Fatalf("the second device's token got keys %d, %d; want its oldest, %d, %d", x.ID, pq.ID, x2[0].ID, pq2[0].ID)
	}
	bundle := a2.st.Bundle()
	bundle.OneTime, bundle.OneTimePQ = x, pq
	if err := bundle.Verify(a2.acct.Public().Bytes()); err != nil {
		t.Fatalf("the handed-out keys do not verify in the second device's bundle: %v", err)
	}
	if x, _ := fetch(a1.token(b, now)); x.ID != x1[0].ID {
		t.Fatalf("the account's token got key %d; want the first device's %d", x.ID, x1[0].ID)
	}
	if x, _ := fetch(a1.devToken(b, now)); x.ID != x1[1].ID {
		t.Fatalf("the first device's token got key %d; want its %d", x.ID, x1[1].ID)
	}
	b.close()
	b.open()
	if x, _ := fetch(a2.devToken(b, now)); x.ID != x2[1].ID {
		t.Fatalf("after a restart the second device's token got key %d; want %d (never twice)", x.ID, x2[1].ID)
	}
	_, held, err := Drain(ctx, a2.h, b.h.ID(), 1)
	if err != nil || held.Prekeys != 1 || held.PQPrekeys != 1 {
		t.Fatalf("the second device's drain says %+v, %v; want 1 of each left", held, err)
	}
	_, held, err = Drain(ctx, a1.h, b.h.ID(), 1)
	if err != nil || held.Prekeys != 0 || held.PQPrekeys != 0 {
		t.Fatalf("the first device's drain says %+v, %v; want none left", held, err)
	}
}

// TestDeviceHostile: a device token of a device never registered names no
// one; a device drains and acknowledges only its own queue, never its
// sibling's; device queues expire like the account's.
func TestDeviceHostile(t *testing.T) {
	clk := &clock{t: time.Now()}
	b := newBox(t, func(c *Config) { c.Now = clk.now })
	ctx := context.Background()
	a1, a2 := twoDevices(t, b)
	a3 := newDevice(t, b, a1)
	waiting := func() int { return b.srv.Stats().Waiting }

	t.Run("unregistered device", func(t *testing.T) {
		deposit(t, b, a3.devToken(b, clk.now()), StatusNotMember, sealFor(t, a3, "x"))
		if _, _, err := FetchPrekeys(ctx, newPeer(t, b), b.h.ID(), a3.devToken(b, clk.now())); refusal(err) != StatusNotMember {
			t.Fatalf("fetch by an unregistered device's token: %v", err)
		}
		// Another account's key with a registered device's id.
		stranger := newMember(t, b)
		tok := DeviceToken(stranger.acct.Public().Bytes(), []byte(b.h.ID()), a2.cert.DeviceID(), Day(clk.now()))
		deposit(t, b, tok, StatusNotMember, sealFor(t, a2, "x"))
		if _, _, err := Drain(ctx, a3.h, b.h.ID(), 10); refusal(err) != StatusNotMember {
			t.Fatalf("an unregistered device's drain: %v", err)
		}
		if waiting() != 0 {
			t.Fatalf("%d stored", waiting())
		}
	})
	t.Run("old device token", func(t *testing.T) {
		old := DeviceToken(a1.acct.Public().Bytes(), []byte(b.h.ID()), a2.cert.DeviceID(), Day(clk.now())-3)
		deposit(t, b, old, StatusExpired, sealFor(t, a2, "x"))
	})
	t.Run("sibling's queue", func(t *testing.T) {
		deposit(t, b, a1.devToken(b, clk.now()), StatusOK, sealFor(t, a1, "for one"))
		deposit(t, b, a2.devToken(b, clk.now()), StatusOK, sealFor(t, a2, "for two"))
		one, e1 := drainAll(t, b, a1)
		two, e2 := drainAll(t, b, a2)
		if !equalStrings(one, []string{"for one"}) || !equalStrings(two, []string{"for two"}) {
			t.Fatalf("drained %q and %q", one, two)
		}
		// Each acknowledges the other's sequence numbers: nothing goes.
		if left, err := Ack(ctx, a1.h, b.h.ID(), seqsOf(e2)); err != nil || left != 1 || waiting() != 2 {
			t.Fatalf("the first device acknowledged the second's: %d left, %v, %d waiting", left, err, waiting())
		}
		if left, err := Ack(ctx, a2.h, b.h.ID(), seqsOf(e1)); err != nil || left != 1 || waiting() != 2 {
			t.Fatalf("the second device acknowledged the first's: %d left, %v, %d waiting", left, err, waiting())
		}
		if again, _ := drainAll(t, b, a2); !equalStrings(again, two) {
			t.Fatalf("the second device's queue after its sibling's ack: %q", again)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		clk.add(DefaultExpiry + time.Hour)
		b.srv.sweep()
		if waiting() != 0 {
			t.Fatalf("%d waiting after the expiry", waiting())
		}
		err := b.db.View(func(tx *store.Tx) error {
			for _, dev := range [][]byte{nil, dev(a2)} {
				envs, err := tx.MailboxDeviceEnvelopes(a1.acct.Public().Bytes(), dev, 0, 10, 1<<20)
				if err != nil || len(envs) != 0 {
					t.Errorf("queue %x holds %d after the sweep (%v)", dev, len(envs), err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The member is still there, its devices too.
		clk.add(-DefaultExpiry - time.Hour)
		deposit(t, b, a2.devToken(b, clk.now()), StatusOK, sealFor(t, a2, "later"))
		if two, _ := drainAll(t, b, a2); !equalStrings(two, []string{"later"}) {
			t.Fatalf("after the sweep the second device drained %q", two)
		}
	})
}

func dev(m *member) []byte {
	d := m.cert.DeviceID()
	return d[:]
}

// TestLegacyTokenStillWorks: a member with one device deposits and drains
// by the account's token exactly as before devices had queues; and what an
// older mailbox stored (a member with peer ids only, envelopes and
// one-time prekeys under the account) drains and is handed out, untouched
// until then, before and after the device registers again; a second
// device registered later does not get the account's queue.
func TestLegacyTokenStillWorks(t *testing.T) {
	b := newBox(t, nil)
	ctx := context.Background()
	bob := newMember(t, b)
	acct := bob.acct.Public().Bytes()
	stale := newPeer(t, b) // a peer id Bob's device registered from once

	// What an older mailbox left: Bob registered from his one device, two
	// envelopes and one-time prekeys under his account.
	b.close()
	db, err := store.Open(ctx, store.Options{Dir: b.dir})
	if err != nil {
		t.Fatal(err)
	}
	old := [][]byte{sealFor(t, bob, "old-1"), sealFor(t, bob, "old-2")}
	x, pq := bob.batch(t, 2)
	err = db.Update(func(tx *store.Tx) error {
		m := store.MailboxMember{Account: acct, Peers: [][]byte{[]byte(bob.h.ID()), []byte(stale.ID())}, Registered: time.Now(), Next: 3}
		for i, e := range old {
			dg := digest(e)
			if err := tx.PutMailboxEnvelope(acct, store.MailboxEnvelope{Seq: uint64(i + 1), Expires: time.Now().Add(time.Hour), Digest: dg[:], Data: e}); err != nil {
				return err
			}
			m.Count++
			m.Bytes += int64(len(e))
		}
		for i := range x {
			if err := tx.PutMailboxPrekey(acct, store.MailboxPrekeyX25519, x[i].ID, e2e.MarshalOneTimePrekey(x[i])); err != nil {
				return err
			}
			if err := tx.PutMailboxPrekey(acct, store.MailboxPrekeyPQ, pq[i].ID, e2e.MarshalOneTimePrekey(pq[i])); err != nil {
				return err
			}
		}
		return tx.PutMailboxMember(m)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	b.open()

	// Before registering again, Bob's device drains what waits, as before.
	if texts, _ := drainAll(t, b, bob); !equalStrings(texts, []string{"old-1", "old-2"}) {
		t.Fatalf("the old entries drained as %q", texts)
	}
	now := time.Now()
	deposit(t, b, bob.token(b, now), StatusOK, sealFor(t, bob, "new-1"))
	if kx, _, err := FetchPrekeys(ctx, newPeer(t, b), b.h.ID(), bob.token(b, now)); err != nil || kx == nil || kx.ID != x[0].ID {
		t.Fatalf("fetch of an old one-time prekey by the account's token: %v %v", kx, err)
	}
	// Registered again (as every member does at start): the account's
	// queue is his device's, the old entries still there until acknowledged.
	if h := bob.registerHeld(t, b); h.Waiting != 3 || h.Prekeys != 1 || h.PQPrekeys != 1 || !h.PerDevice {
		t.Fatalf("registration says %+v; want 3 waiting, 1 of each prekey", h)
	}
	deposit(t, b, bob.devToken(b, now), StatusOK, sealFor(t, bob, "new-2"))
	texts, es := drainAll(t, b, bob)
	if !equalStrings(texts, []string{"old-1", "old-2", "new-1", "new-2"}) {
		t.Fatalf("after registering again Bob drained %q", texts)
	}
	err = b.db.View(func(tx *store.Tx) error {
		envs, err := tx.MailboxEnvelopes(acct, 0, 10, 1<<20)
		if err != nil || len(envs) != 4 || !bytes.Equal(envs[0].Data, old[0]) || envs[0].Seq != 1 || envs[2].Seq != 3 {
			t.Errorf("the account's queue holds %d envelopes (%v); want the old two untouched, then the new", len(envs), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The same box by the account's token and the device's: stored once.
	again := sealFor(t, bob, "new-3")
	deposit(t, b, bob.token(b, now), StatusOK, again)
	deposit(t, b, bob.devToken(b, now), StatusDuplicate, again)

	// A second device registered later gets its own queue, never the
	// account's; and a peer id left from before can no longer drain it.
	bob2 := newDevice(t, b, bob)
	if h := bob2.registerHeld(t, b); h.Waiting != 0 {
		t.Fatalf("the second device's registration says %+v; want nothing waiting for it", h)
	}
	if got, _, err := Drain(ctx, bob2.h, b.h.ID(), 10); err != nil || len(got) != 0 {
		t.Fatalf("the second device drained %d of the account's envelopes (%v)", len(got), err)
	}
	if _, _, err := Drain(ctx, stale, b.h.ID(), 10); refusal(err) != StatusNotMember {
		t.Fatalf("a peer registered before devices drained the first device's queue: %v", err)
	}
	if _, err := Ack(ctx, stale, b.h.ID(), seqsOf(es)); refusal(err) != StatusNotMember {
		t.Fatalf("a peer registered before devices acknowledged: %v", err)
	}
	if left, err := Ack(ctx, bob.h, b.h.ID(), seqsOf(es)); err != nil || left != 1 {
		t.Fatalf("ack: %d left, %v; want 1", left, err)
	}
	if texts, _ := drainAll(t, b, bob); !equalStrings(texts, []string{"new-3"}) {
		t.Fatalf("then Bob drained %q", texts)
	}
}

// TestDeviceToken: a device token is the documented HMAC (computed apart,
// with Python's hmac), differs from the account's token and rotates by
// day, mailbox and device.
func TestDeviceToken(t *testing.T) {
	acct := bytes.Repeat([]byte{7}, 32)
	dev := identity.DeviceID{1, 2, 3, 4, 5, 6, 7, 8}
	tok := DeviceToken(acct, []byte("mb1"), dev, 20000)
	if got := hex.EncodeToString(tok); got != "080f3ebb79b951d528c67dbf5392bcaa" {
		t.Fatalf("device token %s", got)
	}
	if got := hex.EncodeToString(Token(acct, []byte("mb1"), 20000)); got != "c8da22510254860249662d33e929bc18" {
		t.Fatalf("account token %s", got)
	}
	other := dev
	other[7]++
	for _, o := range [][]byte{DeviceToken(acct, []byte("mb1"), dev, 20001), DeviceToken(acct, []byte("mb2"), dev, 20000),
		DeviceToken(acct, []byte("mb1"), other, 20000), Token(acct, []byte("mb1"), 20000)} {
		if bytes.Equal(o, tok) {
			t.Fatal("device tokens do not rotate by day, mailbox and device")
		}
	}
}

// TestDeviceRegisterAgain: a device that registers from a new peer id
// keeps its queue and the old peer id drains nothing; past the most
// devices, the least recently registered one is dropped and its token
// names no one.
func TestDeviceRegisterAgain(t *testing.T) {
	b := newBox(t, nil)
	ctx := context.Background()
	a1, a2 := twoDevices(t, b)
	deposit(t, b, a2.devToken(b, time.Now()), StatusOK, sealFor(t, a2, "kept"))

	// a2's keys on a new host (a new libp2p key, the same X25519 key).
	moved := *a2
	moved.h = newPeer(t, b)
	cert, err := identity.IssueDeviceCert(a2.acct, []byte(moved.h.ID()), a2.dh.PublicKey().Bytes(), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	moved.cert = cert
	if h := moved.registerHeld(t, b); h.Waiting != 1 {
		t.Fatalf("the moved device's registration says %+v; want its 1 waiting", h)
	}
	if _, _, err := Drain(ctx, a2.h, b.h.ID(), 10); refusal(err) != StatusNotMember {
		t.Fatalf("the device's old peer id drained: %v", err)
	}
	if texts, _ := drainAll(t, b, &moved); !equalStrings(texts, []string{"kept"}) {
		t.Fatalf("the moved device drained %q", texts)
	}
	if st := b.srv.Stats(); st.Devices != 2 {
		t.Fatalf("%d devices; want 2", st.Devices)
	}

	// Seven more devices: a1, registered longest ago, is dropped.
	for range maxPeersPerMember - 1 {
		newDevice(t, b, a1).register(t, b)
	}
	if st := b.srv.Stats(); st.Devices != maxPeersPerMember {
		t.Fatalf("%d devices; want %d", st.Devices, maxPeersPerMember)
	}
	deposit(t, b, a1.devToken(b, time.Now()), StatusNotMember, sealFor(t, a1, "x"))
	if _, _, err := Drain(ctx, a1.h, b.h.ID(), 10); refusal(err) != StatusNotMember {
		t.Fatalf("a dropped device drained: %v", err)
	}
	deposit(t, b, moved.devToken(b, time.Now()), StatusOK, sealFor(t, a2, "still"))
}
