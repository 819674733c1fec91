package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/store"
	"github.com/callsign/callsign/web"
)

// TestBackupInSettings: once a handle is claimed, the welcome screen
// offers a backup and leads to Settings → Back up your account, which
// refuses a short passphrase and two that differ, then saves a backup file
// that opens with the passphrase and holds the account key, the handle
// and, asked to, the messages. Its restore refuses the node's own account,
// which is in use.
func TestBackupInSettings(t *testing.T) {
	n := testnet.New(t, 2, testnet.Options{Web: web.FS()})
	alice := n.Nodes[1]
	p := browser.OpenApp(t, "alice", alice.Dir)
	p.WaitText("Welcome to callsign")
	p.Fill("Handle", "alice")
	p.Click("button", "Claim")
	p.WaitText("You're on the network")
	if dir := os.Getenv("CALLSIGN_SCREENSHOTS"); dir != "" {
		p.Viewport(1280, 800, false)
		p.WaitJS("the QR code of the handle loaded", `[...document.images].every((i) => i.complete && i.naturalWidth > 0)`)
		p.Screenshot(filepath.Join(dir, "claimed-desktop.png"))
	}
	p.Click("button", "Back up now")
	p.WaitText("If this machine is lost")
	p.WaitNoText("Welcome to callsign")
	// The file the page saves is kept for the test to read.
	browser.Eval[bool](p, `(() => { const made = URL.createObjectURL; URL.createObjectURL = (b) => { window.savedBackup = b; return made(b); }; return true; })()`)

	const pass = "correct horse battery staple"
	for _, tc := range []struct{ pass, again, want string }{
		{"too short", "too short", "at least 12 characters"},
		{pass, pass + "!", "The two passphrases differ."},
	} {
		p.Fill("Passphrase (at least 12 characters)", tc.pass)
		p.Fill("The same again", tc.again)
		p.Click("button", "Download the backup")
		p.WaitText(tc.want)
	}
	// A conversation to keep: Alice writes to the community node's account.
	hub, err := n.Nodes[0].Client.ID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.Send(context.Background(), hub.Account, "kept in the backup"); err != nil {
		t.Fatal(err)
	}
	p.Fill("Passphrase (at least 12 characters)", pass)
	p.Fill("The same again", pass)
	p.Click("checkbox", "Include my messages Every conversation comes back with the account. The file grows with them.")
	p.Click("button", "Download the backup")
	p.WaitText("Keep it somewhere safe")
	if dir := os.Getenv("CALLSIGN_SCREENSHOTS"); dir != "" {
		p.Screenshot(filepath.Join(dir, "backup-desktop.png"))
	}
	p.WaitJS("the backup saved", `window.savedBackup instanceof Blob`)
	b64 := browser.Eval[string](p, `(async () => { const b = new Uint8Array(await window.savedBackup.arrayBuffer()); let s = ""; for (const x of b) s += String.fromCharCode(x); return btoa(s); })()`)
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	bk, err := devices.OpenBackup(bytes.NewReader(raw), int64(len(raw)), []byte(pass))
	if err != nil {
		t.Fatalf("the saved backup (%d bytes): %v", len(raw), err)
	}
	var first byte
	var seed int
	var claimed, kept bool
	if err := bk.Each(func(kind byte, body []byte) error {
		if first == 0 {
			first, seed = kind, len(body)
		}
		claimed = claimed || (kind == store.PortableClaim && bytes.Contains(body, []byte("alice")))
		kept = kept || (kind == store.PortableMessage && bytes.Contains(body, []byte("kept in the backup")))
		return nil
	}); err != nil || first != store.PortableAccountSeed || seed != 32 || !claimed || !kept {
		t.Fatalf("the saved backup: first item of kind %d, %d bytes, @alice in it %v, the message %v (%v); want the account key first, the handle and the message", first, seed, claimed, kept, err)
	}
	if _, err := devices.OpenBackup(bytes.NewReader(raw), int64(len(raw)), []byte(pass+"x")); err == nil {
		t.Errorf("the backup opened with another passphrase")
	}

	// The page offers a restore too; this node's account is in use, so it
	// keeps it and says why.
	file := filepath.Join(t.TempDir(), "alice.backup")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	p.ChooseFiles("Backup file", file)
	p.Fill("Passphrase", pass)
	p.Click("button", "Restore")
	p.WaitText("account is in use: it holds a handle")
	if id, err := alice.Client.ID(context.Background()); err != nil || id.Account != alice.Account().String() {
		t.Errorf("after the refused restore: %+v %v", id, err)
	}
	if errs := p.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}
