package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
)

// TestJoinWithInvite is the README's "Joining a community" through the
// binary: a community node prints an invite; a new node alone says so and
// what to do; garbage invites are refused; `up --join INVITE` joins, finds
// the community node's handle and is remembered; an invite to a node that
// is gone is reported while the node keeps running.
func TestJoinWithInvite(t *testing.T) {
	if testing.Short() {
		t.Skip("process test: builds and runs the binary")
	}
	root := t.TempDir()
	hubDir, aliceDir, bobDir := filepath.Join(root, "hub"), filepath.Join(root, "alice"), filepath.Join(root, "bob")

	// 1. The community node prints its invite when it starts, and again
	// with `callsign invite`.
	hub := up(t, hubDir, nil, append([]string{"--public", "--community", "Harbour"}, loopback...)...)
	var hubID api.ID
	mustJSON(t, &hubID, "id", "--data", hubDir)
	var inv api.Invite
	mustJSON(t, &inv, "invite", "--data", hubDir)
	if !strings.HasPrefix(inv.Invite, "callsign:join/") || !inv.Own || inv.Name != "Harbour" || inv.Peer != hubID.Peer || len(inv.Addrs) == 0 {
		t.Fatalf("invite --json: %+v", inv)
	}
	if !strings.Contains(hub.logs.String(), "\n  invite   "+inv.Invite+"\n") {
		t.Fatalf("up --public did not print the invite:\n%s", hub.logs)
	}
	if out, errs, code := cli(t, "invite", "--data", hubDir); code != 0 || out != inv.Invite+"\n" {
		t.Fatalf("invite: exit %d\n%s%s", code, out, errs)
	}
	// The QR code, drawn with text for a phone to scan.
	if out, errs, code := cli(t, "invite", "--qr", "--data", hubDir); code != 0 || !strings.HasPrefix(out, inv.Invite+"\n") ||
		strings.Count(out, "▄")+strings.Count(out, "▀") < 100 || !strings.HasSuffix(out, "\na newcomer joins this community node (Harbour) with: callsign up --join INVITE\n") {
		t.Fatalf("invite --qr: exit %d\n%s%s", code, out, errs)
	}

	// 2. A new node that knows no network says so, on stderr and in status.
	alice := up(t, aliceDir, nil, loopback...)
	check.Until(t, 30*time.Second, "the no-peers warning on stderr", func() bool {
		return strings.Contains(alice.logs.String(), "no peers: this node knows no network. Ask a community node for an invite and run `callsign up --join INVITE`")
	})
	var st api.Status
	mustJSON(t, &st, "status", "--data", aliceDir)
	if st.Peers != 0 || !strings.Contains(st.Hint, "--join INVITE") || st.Invite != nil {
		t.Fatalf("status of a node alone: %+v", st)
	}
	if out, _, _ := cli(t, "status", "--data", aliceDir); !strings.Contains(out, "peers          0\n") || !strings.Contains(out, "\nhint: no peers: this node knows no network") {
		t.Fatalf("status of a node alone:\n%s", out)
	}
	if _, errs, code := cli(t, "invite", "--data", aliceDir); code != exitError || !strings.Contains(errs, "no invite") || !strings.Contains(errs, "hint: ") {
		t.Fatalf("invite of a node that joined nothing: exit %d %q", code, errs)
	}
	if err := alice.stop(); err != nil {
		t.Fatal(err)
	}

	// 3. Garbage invites are refused at once, with a hint; nothing starts.
	for _, bad := range []string{"garbage", inv.Invite[:len(inv.Invite)-6], inv.Invite + "x", "callsign:join/" + strings.Repeat("a", 600)} {
		_, errs, code := cli(t, append([]string{"up", "--data", aliceDir, "--join", bad}, loopback...)...)
		if code != exitError || !strings.HasPrefix(errs, "callsign: invalid invite") || !strings.Contains(errs, "\nhint: ") {
			t.Fatalf("up --join %q: exit %d\n%s", bad, code, errs)
		}
	}

	// 4. `up --join` joins: Alice finds the community node's handle.
	alice = up(t, aliceDir, nil, append(loopback, "--join", inv.Invite)...)
	// The hub publishes its own records once it has a first peer; asking
	// before that would cache "not found" for a while.
	check.Until(t, 60*time.Second, "the hub's identity published", func() bool {
		return strings.Contains(hub.logs.String(), `msg="identity published"`)
	})
	var who api.Whois
	check.Until(t, 60*time.Second, "the hub's handle resolved by alice", func() bool {
		out, _, code := cli(t, "whois", hubID.Handle, "--data", aliceDir, "--json")
		return code == 0 && jsonInto(out, &who) && who.Status == "ok"
	})
	if who.Account != hubID.Account {
		t.Fatalf("whois %s: %+v", hubID.Handle, who)
	}
	check.Until(t, 30*time.Second, "alice's status with peers and no hint", func() bool {
		st = api.Status{} // "hint" is left out when empty
		mustJSON(t, &st, "status", "--data", aliceDir)
		return st.Peers >= 1 && st.Hint == ""
	})
	if st.Invite == nil || st.Invite.Invite != inv.Invite || st.Invite.Own {
		t.Fatalf("alice passes on the invite she joined with: %+v", st.Invite)
	}

	// 5. The invite is remembered: a plain restart rejoins.
	if err := alice.stop(); err != nil {
		t.Fatal(err)
	}
	up(t, aliceDir, nil, loopback...)
	check.Until(t, 30*time.Second, "alice back in the network without --join", func() bool {
		st = api.Status{} // "hint" is left out when empty
		mustJSON(t, &st, "status", "--data", aliceDir)
		return st.Peers >= 1 && st.RoutingTable >= 1 && st.Hint == ""
	})

	// 6. An invite to a node that is gone: the node says so and keeps
	// running, trying again.
	if err := hub.stop(); err != nil {
		t.Fatal(err)
	}
	bob := up(t, bobDir, nil, append(loopback, "--join", inv.Invite)...)
	check.Until(t, 30*time.Second, "the unreachable-invite warning on stderr", func() bool {
		return strings.Contains(bob.logs.String(), "no peers: the community node this node knows does not answer; it keeps trying")
	})
	mustJSON(t, &st, "status", "--data", bobDir)
	if st.Peers != 0 || !strings.Contains(st.Hint, "keeps trying") {
		t.Fatalf("status with an unreachable invite: %+v", st)
	}
}

// jsonInto decodes out into v and reports whether it could.
func jsonInto(out string, v any) bool { return json.Unmarshal([]byte(out), v) == nil }
