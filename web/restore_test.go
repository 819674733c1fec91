package web_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

// TestRestoreOnFirstRun: Alice's machine is gone. On the new one, the web
// app's welcome screen offers to restore a backup; a file too large for
// the browser to send and a wrong passphrase are refused in words; with the right one the node starts again as a new
// device of her account and the page comes back by itself showing @alice,
// with her contact and her group, and no welcome screen.
func TestRestoreOnFirstRun(t *testing.T) {
	n := testnet.New(t, 3, testnet.Options{Web: web.FS()})
	alice, bob := n.Nodes[1], n.Nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if c, err := alice.Client.Claim(ctx, "alice"); err != nil || c.Status != "claimed" {
		t.Fatalf("claim: %+v %v", c, err)
	}
	bobID, err := bob.Client.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.AddContact(ctx, bobID.Account, "Bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.CreateGroup(ctx, "Book club"); err != nil {
		t.Fatal(err)
	}
	const pass = "correct horse battery staple"
	backup, err := alice.Client.Backup(ctx, api.BackupRequest{Passphrase: pass})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "callsign-2026-12-05.backup")
	if err := os.WriteFile(file, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	alice.Client.Close()
	if err := alice.Node.Close(); err != nil {
		t.Fatal(err)
	}

	// The new machine: `callsign up` on a new data directory.
	run := n.Run(t)
	run.Next(t)
	cfg := run.Config

	p := browser.OpenApp(t, "new machine", cfg.DataDir)
	p.WaitText("Welcome to callsign")
	p.Click("button", "Restore from a backup")
	p.WaitText("Restore your account")
	big := filepath.Join(t.TempDir(), "huge.backup")
	if err := os.WriteFile(big, nil, 0o600); err != nil || os.Truncate(big, 13<<20) != nil {
		t.Fatal("a large file")
	}
	p.ChooseFiles("Backup file", big)
	p.Fill("Passphrase", pass)
	p.Click("button", "Restore")
	p.WaitText("too large to send through the browser")
	p.ChooseFiles("Backup file", file)
	p.Fill("Passphrase", pass+"!")
	p.Click("button", "Restore")
	p.WaitText("wrong passphrase")
	if dir := os.Getenv("CALLSIGN_SCREENSHOTS"); dir != "" {
		p.Fill("Passphrase", "")
		p.WaitJS("the error gone", `(() => { document.querySelector(".restore-form .claim-result").replaceChildren(); return true; })()`)
		p.Viewport(1280, 800, false)
		p.Screenshot(filepath.Join(dir, "restore-desktop.png"))
	}
	p.Fill("Passphrase", pass)
	p.Click("button", "Restore")
	p.WaitText("Restoring your account. Your node is starting again as a new device of it, with 1 contact and 1 group.")
	if nd := run.Next(t); nd.Account() != alice.Account() {
		t.Fatalf("the node started again as %s, want Alice's %s", nd.Account(), alice.Account())
	}
	// The page loads again by itself, signed in, as Alice: her handle in
	// her profile, her contact.
	p.WaitNoText("Restore your account")
	p.WaitNoText("Welcome to callsign")
	p.WaitText("Book club")
	p.Click("link", "Settings")
	p.Click("link", "Profile and handles")
	p.WaitText("@alice")
	p.Click("link", "Contacts")
	p.WaitText("Bob")
}
