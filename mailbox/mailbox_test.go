package mailbox

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"go.uber.org/goleak"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/callsign/callsign/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type box struct {
	t   testing.TB
	dir string
	cfg Config
	h   host.Host
	db  *store.DB
	srv *Server
}

// newBox starts a mailbox on a real host and a real store.
func newBox(t testing.TB, mod func(*Config)) *box {
	b := &box{t: t, dir: t.TempDir()}
	if mod != nil {
		mod(&b.cfg)
	}
	b.h = p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	b.open()
	t.Cleanup(b.close)
	return b
}

func (b *box) open() {
	db, err := store.Open(context.Background(), store.Options{Dir: b.dir})
	if err != nil {
		b.t.Fatal(err)
	}
	cfg := b.cfg
	cfg.Host, cfg.DB = b.h, db
	srv, err := New(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.t.Fatal(err)
	}
	b.db, b.srv = db, srv
}

func (b *box) close() {
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
	if b.db != nil {
		b.db.Close()
		b.db = nil
	}
}

// member is an account with one device (a host) and its e2e prekeys.
type member struct {
	h    host.Host
	acct *identity.AccountKey
	dh   *ecdh.PrivateKey
	cert identity.DeviceCert
	id   e2e.Identity
	st   *e2e.PrekeyState
}

// sealKey is what a sender seals to: the device's X25519 key and the PQ
// prekey of its published bundle.
func (m *member) sealKey(t testing.TB) SealKey {
	t.Helper()
	b := m.st.Bundle()
	ek, err := mlkem.NewEncapsulationKey768(b.PQPrekey)
	if err != nil {
		t.Fatal(err)
	}
	return SealKey{X25519: m.dh.PublicKey(), PQID: b.PQPrekeyID, PQ: ek}
}

func (m *member) open(data []byte) ([]byte, error) { return Open(m.dh, m.st, data) }

