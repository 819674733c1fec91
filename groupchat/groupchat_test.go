package groupchat

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// lastCarrier is the last carrier waiting for d.
func (d *dev) lastCarrier() delivery {
	d.n.mu.Lock()
	defer d.n.mu.Unlock()
	return d.inbox[len(d.inbox)-1]
}

// TestGroupChat: Alice makes a group and adds Bob (two devices), Carol
// and Dave; each sees an invitation and joins. Every message reaches every
// member device once, in each sender's order, a device's own account's
// messages as its own. Dave is removed: every member sees the same list,
// he is told, and he opens nothing sent after. Bob's laptop is offline
// while Carol is removed, and catches up.
func TestGroupChat(t *testing.T) {
	n := newNet(t)
	alice, bob, carol, dave := n.account("alice"), n.account("bob"), n.account("carol"), n.account("dave")
	laptop := n.device("bob/laptop", bob.key)
	everyone := []*dev{alice, bob, laptop, carol, dave}

	g := must[Info](t)(alice.svc.Create(alice.ctx(), "Friends")).ID
	must[Info](t)(alice.svc.Invite(alice.ctx(), g, bob.pub(), carol.pub(), dave.pub()))
	n.deliver()
	for _, d := range everyone[1:] {
		in := must[Info](t)(d.info(g))
		if in.Status != Invited || in.InvitedBy != alice.acct() || in.Name != "Friends" || len(in.Members) != 4 || in.Admin {
			t.Fatalf("%s sees %+v, want an invitation from Alice to Friends, of 4", d, in)
		}
	}
	for _, d := range everyone[1:] {
		must[Info](t)(d.svc.Join(d.ctx(), g))
	}
	send := func(d *dev, text string) Message {
		t.Helper()
		m := must[Message](t)(d.svc.Send(d.ctx(), g, []byte(text), nil))
		n.deliver()
		return m
	}
	send(alice, "hello all")
	send(bob, "hi from bob")
	send(laptop, "and from bob's laptop")
	send(carol, "carol here")
	send(alice, "one more")
	want := []string{"alice: hello all", "bob: hi from bob", "bob: and from bob's laptop", "carol: carol here", "alice: one more"}
	for _, d := range everyone {
		if got := d.texts(g); !slices.Equal(got, want) {
			t.Fatalf("%s has %q, want %q", d, got, want)
		}
	}
	if r := n.refused(); len(r) > 0 {
		t.Fatalf("refused: %q", r)
	}
	for _, m := range laptop.messages(g) {
		if m.Out != (m.From == bob.acct()) {
			t.Fatalf("Bob's laptop shows %q as out=%v", m.Text, m.Out)
		}
	}
	if in := must[Info](t)(carol.info(g)); in.Unread != 4 {
		t.Fatalf("Carol has %d unread, want 4 (hers is read)", in.Unread)
	}

	// Dave is removed. A message Carol sends after it is sealed under a
	// key Dave never got: given its carrier, his node refuses it, and the
	// key he had for Carol's messages (which a hostile node would keep)
	// opens nothing.
	var kept chain
	if err := dave.db.View(func(tx *store.Tx) error {
		var ok bool
		var err error
		kept, ok, err = in(tx).chain(g, carol.acct(), carol.id)
		if err == nil && !ok {
			err = errors.New("none")
		}
		return err
	}); err != nil {
		t.Fatalf("Dave's key for Carol's messages: %v", err)
	}
	must[Info](t)(alice.svc.Remove(alice.ctx(), g, dave.pub()))
	n.deliver()
	if in := must[Info](t)(dave.info(g)); in.Status != Removed {
		t.Fatalf("Dave's status is %v, want removed", in.Status)
	}
	wantMembers := []string{"alice", "bob", "carol"}
	for _, d := range everyone {
		if got := d.memberNames(g); !slices.Equal(got, wantMembers) {
			t.Fatalf("%s sees members %q, want %q", d, got, wantMembers)
		}
	}
	must[Message](t)(carol.svc.Send(carol.ctx(), g, []byte("after dave"), nil))
	leaked := alice.lastCarrier()
	n.deliver()
	if err := dave.svc.Receive(leaked.from, leaked.dev, leaked.body, false); err == nil {
		t.Fatal("Dave, removed, took a message sent after his removal")
	}
	lc, err := unmarshalCarrier(leaked.body)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := e2e.UnmarshalReceiverChain(kept.chain)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := rc.Open(messageAD(g, lc.epoch, carol.acct(), carol.id), lc.sealed); err == nil {
		t.Fatalf("Dave's old key opened Carol's message sent after his removal: %q", pt)
	}
	if got := dave.texts(g); len(got) != len(want) {
		t.Fatalf("Dave, removed, has %q", got)
	}
	if _, err := dave.svc.Send(dave.ctx(), g, []byte("still here?"), nil); err == nil {
		t.Fatal("Dave, removed, sent to the group")
	}
	want = append(want, "carol: after dave")

	// Bob's laptop is offline while Carol is removed and Bob writes; it
	// comes back and catches up (its inbox stands in for its mailbox).
	laptop.offline = true
	must[Info](t)(alice.svc.Remove(alice.ctx(), g, carol.pub()))
	send(bob, "just us")
	laptop.offline = false
	n.deliver()
	want = append(want, "bob: just us")
	for _, d := range []*dev{alice, bob, laptop} {
		if got := d.texts(g); !slices.Equal(got, want) {
			t.Fatalf("%s has %q, want %q", d, got, want)
		}
		if got := d.memberNames(g); !slices.Equal(got, []string{"alice", "bob"}) {
			t.Fatalf("%s sees members %q", d, got)
		}
	}
	// Bob wrote before he heard of the removal, so his key and message
	// went to Carol too; her node, which had heard, refused them.
	if got := carol.texts(g); slices.Contains(got, "bob: just us") {
		t.Fatal("Carol, removed, has Bob's message sent after")
	}
	for _, r := range n.refused() {
		if !strings.HasPrefix(r, "carol: not a member of this group") {
			t.Fatalf("refused: %q", r)
		}
	}
}

