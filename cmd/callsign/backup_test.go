package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
)

// TestBackupProcess: Alice backs up her account with its messages, loses
// her machine (her node stops and its data directory is deleted) and
// restores into a new directory with `up --restore`. @alice still resolves
// to her account, now on a new device, with no proof of work; Bob's
// contact shows no key change; messages go both ways; her contacts and her
// history came back. Bad input on the way: a short passphrase, an existing
// file, a wrong passphrase, a damaged file, a directory that holds an
// account; each a clear error, nothing restored.
func TestBackupProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("process test: builds and runs the binary")
	}
	root := t.TempDir()
	p := aliceAndBob(t, root)
	aDir, bDir, join, aID, bID, alice := p.aDir, p.bDir, p.join, p.aID, p.bID, p.alice
	if _, errs, code := cli(t, "send", "bob", "before the backup", "--data", aDir); code != 0 {
		t.Fatalf("send: %s", errs)
	}
	check.Until(t, 60*time.Second, "Alice's first message at Bob", func() bool {
		return len(inbox(t, client(t, bDir), "alice")) == 1
	})

	file := filepath.Join(root, "alice.backup")
	t.Setenv(backupPassEnv, "short")
	if _, errs, code := cli(t, "backup", "create", file, "--data", aDir); code == 0 || !strings.Contains(errs, "at least 12 characters") || !strings.Contains(errs, "hint:") {
		t.Fatalf("a short passphrase: exit %d %q", code, errs)
	}
	const pass = "correct horse battery staple"
	t.Setenv(backupPassEnv, pass)
	var rep backupReport
	mustJSON(t, &rep, "backup", "create", file, "--messages", "--data", aDir)
	fi, err := os.Stat(file)
	if err != nil || rep.File != file || int64(rep.Bytes) != fi.Size() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup create: %+v; the file %v, %v", rep, fi, err)
	}
	if _, errs, code := cli(t, "backup", "create", file, "--data", aDir); code == 0 || !strings.Contains(errs, "exists") {
		t.Fatalf("over an existing file: exit %d %q", code, errs)
	}
	var inside backupContents
	mustJSON(t, &inside, "backup", "verify", file)
	if string(inside.Account) != aID.Account || len(inside.Handles) != 1 || inside.Handles[0] != "alice" || inside.Contacts != 1 || inside.CommunityNodes != 1 ||
		inside.Conversations != 1 || inside.Messages != 1 {
		t.Fatalf("backup verify: %+v", inside)
	}
	if raw, _ := os.ReadFile(file); bytes.Contains(raw, []byte(aID.Account)) || bytes.Contains(raw, []byte("bob")) {
		t.Errorf("the backup holds Alice's account id or a contact's name in the clear")
	}

	// Her machine is gone.
	if err := alice.stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(aDir); err != nil {
		t.Fatal(err)
	}

	// Bad restores leave nothing behind and start nothing.
	newDir := filepath.Join(root, "alice-new")
	damaged := filepath.Join(root, "damaged.backup")
	b, _ := os.ReadFile(file)
	b[len(b)-20] ^= 1
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file, pass, dir, want string
	}{
		{file, "correct horse battery stapler", newDir, "wrong passphrase"},
		{damaged, pass, newDir, "damaged or tampered"},
		{filepath.Join(root, "missing.backup"), pass, newDir, "no such file"},
		{file, pass, bDir, "already"}, // Bob's directory, his node running: its lock, or his account
	} {
		t.Setenv(backupPassEnv, tc.pass)
		out, errs, code := cli(t, append([]string{"up", "--data", tc.dir, "--restore", tc.file}, join...)...)
		if code == 0 || !strings.Contains(errs, tc.want) || !strings.Contains(errs, "hint:") {
			t.Fatalf("restore %s into %s: exit %d, want %q\n%s%s", filepath.Base(tc.file), filepath.Base(tc.dir), code, tc.want, out, errs)
		}
	}
	if f := grepDir(t, newDir, aID.Account); f != "" {
		t.Fatalf("a failed restore left %s", f)
	}

	t.Setenv(backupPassEnv, pass)
	restored := up(t, newDir, nil, append(join, "--restore", file)...)
	if !strings.Contains(restored.logs.String(), "restored account "+aID.Account) {
		t.Fatalf("up --restore did not say what it restored:\n%s", restored.logs)
	}
	var nID api.ID
	mustJSON(t, &nID, "id", "--data", newDir)
	if nID.Account != aID.Account || nID.Peer == aID.Peer {
		t.Fatalf("restored: account %s peer %s; want account %s on a new device (not %s)", nID.Account, nID.Peer, aID.Account, aID.Peer)
	}
	var handles []api.Handle
	mustJSON(t, &handles, "handle", "list", "--data", newDir)
	if !strings.Contains(strings.Join(handleNames(handles), " "), "alice") {
		t.Fatalf("restored handles: %+v", handles)
	}
	var contacts []api.Contact
	mustJSON(t, &contacts, "contacts", "list", "--data", newDir)
	if len(contacts) != 1 || contacts[0].Account != bID.Account || contacts[0].Petname != "bob" {
		t.Fatalf("restored contacts: %+v", contacts)
	}
	if out := pageOut(t, client(t, newDir), "bob", ""); len(out) != 1 || out[0].Text != "before the backup" || (out[0].State != "sent" && out[0].State != "delivered") {
		t.Fatalf("restored history with Bob: %+v, want her one message, sent or delivered", out)
	}

	// Bob writes at once, while his node still holds her old record: the
	// message waits (at the mailbox too, sealed to the old device, which
	// the new one can't open) and reaches the new device once his node
	// sees it. Nothing is lost, nothing shown twice.
	if _, errs, code := cli(t, "send", "alice", "right after the restore", "--data", bDir); code != 0 {
		t.Fatalf("send: %s", errs)
	}
	// Bob's node sees the new device once its cached record (a minute)
	// gives way; @alice is still Alice's, and no key changed.
	check.Until(t, 2*time.Minute, "@alice on the new device, seen from Bob", func() bool {
		var who api.Whois
		mustJSON(t, &who, "whois", "@alice", "--data", bDir)
		return who.Status == "ok" && who.Account == aID.Account && len(who.Devices) == 1 && who.Devices[0].Peer == nID.Peer
	})
	mustJSON(t, &contacts, "contacts", "list", "--data", bDir)
	if len(contacts) != 1 || contacts[0].KeyChanged {
		t.Fatalf("Bob's contacts after the restore: %+v", contacts)
	}
	if _, errs, code := cli(t, "send", "alice", "after the restore", "--data", bDir); code != 0 {
		t.Fatalf("send: %s", errs)
	}
	if _, errs, code := cli(t, "send", "bob", "back again", "--data", newDir); code != 0 {
		t.Fatalf("send: %s", errs)
	}
	defer func() {
		if t.Failed() {
			for _, m := range pageOut(t, client(t, bDir), "alice", "") {
				t.Logf("Bob's message %q: %s", m.Text, m.State)
			}
			t.Logf("at Alice's new device: %q", inbox(t, client(t, newDir), "bob"))
		}
	}()
	check.Until(t, 2*time.Minute, "messages both ways", func() bool {
		in := inbox(t, client(t, newDir), "bob")
		back := inbox(t, client(t, bDir), "alice")
		return len(in) == 2 && len(back) == 2 && back[1] == "back again"
	})
	if in := inbox(t, client(t, newDir), "bob"); in[0] != "right after the restore" || in[1] != "after the restore" {
		t.Errorf("Alice's new device shows %q, want Bob's two messages once each, in order", in)
	}
}

