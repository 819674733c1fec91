package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

// TestGroupCLI is the CLI contract on real nodes: Alice creates a
// group and invites Bob and Carol by handle; they see the invitation in
// `group list`, join, and write with `send NAME TEXT`; `messages NAME
// --json` names each message's sender in from; `group members NAME
// --json` lists account, handle and admin; `group remove` and `group
// leave` change the list for everyone; bad input is refused with a clear
// error.
func TestGroupCLI(t *testing.T) {
	net := testnet.New(t, 4, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second, CacheTTL: time.Second, ViewAge: time.Second}})
	alice, bob, carol := net.Nodes[1], net.Nodes[2], net.Nodes[3]
	cli := func(nd *testnet.Node, args ...string) string {
		t.Helper()
		out, errs, code := runCLI(t, append(args, "--data", nd.Dir)...)
		if code != exitOK {
			t.Fatalf("callsign %s: exit %d, stderr %q", strings.Join(args, " "), code, errs)
		}
		return out
	}
	for nd, name := range map[*testnet.Node]string{alice: "alice", bob: "bob", carol: "carol"} {
		cli(nd, "handle", "claim", name)
	}
	cli(alice, "contacts", "add", "@bob")
	cli(alice, "contacts", "add", "@carol")
	cli(bob, "contacts", "add", "@alice")
	cli(carol, "contacts", "add", "@alice")

	var g api.Group
	if err := json.Unmarshal([]byte(cli(alice, "group", "create", "Book club", "--json")), &g); err != nil || g.Name != "Book club" || !g.Admin {
		t.Fatalf("group create --json: %+v %v", g, err)
	}
	cli(alice, "group", "invite", "Book club", "@bob", "@carol")
	for _, nd := range []*testnet.Node{bob, carol} {
		check.Until(t, time.Minute, "the invitation in group list", func() bool {
			return strings.Contains(cli(nd, "group", "list"), "invited by alice")
		})
		cli(nd, "group", "join", "Book club")
	}
	cli(alice, "send", "Book club", "chapter one?")
	cli(bob, "send", "Book club", "read it")
	cli(carol, "send", "Book club", "halfway")

	type member struct {
		Account, Handle string
		Admin           bool
	}
	var ms []member
	if err := json.Unmarshal([]byte(cli(bob, "group", "members", "Book club", "--json")), &ms); err != nil || len(ms) != 3 {
		t.Fatalf("group members --json: %+v %v", ms, err)
	}
	for _, m := range ms {
		admin := m.Account == alice.Account().String()
		if m.Admin != admin || m.Account == "" {
			t.Fatalf("members %+v: want Alice the only admin", ms)
		}
		if m.Account == carol.Account().String() && m.Handle != "carol" {
			t.Fatalf("Bob shows Carol, no contact of his, with handle %q, want the one her record names and resolves to her", m.Handle)
		}
		if m.Account == alice.Account().String() && m.Handle != "alice" {
			t.Fatalf("Bob shows his contact Alice with handle %q, want alice", m.Handle)
		}
	}

	from := func(nd *testnet.Node) []string {
		var msgs []api.Message
		if err := json.Unmarshal([]byte(cli(nd, "messages", "Book club", "--json")), &msgs); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range msgs {
			out = append(out, m.From+" "+m.Text)
		}
		return out
	}
	want := []string{alice.Account().String() + " chapter one?", bob.Account().String() + " read it", carol.Account().String() + " halfway"}
	slices.Sort(want)
	for _, nd := range []*testnet.Node{alice, bob, carol} {
		// Each in its sender's order; senders may interleave.
		check.Until(t, time.Minute, "the three messages, each from its sender", func() bool {
			got := from(nd)
			slices.Sort(got)
			return slices.Equal(got, want)
		})
	}

	cli(alice, "group", "remove", "Book club", "@carol")
	cli(bob, "group", "leave", "Book club")
	check.Until(t, time.Minute, "Alice alone", func() bool {
		var ms []member
		return json.Unmarshal([]byte(cli(alice, "group", "members", "Book club", "--json")), &ms) == nil && len(ms) == 1
	})
	for nd, status := range map[*testnet.Node]string{bob: "left", carol: "removed"} {
		check.Until(t, time.Minute, "told", func() bool {
			var gs []api.Group
			return json.Unmarshal([]byte(cli(nd, "group", "list", "--json")), &gs) == nil && len(gs) == 1 && gs[0].Status == status
		})
	}

	// Refusals: clear, on stderr, and nothing done.
	for _, tc := range []struct {
		nd   *testnet.Node
		args []string
		want string
	}{
		{carol, []string{"send", "Book club", "hello?"}, "not a member"},
		{bob, []string{"group", "invite", "Book club", "@carol"}, "not a member"},
		{alice, []string{"group", "invite", "Nope", "@bob"}, "no group"},
		{alice, []string{"group", "create", " spaced "}, "space"},
		{alice, []string{"group", "invite", "Book club"}, "expected NAME HANDLE"},
	} {
		out, errs, code := runCLI(t, append(tc.args, "--data", tc.nd.Dir)...)
		if code == exitOK || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("callsign %s: exit %d, stdout %q, stderr %q; want refused: %q", strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
	}
}