// TestGroupHostile: what the issue lists, each refused with nothing
// stored: an operation whose signature does not verify, or by someone not
// allowed; a replayed one (changes nothing); a message or sender key from
// a non-member, or for a group the device is not in; a message under an
// epoch that ended; malformed carriers.
func TestGroupHostile(t *testing.T) {
	n := newNet(t)
	alice, bob, carol, eve := n.account("alice"), n.account("bob"), n.account("carol"), n.account("eve")
	g := must[Info](t)(alice.svc.Create(alice.ctx(), "Club")).ID
	must[Info](t)(alice.svc.Invite(alice.ctx(), g, bob.pub(), carol.pub()))
	n.deliver()
	must[Info](t)(bob.svc.Join(bob.ctx(), g))
	must[Info](t)(carol.svc.Join(carol.ctx(), g))

	refuses := func(what string, to *dev, from *dev, body []byte, reason string) {
		t.Helper()
		before := must[Info](t)(to.info(g))
		msgs := len(to.messages(g))
		err := to.svc.Receive(from.acct(), from.id, body, false)
		if err == nil || !strings.Contains(err.Error(), reason) {
			t.Fatalf("%s: %v, want refused: %q", what, err, reason)
		}
		after := must[Info](t)(to.info(g))
		if !slices.Equal(to.memberNames(g), memberNamesOf(n, before)) || after.Epoch != before.Epoch || len(to.messages(g)) != msgs {
			t.Fatalf("%s changed the group: %+v -> %+v", what, before, after)
		}
	}

	// Carol, a member but no admin, can't remove Bob: her node refuses to
	// sign it, and an admin's operation changed in transit fails its
	// signature.
	if _, err := carol.svc.Remove(carol.ctx(), g, bob.pub()); err == nil {
		t.Fatal("Carol, no admin, removed Bob")
	}
	must[Info](t)(alice.svc.Rename(alice.ctx(), g, "Club 2"))
	op := bob.lastCarrier()
	c, err := unmarshalCarrier(op.body)
	if err != nil {
		t.Fatal(err)
	}
	o, err := group.Unmarshal(c.ops[0])
	if err != nil {
		t.Fatal(err)
	}
	o.Name = "Eve's club"
	forged := carrier{kind: kindOps, group: g, ops: [][]byte{o.Marshal()}}
	refuses("a forged operation", bob, alice, forged.marshal(), "not signed")
	n.deliver()
	// The same operation again changes nothing and is no error.
	if err := bob.svc.Receive(op.from, op.dev, op.body, false); err != nil {
		t.Fatalf("a replayed operation: %v", err)
	}
	if in := must[Info](t)(bob.info(g)); in.Name != "Club 2" {
		t.Fatalf("the group is named %q", in.Name)
	}

	// Eve is in no group: a sender key or a message for it from a member
	// is refused at her node; hers are refused at the members'.
	must[Message](t)(alice.svc.Send(alice.ctx(), g, []byte("members only"), nil))
	msgCarrier := bob.lastCarrier()
	bob.n.mu.Lock()
	keyCarrier := bob.inbox[len(bob.inbox)-2]
	bob.n.mu.Unlock()
	n.deliver()
	if err := eve.svc.Receive(alice.acct(), alice.id, keyCarrier.body, false); err == nil || !strings.Contains(err.Error(), ErrNotMember.Error()) {
		t.Fatalf("a sender key for a group Eve is not in: %v", err)
	}
	refuses("a sender key from a non-member", bob, eve, keyCarrier.body, "not a member")
	refuses("a message from a non-member", bob, eve, msgCarrier.body, "not a member")

	// Carol is removed; her message, sealed under the old epoch's key,
	// is refused at Bob's.
	must[Message](t)(carol.svc.Send(carol.ctx(), g, []byte("before"), nil))
	carolMsg := bob.lastCarrier()
	bob.n.mu.Lock()
	bob.inbox = bob.inbox[:len(bob.inbox)-2] // her key and message, held back
	bob.n.mu.Unlock()
	must[Info](t)(alice.svc.Remove(alice.ctx(), g, carol.pub()))
	n.deliver()
	if r := n.refused(); len(r) != 2 || r[0] != r[1] || !strings.Contains(r[0], "alice: the sender is not a member") {
		t.Fatalf("Alice, who removed Carol, took her key or message: refused %q", r)
	}
	refuses("a message from a removed member", bob, carol, carolMsg.body, "not a member")

	// Malformed bytes.
	for _, b := range [][]byte{nil, {0xff}, (&carrier{kind: kindMessage, group: g}).marshal(), (&carrier{kind: 9, group: g, sealed: []byte{1}}).marshal()} {
		if err := bob.svc.Receive(alice.acct(), alice.id, b, false); err == nil {
			t.Fatalf("malformed carrier %x taken", b)
		}
	}
	if r := n.refused(); len(r) > 0 {
		t.Fatalf("refused in passing: %q", r)
	}
}