func newMember(t testing.TB, b *box) *member {
	t.Helper()
	h := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	h.Peerstore().AddAddrs(b.h.ID(), b.h.Addrs(), time.Hour)
	acct, err := identity.GenerateAccountKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	dh, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := identity.IssueDeviceCert(acct, []byte(h.ID()), dh.PublicKey().Bytes(), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	id := e2e.Identity{Signer: ed25519.NewKeyFromSeed(acct.Seed()), DH: dh}
	st, err := e2e.NewPrekeyState(id, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &member{h: h, acct: acct, dh: dh, cert: cert, id: id, st: st}
}

func (m *member) register(t testing.TB, b *box) {
	t.Helper()
	if _, err := Register(context.Background(), m.h, b.h.ID(), m.acct, m.cert, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func (m *member) token(b *box, at time.Time) []byte {
	return Token(m.acct.Public().Bytes(), []byte(b.h.ID()), Day(at))
}

func refusal(err error) Status {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Status
	}
	return 0
}

func sealFor(t testing.TB, m *member, text string) []byte {
	t.Helper()
	b, err := Seal(m.sealKey(t), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDepositDrainAck(t *testing.T) {
	b := newBox(t, nil)
	bob := newMember(t, b)
	bob.register(t, b)
	sender := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	sender.Peerstore().AddAddrs(b.h.ID(), b.h.Addrs(), time.Hour)
	ctx := context.Background()
	envs := [][]byte{sealFor(t, bob, "one"), sealFor(t, bob, "two"), sealFor(t, bob, "three")}
	res, err := Deposit(ctx, sender, b.h.ID(), bob.token(b, time.Now()), envs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r != StatusOK {
			t.Fatalf("envelope %d: %v", i, r)
		}
	}

	// Acknowledged deposits survive the mailbox's restart.
	b.close()
	b.open()
	if st := b.srv.Stats(); st.Members != 1 || st.Waiting != 3 {
		t.Fatalf("after a restart the mailbox holds %+v, want 1 member and 3 envelopes", st)
	}
	got, held, err := Drain(ctx, bob.h, b.h.ID(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if waiting := held.Waiting; len(got) != 2 || waiting != 1 {
		t.Fatalf("drained %d with %d waiting, want 2 and 1", len(got), waiting)
	}
	for i, e := range got {
		pt, err := bob.open(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"one", "two"}[i]; string(pt) != want {
			t.Fatalf("envelope %d is %q, want %q", i, pt, want)
		}
	}
	// Not acknowledged: drained again.
	again, _, err := Drain(ctx, bob.h, b.h.ID(), 10)
	if err != nil || len(again) != 3 {
		t.Fatalf("a second drain got %d envelopes (%v), want all 3 until acknowledged", len(again), err)
	}
	if left, err := Ack(ctx, bob.h, b.h.ID(), []uint64{got[0].Seq, got[1].Seq}); err != nil || left != 1 {
		t.Fatalf("ack: %d left, %v; want 1", left, err)
	}
	rest, held, err := Drain(ctx, bob.h, b.h.ID(), 10)
	if err != nil || len(rest) != 1 || held.Waiting != 0 {
		t.Fatalf("after the ack: %d envelopes, %d waiting, %v; want 1 and 0", len(rest), held.Waiting, err)
	}
	if pt, _ := bob.open(rest[0].Data); string(pt) != "three" {
		t.Fatalf("the last envelope is %q", pt)
	}
}

func TestHostile(t *testing.T) {
	clk := &clock{t: time.Now()}
	b := newBox(t, func(c *Config) {
		c.MaxMembers, c.MaxCount, c.MaxBytes, c.MaxEnvelope = 2, 4, 1<<20, 4096
		c.DepositRate, c.DepositBurst = 1, 30
		c.Now = clk.now
	})
	ctx := context.Background()
	bob, carol := newMember(t, b), newMember(t, b)
	bob.register(t, b)
	stranger := newMember(t, b)
	tok := bob.token(b, time.Now())
	waiting := func() int { return b.srv.Stats().Waiting }

	t.Run("not a member", func(t *testing.T) {
		_, err := Deposit(ctx, stranger.h, b.h.ID(), stranger.token(b, time.Now()), [][]byte{{1}})
		if refusal(err) != StatusNotMember {
			t.Fatalf("deposit for a non-member: %v", err)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		_, err := Deposit(ctx, stranger.h, b.h.ID(), Token(bob.acct.Public().Bytes(), []byte(b.h.ID()), Day(time.Now())-3), [][]byte{{1}})
		if refusal(err) != StatusExpired {
			t.Fatalf("deposit with a token of three days ago: %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		res, err := Deposit(ctx, stranger.h, b.h.ID(), tok, [][]byte{make([]byte, 4097)})
		if err != nil || res[0] != StatusTooLarge || waiting() != 0 {
			t.Fatalf("oversized envelope: %v %v, %d waiting", res, err, waiting())
		}
	})
	t.Run("replayed deposit", func(t *testing.T) {
		env := sealFor(t, bob, "once")
		for i, want := range []Status{StatusOK, StatusDuplicate} {
			res, err := Deposit(ctx, stranger.h, b.h.ID(), tok, [][]byte{env})
			if err != nil || res[0] != want {
				t.Fatalf("deposit %d: %v %v, want %v", i, res, err, want)
			}
		}
		if waiting() != 1 {
			t.Fatalf("a replayed deposit left %d envelopes, want 1", waiting())
		}
	})
	t.Run("over quota", func(t *testing.T) {
		envs := [][]byte{sealFor(t, bob, "a"), sealFor(t, bob, "b"), sealFor(t, bob, "c"), sealFor(t, bob, "d")}
		res, err := Deposit(ctx, stranger.h, b.h.ID(), tok, envs)
		if refusal(err) != 0 || len(res) != 4 || res[2] != StatusOK || res[3] != StatusOverQuota || waiting() != 4 {
			t.Fatalf("over quota: %v %v, %d waiting; want the 4th refused", res, err, waiting())
		}
	})
	t.Run("drain by anyone else", func(t *testing.T) {
		if _, _, err := Drain(ctx, stranger.h, b.h.ID(), 10); refusal(err) != StatusNotMember {
			t.Fatalf("a stranger's drain: %v", err)
		}
		if _, err := Ack(ctx, stranger.h, b.h.ID(), []uint64{1, 2, 3}); refusal(err) != StatusNotMember {
			t.Fatalf("a stranger's ack: %v", err)
		}
		carol.register(t, b)
		got, _, err := Drain(ctx, carol.h, b.h.ID(), 10)
		if err != nil || len(got) != 0 {
			t.Fatalf("another member drained %d of Bob's envelopes (%v)", len(got), err)
		}
		if _, err := Ack(ctx, carol.h, b.h.ID(), []uint64{1, 2, 3}); err != nil || waiting() != 4 {
			t.Fatalf("another member's ack: %v, %d waiting; want nothing of Bob's deleted", err, waiting())
		}
	})
	t.Run("forged registration", func(t *testing.T) {
		ctx := context.Background()
		// Bob's certificate, presented from another device.
		if _, err := Register(ctx, stranger.h, b.h.ID(), bob.acct, bob.cert, time.Now()); refusal(err) != StatusForbidden {
			t.Fatalf("registration with another device's certificate: %v", err)
		}
		// A certificate signed by another account than the one registering.
		if _, err := Register(ctx, stranger.h, b.h.ID(), bob.acct, stranger.cert, time.Now()); refusal(err) != StatusForbidden {
			t.Fatalf("registration with another account's certificate: %v", err)
		}
		// A signature for another mailbox.
		certB := stranger.cert.Marshal()
		acct := stranger.acct.Public().Bytes()
		unix := uint64(time.Now().Unix())
		req := request{op: opRegister, account: acct, cert: certB, time: unix,
			signature: stranger.acct.Sign(LabelRegister, RegisterMessage([]byte(stranger.h.ID()), acct, certB, unix))}
		r, err := call(ctx, stranger.h, b.h.ID(), req)
		if err != nil || r.status != StatusForbidden {
			t.Fatalf("registration signed for another mailbox: %v %v", r.status, err)
		}
		// An old registration replayed.
		if _, err := Register(ctx, stranger.h, b.h.ID(), stranger.acct, stranger.cert, time.Now().Add(-time.Hour)); refusal(err) != StatusExpired {
			t.Fatalf("stale registration: %v", err)
		}
		// The mailbox is full (two members).
		if _, err := Register(ctx, stranger.h, b.h.ID(), stranger.acct, stranger.cert, time.Now()); refusal(err) != StatusFull {
			t.Fatalf("registration beyond MaxMembers: %v", err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		for _, raw := range [][]byte{{0xff}, {0x08, 0x09}, {0x08, 0x02}, (&request{op: opDrain, max: 1, token: make([]byte, 16)}).marshal()} {
			resp, err := p2p.Request(ctx, stranger.h, b.h.ID(), Protocol, false, raw, maxResponse)
			if err != nil {
				t.Fatal(err)
			}
			r, err := unmarshalResponse(resp)
			if err != nil || r.status != StatusMalformed {
				t.Fatalf("request %x: status %v, %v; want malformed", raw, r.status, err)
			}
		}
		if _, _, err := Drain(ctx, bob.h, b.h.ID(), 1); err != nil {
			t.Fatalf("the mailbox stopped serving: %v", err)
		}
	})
	t.Run("flood", func(t *testing.T) {
		var limited bool
		for i := 0; i < 10 && !limited; i++ {
			_, err := Deposit(ctx, stranger.h, b.h.ID(), tok, [][]byte{{1}, {2}, {3}, {4}, {5}})
			limited = refusal(err) == StatusRateLimited
		}
		if !limited {
			t.Fatal("a flood of deposits from one peer was never rate-limited")
		}
		// Another peer still gets through.
		if _, err := Deposit(ctx, carol.h, b.h.ID(), tok, [][]byte{{9}}); refusal(err) == StatusRateLimited {
			t.Fatalf("another peer is limited by the flooder: %v", err)
		}
	})
	t.Run("expired envelopes", func(t *testing.T) {
		if waiting() == 0 {
			t.Fatal("nothing waits")
		}
		clk.add(DefaultExpiry + time.Hour)
		got, _, err := Drain(ctx, bob.h, b.h.ID(), 10)
		if err != nil || len(got) != 0 || waiting() != 0 {
			t.Fatalf("after the expiry: drained %d (%v), %d waiting; want none", len(got), err, waiting())
		}
	})
}

// TestStoresNoSender checks, through the store's own API and in the files,
// that the mailbox keeps nothing about who deposited: no sender account,
// no sender peer id, no plaintext.
func TestStoresNoSender(t *testing.T) {
	b := newBox(t, nil)
	bob := newMember(t, b)
	bob.register(t, b)
	alice := newMember(t, b)
	// What msg puts in the box: a frame naming the sender.
	secret := "a secret only Bob may read"
	frame := append(append(append([]byte(secret), alice.acct.Public().Bytes()...), alice.cert.Marshal()...), []byte(alice.h.ID())...)
	env, err := Seal(bob.sealKey(t), frame)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Deposit(context.Background(), alice.h, b.h.ID(), bob.token(b, time.Now()), [][]byte{env}); err != nil {
		t.Fatal(err)
	}
	needles := map[string][]byte{
		"plaintext":            []byte(secret),
		"sender account":       alice.acct.Public().Bytes(),
		"sender account id":    []byte(alice.acct.Public().ID()),
		"sender peer id":       []byte(alice.h.ID()),
		"sender peer id text":  []byte(alice.h.ID().String()),
		"sender's certificate": alice.cert.Marshal(),
	}
	var values [][]byte
	err = b.db.View(func(tx *store.Tx) error {
		ms, err := tx.MailboxMembers()
		for _, m := range ms {
			values = append(values, m.Account)
			values = append(values, m.Peers...)
			envs, err := tx.MailboxEnvelopes(m.Account, 0, 100, 1<<20)
			if err != nil {
				return err
			}
			for _, e := range envs {
				values = append(values, e.Data, e.Digest)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(values) < 4 {
		t.Fatalf("read %d values from the mailbox's store", len(values))
	}
	for what, n := range needles {
		for _, v := range values {
			if bytes.Contains(v, n) {
				t.Errorf("the mailbox stores the %s", what)
			}
		}
	}
	b.close()
	for what, n := range needles {
		if f := grepDir(t, b.dir, n); f != "" {
			t.Errorf("the %s is in %s", what, f)
		}
	}
	b.open()
}

func TestToken(t *testing.T) {
	acct := bytes.Repeat([]byte{7}, 32)
	t1 := Token(acct, []byte("mb1"), 100)
	if bytes.Equal(t1, Token(acct, []byte("mb1"), 101)) || bytes.Equal(t1, Token(acct, []byte("mb2"), 100)) || len(t1) != TokenSize {
		t.Fatal("tokens do not rotate by day and mailbox")
	}
}

// grepDir returns the first file under dir that contains needle.
func grepDir(t testing.TB, dir string, needle []byte) string {
	t.Helper()
	found := ""
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || found != "" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil && bytes.Contains(data, needle) {
			found = p
		}
		return nil
	})
	return found
}
