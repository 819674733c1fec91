package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
)

var t0 = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

func msgAt(id, dir, peer, name, text, state string, minutes int) api.Message {
	return api.Message{ID: id, Direction: dir, Peer: peer, PeerName: name, Text: text, State: state, SentAt: t0.Add(time.Duration(minutes) * time.Minute)}
}

// conversationNode is a node with a conversation with bob: two messages
// from him, one unread, and one to him.
func conversationNode() *fakeNode {
	f := newFakeNode()
	f.contacts = []api.Contact{{Account: "csa1bob", Petname: "bob", Handle: "bobby"}, {Account: "csa1carol", Petname: "carol"}}
	f.messages["bob"] = []api.Message{
		msgAt("m1", "in", "csa1bob", "bob", "hi from the page", "read", 0),
		msgAt("m2", "out", "csa1bob", "bob", "hello bob", "delivered", 1),
		msgAt("m3", "in", "csa1bob", "bob", "unread one", "received", 2),
	}
	f.messages["carol"] = []api.Message{}
	return f
}

// TestMessagesMarkRead: the incoming messages shown are marked read, the
// ones already read and the outgoing ones are not; --keep-unread opts out.
func TestMessagesMarkRead(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []markRead
	}{
		{[]string{"messages", "bob"}, []markRead{{"csa1bob", []string{"m3"}}}},
		{[]string{"messages", "bob", "--json"}, []markRead{{"csa1bob", []string{"m3"}}}},
		{[]string{"messages", "bob", "--keep-unread"}, nil},
		{[]string{"messages", "carol"}, nil}, // nothing shown: nothing marked (no ids would mean all)
		{[]string{"messages"}, nil},          // the list of conversations shows no message
	} {
		f := conversationNode()
		dir := f.start(t)
		out, errs, code := runCLI(t, append(tc.args, "--data", dir)...)
		if code != exitOK || errs != "" {
			t.Errorf("callsign %s: exit %d, stderr %q", strings.Join(tc.args, " "), code, errs)
		}
		if got := f.markedCalls(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("callsign %s marked %v read, want %v\n%s", strings.Join(tc.args, " "), got, tc.want, out)
		}
	}
}

// TestMessagesFollow: --follow prints each message once (listed or
// from an event), the messages you send (direction out), state changes by
// petname, and marks what arrives read.
func TestMessagesFollow(t *testing.T) {
	f := conversationNode()
	dir := f.start(t)
	b := startCLI(t, nil, "messages", "bob", "--follow", "--data", dir)
	f.waitSubscribed(t)
	// What the node sent between the subscription and the listing: m2 is
	// both in the page and in an event.
	f.publish(api.NewEvent(api.EventMessage, msgAt("m2", "out", "csa1bob", "bob", "hello bob", "delivered", 1)))
	f.publish(api.NewEvent(api.EventMessage, msgAt("m4", "in", "csa1bob", "", "new from bob", "received", 3))) // no peer_name: an older node
	f.publish(api.NewEvent(api.EventMessage, msgAt("m5", "out", "csa1bob", "bob", "my own, from another client", "queued", 4)))
	f.publish(api.NewEvent(api.EventMessage, msgAt("c1", "in", "csa1carol", "carol", "not in this conversation", "received", 5)))
	f.publish(api.NewEvent(api.EventState, api.StateChange{ID: "m5", Peer: "csa1bob", State: "delivered"}))
	f.publish(api.NewEvent(api.EventState, api.StateChange{ID: "m4", Peer: "csa1bob", State: "read"})) // what marking it read does
	f.publish(api.NewEvent(api.EventState, api.StateChange{ID: "c0", Peer: "csa1carol", State: "read"}))
	f.publish(api.NewEvent(api.EventMessage, msgAt("m6", "in", "csa1bob", "bob", "the last", "received", 6)))
	waitOutput(t, b.out, "the last")
	// The CLI marks a message read after printing it: let the last mark
	// land before stopping it.
	poll(t, 10*time.Second, "the last message marked read", func() bool { return len(f.markedCalls()) >= 3 })
	if code := b.stop(t); code != exitOK {
		t.Fatalf("exit %d: %s", code, b.err)
	}
	local := func(min int) string {
		return t0.Add(time.Duration(min) * time.Minute).Local().Format("2006-01-02 15:04:05")
	}
	lines := strings.Split(strings.TrimSuffix(b.out.String(), "\n"), "\n")
	want := []string{
		local(0) + " <- bob  hi from the page  [read]",
		local(1) + " -> bob  hello bob  [delivered]",
		local(2) + " <- bob  unread one  [received]",
		local(3) + " <- bob  new from bob  [received]",
		local(4) + " -> bob  my own, from another client  [queued]",
		"bob  message m5 is delivered",
		local(6) + " <- bob  the last  [received]",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), b.out)
	}
	for i := range want {
		if !strings.HasSuffix(lines[i], want[i]) {
			t.Errorf("line %d: %q, want %q", i+1, lines[i], want[i])
		}
	}
	if b.err.String() != "" {
		t.Errorf("stderr: %s", b.err)
	}
	wantMarks := []markRead{{"csa1bob", []string{"m3"}}, {"csa1bob", []string{"m4"}}, {"csa1bob", []string{"m6"}}}
	if got := f.markedCalls(); !reflect.DeepEqual(got, wantMarks) {
		t.Errorf("marked %v read, want %v", got, wantMarks)
	}
}