func memberNamesOf(n *net, in Info) []string {
	var out []string
	for _, m := range in.Members {
		out = append(out, n.nameOf(m.Account.ID()))
	}
	slices.Sort(out)
	return out
}

// TestGroupFork: Alice removes Carol while Bob, who has not heard, leaves:
// the two operations fork the log, Alice's wins, and Bob's node signs his
// leave again on the new head, so every member ends with the same list.
// Carol, removed and then added again, sees an invitation.
func TestGroupFork(t *testing.T) {
	n := newNet(t)
	alice, bob, carol := n.account("alice"), n.account("bob"), n.account("carol")
	g := must[Info](t)(alice.svc.Create(alice.ctx(), "Fork")).ID
	must[Info](t)(alice.svc.Invite(alice.ctx(), g, bob.pub(), carol.pub()))
	n.deliver()
	must[Info](t)(bob.svc.Join(bob.ctx(), g))
	must[Info](t)(carol.svc.Join(carol.ctx(), g))
	must[Info](t)(alice.svc.Remove(alice.ctx(), g, carol.pub()))
	must[Info](t)(bob.svc.Leave(bob.ctx(), g))
	n.deliver()
	// Bob's re-signed leave goes out from his sender goroutine.
	for range 100 {
		if len(alice.memberNames(g)) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
		n.deliver()
	}
	for _, d := range []*dev{alice, bob, carol} {
		if got := d.memberNames(g); !slices.Equal(got, []string{"alice"}) {
			t.Fatalf("%s sees %q, want alice alone", d, got)
		}
	}
	for d, want := range map[*dev]Status{alice: Joined, bob: Left, carol: Removed} {
		if in := must[Info](t)(d.info(g)); in.Status != want {
			t.Fatalf("%s is %v, want %v", d, in.Status, want)
		}
	}
	must[Info](t)(alice.svc.Invite(alice.ctx(), g, carol.pub()))
	n.deliver()
	if in := must[Info](t)(carol.info(g)); in.Status != Invited || in.InvitedBy != alice.acct() {
		t.Fatalf("Carol, added again, sees %+v", in)
	}
	must[Info](t)(carol.svc.Join(carol.ctx(), g))
	must[Message](t)(carol.svc.Send(carol.ctx(), g, []byte("back"), nil))
	n.deliver()
	if got := alice.texts(g); !slices.Equal(got, []string{"carol: back"}) {
		t.Fatalf("Alice has %q", got)
	}
	if r := n.refused(); len(r) > 0 {
		t.Fatalf("refused: %q", r)
	}
}

