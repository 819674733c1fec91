package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// TestStoreVerify runs `callsign store verify` on a stopped node's data
// directory: clean, then with one message changed on disk (named, exit 1,
// in text and JSON), then while a node holds the directory (refused).
func TestStoreVerify(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	body := bytes.Repeat([]byte("meet me by the old mill at dawn. "), 128) // 4 KiB: in the value log
	for _, id := range []string{"m1", "m2"} {
		if err := db.Update(func(tx *store.Tx) error {
			return msg.In(tx).PutMessage(msg.Message{ID: id, Peer: "acct", Direction: msg.DirIn, Body: body, SentAt: now, At: now})
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	out, errs, code := runCLI(t, "--data", dir, "store", "verify")
	if code != exitOK || errs != "" || !strings.Contains(out, "checked ") || strings.Contains(out, "damaged") {
		t.Fatalf("clean store: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// Flip a bit in the middle of the second message's value.
	vlogs, _ := filepath.Glob(filepath.Join(dir, "store", "*.vlog"))
	var path string
	for _, p := range vlogs {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 8192 {
			path = p
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)*3/4] ^= 0x02
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code = runCLI(t, "--data", dir, "store", "verify")
	if code != exitError || !strings.Contains(out, `damaged: message "m2" in the conversation with "acct"`) ||
		!strings.Contains(errs, "callsign: the store has 1 damaged item(s)") || !strings.Contains(errs, "hint: ") || strings.Contains(out, "old mill") {
		t.Fatalf("damaged store: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	out, _, code = runCLI(t, "--data", dir, "store", "verify", "--json")
	var rep struct {
		Damage []struct{ Kind, Peer, ID, Problem string }
		Stats  struct{ Entries, Damaged int }
	}
	if code != exitError || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Damage) != 1 || rep.Damage[0].ID != "m2" ||
		rep.Damage[0].Kind != "message" || rep.Stats.Damaged != 1 || rep.Stats.Entries < 4 {
		t.Fatalf("--json: exit %d, %q", code, out)
	}

	// A running node holds the data directory's lock.
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	_, errs, code = runCLI(t, "--data", dir, "store", "verify")
	if code != exitError || !strings.Contains(errs, "already running") || !strings.Contains(errs, "hint: stop the other node first") {
		t.Fatalf("while a node runs: exit %d, stderr %q", code, errs)
	}
}
