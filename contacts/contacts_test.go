package contacts

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// badger's process-wide worker, started once per process.
		goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
	)
}

func newBook(t *testing.T) (*Book, *store.DB) {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return New(db, msg.AcceptRequest), db
}

func newKey(t *testing.T) identity.AccountPub {
	t.Helper()
	k, err := identity.GenerateAccountKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// TestTrustOnFirstUse: the key a handle resolved to first is pinned; when
// the handle later resolves to another key the contact is marked (once),
// messages from it wait as requests and its calls don't ring, until the
// user verifies the new key, which re-pins the contact to it.
func TestTrustOnFirstUse(t *testing.T) {
	b, _ := newBook(t)
	first, second := newKey(t), newKey(t)
	c, err := b.Pin(first, "alice", "")
	if err != nil || c.Petname != "alice" || c.Account != first.ID().String() {
		t.Fatalf("pin: %+v %v", c, err)
	}
	if tr, err := b.Observe("alice", first); err != nil || !tr.Pinned || tr.Changed || tr.Marked != nil {
		t.Fatalf("same key: %+v %v", tr, err)
	}
	if a, _ := b.MessageFrom(first.ID()); a != Deliver {
		t.Fatalf("a contact's message: %v", a)
	}

	tr, err := b.Observe("alice", second)
	if err != nil || tr.Pinned || !tr.Changed || tr.Marked == nil || tr.Marked.Now != second.ID() || tr.Marked.Contact.Petname != "alice" {
		t.Fatalf("new key: %+v %v", tr, err)
	}
	if tr, _ := b.Observe("alice", second); !tr.Changed || tr.Marked != nil {
		t.Fatalf("the same change again is marked again: %+v", tr)
	}
	c, _ = b.Find("alice")
	if !c.KeyChanged || c.Account != first.ID().String() {
		t.Fatalf("after the change: %+v", c)
	}
	if a, _ := b.MessageFrom(first.ID()); a != Request {
		t.Fatalf("a changed contact's message: %v, want held as a request", a)
	}
	if d := b.CallFrom(first.ID(), CallRules{Policy: CallsEveryone}); d.Allow {
		t.Fatalf("a changed contact rings: %+v", d)
	}
	// A self-certifying handle can't change key; an account id has none.
	if tr, _ := b.Observe(identity.SelfCertHandle("alice", second), second); tr.Changed {
		t.Fatal("a self-certifying handle changed key")
	}

	key, err := Key(c)
	if err != nil || !key.Equal(second) {
		t.Fatalf("the key to compare: %v %v, want the new one", key.ID(), err)
	}
	if _, err := b.Verify("alice", first); !errors.Is(err, ErrKeyChanged) {
		t.Fatalf("verify against the old key: %v", err)
	}
	c, err = b.Verify("alice", second)
	if err != nil || c.KeyChanged || !c.Verified || c.Account != second.ID().String() || c.Petname != "alice" {
		t.Fatalf("verified: %+v %v", c, err)
	}
	if _, err := b.Get(first.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the old account is still a contact: %v", err)
	}
	if tr, _ := b.Observe("alice", second); !tr.Pinned || tr.Changed {
		t.Fatalf("after verifying: %+v", tr)
	}
}

// TestFind finds a contact by petname, account id and handle, as typed or
// normalised; removes it; and refuses bad or taken petnames.
func TestFind(t *testing.T) {
	b, _ := newBook(t)
	k := newKey(t)
	if _, err := b.Pin(k, "carol", "Caro"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Caro", k.ID().String(), "carol", "CAROL"} {
		if c, err := b.Find(name); err != nil || c.Account != k.ID().String() {
			t.Errorf("find %q: %+v %v", name, c, err)
		}
	}
	if _, err := b.Find("dave"); !errors.Is(err, ErrNotFound) || err.Error() != `no contact "dave"` {
		t.Errorf("find an unknown name: %v", err)
	}
	for _, p := range []string{" bad", "", "tab\there", string(make([]byte, 65))} {
		if _, err := b.Pin(newKey(t), "", p); p != "" && !errors.Is(err, ErrInvalidPetname) {
			t.Errorf("petname %q: %v", p, err)
		}
	}
	if _, err := b.Pin(newKey(t), "carol2", "Caro"); !errors.Is(err, ErrPetnameTaken) {
		t.Errorf("a taken petname: %v", err)
	}
	if err := b.Remove("Caro"); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove("Caro"); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove twice: %v", err)
	}
}

