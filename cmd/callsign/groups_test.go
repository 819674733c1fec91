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

// TestGroupRequestCLI: an invitation to a group from a stranger waits in
// `requests`, marked as one (the table says who invited, --json its kind),
// and the requests commands answer it as the web app's Requests tab does:
// `requests block` declines it and blocks who sent it, `requests accept`
// joins the group, `requests decline` refuses what is no invitation.
func TestGroupRequestCLI(t *testing.T) {
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
	type row struct {
		Kind  string     `json:"kind"`
		Peer  string     `json:"peer"`
		Group *api.Group `json:"group"`
	}
	requests := func() []row {
		t.Helper()
		var rs []row
		if out := cli(bob, "requests", "--json"); json.Unmarshal([]byte(out), &rs) != nil {
			t.Fatalf("requests --json is not JSON alone: %q", out)
		}
		return rs
	}
	// invite has by, no contact of Bob's, invite him to a new group, and
	// waits until it is among his requests, said to be from byName.
	invite := func(by *testnet.Node, byName, name string) api.Group {
		t.Helper()
		var g api.Group
		if err := json.Unmarshal([]byte(cli(by, "group", "create", name, "--json")), &g); err != nil {
			t.Fatal(err)
		}
		cli(by, "group", "invite", name, "@bob")
		var table string
		check.Until(t, time.Minute, "the invitation to "+name+" in Bob's requests, from "+byName, func() bool {
			table = cli(bob, "requests")
			for _, l := range strings.Split(table, "\n") {
				if strings.HasPrefix(l, name+" ") && strings.Contains(l, "group invitation from "+byName) && strings.Contains(l, g.ID) {
					return true
				}
			}
			return false
		})
		if rs := requests(); len(rs) != 1 || rs[0].Kind != "group_invitation" || rs[0].Peer != g.ID || rs[0].Group == nil ||
			rs[0].Group.InvitedBy != by.Account().String() {
			t.Fatalf("requests --json: %+v, want the invitation to %s (%s) from %s; the table:\n%s", rs, name, g.ID, byName, table)
		}
		return g
	}
	status := func(g api.Group) string {
		t.Helper()
		var gs []api.Group
		if err := json.Unmarshal([]byte(cli(bob, "group", "list", "--json")), &gs); err != nil {
			t.Fatal(err)
		}
		for _, x := range gs {
			if x.ID == g.ID {
				return x.Status
			}
		}
		return "not listed"
	}

	poker := invite(alice, "alice", "Poker")
	if out := cli(bob, "requests", "block", poker.ID); !strings.Contains(out, "declined Poker") || !strings.Contains(out, "blocked") {
		t.Fatalf("requests block: %q", out)
	}
	if st := status(poker); st != "left" {
		t.Fatalf("Bob, who blocked the invitation to Poker, is %q in it", st)
	}
	if rs := requests(); len(rs) != 0 {
		t.Fatalf("requests after blocking: %+v", rs)
	}
	var cs []api.Contact
	if err := json.Unmarshal([]byte(cli(bob, "contacts", "list", "--json")), &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Account != alice.Account().String() || !cs[0].Blocked {
		t.Fatalf("Bob's contacts after blocking the invitation: %+v, want Alice blocked", cs)
	}

	chess := invite(carol, "carol", "Chess")
	if out := cli(bob, "requests", "accept", "Chess"); !strings.Contains(out, "joined Chess") {
		t.Fatalf("requests accept Chess: %q", out)
	}
	if st := status(chess); st != "joined" {
		t.Fatalf("Bob, who accepted the invitation to Chess, is %q in it", st)
	}
	if rs := requests(); len(rs) != 0 {
		t.Fatalf("requests after accepting: %+v", rs)
	}

	out, errs, code := runCLI(t, "requests", "decline", "Chess", "--data", bob.Dir)
	if code == exitOK || out != "" || !strings.Contains(errs, `no invitation to a group "Chess"`) || !strings.Contains(errs, "hint:") {
		t.Errorf("requests decline of a group Bob joined: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
