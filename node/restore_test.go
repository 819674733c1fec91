package node_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/node"
	"github.com/callsign/callsign/store"
)

// TestRestoreOnRunningNode: Alice's machine is gone; on a new one,
// `callsign up` (node.Run) made a node with an account of its own, never
// used. Her backup, sent through its API, is checked, answered with her
// account and restored: the node starts again on the same API address,
// where the same client carries on, as a new device of her account with
// @alice, her contacts and her group with Bob (its history too), and
// publishes its record; in the group, Bob and the restored device read
// each other. A wrong passphrase, a node whose account is in use and a
// node nothing would restart each refuse, and nothing changes.
func TestRestoreOnRunningNode(t *testing.T) {
	// Bob's node reads records again after 2 s, not a minute: what it
	// does once it sees Alice's new record is what is tested, not how
	// long it keeps the old one.
	net := testnet.New(t, 3, testnet.Options{Network: node.Network{CacheTTL: 2 * time.Second, ViewAge: 2 * time.Second}})
	alice, bob := net.Nodes[1], net.Nodes[2]
	ctx := ctxT(t, 3*time.Minute)
	if c, err := alice.Client.Claim(ctx, "alice"); err != nil || c.Status != "claimed" {
		t.Fatalf("claim: %+v %v", c, err)
	}
	bobID, err := bob.Client.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.AddContact(ctx, bobID.Account, "bob"); err != nil {
		t.Fatal(err)
	}
	who := map[string]string{alice.Account().String(): "alice", bobID.Account: "bob"}
	g := groupOf(t, ctx, "Friends", alice, bob)
	if _, err := bob.Client.Send(ctx, g.ID, "before"); err != nil {
		t.Fatal(err)
	}
	check.Until(t, time.Minute, "Bob's group message at Alice's", func() bool {
		return slices.Equal(groupTexts(t, alice.Client, g.ID, who), []string{"bob: before"})
	})
	const pass = "correct horse battery staple"
	backup, err := alice.Client.Backup(ctx, api.BackupRequest{Passphrase: pass, Messages: true})
	if err != nil {
		t.Fatal(err)
	}
	code := func(err error) string {
		if e, ok := errors.AsType[*api.Error](err); ok {
			return e.Code
		}
		return "not an API error"
	}
	if _, err := bob.Client.Restore(ctx, backup, pass); code(err) != api.CodeUnavailable || !strings.Contains(err.Error(), "callsign up") {
		t.Errorf("a node nothing restarts: %v, want %s", err, api.CodeUnavailable)
	}
	aliceAcct := alice.Account()
	alice.Client.Close()
	if err := alice.Node.Close(); err != nil {
		t.Fatal(err)
	}

	run := net.Run(t)
	cfg := run.Config
	first := run.Next(t)
	c, err := api.DialDataDir(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	firstID, err := c.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Restore(ctx, backup, pass+"!"); code(err) != api.CodeBadRequest || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("a wrong passphrase: %v", err)
	}
	r, err := c.Restore(ctx, backup, pass)
	if err != nil || r.Account != aliceAcct.String() || len(r.Handles) != 1 || r.Handles[0] != "alice" || r.Contacts != 1 {
		t.Fatalf("restore: %+v %v; want %s with @alice and one contact", r, err, aliceAcct)
	}
	second := run.Next(t)
	if second.Account() != aliceAcct || second.APIAddr() != first.APIAddr() {
		t.Fatalf("after the restore: account %s at %s; want %s at %s", second.Account(), second.APIAddr(), aliceAcct, first.APIAddr())
	}
	id, err := c.ID(ctx)
	if err != nil || id.Account != aliceAcct.String() || id.Peer == firstID.Peer {
		t.Fatalf("the same client after the restore: %+v %v; want %s on new device keys", id, err, aliceAcct)
	}
	hs, err := c.Handles(ctx)
	if err != nil || !strings.Contains(strings.Join(names(hs), " "), "alice") {
		t.Fatalf("handles after the restore: %+v %v", hs, err)
	}
	if cs, err := c.Contacts(ctx); err != nil || len(cs) != 1 || cs[0].Petname != "bob" {
		t.Fatalf("contacts after the restore: %+v %v", cs, err)
	}
	// In the group with its history. Bob writes while his node still
	// knows only Alice's old device; the restored device writes too. They
	// read each other: the restored device asks Bob for his key, and what
	// Bob's node queued for the old device goes to the new one once it
	// learns of it.
	if in, err := c.Group(ctx, g.ID); err != nil || in.Status != "joined" || len(in.Members) != 2 {
		t.Fatalf("the group after the restore: %+v %v", in, err)
	}
	if got := groupTexts(t, c, g.ID, who); !slices.Equal(got, []string{"bob: before"}) {
		t.Fatalf("the group's history after the restore: %q", got)
	}
	if _, err := bob.Client.Send(ctx, g.ID, "welcome back"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, g.ID, "restored"); err != nil {
		t.Fatal(err)
	}
	check.Until(t, time.Minute, "the restored device's record published", second.Published)
	// The restored device takes the old one's place in the record; the
	// old one is not kept beside it.
	check.Eventually(t, time.Minute, func() error {
		w, err := bob.Client.Whois(ctx, "@alice")
		if err == nil && (len(w.Devices) != 1 || w.Devices[0].Peer != id.Peer) {
			err = fmt.Errorf("@alice's record names %+v, want the restored device %s alone", w.Devices, id.Peer)
		}
		return err
	})
	want := []string{"bob: before", "bob: welcome back", "alice: restored"}
	for name, cl := range map[string]*api.Client{"Bob": bob.Client, "the restored device": c} {
		check.Until(t, 2*time.Minute, "both messages at "+name, func() bool { return len(groupTexts(t, cl, g.ID, who)) >= 3 })
		if got := groupTexts(t, cl, g.ID, who); !slices.Equal(got, want) && !slices.Equal(got, []string{want[0], want[2], want[1]}) {
			t.Fatalf("%s has %q, want %q", name, got, want)
		}
	}
	if _, err := c.Restore(ctx, backup, pass); code(err) != api.CodeConflict || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second restore onto the account in use: %v, want %s", err, api.CodeConflict)
	}
	if run.Restarted() {
		t.Errorf("the node restarted again")
	}
}