// TestGroupReinvite: whether an invitation is a stranger's is decided
// anew each time this account is added, from who added it this time. Bob
// declines Carol's invitation (a contact's); Alice, a stranger to him,
// adds him again: hers waits among his requests. He declines; Carol adds
// him again: hers is a contact's, not a request.
func TestGroupReinvite(t *testing.T) {
	n := newNet(t)
	alice, bob, carol := n.account("alice"), n.account("bob"), n.account("carol")
	n.stranger(bob, alice, true)
	g := must[Info](t)(alice.svc.Create(alice.ctx(), "Club")).ID
	must[Info](t)(alice.svc.Invite(alice.ctx(), g, carol.pub()))
	n.deliver()
	must[Info](t)(carol.svc.Join(carol.ctx(), g))
	must[Info](t)(alice.svc.SetAdmin(alice.ctx(), g, carol.pub(), true))
	n.deliver()

	invited := func(by *dev, request bool) {
		t.Helper()
		in := must[Info](t)(bob.info(g))
		if in.Status != Invited || in.InvitedBy != by.acct() || in.Request != request {
			t.Fatalf("Bob sees status %v, invited by %s, request %v; want invited by %s, request %v",
				in.Status, n.nameOf(in.InvitedBy), in.Request, by, request)
		}
	}
	must[Info](t)(carol.svc.Invite(carol.ctx(), g, bob.pub()))
	n.deliver()
	invited(carol, false)
	must[Info](t)(bob.svc.Leave(bob.ctx(), g))
	n.deliver()

	must[Info](t)(alice.svc.Invite(alice.ctx(), g, bob.pub()))
	n.deliver()
	invited(alice, true)
	must[Info](t)(bob.svc.Leave(bob.ctx(), g))
	n.deliver()

	must[Info](t)(carol.svc.Invite(carol.ctx(), g, bob.pub()))
	n.deliver()
	invited(carol, false)
	must[Info](t)(bob.svc.Join(bob.ctx(), g))
	if in := must[Info](t)(bob.info(g)); in.Status != Joined || in.Request {
		t.Fatalf("Bob, joined, sees %v, request %v", in.Status, in.Request)
	}
	if r := n.refused(); len(r) > 0 {
		t.Fatalf("refused: %q", r)
	}
}

