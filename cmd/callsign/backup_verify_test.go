package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// TestBackupVerify: `backup verify` opens a backup without a node and
// shows what a restore would bring back; a wrong passphrase, a damaged
// file, no passphrase at all and a missing file are each one clear error
// with a hint.
func TestBackupVerify(t *testing.T) {
	ak, err := identity.GenerateAccountKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *store.Tx) error {
		for _, err := range []error{
			tx.PutSecrets(store.Secrets{AccountSeed: ak.Seed()}),
			tx.PutClaim(store.HandleClaim{Name: "alice", Nonce: 7, Seq: 2, ClaimedAt: time.Now()}),
			tx.PutContact(store.Contact{Account: "csa1bob", PubKey: bytes.Repeat([]byte{2}, 32), Petname: "bob", AddedAt: time.Now()}),
			tx.AddBootstrap("/ip4/192.0.2.1/tcp/4141/p2p/12D3KooWtest"),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const pass = "correct horse battery staple"
	var buf bytes.Buffer
	bw, err := devices.NewBackupWriter(&buf, []byte(pass), devices.BackupParams{Time: 1, MemoryKiB: 64 << 10, Lanes: 1, ChunkSize: 4 << 10}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx *store.Tx) error { return tx.ExportPortable(bw.Add) }); err != nil {
		t.Fatal(err)
	}
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "alice.backup")
	damaged := filepath.Join(dir, "damaged.backup")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	b := bytes.Clone(buf.Bytes())
	b[len(b)-3] ^= 1
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Setenv(backupPassEnv, pass)
	out, errs, code := runCLI(t, "backup", "verify", file, "--json")
	var got backupContents
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || got.Account != ak.Public().ID() ||
		len(got.Handles) != 1 || got.Handles[0] != "alice" || got.Contacts != 1 || got.CommunityNodes != 1 || got.Items != 4 {
		t.Fatalf("backup verify --json: exit %d\n%s%s", code, out, errs)
	}
	if out, _, code := runCLI(t, "backup", "verify", file); code != exitOK || !strings.Contains(out, "opens and is whole") || !strings.Contains(out, "@alice") {
		t.Errorf("backup verify: exit %d\n%s", code, out)
	}
	for _, tc := range []struct{ pass, file, want string }{
		{"correct horse battery stapler", file, "wrong passphrase"},
		{pass, damaged, "damaged or tampered"},
		{pass, filepath.Join(dir, "missing.backup"), "no such file"},
		{"", file, "no backup passphrase"},
	} {
		t.Setenv(backupPassEnv, tc.pass)
		_, errs, code := runCLI(t, "backup", "verify", tc.file)
		if code != exitError || !strings.Contains(errs, tc.want) || !strings.Contains(errs, "hint:") {
			t.Errorf("%s with %q: exit %d, stderr %q; want %q and a hint", filepath.Base(tc.file), tc.pass, code, errs, tc.want)
		}
	}
}
