package node

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/store"
)

// TestVerifyStore checks a stopped node's store: a clean one has no
// damage; one whose message was changed on disk has that message named;
// and the check refuses to run while a node holds the data directory.
func TestVerifyStore(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	body := bytes.Repeat([]byte("the vellum is in the boathouse. "), 128) // 4 KiB: in the value log
	if err := db.PutMessage(store.Message{ID: "m1", Peer: "acct", Direction: store.DirIn, Body: body, SentAt: now, At: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	var damage []StoreDamage
	st, err := VerifyStore(context.Background(), dir, nil, func(d StoreDamage) { damage = append(damage, d) })
	if err != nil || st.Damaged != 0 || len(damage) != 0 || st.Entries == 0 {
		t.Fatalf("clean store: %+v, %v, %v", st, damage, err)
	}

	// Flip a bit in the middle of the message's value in the value log.
	vlogs, _ := filepath.Glob(filepath.Join(dir, "store", "*.vlog"))
	var path string
	for _, p := range vlogs {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 4096 {
			path = p
		}
	}
	if path == "" {
		t.Fatalf("no value log holds the message: %v", vlogs)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	damage = nil
	st, err = VerifyStore(context.Background(), dir, nil, func(d StoreDamage) { damage = append(damage, d) })
	if err != nil || st.Damaged != 1 || len(damage) != 1 || damage[0].Kind != store.KindMessage || damage[0].ID != "m1" || damage[0].Peer != "acct" {
		t.Fatalf("damaged store: %+v, %v, %v; want message m1 named", st, damage, err)
	}
	if strings.Contains(damage[0].String(), "vellum") {
		t.Fatalf("damage report shows the message text: %s", damage[0])
	}

	// Reading it through the API is an error that says what to do, not text.
	err = apiStoreError(func() error {
		db, err := store.Open(context.Background(), store.Options{Dir: dir})
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.Message("acct", "m1")
		return err
	}())
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeInternal || !strings.Contains(ae.Hint, "callsign store verify") || strings.Contains(ae.Message, "vellum") {
		t.Fatalf("API error for a damaged message: %#v", err)
	}

	// A running node holds the lock.
	n, err := New(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.takeLock(); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := VerifyStore(context.Background(), dir, nil, nil); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("VerifyStore while the node runs: %v, want ErrAlreadyRunning", err)
	}
}

// TestConversationsWithDamagedPreview: a conversation whose newest
// message is damaged is still listed, without a preview, instead of the
// whole list failing.
func TestConversationsWithDamagedPreview(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := db.PutConversation(store.Conversation{Peer: "acct", LastAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutMessage(store.Message{ID: "m1", Peer: "acct", Direction: store.DirIn, Body: bytes.Repeat([]byte("x"), 4096), SentAt: now, At: now}); err != nil {
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
	if _, err := db.Message("acct", "m1"); !store.IsCorrupt(err) {
		t.Fatalf("damaged message reads as %v", err)
	}
	n := &Node{db: db}
	cs, err := n.Conversations(context.Background())
	if err != nil || len(cs) != 1 || cs[0].Peer != "acct" || cs[0].Last != nil {
		t.Fatalf("Conversations with a damaged newest message: %+v, %v", cs, err)
	}
}