// settle delivers until nothing more comes from the sender goroutines.
func (n *net) settle() {
	for range 50 {
		n.deliver()
		time.Sleep(10 * time.Millisecond)
		n.mu.Lock()
		busy := false
		for _, ds := range n.accts {
			for _, d := range ds {
				busy = busy || (!d.offline && len(d.inbox) > 0)
			}
		}
		n.mu.Unlock()
		if !busy {
			n.deliver()
			return
		}
	}
}

// TestGroupNewDevice: Bob links a laptop after he joined a group and Alice
// shared her key with his account. His first device hands the laptop the
// group; the laptop asks Alice, and Bob's first device, for the keys of
// messages it can't open, and reads them from then on. So does a desk
// linked right after the laptop.
func TestGroupNewDevice(t *testing.T) {
	n := newNet(t)
	alice, bob := n.account("alice"), n.account("bob")
	g := must[Info](t)(alice.svc.Create(alice.ctx(), "Later"))
	must[Info](t)(alice.svc.Invite(alice.ctx(), g.ID, bob.pub()))
	n.deliver()
	must[Info](t)(bob.svc.Join(bob.ctx(), g.ID))
	must[Message](t)(alice.svc.Send(alice.ctx(), g.ID, []byte("one"), nil))
	n.deliver()

	laptop := n.device("bob/laptop", bob.key)
	if err := bob.svc.ShareWithSiblings(bob.ctx()); err != nil {
		t.Fatal(err)
	}
	n.settle()
	if in := must[Info](t)(laptop.info(g.ID)); in.Status != Joined {
		t.Fatalf("the laptop sees the group %v, want joined", in.Status)
	}
	must[Message](t)(alice.svc.Send(alice.ctx(), g.ID, []byte("two"), nil))
	must[Message](t)(bob.svc.Send(bob.ctx(), g.ID, []byte("three"), nil))
	n.settle()
	// "one" went out before the laptop was linked: it never came to it.
	// What came waited for the keys (the two senders' in either order).
	got := laptop.texts(g.ID)
	slices.Sort(got)
	if !slices.Equal(got, []string{"alice: two", "bob: three"}) {
		t.Fatalf("the laptop has %q", got)
	}
	// A device linked right after (Alice's node answered the laptop's
	// asks a moment ago) is answered too.
	desk := n.device("bob/desk", bob.key)
	if err := bob.svc.ShareWithSiblings(bob.ctx()); err != nil {
		t.Fatal(err)
	}
	n.settle()
	must[Message](t)(alice.svc.Send(alice.ctx(), g.ID, []byte("four"), nil))
	n.settle()
	if got := desk.texts(g.ID); !slices.Equal(got, []string{"alice: four"}) {
		t.Fatalf("the desk has %q", got)
	}
	for _, r := range n.refused() {
		t.Fatalf("refused: %q", r)
	}
}

