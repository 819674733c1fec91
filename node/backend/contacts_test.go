package backend

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/contacts"
	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// directory is an in-memory Directory: handles to owners, counting lookups.
type directory struct {
	mu       sync.Mutex
	owners   map[string]identity.AccountPub
	resolves int
}

func (d *directory) set(name string, owner identity.AccountPub) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.owners[name] = owner
}

func (d *directory) lookups() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.resolves
}

func (d *directory) Resolve(ctx context.Context, name string) (*dht.Resolution, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.resolves++
	owner, ok := d.owners[name]
	if !ok {
		return &dht.Resolution{Query: name, Name: name, Status: dht.StatusNotFound}, nil
	}
	return &dht.Resolution{Query: name, Name: name, Status: dht.StatusOK, Owner: owner,
		Identity: &dht.IdentityRecord{Account: owner, Handles: []string{name}}}, nil
}

func (d *directory) ResolveIdentity(ctx context.Context, id identity.AccountID) (*dht.IdentityRecord, error) {
	return nil, dht.ErrNotFound
}

// messenger is an in-memory Messenger that keeps what it was given.
type messenger struct {
	mu   sync.Mutex
	sent []identity.AccountID
}

func (m *messenger) Send(ctx context.Context, to identity.AccountID, text []byte) (msg.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, to)
	return msg.Message{ID: "m" + string(rune('0'+len(m.sent))), Peer: to.String(), Direction: msg.DirOut, Body: text, SentAt: time.Now()}, nil
}

func (m *messenger) SendFile(ctx context.Context, to identity.AccountID, text, file []byte) (msg.Message, error) {
	out, err := m.Send(ctx, to, text)
	out.File = file
	return out, err
}

func (m *messenger) SendMessage(ctx context.Context, to identity.AccountID, out msg.Outgoing) (msg.Message, error) {
	res, err := m.Send(ctx, to, out.Text)
	res.ReplyTo = out.ReplyTo
	return res, err
}

func (m *messenger) SetTimer(ctx context.Context, to identity.AccountID, d time.Duration) (msg.Message, error) {
	return msg.Message{}, errors.New("no timers here")
}

func (m *messenger) SendAction(ctx context.Context, to identity.AccountID, a msg.Action, text []byte) (msg.Message, error) {
	return msg.Message{}, errors.New("no actions here")
}

func (m *messenger) MarkRead(ctx context.Context, from identity.AccountID, ids []string) error {
	return nil
}

func (m *messenger) last() identity.AccountID {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sent[len(m.sent)-1]
}

func newKeyPub(t *testing.T) identity.AccountPub {
	t.Helper()
	k, err := identity.GenerateAccountKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// TestFirstMessageAndKeyChange: a first message to a handle resolves it
// once and pins its owner, whom later messages reach without a lookup.
// When the handle then resolves to another key, whois warns, the event
// stream says so once, and messages are held back until the user confirms
// the new safety number, which re-pins the contact.
func TestFirstMessageAndKeyChange(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	first, second := newKeyPub(t), newKeyPub(t)
	dir := &directory{owners: map[string]identity.AccountPub{"alice": first}}
	msgs := &messenger{}
	s := New(Config{Self: newKeyPub(t), DB: db, Contacts: contacts.New(db, msg.AcceptRequest), Directory: dir, Messages: msgs})
	defer s.Close()
	events, cancel := s.Subscribe(ctx)
	defer cancel()

	m, err := s.Send(ctx, "alice", "hi")
	if err != nil || m.PeerName != "alice" || msgs.last() != first.ID() {
		t.Fatalf("first message: %+v %v", m, err)
	}
	if n := dir.lookups(); n != 1 {
		t.Fatalf("a first message looked the name up %d times, want once", n)
	}
	if _, err := s.Send(ctx, "alice", "again"); err != nil || dir.lookups() != 1 {
		t.Fatalf("a message to a contact: %v, %d lookups", err, dir.lookups())
	}
	if cs, _ := s.Contacts(ctx); len(cs) != 1 || cs[0].Account != first.ID().String() || cs[0].Handle != "alice" {
		t.Fatalf("contacts after a first message: %+v", cs)
	}

	dir.set("alice", second)
	w, err := s.Whois(ctx, "alice")
	if err != nil || !w.KeyChanged || w.Pinned || w.Account != second.ID().String() || w.Warning == "" {
		t.Fatalf("whois after a key change: %+v %v", w, err)
	}
	if _, err := s.Whois(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	var changes []api.KeyChange
	for len(events) > 0 {
		ev := <-events
		if ev.Type == api.EventKeyChange {
			var kc api.KeyChange
			if err := json.Unmarshal(ev.Data, &kc); err != nil {
				t.Fatal(err)
			}
			changes = append(changes, kc)
		}
	}
	if len(changes) != 1 || changes[0].Pinned != first.ID().String() || changes[0].Now != second.ID().String() || changes[0].Contact != "alice" {
		t.Fatalf("key change events: %+v, want one", changes)
	}
	_, err = s.Send(ctx, "alice", "still you?")
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.CodeConflict || !strings.Contains(e.Hint, "callsign verify alice") {
		t.Fatalf("a message after a key change: %#v", err)
	}
	if msgs.last() != first.ID() {
		t.Fatalf("a held-back message was sent to %v", msgs.last())
	}

	sf, err := s.Safety(ctx, "alice", false)
	if err != nil || !sf.KeyChanged || sf.Account != second.ID().String() {
		t.Fatalf("safety number after a key change: %+v %v", sf, err)
	}
	if sf, err = s.Safety(ctx, "alice", true); err != nil || sf.KeyChanged || !sf.Verified {
		t.Fatalf("confirm: %+v %v", sf, err)
	}
	if _, err := s.Send(ctx, "alice", "hi again"); err != nil || msgs.last() != second.ID() {
		t.Fatalf("a message after confirming: %v, sent to %v", err, msgs.last())
	}

	// A name nobody holds.
	if _, err := s.Send(ctx, "bob", "hi"); !api.IsCode(err, api.CodeNotFound) {
		t.Fatalf("to nobody: %v", err)
	}
}
