package mailbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"golang.org/x/time/rate"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/callsign/callsign/store"
)

// batch returns n fresh one-time prekeys of each kind of m's, issued.
func (m *member) batch(t testing.TB, n int) (x, pq []e2e.OneTimePrekey) {
	t.Helper()
	if err := m.st.GenerateOneTime(m.id, n, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	return m.st.IssueOneTime(n)
}

func (m *member) upload(t testing.TB, b *box, x, pq []e2e.OneTimePrekey) Held {
	t.Helper()
	h, err := UploadPrekeys(context.Background(), m.h, b.h.ID(), x, pq)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newPeer(t testing.TB, b *box) host.Host {
	h := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	h.Peerstore().AddAddrs(b.h.ID(), b.h.Addrs(), time.Hour)
	return h
}

// TestPrekeys: a member's one-time prekeys are handed out once each,
// oldest first, their hand-out survives a restart, the counts reach the
// member, and when none are left a fetch gets none (the sender then uses
// the record's signed prekeys).
func TestPrekeys(t *testing.T) {
	b := newBox(t, nil)
	bob := newMember(t, b)
	bob.register(t, b)
	ctx := context.Background()
	x, pq := bob.batch(t, 3)
	if h := bob.upload(t, b, x, pq); h.Prekeys != 3 || h.PQPrekeys != 3 {
		t.Fatalf("after the upload the mailbox holds %+v, want 3 of each", h)
	}
	alice, carol := newPeer(t, b), newPeer(t, b)
	tok := bob.token(b, time.Now())
	ax, apq, err := FetchPrekeys(ctx, alice, b.h.ID(), tok)
	if err != nil || ax == nil || apq == nil || ax.ID != x[0].ID || apq.ID != pq[0].ID {
		t.Fatalf("Alice's fetch: %+v %+v %v; want the oldest of each", ax, apq, err)
	}
	bundle := bob.st.Bundle()
	bundle.OneTime, bundle.OneTimePQ = ax, apq
	if err := bundle.Verify(bob.acct.Public().Bytes()); err != nil {
		t.Fatalf("a handed-out key does not verify in Bob's bundle: %v", err)
	}
	// Durable before the answer: a restart does not hand it out again.
	b.close()
	b.open()
	if gx, gpq := b.srv.Prekeys(bob.acct.Public().Bytes()); gx != 2 || gpq != 2 {
		t.Fatalf("after a restart the mailbox holds %d, %d; want 2, 2", gx, gpq)
	}
	cx, cpq, err := FetchPrekeys(ctx, carol, b.h.ID(), tok)
	if err != nil || cx == nil || cpq == nil || cx.ID == ax.ID || cpq.ID == apq.ID {
		t.Fatalf("Carol's fetch: %+v %+v %v; want other keys than Alice's", cx, cpq, err)
	}
	// The drain's answer says how many are left, so Bob knows to top up.
	_, held, err := Drain(ctx, bob.h, b.h.ID(), 1)
	if err != nil || held.Prekeys != 1 || held.PQPrekeys != 1 {
		t.Fatalf("drain says %+v, %v; want 1 of each left", held, err)
	}
	if _, _, err := FetchPrekeys(ctx, alice, b.h.ID(), tok); err != nil {
		t.Fatal(err)
	}
	nx, npq, err := FetchPrekeys(ctx, carol, b.h.ID(), tok)
	if err != nil || nx != nil || npq != nil {
		t.Fatalf("a fetch with none left: %+v %+v %v; want none and no error", nx, npq, err)
	}
	// A new batch replaces what is held, kind by kind.
	x2, pq2 := bob.batch(t, 5)
	if h := bob.upload(t, b, x2, nil); h.Prekeys != 5 || h.PQPrekeys != 0 {
		t.Fatalf("after an X25519-only upload: %+v", h)
	}
	if h := bob.upload(t, b, x2[:2], pq2); h.Prekeys != 2 || h.PQPrekeys != 5 {
		t.Fatalf("after a replacing upload: %+v", h)
	}
	if h, err := Register(ctx, bob.h, b.h.ID(), bob.acct, bob.cert, time.Now()); err != nil || h.Prekeys != 2 || h.PQPrekeys != 5 {
		t.Fatalf("registration says %+v, %v", h, err)
	}
}

// TestHostilePrekeys: uploads from a non-member, with bad signatures, of
// another account's keys, or too many are refused with nothing stored; a
// fetch flood is rate-limited per peer, a flood from many peers is
// rationed per member, and what is left keeps the fallback working.
func TestHostilePrekeys(t *testing.T) {
	clk := &clock{t: time.Now()}
	b := newBox(t, func(c *Config) {
		c.MaxPrekeys = 20
		c.FetchRate, c.FetchBurst = rate.Every(time.Minute), 3
		c.MemberRate, c.MemberBurst = rate.Every(time.Hour), 5
		c.Now = clk.now
	})
	ctx := context.Background()
	bob, mallory := newMember(t, b), newMember(t, b)
	bob.register(t, b)
	x, pq := bob.batch(t, 20)
	held := func() (int, int) { return b.srv.Prekeys(bob.acct.Public().Bytes()) }

	t.Run("non-member", func(t *testing.T) {
		if _, err := UploadPrekeys(ctx, mallory.h, b.h.ID(), x, pq); refusal(err) != StatusNotMember {
			t.Fatalf("upload from a non-member: %v", err)
		}
		if st := b.srv.Stats(); st.Prekeys != 0 {
			t.Fatalf("the mailbox holds %d prekeys", st.Prekeys)
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		bad := append([]e2e.OneTimePrekey(nil), x[:3]...)
		bad[1].Sig = append([]byte(nil), bad[1].Sig...)
		bad[1].Sig[5] ^= 1
		if _, err := UploadPrekeys(ctx, bob.h, b.h.ID(), bad, nil); refusal(err) != StatusForbidden {
			t.Fatalf("upload with a bad signature: %v", err)
		}
		// Mallory's own keys, signed by her account, uploaded by Bob's device.
		mx, _ := mallory.batch(t, 2)
		if _, err := UploadPrekeys(ctx, bob.h, b.h.ID(), x[:2], nil); err != nil {
			t.Fatal(err)
		}
		if _, err := UploadPrekeys(ctx, bob.h, b.h.ID(), mx, nil); refusal(err) != StatusForbidden {
			t.Fatalf("upload of another account's keys: %v", err)
		}
		if gx, gpq := held(); gx != 2 || gpq != 0 {
			t.Fatalf("a refused upload changed what is held: %d, %d; want 2, 0", gx, gpq)
		}
		// An X25519 key presented as an ML-KEM one.
		r, err := call(ctx, bob.h, b.h.ID(), request{op: opUpload, pqPrekeys: [][]byte{e2e.MarshalOneTimePrekey(x[3])}})
		if err != nil || r.status != StatusMalformed {
			t.Fatalf("a key of the wrong kind: %v %v", r.status, err)
		}
	})
	t.Run("oversize", func(t *testing.T) {
		more, morePQ := bob.batch(t, 21)
		if _, err := UploadPrekeys(ctx, bob.h, b.h.ID(), more, morePQ); refusal(err) != StatusTooLarge {
			t.Fatalf("upload over Config.MaxPrekeys: %v", err)
		}
		// Past the wire's cap: the request does not even parse.
		big := make([][]byte, maxPrekeysWire+1)
		for i := range big {
			big[i] = e2e.MarshalOneTimePrekey(x[0])
		}
		r, err := call(ctx, bob.h, b.h.ID(), request{op: opUpload, prekeys: big})
		if err != nil || r.status != StatusMalformed {
			t.Fatalf("an upload of %d keys: %v %v", len(big), r.status, err)
		}
		if gx, gpq := held(); gx != 2 || gpq != 0 {
			t.Fatalf("a refused upload changed what is held: %d, %d", gx, gpq)
		}
	})
	bob.upload(t, b, x, pq) // 20 of each
	tok := bob.token(b, time.Now())

	t.Run("fetch flood from one peer", func(t *testing.T) {
		got, limited := 0, false
		for range 10 {
			kx, _, err := FetchPrekeys(ctx, mallory.h, b.h.ID(), tok)
			if refusal(err) == StatusRateLimited {
				limited = true
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if kx != nil {
				got++
			}
		}
		if !limited || got != 3 {
			t.Fatalf("one peer's flood got %d keys (limited: %v); want the burst, 3, then refusals", got, limited)
		}
	})
	t.Run("fetch flood from many peers", func(t *testing.T) {
		got := 0
		for range 6 {
			kx, _, err := FetchPrekeys(ctx, newPeer(t, b), b.h.ID(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if kx != nil {
				got++
			}
		}
		// The member's ration (burst 5) is spent: 3 went to the first flood,
		// 2 here; the rest stay for later.
		if gx, _ := held(); got != 2 || gx != 15 {
			t.Fatalf("many peers got %d keys and %d are left; want 2 and 15", got, gx)
		}
		// A real sender now gets none, not an error: it falls back to the
		// signed prekeys. An hour later the ration has refilled.
		kx, kpq, err := FetchPrekeys(ctx, newPeer(t, b), b.h.ID(), tok)
		if err != nil || kx != nil || kpq != nil {
			t.Fatalf("a sender during the flood: %v %v %v; want none and no error", kx, kpq, err)
		}
		clk.add(time.Hour + time.Minute)
		if kx, _, err := FetchPrekeys(ctx, newPeer(t, b), b.h.ID(), bob.token(b, clk.now())); err != nil || kx == nil {
			t.Fatalf("a sender after the flood: %v %v", kx, err)
		}
	})
	t.Run("fetch by token", func(t *testing.T) {
		if _, _, err := FetchPrekeys(ctx, newPeer(t, b), b.h.ID(), mallory.token(b, clk.now())); refusal(err) != StatusNotMember {
			t.Fatalf("fetch for a non-member: %v", err)
		}
		old := Token(bob.acct.Public().Bytes(), []byte(b.h.ID()), Day(clk.now())-3)
		if _, _, err := FetchPrekeys(ctx, newPeer(t, b), b.h.ID(), old); refusal(err) != StatusExpired {
			t.Fatalf("fetch with an old token: %v", err)
		}
	})
	t.Run("nothing about the fetcher is stored", func(t *testing.T) {
		err := b.db.View(func(tx *store.Tx) error {
			c, err := tx.MailboxPrekeyCounts()
			if len(c) != 1 {
				return errors.New("prekeys stored for more than the one member")
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
