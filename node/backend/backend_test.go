package backend

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/contacts"
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

// newBackend is a Service over a store alone: what the API shows of
// conversations, messages and contacts without a network.
func newBackend(t *testing.T, db *store.DB) *Service {
	t.Helper()
	k, err := identity.GenerateAccountKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Self: k.Public(), DB: db, Contacts: contacts.New(db, msg.AcceptRequest)})
	t.Cleanup(func() { s.Close() })
	return s
}

// TestDamagedMessage: a conversation whose newest message is damaged is
// still listed, without a preview, instead of the whole list failing; and
// opening it is an internal error that says what to do, never the text.
func TestDamagedMessage(t *testing.T) {
	k, err := identity.GenerateAccountKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	peer := k.Public().ID().String()
	dir := t.TempDir()
	db, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := db.Update(func(tx *store.Tx) error { return msg.In(tx).PutConversation(msg.Conversation{Peer: peer, LastAt: now}) }); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("the vellum is in the boathouse. "), 128) // 4 KiB: in the value log
	if err := db.Update(func(tx *store.Tx) error {
		return msg.In(tx).PutMessage(msg.Message{ID: "m1", Peer: peer, Direction: msg.DirIn, Body: body, SentAt: now, At: now})
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	vlogs, _ := filepath.Glob(filepath.Join(dir, "store", "*.vlog"))
	for _, p := range vlogs {
		if b, err := os.ReadFile(p); err == nil && len(b) > 4096 {
			b[len(b)/2] ^= 1
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	db, err = store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *store.Tx) error { _, err := msg.In(tx).Message(peer, "m1"); return err }); !store.IsCorrupt(err) {
		t.Fatalf("damaged message reads as %v", err)
	}
	s := newBackend(t, db)
	cs, err := s.Conversations(context.Background())
	if err != nil || len(cs) != 1 || cs[0].Peer != peer || cs[0].Last != nil {
		t.Fatalf("Conversations with a damaged newest message: %+v, %v", cs, err)
	}
	_, err = s.Messages(context.Background(), peer, api.PageRequest{})
	e, ok := err.(*api.Error)
	if !ok || e.Code != api.CodeInternal || !strings.Contains(e.Hint, "callsign store verify") || strings.Contains(e.Message, "vellum") {
		t.Fatalf("opening a damaged conversation: %#v", err)
	}
}
