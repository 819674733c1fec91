package node_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

// groupTexts is a group's conversation on a device as "sender: text", the
// sender named by names (account id → name).
func groupTexts(t *testing.T, c *api.Client, id string, names map[string]string) []string {
	t.Helper()
	p, err := c.Messages(context.Background(), id, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range p.Messages {
		out = append(out, names[m.From]+": "+m.Text)
	}
	return out
}

func memberNames(t *testing.T, c *api.Client, id string, names map[string]string) []string {
	t.Helper()
	g, err := c.Group(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range g.Members {
		out = append(out, names[m.Account])
	}
	slices.Sort(out)
	return out
}

// TestGroupChat is the test: five people on their own nodes, Bob
// with two devices. Alice makes a group and invites the four; Erin, a
// stranger to her, finds the invitation among requests; each joins. Each
// device sends three messages: every one arrives once on every member
// device, in its sender's order (Bob joins on one device, and his laptop
// with it). Dave goes offline; Alice removes Carol,
// and Bob writes once he has heard: Carol never gets it. Alice and Bob go
// offline too; Dave comes back and catches up from his mailbox alone: the
// same member list, Bob's message.
func TestGroupChat(t *testing.T) {
	net := testnet.New(t, 6, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second, CacheTTL: time.Second, ViewAge: time.Second}})
	ctx := ctxT(t, 6*time.Minute)
	hub, alice, bob, carol, dave, erin := net.Nodes[0], net.Nodes[1], net.Nodes[2], net.Nodes[3], net.Nodes[4], net.Nodes[5]
	for nd, name := range map[*testnet.Node]string{bob: "bob", carol: "carol", dave: "dave"} {
		if _, err := nd.Client.AddContact(ctx, alice.Account().String(), "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Client.AddContact(ctx, nd.Account().String(), name); err != nil {
			t.Fatal(err)
		}
	}
	_, cfg, st, err := linkDevice(t, ctx, net, bob, "laptop", true, func(sas string) string { return sas })
	if err != nil || st.State != api.LinkLinked {
		t.Fatalf("link Bob's laptop: %v %+v", err, st)
	}
	laptop := net.StartOn(cfg)
	check.Until(t, time.Minute, "the laptop's record published", laptop.Published)
	check.Until(t, time.Minute, "Alice finds Bob's two devices", func() bool {
		w, err := alice.Client.Whois(ctx, bob.Account().String())
		return err == nil && len(w.Devices) == 2
	})
	names := map[string]string{}
	for nd, name := range map[*testnet.Node]string{alice: "alice", bob: "bob", carol: "carol", dave: "dave", erin: "erin"} {
		names[nd.Account().String()] = name
	}

	g, err := alice.Client.CreateGroup(ctx, "Five")
	if err != nil || !g.Admin || g.Status != "joined" || len(g.Members) != 1 {
		t.Fatalf("create: %+v %v", g, err)
	}
	var invitees []string
	for _, nd := range []*testnet.Node{bob, carol, dave, erin} {
		invitees = append(invitees, nd.Account().String())
	}
	if g, err = alice.Client.GroupAction(ctx, g.ID, "invite", api.GroupAction{Members: invitees}); err != nil || len(g.Members) != 5 {
		t.Fatalf("invite: %+v %v", g, err)
	}
	devices := []*testnet.Node{alice, bob, laptop, carol, dave, erin}
	for _, d := range devices[1:] {
		var in api.Group
		check.Eventually(t, 2*time.Minute, func() error {
			var err error
			if in, err = d.Client.Group(ctx, g.ID); err != nil {
				err = fmt.Errorf("%s (%s): %w", names[d.Account().String()], d.Dir, err)
			}
			return err
		})
		// Bob joined on his first device: his laptop joins with it.
		if d == laptop {
			check.Until(t, time.Minute, "Bob's laptop joins with his first device", func() bool {
				in, err = d.Client.Group(ctx, g.ID)
				return err == nil && in.Status == "joined"
			})
			continue
		}
		if in.Status != "invited" || in.InvitedBy != alice.Account().String() || in.Name != "Five" || len(in.Members) != 5 {
			t.Fatalf("%s sees %+v, want an invitation from Alice to Five", names[d.Account().String()], in)
		}
		if stranger := d == erin; in.Request != stranger {
			t.Fatalf("%s's invitation: request=%v, want %v", names[d.Account().String()], in.Request, stranger)
		}
		if in, err = d.Client.GroupAction(ctx, g.ID, "join", api.GroupAction{}); err != nil || in.Status != "joined" {
			t.Fatalf("join: %+v %v", in, err)
		}
	}

	// Three messages from each device, the six at once.
	var wg sync.WaitGroup
	for _, d := range devices {
		name := names[d.Account().String()]
		if d == laptop {
			name = "laptop"
		}
		wg.Go(func() {
			for i := range 3 {
				if _, err := d.Client.Send(ctx, g.ID, fmt.Sprintf("%s %d", name, i)); err != nil {
					t.Errorf("%s sends: %v", name, err)
				}
			}
		})
	}
	wg.Wait()
	for _, d := range devices {
		var got []string
		check.Until(t, 2*time.Minute, "every message on every member device", func() bool {
			got = groupTexts(t, d.Client, g.ID, names)
			return len(got) >= 18
		})
		if len(got) != 18 {
			t.Fatalf("%s has %d messages: %q", names[d.Account().String()], len(got), got)
		}
		// Once each, in each sender's order.
		next := map[string]int{}
		for _, line := range got {
			_, text, _ := strings.Cut(line, ": ")
			sender, n, _ := strings.Cut(text, " ")
			if want := fmt.Sprint(next[sender]); n != want {
				t.Fatalf("%s: %q where %s %s was next: %q", names[d.Account().String()], line, sender, want, got)
			}
			next[sender]++
		}
	}

	// Dave is offline while Alice removes Carol and Bob writes.
	check.Until(t, time.Minute, "Dave registered with his mailbox", func() bool {
		st, err := dave.Client.Status(ctx)
		return err == nil && len(st.Mailboxes) > 0 && st.Mailboxes[0].Registered
	})
	held := func() int {
		st, err := hub.Client.Status(ctx)
		if err != nil || st.Mailbox == nil {
			return 0
		}
		return st.Mailbox.Waiting
	}
	before := held()
	net.Stop(dave)
	if g, err = alice.Client.GroupAction(ctx, g.ID, "remove", api.GroupAction{Members: []string{carol.Account().String()}}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	want := []string{"alice", "bob", "dave", "erin"}
	for _, d := range []*testnet.Node{alice, bob, laptop, erin} {
		check.Until(t, time.Minute, "the removal everywhere", func() bool { return slices.Equal(memberNames(t, d.Client, g.ID, names), want) })
	}
	check.Until(t, time.Minute, "Carol told", func() bool {
		in, err := carol.Client.Group(ctx, g.ID)
		return err == nil && in.Status == "removed"
	})
	if _, err := carol.Client.Send(ctx, g.ID, "still here?"); !api.IsCode(err, api.CodeForbidden) {
		t.Fatalf("Carol, removed, sends: %v", err)
	}
	if _, err := bob.Client.Send(ctx, g.ID, "after carol"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*testnet.Node{alice, laptop, erin} {
		check.Until(t, time.Minute, "Bob's message", func() bool { return slices.Contains(groupTexts(t, d.Client, g.ID, names), "bob: after carol") })
	}
	// Alice's removal, Bob's new key and his message, for Dave.
	check.Until(t, time.Minute, "what Dave missed at his mailbox", func() bool { return held() >= before+3 })
	net.Stop(alice)
	net.Stop(bob)
	net.Stop(laptop)
	dave = net.Start(dave)
	check.Until(t, 2*time.Minute, "Dave caught up from his mailbox", func() bool {
		return slices.Contains(groupTexts(t, dave.Client, g.ID, names), "bob: after carol")
	})
	if got := memberNames(t, dave.Client, g.ID, names); !slices.Equal(got, want) {
		t.Fatalf("Dave sees members %q, want %q", got, want)
	}
	if got := groupTexts(t, carol.Client, g.ID, names); slices.Contains(got, "bob: after carol") || len(got) != 18 {
		t.Fatalf("Carol, removed, has %q", got)
	}
}

// TestGroupFile: a file sent to a group reaches each member's node, which
// fetches it from the sender's device at once; its bytes read back whole
// there by the group and by id alone (what `save ID` asks). Then Alice,
// the admin, sets the group's timer (Bob, no admin, can't): a file sent
// under it is gone from every member's store and files directory when
// its time is up.
func TestGroupFile(t *testing.T) {
	net := testnet.New(t, 4, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}})
	ctx := ctxT(t, 3*time.Minute)
	alice, bob, carol := net.Nodes[1], net.Nodes[2], net.Nodes[3]
	g := groupOf(t, ctx, "Photos", alice, bob, carol)
	body := bytes.Repeat([]byte("the harbour at dawn "), 50000) // 1 MB
	m, err := alice.Client.SendFile(ctx, api.FileUpload{To: g.ID, Caption: "dawn", Name: "dawn.txt", Type: "text/plain", Body: bytes.NewReader(body)})
	if err != nil || m.File == nil || m.File.Name != "dawn.txt" || m.Peer != g.ID || m.Text != "dawn" {
		t.Fatalf("send a file to the group: %+v %v", m, err)
	}
	for _, nd := range []*testnet.Node{bob, carol} {
		check.Until(t, time.Minute, "the file fetched", func() bool {
			p, err := nd.Client.Messages(ctx, g.ID, "", 10)
			return err == nil && len(p.Messages) == 1 && p.Messages[0].File != nil && p.Messages[0].File.State == api.FileReady
		})
		for _, peer := range []string{g.ID, ""} {
			var got bytes.Buffer
			name, _, err := nd.Client.File(ctx, peer, m.ID, &got)
			if err != nil || name != "dawn.txt" || !bytes.Equal(got.Bytes(), body) {
				t.Fatalf("read the file back (peer %q): %q, %d bytes, %v", peer, name, got.Len(), err)
			}
		}
	}

	if _, err := bob.Client.SetTimer(ctx, g.ID, 5); !api.IsCode(err, api.CodeForbidden) {
		t.Fatalf("Bob, no admin, sets the timer: %v", err)
	}
	if set, err := alice.Client.SetTimer(ctx, g.ID, 5); err != nil || set.TimerSet == nil || *set.TimerSet != 5 {
		t.Fatalf("set the timer: %+v %v", set, err)
	}
	for _, nd := range []*testnet.Node{bob, carol} {
		check.Until(t, time.Minute, "the timer at each member", func() bool {
			in, err := nd.Client.Group(ctx, g.ID)
			return err == nil && in.Timer == 5
		})
	}
	brief, err := alice.Client.SendFile(ctx, api.FileUpload{To: g.ID, Name: "brief.txt", Type: "text/plain", Body: bytes.NewReader([]byte("gone soon"))})
	if err != nil || brief.ExpiresAt == nil {
		t.Fatalf("a file under the timer: %+v %v", brief, err)
	}
	filesIn := func(nd *testnet.Node) int {
		fs, _ := filepath.Glob(filepath.Join(nd.Dir, "files", "*"))
		return len(fs)
	}
	has := func(nd *testnet.Node) bool {
		p, err := nd.Client.Messages(ctx, g.ID, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(p.Messages, func(m api.Message) bool { return m.ID == brief.ID })
	}
	for _, nd := range []*testnet.Node{bob, carol} {
		check.Until(t, time.Minute, "the brief file fetched", func() bool { return has(nd) && filesIn(nd) == 2 })
	}
	for _, nd := range []*testnet.Node{alice, bob, carol} {
		check.Until(t, time.Minute, "the brief file gone, from the store and the disk", func() bool { return !has(nd) && filesIn(nd) == 1 })
	}

	// A file sent while Carol is offline is parked at her mailbox with its
	// carrier, and she gets it from there after Alice went offline too.
	if _, err := alice.Client.SetTimer(ctx, g.ID, 0); err != nil {
		t.Fatal(err)
	}
	check.Until(t, time.Minute, "the timer off at Carol, and Carol registered with her mailbox", func() bool {
		in, err := carol.Client.Group(ctx, g.ID)
		st, serr := carol.Client.Status(ctx)
		return err == nil && in.Timer == 0 && serr == nil && len(st.Mailboxes) > 0 && st.Mailboxes[0].Registered
	})
	hub := net.Nodes[0]
	parkedBefore := func() int {
		st, err := hub.Client.Status(ctx)
		if err != nil || st.Mailbox == nil {
			return -1
		}
		return st.Mailbox.Files
	}()
	net.Stop(carol)
	late := bytes.Repeat([]byte("the harbour at dusk "), 50000)
	lm, err := alice.Client.SendFile(ctx, api.FileUpload{To: g.ID, Name: "dusk.txt", Type: "text/plain", Body: bytes.NewReader(late)})
	if err != nil {
		t.Fatal(err)
	}
	// Whole: Alice goes offline next, and a file cut short there would
	// wait for her.
	check.Until(t, time.Minute, "the file parked whole at Carol's mailbox", func() bool {
		st, err := hub.Client.Status(ctx)
		return err == nil && st.Mailbox != nil && st.Mailbox.Files > parkedBefore && st.Mailbox.PartialFiles == 0
	})
	net.Stop(alice)
	carol = net.Start(carol)
	check.Until(t, 2*time.Minute, "the file at Carol, from her mailbox", func() bool {
		var got bytes.Buffer
		_, _, err := carol.Client.File(ctx, g.ID, lm.ID, &got)
		return err == nil && bytes.Equal(got.Bytes(), late)
	})
}

// TestGroupActions: between members on their own nodes, a reply quotes a
// message of the group, reactions are one per member, an edit and a delete
// for everyone are the sender's own, and each member sees the same; the
// deleted message's file is gone from every member's files directory.
func TestGroupActions(t *testing.T) {
	net := testnet.New(t, 4, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}})
	ctx := ctxT(t, 3*time.Minute)
	alice, bob, carol := net.Nodes[1], net.Nodes[2], net.Nodes[3]
	g := groupOf(t, ctx, "Trip", alice, bob, carol)
	q, err := alice.Client.Send(ctx, g.ID, "train or car?")
	if err != nil {
		t.Fatal(err)
	}
	f, err := alice.Client.SendFile(ctx, api.FileUpload{To: g.ID, Name: "map.txt", Type: "text/plain", Body: strings.NewReader("the route")})
	if err != nil {
		t.Fatal(err)
	}
	filesIn := func(nd *testnet.Node) int {
		fs, _ := filepath.Glob(filepath.Join(nd.Dir, "files", "*"))
		return len(fs)
	}
	byID := func(nd *testnet.Node) map[string]api.Message {
		p, err := nd.Client.Messages(ctx, g.ID, "", 20)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]api.Message{}
		for _, m := range p.Messages {
			out[m.ID] = m
		}
		return out
	}
	for _, nd := range []*testnet.Node{bob, carol} {
		check.Until(t, time.Minute, "both messages and the file", func() bool { _, ok := byID(nd)[q.ID]; return ok && filesIn(nd) == 1 })
	}
	r, err := bob.Client.Reply(ctx, g.ID, "train", q.ID)
	if err != nil || r.Quote == nil || r.Quote.Text != "train or car?" {
		t.Fatalf("Bob's reply: %+v %v", r, err)
	}
	for _, who := range []*testnet.Node{bob, carol} {
		if _, err := who.Client.Act(ctx, g.ID, q.ID, "react", api.ActionRequest{Emoji: "👍"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.Client.Act(ctx, g.ID, q.ID, "edit", api.ActionRequest{Text: "train or bus?"}); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Client.Act(ctx, g.ID, q.ID, "edit", api.ActionRequest{Text: "car"}); !api.IsCode(err, api.CodeForbidden) {
		t.Fatalf("Carol edits Alice's message: %v", err)
	}
	if _, err := alice.Client.Act(ctx, g.ID, f.ID, "delete", api.ActionRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, nd := range []*testnet.Node{alice, bob, carol} {
		var ms map[string]api.Message
		check.Until(t, time.Minute, "the same actions at every member", func() bool {
			ms = byID(nd)
			return len(ms[q.ID].Reactions) == 2 && ms[q.ID].Edited && ms[f.ID].Deleted && ms[r.ID].ReplyTo == q.ID && filesIn(nd) == 0
		})
		if ms[q.ID].Text != "train or bus?" || ms[f.ID].File != nil || ms[r.ID].Quote == nil || ms[r.ID].Quote.Text != "train or bus?" {
			t.Fatalf("%s sees %+v", nd.Account(), ms)
		}
	}
	// Bob and Carol read the group: Alice's question shows "read"; Bob's
	// reply, which Alice and Carol have, at least "delivered".
	for _, nd := range []*testnet.Node{bob, carol} {
		if err := nd.Client.MarkRead(ctx, g.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	check.Until(t, time.Minute, "Alice's message read by both, Bob's reply delivered to both", func() bool {
		am, bm := byID(alice)[q.ID], byID(bob)[r.ID]
		return am.State == "read" && (bm.State == "delivered" || bm.State == "read")
	})
	// Who, by name, through the API: for its sender only.
	bc := []string{bob.Account().String(), carol.Account().String()}
	slices.Sort(bc)
	info, err := alice.Client.MessageInfo(ctx, g.ID, q.ID)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(info.DeliveredTo)
	slices.Sort(info.ReadBy)
	if info.Recipients != 2 || !slices.Equal(info.DeliveredTo, bc) || !slices.Equal(info.ReadBy, bc) {
		t.Fatalf("Alice's message info: %+v; want delivered to and read by Bob and Carol", info)
	}
	if _, err := bob.Client.MessageInfo(ctx, g.ID, q.ID); !api.IsCode(err, api.CodeNotFound) {
		t.Fatalf("Bob asks who read Alice's message: %v, want %s", err, api.CodeNotFound)
	}
}

// groupOf has admin create a group named name, invite members and each
// of them join it.
func groupOf(t *testing.T, ctx context.Context, name string, admin *testnet.Node, members ...*testnet.Node) api.Group {
	t.Helper()
	g, err := admin.Client.CreateGroup(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, nd := range members {
		ids = append(ids, nd.Account().String())
	}
	if _, err := admin.Client.GroupAction(ctx, g.ID, "invite", api.GroupAction{Members: ids}); err != nil {
		t.Fatal(err)
	}
	for _, nd := range members {
		check.Eventually(t, time.Minute, func() error {
			_, err := nd.Client.GroupAction(ctx, g.ID, "join", api.GroupAction{})
			return err
		})
	}
	return g
}

// TestLinkBringsGroups: a laptop Alice links after she joined a group
// shows it at once with its messages (the link's history carries them,
// as it carries conversations), reads what Bob writes next and writes
// what Bob and her first device read.
func TestLinkBringsGroups(t *testing.T) {
	net, alice, bob, _ := aliceWithBob(t)
	ctx := ctxT(t, 4*time.Minute)
	g := groupOf(t, ctx, "Trip", alice, bob)
	names := map[string]string{alice.Account().String(): "alice", bob.Account().String(): "bob"}
	if _, err := alice.Client.Send(ctx, g.ID, "train or car?"); err != nil {
		t.Fatal(err)
	}
	check.Until(t, time.Minute, "Alice's message at Bob", func() bool { return len(groupTexts(t, bob.Client, g.ID, names)) == 1 })
	if _, err := bob.Client.Send(ctx, g.ID, "train"); err != nil {
		t.Fatal(err)
	}
	before := []string{"alice: train or car?", "bob: train"}
	check.Until(t, time.Minute, "Bob's reply at Alice", func() bool { return slices.Equal(groupTexts(t, alice.Client, g.ID, names), before) })

	_, cfg, st, err := linkDevice(t, ctx, net, alice, "laptop", true, func(sas string) string { return sas })
	if err != nil || st.State != api.LinkLinked {
		t.Fatalf("link the laptop: %v %+v", err, st)
	}
	laptop := net.StartOn(cfg)
	// Before the laptop is on the network: only the link brought these.
	if in, err := laptop.Client.Group(ctx, g.ID); err != nil || in.Name != "Trip" || len(in.Members) != 2 {
		t.Fatalf("the group on the laptop: %+v %v", in, err)
	}
	if got := groupTexts(t, laptop.Client, g.ID, names); !slices.Equal(got, before) {
		t.Fatalf("the group's history on the laptop: %q, want %q", got, before)
	}
	check.Until(t, time.Minute, "the laptop's record published", laptop.Published)
	check.Until(t, time.Minute, "Bob reads Alice's record with the laptop", func() bool {
		w, err := bob.Client.Whois(ctx, alice.Account().String())
		return err == nil && len(w.Devices) == 2
	})
	// Bob's node reads the record again at its next send once what it
	// read is older than ViewAge (1 s here). A group message it sends
	// before that does not reach the laptop (docs/GROUPS.md §6, "Left
	// open"), so Bob writes once a second is over.
	time.Sleep(1500 * time.Millisecond)

	if _, err := bob.Client.Send(ctx, g.ID, "9:40 from the central station"); err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.Client.Send(ctx, g.ID, "booked, from the laptop"); err != nil {
		t.Fatal(err)
	}
	for _, nd := range []*testnet.Node{alice, bob, laptop} {
		check.Eventually(t, 2*time.Minute, func() error {
			got := groupTexts(t, nd.Client, g.ID, names)
			if len(got) != 4 || !slices.Equal(got[:2], before) ||
				!slices.Contains(got, "bob: 9:40 from the central station") || !slices.Contains(got, "alice: booked, from the laptop") {
				return fmt.Errorf("the group on %s: %q, want both new messages after the first two", filepath.Base(nd.Dir), got)
			}
			return nil
		})
	}
}
