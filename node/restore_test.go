package node_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
)

// TestRestoreOnRunningNode: Alice's machine is gone; on a new one,
// `callsign up` (node.Run) made a node with an account of its own, never
// used. Her backup, sent through its API, is checked, answered with her
// account and restored: the node starts again on the same API address,
// where the same client carries on, as a new device of her account with
// @alice and her contacts, and publishes its record. A wrong passphrase, a
// node whose account is in use and a node nothing would restart each
// refuse, and nothing changes.
func TestRestoreOnRunningNode(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{})
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
	const pass = "correct horse battery staple"
	backup, err := alice.Client.Backup(ctx, api.BackupRequest{Passphrase: pass})
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
	check.Until(t, time.Minute, "the restored device's record published", second.Published)
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