func handleNames(hs []api.Handle) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

// pair is a community node with Alice (@alice) and Bob on it, each the
// other's contact.
type pair struct {
	aDir, bDir string
	join       []string // the flags that join the community node
	aID, bID   api.ID
	alice      *daemon
}

// aliceAndBob starts a community node, Alice's and Bob's nodes in root,
// claims @alice and has each add the other.
func aliceAndBob(t *testing.T, root string) pair {
	t.Helper()
	p := pair{aDir: filepath.Join(root, "alice"), bDir: filepath.Join(root, "bob")}
	hubDir := filepath.Join(root, "hub")
	up(t, hubDir, nil, append([]string{"--public"}, loopback...)...)
	hub, _, _ := cli(t, "id", "--data", hubDir, "--addr")
	p.join = append(append([]string{}, loopback...), "--bootstrap", strings.TrimSpace(hub))
	p.alice = up(t, p.aDir, nil, p.join...)
	up(t, p.bDir, nil, p.join...)
	mustJSON(t, &p.aID, "id", "--data", p.aDir)
	mustJSON(t, &p.bID, "id", "--data", p.bDir)
	var claim api.Claim
	mustJSON(t, &claim, "handle", "claim", "alice", "--data", p.aDir)
	if claim.Status != "claimed" {
		t.Fatalf("claim: %+v", claim)
	}
	check.Until(t, 60*time.Second, "each adds the other", func() bool {
		_, _, c1 := cli(t, "contacts", "add", "alice", "--data", p.bDir)
		_, _, c2 := cli(t, "contacts", "add", p.bID.Account, "--as", "bob", "--data", p.aDir)
		return c1 == 0 && c2 == 0
	})
	return p
}
