package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestSecrets(t *testing.T) {
	db := memT(t)
	if _, err := db.Secrets(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store Secrets: %v", err)
	}
	s := Secrets{AccountSeed: []byte{1}, DeviceKey: []byte{2}, X25519: []byte{3}, Prekeys: []byte{4}}
	if err := db.PutSecrets(s); err != nil {
		t.Fatal(err)
	}
	if err := db.PutPrekeys([]byte{5, 5}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Secrets()
	if err != nil || !bytes.Equal(got.AccountSeed, []byte{1}) || !bytes.Equal(got.DeviceKey, []byte{2}) ||
		!bytes.Equal(got.X25519, []byte{3}) || !bytes.Equal(got.Prekeys, []byte{5, 5}) {
		t.Fatalf("Secrets = %+v, %v", got, err)
	}
	if err := db.PutSecrets(Secrets{AccountSeed: []byte{9}}); err != nil {
		t.Fatal(err)
	}
	got, _ = db.Secrets()
	if !bytes.Equal(got.AccountSeed, []byte{9}) || got.DeviceKey != nil || got.Prekeys != nil {
		t.Fatalf("PutSecrets did not replace all fields: %+v", got)
	}
}

func TestClaimsBootstrapsSettings(t *testing.T) {
	db := memT(t)
	for _, c := range []HandleClaim{{Name: "zed", Nonce: 1, Seq: 2, ClaimedAt: t0}, {Name: "alice", Nonce: 7, Seq: 1, ClaimedAt: t0}} {
		if err := db.PutClaim(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutClaim(HandleClaim{Name: "zed", Nonce: 3, Seq: 3, ClaimedAt: t0}); err != nil {
		t.Fatal(err)
	}
	cl, err := db.Claims()
	if err != nil || len(cl) != 2 || cl[0].Name != "alice" || cl[1].Seq != 3 || cl[1].Nonce != 3 || !cl[0].ClaimedAt.Equal(t0) {
		t.Fatalf("Claims = %+v, %v", cl, err)
	}
	db.DeleteClaim("alice")
	if cl, _ := db.Claims(); len(cl) != 1 || cl[0].Name != "zed" {
		t.Fatalf("after delete: %+v", cl)
	}
	if err := db.PutClaim(HandleClaim{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty claim name: %v", err)
	}

	a1, a2 := "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooA", "/ip4/10.0.0.1/udp/4001/quic-v1/p2p/12D3KooB"
	db.AddBootstrap(a1)
	db.AddBootstrap(a2)
	db.AddBootstrap(a1)
	bs, err := db.Bootstraps()
	if err != nil || !slices.Equal(bs, []string{a2, a1}) {
		t.Fatalf("Bootstraps = %q, %v", bs, err)
	}
	db.RemoveBootstrap(a2)
	if bs, _ := db.Bootstraps(); !slices.Equal(bs, []string{a1}) {
		t.Fatalf("after remove: %q", bs)
	}

	if _, err := db.ListenPorts(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ListenPorts on empty store: %v", err)
	}
	db.PutListenPorts(ListenPorts{TCP: 4001, QUIC: 4002})
	if p, err := db.ListenPorts(); err != nil || p != (ListenPorts{4001, 4002}) {
		t.Fatalf("ListenPorts = %+v, %v", p, err)
	}

	if _, ok, err := db.GetSetting("call.policy"); ok || err != nil {
		t.Fatalf("unset setting: ok=%v err=%v", ok, err)
	}
	db.PutSetting("call.policy", []byte("contacts"))
	db.PutSetting("relay.always", []byte{})
	v, ok, err := db.GetSetting("call.policy")
	if err != nil || !ok || string(v) != "contacts" {
		t.Fatalf("GetSetting = %q %v %v", v, ok, err)
	}
	if _, ok, _ := db.GetSetting("relay.always"); !ok {
		t.Fatal("an empty setting value reads as unset")
	}
	all, _ := db.Settings()
	if len(all) != 2 || string(all["call.policy"]) != "contacts" {
		t.Fatalf("Settings = %q", all)
	}
	db.PutSetting("call.policy", nil)
	if _, ok, _ := db.GetSetting("call.policy"); ok {
		t.Fatal("nil PutSetting did not delete")
	}
	if err := db.PutSetting("a\x00b", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NUL in setting name: %v", err)
	}
}

func TestContacts(t *testing.T) {
	db := memT(t)
	bob := Contact{Account: "acct-bob", PubKey: []byte{1}, Petname: "bob", Handle: "bob~abcd", AddedAt: t0, PinnedAt: t0, Following: true}
	if err := db.PutContact(bob); err != nil {
		t.Fatal(err)
	}
	if err := db.PutContact(Contact{Account: "acct-eve", Petname: "bob"}); !errors.Is(err, ErrPetnameTaken) {
		t.Fatalf("duplicate petname: %v, want ErrPetnameTaken", err)
	}
	if _, err := db.Contact("acct-eve"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused contact was stored: %v", err)
	}
	got, err := db.Contact("acct-bob")
	if err != nil || got.Handle != "bob~abcd" || !got.Following || !got.PinnedAt.Equal(t0) {
		t.Fatalf("Contact = %+v, %v", got, err)
	}
	// Key change, rename: the old petname is freed.
	bob.KeyChanged, bob.SeenPubKey, bob.Petname = true, []byte{2}, "robert"
	if err := db.PutContact(bob); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ContactByPetname("bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old petname still resolves: %v", err)
	}
	got, err = db.ContactByPetname("robert")
	if err != nil || !got.KeyChanged || !bytes.Equal(got.SeenPubKey, []byte{2}) || !bytes.Equal(got.PubKey, []byte{1}) {
		t.Fatalf("ContactByPetname = %+v, %v", got, err)
	}
	if err := db.PutContact(Contact{Account: "acct-eve", Petname: "bob", Blocked: true}); err != nil {
		t.Fatalf("freed petname: %v", err)
	}
	if err := db.PutContact(Contact{Account: "acct-nopet"}); err != nil {
		t.Fatal(err)
	}
	list, _ := db.Contacts()
	if len(list) != 3 || list[0].Account != "acct-bob" || list[1].Account != "acct-eve" || !list[1].Blocked {
		t.Fatalf("Contacts = %+v", list)
	}
	db.DeleteContact("acct-bob")
	if _, err := db.ContactByPetname("robert"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted contact's petname resolves: %v", err)
	}
	if err := db.PutContact(Contact{Account: "acct-x", Petname: "robert"}); err != nil {
		t.Fatalf("petname of deleted contact: %v", err)
	}
}

func TestConcurrentPetname(t *testing.T) {
	db := memT(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = db.PutContact(Contact{Account: fmt.Sprint("acct", i), Petname: "same"}) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrPetnameTaken):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d contacts got the same petname, want 1", ok)
	}
}

func msg(peer, id string, at time.Time) Message {
	return Message{ID: id, Peer: peer, Direction: DirIn, Body: []byte("body " + id), SentAt: at, At: at}
}

func TestMessagesPaging(t *testing.T) {
	db := memT(t)
	for i := range 25 {
		if err := db.PutMessage(msg("p1", fmt.Sprintf("m%02d", i), t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	db.PutMessage(msg("p10", "other", t0)) // a peer id that extends "p1"
	ids := func(ms []Message) (out []string) {
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	var all []string
	cur := ""
	for pages := 0; ; pages++ {
		ms, next, err := db.Messages("p1", Page{Cursor: cur, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ids(ms)...)
		if next == "" {
			if pages != 2 {
				t.Fatalf("%d pages, want 3", pages+1)
			}
			break
		}
		cur = next
	}
	want := []string{}
	for i := range 25 {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	if !slices.Equal(all, want) {
		t.Fatalf("forward pages = %v", all)
	}

	ms, next, err := db.Messages("p1", Page{Newest: true, Limit: 10})
	if err != nil || !slices.Equal(ids(ms), want[15:]) || next == "" {
		t.Fatalf("newest page = %v next=%q %v", ids(ms), next, err)
	}
	ms, next, _ = db.Messages("p1", Page{Newest: true, Limit: 10, Cursor: next})
	if !slices.Equal(ids(ms), want[5:15]) {
		t.Fatalf("second newest page = %v", ids(ms))
	}
	ms, next, _ = db.Messages("p1", Page{Newest: true, Limit: 10, Cursor: next})
	if !slices.Equal(ids(ms), want[:5]) || next != "" {
		t.Fatalf("last newest page = %v next=%q", ids(ms), next)
	}
	if _, _, err := db.Messages("p1", Page{Cursor: "!!"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad cursor: %v", err)
	}
	if ms, _, _ := db.Messages("nobody", Page{}); len(ms) != 0 {
		t.Fatalf("unknown peer has messages: %v", ids(ms))
	}

	// State change keeps the order and content; a re-put with a new At moves it.
	if err := db.SetMessageState("p1", "m03", "read"); err != nil {
		t.Fatal(err)
	}
	m, err := db.Message("p1", "m03")
	if err != nil || m.State != "read" || string(m.Body) != "body m03" {
		t.Fatalf("Message after SetMessageState = %+v, %v", m, err)
	}
	m.At = t0.Add(time.Hour)
	db.PutMessage(m)
	ms, _, _ = db.Messages("p1", Page{Limit: 1000})
	if len(ms) != 25 || ms[24].ID != "m03" {
		t.Fatalf("after moving m03: %v", ids(ms))
	}
	if err := db.SetMessageState("p1", "nope", "read"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetMessageState on missing: %v", err)
	}
	// Ids are per peer: p10's "other" is not visible through p1.
	if _, err := db.Message("p1", "other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cross-peer id lookup: %v", err)
	}
	db.DeleteMessage("p1", "m00")
	if _, err := db.Message("p1", "m00"); !errors.Is(err, ErrNotFound) {
		t.Fatal("deleted message still there")
	}
	if err := db.PutMessage(Message{ID: "x", Peer: "p1", Direction: "sideways"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad direction: %v", err)
	}
	m = Message{ID: "auto", Peer: "p1", Direction: DirOut}
	if err := db.PutMessage(m); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Message("p1", "auto"); time.Since(got.At) > time.Minute {
		t.Fatalf("zero At not set to now: %v", got.At)
	}
}

func TestConversations(t *testing.T) {
	db := memT(t)
	db.PutConversation(Conversation{Peer: "p1", NextSeq: 3, LastAt: t0, Unread: 2, Request: true})
	db.PutConversation(Conversation{Peer: "p2"})
	for i := range 1500 { // more than one deletion batch
		if err := db.PutMessage(msg("p1", fmt.Sprint(i), t0.Add(time.Duration(i)))); err != nil {
			t.Fatal(err)
		}
	}
	db.PutMessage(msg("p2", "keep", t0))
	c, err := db.Conversation("p1")
	if err != nil || c.NextSeq != 3 || c.Unread != 2 || !c.Request {
		t.Fatalf("Conversation = %+v, %v", c, err)
	}
	if cs, _ := db.Conversations(); len(cs) != 2 {
		t.Fatalf("Conversations = %+v", cs)
	}
	if err := db.DeleteConversation("p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Conversation("p1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted conversation: %v", err)
	}
	if ms, _, _ := db.Messages("p1", Page{}); len(ms) != 0 {
		t.Fatalf("%d messages survive DeleteConversation", len(ms))
	}
	if _, err := db.Message("p1", "7"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("id index survives: %v", err)
	}
	if _, err := db.Message("p2", "keep"); err != nil {
		t.Fatalf("other conversation damaged: %v", err)
	}
}

func TestOutbox(t *testing.T) {
	db := memT(t)
	for i, d := range []time.Duration{3, 1, 2, 10} {
		e := OutboxEntry{ID: fmt.Sprint("o", i), Peer: "p", Envelope: []byte{byte(i)}, NextAttempt: t0.Add(d * time.Minute), CreatedAt: t0}
		if err := db.PutOutbox(e); err != nil {
			t.Fatal(err)
		}
	}
	due, err := db.DueOutbox(t0.Add(5*time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range due {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, []string{"o1", "o2", "o0"}) {
		t.Fatalf("due = %v, want o1 o2 o0", got)
	}
	if due, _ := db.DueOutbox(t0.Add(5*time.Minute), 2); len(due) != 2 {
		t.Fatalf("limit ignored: %d", len(due))
	}
	at, ok, _ := db.NextOutboxDue()
	if !ok || !at.Equal(t0.Add(time.Minute)) {
		t.Fatalf("NextOutboxDue = %v %v", at, ok)
	}
	// Reschedule o1 after a failed attempt: the old index entry goes away.
	e, _ := db.Outbox("o1")
	e.Attempts++
	e.NextAttempt = t0.Add(20 * time.Minute)
	db.PutOutbox(e)
	due, _ = db.DueOutbox(t0.Add(5*time.Minute), 0)
	if len(due) != 2 || due[0].ID != "o2" {
		t.Fatalf("after reschedule: %+v", due)
	}
	all, _ := db.DueOutbox(t0.Add(time.Hour), 0)
	if len(all) != 4 || all[3].ID != "o1" || all[3].Attempts != 1 {
		t.Fatalf("all = %+v", all)
	}
	for _, id := range []string{"o0", "o1", "o2", "o3"} {
		if err := db.DeleteOutbox(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := db.NextOutboxDue(); ok {
		t.Fatal("outbox not empty after deleting everything")
	}
	if err := db.PutOutbox(OutboxEntry{ID: "x", Peer: "p"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero NextAttempt: %v", err)
	}
}

func TestDedupAndSessions(t *testing.T) {
	db := memT(t)
	first, err := db.MarkSeen("p1", "m1", t0)
	if err != nil || !first {
		t.Fatalf("first MarkSeen = %v, %v", first, err)
	}
	if first, _ := db.MarkSeen("p1", "m1", t0.Add(time.Hour)); first {
		t.Fatal("duplicate reported as first")
	}
	if first, _ := db.MarkSeen("p2", "m1", t0); !first {
		t.Fatal("the same id from another peer was treated as a duplicate")
	}
	db.MarkSeen("p1", "new", t0.Add(48*time.Hour))
	n, err := db.PruneSeen(t0.Add(24 * time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("PruneSeen = %d, %v; want 2", n, err)
	}
	if s, _ := db.Seen("p1", "new"); !s {
		t.Fatal("recent entry pruned")
	}
	if s, _ := db.Seen("p1", "m1"); s {
		t.Fatal("old entry kept")
	}

	// PutSeen writes without reading; the entry dedups and prunes like
	// MarkSeen's.
	if err := db.Update(func(tx *Tx) error { return tx.PutSeen("p3", "m3", t0) }); err != nil {
		t.Fatalf("PutSeen: %v", err)
	}
	if first, _ := db.MarkSeen("p3", "m3", t0.Add(time.Hour)); first {
		t.Fatal("an id recorded by PutSeen was reported as first")
	}
	if err := db.Update(func(tx *Tx) error { return tx.PutSeen("p3", "bad\x00id", t0) }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("PutSeen with a 0x00 in the id: %v", err)
	}
	if n, err := db.PruneSeen(t0.Add(24 * time.Hour)); err != nil || n != 1 {
		t.Fatalf("PruneSeen after PutSeen = %d, %v; want 1", n, err)
	}

	if _, err := db.Session("p1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing session: %v", err)
	}
	db.PutSession("p1", []byte("ratchet-1"))
	db.PutSession("p1", []byte("ratchet-2"))
	if s, err := db.Session("p1"); err != nil || string(s) != "ratchet-2" {
		t.Fatalf("Session = %q, %v", s, err)
	}
	db.DeleteSession("p1")
	if _, err := db.Session("p1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
}

// TestIDUse: one read of an id's msgid/ entry tells a fresh id from a
// duplicate and from one of our own messages, and deleting an incoming
// message leaves its id seen.
func TestIDUse(t *testing.T) {
	db := memT(t)
	use := func(peer, id string) IDUse {
		t.Helper()
		var u IDUse
		if err := db.View(func(tx *Tx) (err error) { u, err = tx.IDUse(peer, id); return err }); err != nil {
			t.Fatal(err)
		}
		return u
	}
	out := Message{ID: "o1", Peer: "p", Direction: DirOut, Body: []byte("mine"), At: t0}
	in := Message{ID: "i1", Peer: "p", Direction: DirIn, Body: []byte("theirs"), At: t0.Add(time.Second), State: "received"}
	err := db.Update(func(tx *Tx) error {
		if err := tx.InsertMessage(out); err != nil {
			return err
		}
		if err := tx.InsertMessage(in); err != nil {
			return err
		}
		return tx.PutSeen("p", "c1", t0)
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]IDUse{"o1": IDOurs, "i1": IDSeen, "c1": IDSeen, "new": IDFree} {
		if got := use("p", id); got != want {
			t.Errorf("IDUse(%s) = %d, want %d", id, got, want)
		}
	}
	if use("q", "i1") != IDFree {
		t.Error("an id of peer p is used in q's conversation")
	}
	// A seen-only id is no message, and a message can't be added under it.
	if _, err := db.Message("p", "c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Message(seen-only id) = %v, want ErrNotFound", err)
	}
	if err := db.SetMessageState("p", "c1", "read"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetMessageState(seen-only id) = %v, want ErrNotFound", err)
	}
	if added, err := db.AddMessage(Message{ID: "c1", Peer: "p", Direction: DirIn, At: t0}); err != nil || added {
		t.Fatalf("AddMessage over a seen id = %v, %v; want false", added, err)
	}

	// Deleting: the incoming id stays seen (first seen when it was
	// stored), our own id is free again.
	if err := db.DeleteMessage("p", "i1"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteMessage("p", "o1"); err != nil {
		t.Fatal(err)
	}
	if use("p", "i1") != IDSeen || use("p", "o1") != IDFree {
		t.Fatalf("after delete: i1 %d (want seen), o1 %d (want free)", use("p", "i1"), use("p", "o1"))
	}
	if ms, _, err := db.Messages("p", Page{}); err != nil || len(ms) != 0 {
		t.Fatalf("Messages after deleting both = %d, %v", len(ms), err)
	}
	// The marker of i1 is as old as the message; pruning drops both
	// markers and never a message's index.
	keep := Message{ID: "i2", Peer: "p", Direction: DirIn, Body: []byte("kept"), At: t0}
	if _, err := db.AddMessage(keep); err != nil {
		t.Fatal(err)
	}
	if n, err := db.PruneSeen(t0.Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("PruneSeen = %d, %v; want 2", n, err)
	}
	if use("p", "i1") != IDFree || use("p", "c1") != IDFree || use("p", "i2") != IDSeen {
		t.Fatal("PruneSeen pruned the wrong entries")
	}
	if m, err := db.Message("p", "i2"); err != nil || string(m.Body) != "kept" {
		t.Fatalf("message after PruneSeen = %+v, %v", m, err)
	}

	// Deleting a conversation leaves its incoming ids seen.
	if err := db.Update(func(tx *Tx) error { return tx.DeleteConversation("p") }); err != nil {
		t.Fatal(err)
	}
	if use("p", "i2") != IDSeen {
		t.Fatal("an incoming id was forgotten with its conversation")
	}
}

// writeDelivery is what the messaging layer does per outgoing message.
func writeDelivery(tx *Tx, peer, id string, state []byte) error {
	if err := tx.PutSession(peer, state); err != nil {
		return err
	}
	if err := tx.PutMessage(Message{ID: id, Peer: peer, Direction: DirOut, Body: []byte("hello"), At: t0}); err != nil {
		return err
	}
	return tx.PutOutbox(OutboxEntry{ID: id, Peer: peer, Envelope: []byte("sealed"), NextAttempt: t0, CreatedAt: t0})
}

func TestUpdateAtomic(t *testing.T) {
	db := memT(t)
	boom := errors.New("boom")
	err := db.Update(func(tx *Tx) error {
		if err := writeDelivery(tx, "p", "m1", []byte("s1")); err != nil {
			return err
		}
		// Reads inside the transaction see its own writes.
		if s, err := tx.Session("p"); err != nil || string(s) != "s1" {
			t.Errorf("read own write: %q %v", s, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the closure's error", err)
	}
	if _, err := db.Session("p"); !errors.Is(err, ErrNotFound) {
		t.Fatal("session written by a failed Update")
	}
	if _, err := db.Message("p", "m1"); !errors.Is(err, ErrNotFound) {
		t.Fatal("message written by a failed Update")
	}
	if _, err := db.Outbox("m1"); !errors.Is(err, ErrNotFound) {
		t.Fatal("outbox entry written by a failed Update")
	}
	if err := db.Update(func(tx *Tx) error { return writeDelivery(tx, "p", "m1", []byte("s1")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Outbox("m1"); err != nil {
		t.Fatalf("committed outbox entry: %v", err)
	}
	if err := db.View(func(tx *Tx) error { return tx.PutSession("p", nil) }); err == nil {
		t.Fatal("write inside View succeeded")
	}
}

func TestConcurrentUpdates(t *testing.T) {
	db := memT(t)
	const workers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				errs <- db.Update(func(tx *Tx) error {
					v, _, err := tx.GetSetting("counter")
					if err != nil {
						return err
					}
					n := 0
					if v != nil {
						fmt.Sscan(string(v), &n)
					}
					return tx.PutSetting("counter", []byte(fmt.Sprint(n+1)))
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	v, _, _ := db.GetSetting("counter")
	if string(v) != fmt.Sprint(workers*each) {
		t.Fatalf("counter = %s, want %d: lost updates", v, workers*each)
	}
}

func TestTxnTooBig(t *testing.T) {
	db := memT(t)
	val := bytes.Repeat([]byte{1}, 512)
	err := db.Update(func(tx *Tx) error {
		for i := range 100_000 {
			if err := tx.PutSetting(fmt.Sprint("k", i), val); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, ErrTxnTooBig) {
		t.Fatalf("huge Update = %v, want ErrTxnTooBig", err)
	}
	if _, ok, _ := db.GetSetting("k0"); ok {
		t.Fatal("part of a too-big transaction was written")
	}
}