// TestMessagesFollowEmpty: following a conversation with no messages yet
// matches events by the contact's account.
func TestMessagesFollowEmpty(t *testing.T) {
	f := conversationNode()
	dir := f.start(t)
	b := startCLI(t, nil, "messages", "carol", "--follow", "--keep-unread", "--data", dir)
	f.waitSubscribed(t)
	f.publish(api.NewEvent(api.EventMessage, msgAt("b1", "in", "csa1bob", "bob", "from bob", "received", 0)))
	f.publish(api.NewEvent(api.EventMessage, msgAt("c1", "in", "csa1carol", "", "from carol", "received", 1)))
	waitOutput(t, b.out, "from carol")
	b.stop(t)
	if out := b.out.String(); strings.Contains(out, "from bob") || !strings.Contains(out, "<- carol  from carol") {
		t.Errorf("output:\n%s", out)
	}
	if got := f.markedCalls(); got != nil {
		t.Errorf("--keep-unread marked %v read", got)
	}
}

// TestFollowNames: accounts become petnames, from the contacts read once
// and read again when an account is missing, at most once per missTTL for
// an account that is not a contact.
func TestFollowNames(t *testing.T) {
	f := conversationNode()
	dir := f.start(t)
	b := startCLI(t, nil, "messages", "--follow", "--json", "--data", dir)
	f.waitSubscribed(t)
	f.publish(api.NewEvent(api.EventMessage, msgAt("1", "in", "csa1bob", "", "one", "received", 0)))
	waitOutput(t, b.out, `"one"`)
	f.mu.Lock()
	f.contacts = append(f.contacts, api.Contact{Account: "csa1erin", Petname: "erin"}) // added since
	f.mu.Unlock()
	f.publish(api.NewEvent(api.EventState, api.StateChange{ID: "2", Peer: "csa1erin", State: "delivered"}))
	f.publish(api.NewEvent(api.EventMessage, msgAt("3", "in", "csa1stranger", "", "three", "received", 1)))
	f.publish(api.NewEvent(api.EventMessage, msgAt("4", "in", "csa1stranger", "", "four", "received", 2)))
	waitOutput(t, b.out, `"four"`)
	b.stop(t)
	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.out.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("not one JSON object per line: %q", l)
		}
		got = append(got, v)
	}
	if len(got) != 4 || got[0]["peer_name"] != "bob" || got[1]["peer_name"] != "erin" || got[1]["state"] != "delivered" ||
		got[2]["peer_name"] != nil || got[3]["peer_name"] != nil {
		t.Errorf("events printed as:\n%s", b.out)
	}
	f.mu.Lock()
	n := f.contactsN
	f.mu.Unlock()
	if n != 3 { // at the start, for erin, and once for the stranger's two messages
		t.Errorf("read the contacts %d times, want 3", n)
	}
}

func TestPetnamesMissTTL(t *testing.T) {
	f := newFakeNode()
	dir := f.start(t)
	now := time.Unix(0, 0)
	c, err := api.DialDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := newPetnames(c)
	p.now = func() time.Time { return now }
	ctx := t.Context()
	if n := p.name(ctx, "csa1x", ""); n != "csa1x" {
		t.Fatalf("name %q", n)
	}
	f.mu.Lock()
	f.contacts = []api.Contact{{Account: "csa1x", Petname: "x"}}
	f.mu.Unlock()
	if n := p.name(ctx, "csa1x", ""); n != "csa1x" {
		t.Fatalf("a miss was not remembered: %q", n)
	}
	now = now.Add(missTTL)
	if n := p.name(ctx, "csa1x", ""); n != "x" {
		t.Fatalf("after missTTL: %q, want x", n)
	}
	if n := p.name(ctx, "csa1x", "given"); n != "given" {
		t.Fatalf("a name the node gave: %q", n)
	}
	if a, ok := p.account(ctx, "@X"); !ok || a != "csa1x" {
		t.Fatalf("account(@X) = %q %v", a, ok)
	}
}

// TestSendAndSaveFile: `send NAME --file PATH CAPTION` uploads the file
// with its name and type; `save ID DIR` waits while the node fetches it,
// writes it under its name, and never overwrites a file already there.
func TestSendAndSaveFile(t *testing.T) {
	f := newFakeNode()
	dir := f.start(t)
	src := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(src, []byte("remember the milk"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runCLI(t, "send", "bob", "--file", src, "for", "later", "--data", dir, "--json")
	var sent struct{ ID, State string }
	if code != exitOK || json.Unmarshal([]byte(out), &sent) != nil || sent.ID != "f1" {
		t.Fatalf("send --file: exit %d, %q, stderr %q", code, out, errs)
	}
	if len(f.sent) != 1 || f.sent[0] != "notes.txt text/plain 17 for later" {
		t.Fatalf("the node got %q", f.sent)
	}
	to := t.TempDir()
	for _, want := range []string{"notes.txt", "notes (2).txt"} {
		out, errs, code := runCLI(t, "save", "f1", to, "--data", dir)
		got := filepath.Join(to, want)
		if code != exitOK || strings.TrimSpace(out) != got {
			t.Fatalf("save: exit %d, %q, stderr %q; want %s", code, out, errs, got)
		}
		if b, err := os.ReadFile(got); err != nil || string(b) != "remember the milk" {
			t.Fatalf("saved %q, %v", b, err)
		}
	}
	if _, errs, code := runCLI(t, "save", "nothing", to, "--data", dir); code == exitOK || !strings.Contains(errs, "no message") {
		t.Errorf("save of a message that is not there: exit %d, %q", code, errs)
	}
	if left, _ := filepath.Glob(filepath.Join(to, ".callsign-save-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