// TestGroupTimer: an admin sets the group's timer; a member who is no
// admin can't. What is sent under it disappears from every member device
// when its time is up (EventDeleted says so, for the node to delete its
// file), and the same carrier coming again shows nothing.
func TestGroupTimer(t *testing.T) {
	n := newNet(t)
	alice, bob := n.account("alice"), n.account("bob")
	g := must[Info](t)(alice.svc.Create(alice.ctx(), "Brief")).ID
	must[Info](t)(alice.svc.Invite(alice.ctx(), g, bob.pub()))
	n.deliver()
	must[Info](t)(bob.svc.Join(bob.ctx(), g))
	if _, err := bob.svc.SetTimer(bob.ctx(), g, group.MinTimer); err == nil {
		t.Fatal("Bob, no admin, set the timer")
	}
	must[Message](t)(alice.svc.Send(alice.ctx(), g, []byte("stays"), nil))
	must[Info](t)(alice.svc.SetTimer(alice.ctx(), g, 10*time.Second))
	n.deliver()
	if in := must[Info](t)(bob.info(g)); in.Timer != 10*time.Second {
		t.Fatalf("Bob's group timer is %v", in.Timer)
	}
	must[Message](t)(alice.svc.Send(alice.ctx(), g, []byte("vanishes"), nil))
	carrier := bob.lastCarrier()
	n.deliver()
	for _, d := range []*dev{alice, bob} {
		ms := d.messages(g)
		if len(ms) != 2 || !ms[0].Expires.IsZero() || ms[1].Expires.IsZero() {
			t.Fatalf("%s has %+v, want the second expiring", d, ms)
		}
		d.svc.sweep()
		if len(d.messages(g)) != 2 {
			t.Fatalf("%s: a message gone before its time", d)
		}
	}
	n.skew.Store(int64(11 * time.Second))
	for _, d := range []*dev{alice, bob} {
		d.svc.sweep()
		if got := d.texts(g); !slices.Equal(got, []string{"alice: stays"}) {
			t.Fatalf("%s has %q after the timer", d, got)
		}
		d.evMu.Lock()
		deleted := 0
		for _, e := range d.events {
			if e.Kind == EventDeleted && string(e.Message.Text) == "vanishes" {
				deleted++
			}
		}
		d.evMu.Unlock()
		if deleted != 1 {
			t.Fatalf("%s: %d deletion events", d, deleted)
		}
	}
	if err := bob.svc.Receive(carrier.from, carrier.dev, carrier.body, false); err != nil {
		t.Fatal(err)
	}
	if got := bob.texts(g); len(got) != 1 {
		t.Fatalf("the expired message came back: %q", got)
	}
}