// TestAcceptAndFlags: accepting a stranger pins it and turns its request
// into a conversation; blocking drops its messages and its calls; the
// call policies decide the rest.
func TestAcceptAndFlags(t *testing.T) {
	b, db := newBook(t)
	k := newKey(t)
	id := k.ID()
	if a, _ := b.MessageFrom(id); a != Request {
		t.Fatalf("a stranger's message: %v", a)
	}
	if d := b.CallFrom(id, CallRules{}); d.Allow || !d.RelayOnly {
		t.Fatalf("a stranger's call under the default policy: %+v", d)
	}
	if d := b.CallFrom(id, CallRules{Policy: CallsEveryone}); !d.Allow || !d.RelayOnly {
		t.Fatalf("a stranger's call under everyone: %+v", d)
	}
	if d := b.CallFrom(id, CallRules{Policy: CallsNobody, Rule: "allow"}); !d.Allow {
		t.Fatalf("an allowed stranger's call: %+v", d)
	}
	err := db.Update(func(tx *store.Tx) error {
		return msg.In(tx).PutConversation(msg.Conversation{Peer: id.String(), LastAt: time.Now(), Request: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Accept(id, nil, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("accept without a key: %v", err)
	}
	c, err := b.Accept(id, &k, []string{identity.SelfCertHandle("erin", k), "erin"})
	if err != nil || !c.Accepted || c.Handle != "erin" || c.Petname != "erin" {
		t.Fatalf("accept: %+v %v", c, err)
	}
	var conv msg.Conversation
	err = db.View(func(tx *store.Tx) (err error) { conv, err = msg.In(tx).Conversation(id.String()); return err })
	if err != nil || conv.Request {
		t.Fatalf("the request after accepting: %+v %v", conv, err)
	}
	if a, _ := b.MessageFrom(id); a != Deliver {
		t.Fatalf("an accepted contact's message: %v", a)
	}
	if d := b.CallFrom(id, CallRules{}); !d.Allow || d.RelayOnly {
		t.Fatalf("a contact's call: %+v", d)
	}
	for _, p := range []string{CallsFollowing, CallsVerified, CallsNobody} {
		if d := b.CallFrom(id, CallRules{Policy: p}); d.Allow {
			t.Errorf("a contact who is not followed or verified rings under %s", p)
		}
	}
	if _, err := b.SetFlag(id, nil, "erin", Following, true); err != nil {
		t.Fatal(err)
	}
	if d := b.CallFrom(id, CallRules{Policy: CallsFollowing}); !d.Allow {
		t.Errorf("a followed contact's call under following: %+v", d)
	}
	if _, err := b.SetFlag(id, nil, "erin", Blocked, true); err != nil {
		t.Fatal(err)
	}
	if a, _ := b.MessageFrom(id); a != Drop {
		t.Errorf("a blocked contact's message: %v", a)
	}
	if d := b.CallFrom(id, CallRules{Policy: CallsEveryone}); d.Allow {
		t.Errorf("a blocked contact rings: %+v", d)
	}
	// Accepting unblocks.
	if c, err := b.Accept(id, nil, nil); err != nil || c.Blocked {
		t.Errorf("accept a blocked contact: %+v %v", c, err)
	}

	// Blocking a stranger makes it a contact; unfollowing one is an error.
	other := newKey(t)
	if _, err := b.SetFlag(other.ID(), &other, "frank", Following, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("unfollow a stranger: %v", err)
	}
	if c, err := b.SetFlag(other.ID(), &other, other.ID().String(), Blocked, true); err != nil || !c.Blocked || c.Petname != other.ID().String() {
		t.Errorf("block a stranger: %+v %v", c, err)
	}
}
