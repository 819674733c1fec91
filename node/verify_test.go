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

	"github.com/callsign/callsign/msg"
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
	if err := db.Update(func(tx *store.Tx) error {
		return msg.In(tx).PutMessage(msg.Message{ID: "m1", Peer: "acct", Direction: msg.DirIn, Body: body, SentAt: now, At: now})
	}); err != nil {
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