// TestGroupActions: a reply quotes a message of the group; a reaction is
// anyone's, one per member, on every member device; an edit or a delete
// for everyone only its sender's, within EditWindow; a delete drops the
// text and the attachment everywhere; a forged or replayed action changes
// nothing.
func TestGroupActions(t *testing.T) {
	n := newNet(t)
	alice, bob, carol := n.account("alice"), n.account("bob"), n.account("carol")
	laptop := n.device("bob's laptop", bob.key)
	g := must[Info](t)(alice.svc.Create(alice.ctx(), "Plans")).ID
	must[Info](t)(alice.svc.Invite(alice.ctx(), g, bob.pub(), carol.pub()))
	n.deliver()
	must[Info](t)(bob.svc.Join(bob.ctx(), g))
	must[Info](t)(carol.svc.Join(carol.ctx(), g))
	n.deliver()
	first := must[Message](t)(alice.svc.Send(alice.ctx(), g, []byte("dinner at 8?"), nil))
	photo := must[Message](t)(alice.svc.Send(alice.ctx(), g, nil, []byte("a file reference")))
	n.deliver()

	reply := must[Message](t)(bob.svc.SendReply(bob.ctx(), g, []byte("yes!"), nil, first.ID))
	if _, err := bob.svc.SendReply(bob.ctx(), g, []byte("to what?"), nil, strings.Repeat("ab", 16)); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("a reply to no message: %v", err)
	}
	must[Message](t)(bob.svc.Act(bob.ctx(), g, Action{Kind: ActionReact, Target: first.ID, Emoji: "👍"}, nil))
	must[Message](t)(carol.svc.Act(carol.ctx(), g, Action{Kind: ActionReact, Target: first.ID, Emoji: "🎉"}, nil))
	// Bob changes his mind: one reaction per member.
	must[Message](t)(bob.svc.Act(bob.ctx(), g, Action{Kind: ActionReact, Target: first.ID, Emoji: "❤️"}, nil))
	must[Message](t)(alice.svc.Act(alice.ctx(), g, Action{Kind: ActionEdit, Target: first.ID}, []byte("dinner at 9?")))
	n.deliver()
	for _, err := range []error{
		second(carol.svc.Act(carol.ctx(), g, Action{Kind: ActionEdit, Target: first.ID}, []byte("at mine"))),
		second(carol.svc.Act(carol.ctx(), g, Action{Kind: ActionDelete, Target: reply.ID}, nil)),
	} {
		if !errors.Is(err, ErrNotYours) {
			t.Fatalf("Carol changes someone else's message: %v", err)
		}
	}
	if _, err := alice.svc.Act(alice.ctx(), g, Action{Kind: ActionEdit, Target: photo.ID}, []byte("text")); !errors.Is(err, ErrTooLate) {
		t.Fatalf("an edit of a file: %v", err)
	}
	if _, err := alice.svc.Act(alice.ctx(), g, Action{Kind: ActionEdit, Target: first.ID, Emoji: "x"}, []byte("x")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an edit with an emoji: %v", err)
	}
	del := must[Message](t)(alice.svc.Act(alice.ctx(), g, Action{Kind: ActionDelete, Target: photo.ID}, nil))
	if !del.Deleted || del.File != nil {
		t.Fatalf("the deleted photo at Alice: %+v", del)
	}
	n.deliver()
	if r := n.refused(); len(r) != 0 {
		t.Fatalf("refused: %q", r)
	}
	for _, d := range []*dev{alice, bob, laptop, carol} {
		ms := d.messages(g)
		if len(ms) != 3 {
			t.Fatalf("%s has %d messages, want 3 (actions are not shown): %+v", d, len(ms), ms)
		}
		byID := map[string]Message{}
		for _, m := range ms {
			byID[m.ID] = m
		}
		f, p, r := byID[first.ID], byID[photo.ID], byID[reply.ID]
		reacts := map[string]string{}
		for _, x := range f.Reactions {
			reacts[n.nameOf(x.From)] = x.Emoji
		}
		if string(f.Text) != "dinner at 9?" || !f.Edited || len(reacts) != 2 || reacts["bob"] != "❤️" || reacts["carol"] != "🎉" {
			t.Fatalf("%s: the first message is %q edited %v with reactions %v", d, f.Text, f.Edited, reacts)
		}
		if !p.Deleted || p.File != nil || p.Text != nil {
			t.Fatalf("%s: the deleted photo is %+v", d, p)
		}
		if r.ReplyTo != first.ID || string(r.Text) != "yes!" {
			t.Fatalf("%s: the reply is %+v", d, r)
		}
	}
	// The delete named the attachment that went, on each device.
	for _, d := range []*dev{bob, laptop, carol} {
		d.evMu.Lock()
		removed := slices.ContainsFunc(d.events, func(e Event) bool { return string(e.Removed) == "a file reference" })
		d.evMu.Unlock()
		if !removed {
			t.Fatalf("%s was not told the deleted photo's file goes", d)
		}
	}
	// Carol's reaction and Alice's edit reach Bob's phone before Alice's
	// message does (the members' carriers are not ordered among senders):
	// they wait, and the message shows with both when it comes.
	n.mu.Lock()
	bob.offline = true
	n.mu.Unlock()
	late := must[Message](t)(alice.svc.Send(alice.ctx(), g, []byte("bring umbrellas"), nil))
	n.deliver()
	must[Message](t)(carol.svc.Act(carol.ctx(), g, Action{Kind: ActionReact, Target: late.ID, Emoji: "☔"}, nil))
	must[Message](t)(alice.svc.Act(alice.ctx(), g, Action{Kind: ActionEdit, Target: late.ID}, []byte("bring umbrellas!")))
	n.mu.Lock()
	// Alice's message first in Bob's inbox: put it last.
	i := slices.IndexFunc(bob.inbox, func(x delivery) bool { return x.from == alice.acct() })
	msgFirst := bob.inbox[i]
	bob.inbox = append(slices.Delete(bob.inbox, i, i+1), msgFirst)
	bob.offline = false
	n.mu.Unlock()
	n.deliver()
	if r := n.refused(); len(r) != 0 {
		t.Fatalf("refused: %q", r)
	}
	for _, d := range []*dev{bob, laptop} {
		var got Message
		for _, m := range d.messages(g) {
			if m.ID == late.ID {
				got = m
			}
		}
		if string(got.Text) != "bring umbrellas!" || !got.Edited || len(got.Reactions) != 1 || got.Reactions[0].Emoji != "☔" {
			t.Fatalf("%s: the message whose actions came first is %q edited %v reactions %+v", d, got.Text, got.Edited, got.Reactions)
		}
	}

	// Past the window, Alice can no longer edit.
	n.skew.Store(int64(EditWindow + time.Minute))
	if _, err := alice.svc.Act(alice.ctx(), g, Action{Kind: ActionEdit, Target: first.ID}, []byte("never mind")); !errors.Is(err, ErrTooLate) {
		t.Fatalf("an edit past the window: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// TestGroupReceipts: a message's sender learns when every other member
// account has it and when every one read it, on each of its devices; an
// account with two devices counts once; a receipt from someone who is not
// a member is refused.
func TestGroupReceipts(t *testing.T) {
	n := newNet(t)
	alice, bob, carol, dave := n.account("alice"), n.account("bob"), n.account("carol"), n.account("dave")
	bobLaptop := n.device("bob's laptop", bob.key)
	aliceLaptop := n.device("alice's laptop", alice.key)
	g := must[Info](t)(alice.svc.Create(alice.ctx(), "Receipts")).ID
	must[Info](t)(alice.svc.Invite(alice.ctx(), g, bob.pub(), carol.pub()))
	n.deliver()
	must[Info](t)(bob.svc.Join(bob.ctx(), g))
	must[Info](t)(carol.svc.Join(carol.ctx(), g))
	n.deliver()
	sent := must[Message](t)(alice.svc.Send(alice.ctx(), g, []byte("who has it?"), nil))
	if sent.Recipients != 2 || sent.Delivered != 0 || sent.ReadBy != 0 {
		t.Fatalf("just sent: %+v", sent)
	}
	state := func(d *dev) Message {
		for _, m := range d.messages(g) {
			if m.ID == sent.ID {
				return m
			}
		}
		return Message{}
	}
	// Receipts go from each device's sender goroutine: deliver until
	// they have come.
	until := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within 10s: %s", what)
			}
			n.deliver()
		}
	}
	for _, d := range []*dev{alice, aliceLaptop} {
		until(d.name+" sees it delivered to both", func() bool { m := state(d); return m.Delivered == 2 && m.ReadBy == 0 })
	}
	if err := bob.svc.MarkRead(g); err != nil {
		t.Fatal(err)
	}
	if err := bobLaptop.svc.MarkRead(g); err != nil { // Bob again, on his laptop: still one
		t.Fatal(err)
	}
	until("read by Bob", func() bool { return state(alice).ReadBy == 1 })
	// By name, for the one message asked for: who has it (in the order
	// their receipts came) and who read it.
	bc := []identity.AccountID{bob.acct(), carol.acct()}
	_, delivered, read, err := alice.svc.MessageReceipts(g, sent.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(delivered, bc) && !slices.Equal(delivered, []identity.AccountID{bc[1], bc[0]}) || !slices.Equal(read, bc[:1]) {
		t.Fatalf("delivered to %s, read by %s; want Bob and Carol, Bob", n.names(delivered), n.names(read))
	}
	if err := carol.svc.MarkRead(g); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*dev{alice, aliceLaptop} {
		until(d.name+" sees it read by both", func() bool { m := state(d); return m.ReadBy == 2 && m.Delivered == 2 })
	}
	if got := state(bob); got.Recipients != 0 || got.Delivered != 0 || !got.Read {
		t.Fatalf("Bob's copy of Alice's message: %+v", got)
	}
	// Dave is no member: his receipt is refused.
	id, _ := parseMessageID(sent.ID)
	c := carrier{kind: kindReceipt, group: g, ids: id[:], read: true}
	if err := alice.svc.Receive(dave.acct(), dave.id, c.marshal(), false); !errors.Is(err, ErrNotMember) {
		t.Fatalf("a receipt from a non-member: %v", err)
	}
}

// names names accounts as the net's devices do.
func (n *net) names(accts []identity.AccountID) []string {
	var out []string
	for _, a := range accts {
		out = append(out, n.nameOf(a))
	}
	return out
}