func names(hs []api.Handle) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

// TestRestoreInterrupted: a restore that stopped after writing part of
// the history (the machine lost power) leaves no account, and a node
// refuses to start on it, saying to run the restore again, instead of
// making an account of its own beside someone else's messages; run again,
// the restore completes, each message once.
func TestRestoreInterrupted(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	at := time.Unix(1_764_892_800, 0)
	hello := msg.Message{ID: "m1", Peer: "csa1bob", Direction: msg.DirIn, Body: []byte("hello"), SentAt: at, At: at, State: msg.StateReceived}
	file, ak := backupOf(t, hello)
	// The restore stopped after its first batch of history.
	dir := t.TempDir()
	db, err := store.Open(ctx, store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *store.Tx) error {
		if err := tx.BeginRestore(); err != nil {
			return err
		}
		return msg.In(tx).PutMessage(hello)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{DataDir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, APIAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(ctx)
	n.Close()
	var he interface{ Hint() string }
	if !errors.Is(err, store.ErrRestoreInterrupted) || !errors.As(err, &he) || !strings.Contains(he.Hint(), "--restore") {
		t.Fatalf("start on an interrupted restore: %v; want %v with a hint to run it again", err, store.ErrRestoreInterrupted)
	}

	r, err := node.RestoreBackup(ctx, dir, nil, file, []byte(backupPass))
	if err != nil || r.Account != ak.Public().ID() {
		t.Fatalf("the restore run again: %+v %v", r, err)
	}
	notRestoring(t, dir, func(tx *store.Tx) {
		sec, err := tx.Secrets()
		if err != nil || !bytes.Equal(sec.AccountSeed, ak.Seed()) {
			t.Errorf("account after the restore: %v", err)
		}
		ms, _, err := msg.In(tx).Messages("csa1bob", msg.Page{})
		if err != nil || len(ms) != 1 || string(ms[0].Body) != "hello" {
			t.Errorf("history after the restore: %+v %v; want the one message once", ms, err)
		}
	})
}

const backupPass = "correct horse battery staple"

// backupOf writes a backup file of a new account with one conversation
// holding messages, as the store holds them, and returns it with the
// account's key.
func backupOf(t *testing.T, messages ...msg.Message) (string, *identity.AccountKey) {
	t.Helper()
	src, err := store.Open(t.Context(), store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ak, err := identity.GenerateAccountKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	err = src.Update(func(tx *store.Tx) error {
		if err := tx.PutSecrets(store.Secrets{AccountSeed: ak.Seed()}); err != nil {
			return err
		}
		d := msg.In(tx)
		if err := d.PutConversation(msg.Conversation{Peer: "csa1bob", LastAt: messages[0].At}); err != nil {
			return err
		}
		for _, m := range messages {
			if err := d.PutMessage(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	bw, err := devices.NewBackupWriter(&buf, []byte(backupPass), devices.BackupParams{Time: 1, MemoryKiB: 64 << 10, Lanes: 1, ChunkSize: 64 << 10}, messages[0].At)
	if err != nil {
		t.Fatal(err)
	}
	err = src.View(func(tx *store.Tx) error {
		if err := tx.ExportPortable(bw.Add); err != nil {
			return err
		}
		return msg.ExportHistory(tx, bw.Add)
	})
	if err == nil {
		err = bw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "alice.backup")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, ak
}

// TestRestoreRefusesBadHistory: a backup whose history holds a message no
// node would have stored (an incoming message marked sent) is refused
// before anything is written: no account, no message, no mark of a
// restore under way, so a node starts on the directory as on a new one.
func TestRestoreRefusesBadHistory(t *testing.T) {
	at := time.Unix(1_764_892_800, 0)
	good := msg.Message{ID: "m1", Peer: "csa1bob", Direction: msg.DirIn, Body: []byte("hello"), SentAt: at, At: at, State: msg.StateReceived}
	bad := good
	bad.ID, bad.At, bad.State = "m2", at.Add(time.Second), msg.StateSent
	file, _ := backupOf(t, good, bad)
	dir := t.TempDir()
	if _, err := node.RestoreBackup(t.Context(), dir, nil, file, []byte(backupPass)); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("restore: %v, want %v", err, store.ErrInvalid)
	}
	notRestoring(t, dir, func(tx *store.Tx) {
		if sec, err := tx.Secrets(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("secrets written: %v %v", sec.AccountSeed != nil, err)
		}
		if ms, _, err := msg.In(tx).Messages("csa1bob", msg.Page{}); err != nil || len(ms) != 0 {
			t.Errorf("history written: %d messages (%v)", len(ms), err)
		}
	})
}

// notRestoring opens the store in dir, checks that no restore is marked
// as under way, and hands fn a read transaction.
func notRestoring(t *testing.T, dir string, fn func(tx *store.Tx)) {
	t.Helper()
	db, err := store.Open(t.Context(), store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *store.Tx) error {
		if restoring, err := tx.Restoring(); err != nil || restoring {
			t.Errorf("marked as a restore under way (%v)", err)
		}
		fn(tx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
