package msg

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

func testMsg(peer, id string, at time.Time) Message {
	return Message{ID: id, Peer: peer, Direction: DirIn, Body: []byte("body " + id), SentAt: at, At: at}
}

func TestMessagesPaging(t *testing.T) {
	db := memDB(t)
	for i := range 25 {
		if err := db.PutMessage(testMsg("p1", fmt.Sprintf("m%02d", i), t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	db.PutMessage(testMsg("p10", "other", t0)) // a peer id that extends "p1"
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
	if _, _, err := db.Messages("p1", Page{Cursor: "!!"}); !errors.Is(err, store.ErrInvalid) {
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
	if err := db.SetMessageState("p1", "nope", "read"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetMessageState on missing: %v", err)
	}
	// Ids are per peer: p10's "other" is not visible through p1.
	if _, err := db.Message("p1", "other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-peer id lookup: %v", err)
	}
	db.DeleteMessage("p1", "m00")
	if _, err := db.Message("p1", "m00"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("deleted message still there")
	}
	if err := db.PutMessage(Message{ID: "x", Peer: "p1", Direction: "sideways"}); !errors.Is(err, store.ErrInvalid) {
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
	db := memDB(t)
	db.PutConversation(Conversation{Peer: "p1", NextSeq: 3, LastAt: t0, Unread: 2, Request: true})
	db.PutConversation(Conversation{Peer: "p2"})
	for i := range 1500 { // more than one deletion batch
		if err := db.PutMessage(testMsg("p1", fmt.Sprint(i), t0.Add(time.Duration(i)))); err != nil {
			t.Fatal(err)
		}
	}
	db.PutMessage(testMsg("p2", "keep", t0))
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
	if _, err := db.Conversation("p1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted conversation: %v", err)
	}
	if ms, _, _ := db.Messages("p1", Page{}); len(ms) != 0 {
		t.Fatalf("%d messages survive DeleteConversation", len(ms))
	}
	if _, err := db.Message("p1", "7"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("id index survives: %v", err)
	}
	if _, err := db.Message("p2", "keep"); err != nil {
		t.Fatalf("other conversation damaged: %v", err)
	}
}

func TestOutbox(t *testing.T) {
	db := memDB(t)
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
	if err := db.PutOutbox(OutboxEntry{ID: "x", Peer: "p"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("zero NextAttempt: %v", err)
	}
}

func TestDedupAndSessions(t *testing.T) {
	db := memDB(t)
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
	if err := db.Update(func(tx *store.Tx) error { return In(tx).PutSeen("p3", "m3", t0) }); err != nil {
		t.Fatalf("PutSeen: %v", err)
	}
	if first, _ := db.MarkSeen("p3", "m3", t0.Add(time.Hour)); first {
		t.Fatal("an id recorded by PutSeen was reported as first")
	}
	if err := db.Update(func(tx *store.Tx) error { return In(tx).PutSeen("p3", "bad\x00id", t0) }); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("PutSeen with a 0x00 in the id: %v", err)
	}
	if n, err := db.PruneSeen(t0.Add(24 * time.Hour)); err != nil || n != 1 {
		t.Fatalf("PruneSeen after PutSeen = %d, %v; want 1", n, err)
	}

	if _, err := db.Session("p1", testDev); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing session: %v", err)
	}
	other := identity.DeviceID{9}
	db.PutSession("p1", testDev, []byte("ratchet-1"))
	db.PutSession("p1", testDev, []byte("ratchet-2"))
	db.PutSession("p1", other, []byte("other device"))
	if s, err := db.Session("p1", testDev); err != nil || string(s) != "ratchet-2" {
		t.Fatalf("Session = %q, %v", s, err)
	}
	if s, err := db.Session("p1", other); err != nil || string(s) != "other device" {
		t.Fatalf("Session of the other device = %q, %v", s, err)
	}
	db.DeleteSession("p1", testDev)
	if _, err := db.Session("p1", testDev); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
	if _, err := db.Session("p1", other); err != nil {
		t.Fatalf("the other device's session after deleting one: %v", err)
	}
	if err := db.PutSession("p1", identity.DeviceID{}, []byte("x")); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("PutSession with no device: %v", err)
	}

}

// TestIDUse: one read of an id's msgid/ entry tells a fresh id from a
// duplicate and from one of our own messages, and deleting an incoming
// message leaves its id seen.
func TestIDUse(t *testing.T) {
	db := memDB(t)
	use := func(peer, id string) IDUse {
		t.Helper()
		var u IDUse
		if err := db.View(func(tx *store.Tx) (err error) { u, err = In(tx).IDUse(peer, id); return err }); err != nil {
			t.Fatal(err)
		}
		return u
	}
	out := Message{ID: "o1", Peer: "p", Direction: DirOut, Body: []byte("mine"), At: t0}
	in := Message{ID: "i1", Peer: "p", Direction: DirIn, Body: []byte("theirs"), At: t0.Add(time.Second), State: "received"}
	err := db.Update(func(tx *store.Tx) error {
		if err := In(tx).InsertMessage(out); err != nil {
			return err
		}
		if err := In(tx).InsertMessage(in); err != nil {
			return err
		}
		return In(tx).PutSeen("p", "c1", t0)
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
	if _, err := db.Message("p", "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Message(seen-only id) = %v, want store.ErrNotFound", err)
	}
	if err := db.SetMessageState("p", "c1", "read"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetMessageState(seen-only id) = %v, want store.ErrNotFound", err)
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
	if err := db.Update(func(tx *store.Tx) error { return In(tx).DeleteConversation("p") }); err != nil {
		t.Fatal(err)
	}
	if use("p", "i2") != IDSeen {
		t.Fatal("an incoming id was forgotten with its conversation")
	}
}

// writeDelivery is what the messaging layer does per outgoing message.
func writeDelivery(tx *store.Tx, peer, id string, state []byte) error {
	d := In(tx)
	if err := d.PutSession(peer, testDev, state); err != nil {
		return err
	}
	if err := d.PutMessage(Message{ID: id, Peer: peer, Direction: DirOut, Body: []byte("hello"), At: t0}); err != nil {
		return err
	}
	return d.PutOutbox(OutboxEntry{ID: id, Peer: peer, Envelope: []byte("sealed"), NextAttempt: t0, CreatedAt: t0})
}

func TestUpdateAtomic(t *testing.T) {
	db := memDB(t)
	boom := errors.New("boom")
	err := db.Update(func(tx *store.Tx) error {
		if err := writeDelivery(tx, "p", "m1", []byte("s1")); err != nil {
			return err
		}
		// Reads inside the transaction see its own writes.
		if s, err := In(tx).Session("p", testDev); err != nil || string(s) != "s1" {
			t.Errorf("read own write: %q %v", s, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the closure's error", err)
	}
	if _, err := db.Session("p", testDev); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("session written by a failed Update")
	}
	if _, err := db.Message("p", "m1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("message written by a failed Update")
	}
	if _, err := db.Outbox("m1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("outbox entry written by a failed Update")
	}
	if err := db.Update(func(tx *store.Tx) error { return writeDelivery(tx, "p", "m1", []byte("s1")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Outbox("m1"); err != nil {
		t.Fatalf("committed outbox entry: %v", err)
	}
	if err := db.View(func(tx *store.Tx) error { return In(tx).PutSession("p", testDev, nil) }); err == nil {
		t.Fatal("write inside View succeeded")
	}
}

func TestRoundTripThroughAccessors(t *testing.T) {
	db := memDB(t)
	m := goldenMessage
	m.SentAt = time.Time{} // absent stays absent
	if err := db.PutMessage(m); err != nil {
		t.Fatal(err)
	}
	got, err := db.Message("p", "m1")
	if err != nil || !reflect.DeepEqual(got.Body, m.Body) || !got.SentAt.IsZero() || !got.At.Equal(m.At) {
		t.Fatalf("Message = %+v, %v", got, err)
	}
	var calls int
	err = db.Update(func(tx *store.Tx) error {
		out, err := In(tx).UpdateMessageState("p", "m1", func(old Message) (string, bool) {
			calls++
			return "delivered", old.State == "sent"
		})
		if err != nil || out.State != "delivered" {
			return fmt.Errorf("UpdateMessageState = %+v, %v", out.State, err)
		}
		out, err = In(tx).UpdateMessageState("p", "m1", func(old Message) (string, bool) {
			calls++
			return "sent", old.State == "sent"
		})
		if err != nil || out.State != "delivered" {
			return fmt.Errorf("declined UpdateMessageState = %+v, %v", out.State, err)
		}
		_, err = In(tx).UpdateMessageState("p", "nope", func(Message) (string, bool) { return "x", true })
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("UpdateMessageState on a missing message: %v", err)
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("%v (decide called %d times)", err, calls)
	}
	if got, _ := db.Message("p", "m1"); got.State != "delivered" {
		t.Fatalf("state after commit = %q", got.State)
	}
}

func TestAddMessageNeverReplaces(t *testing.T) {
	db := memDB(t)
	mine := Message{ID: "x", Peer: "p", Direction: DirOut, Body: []byte("mine"), At: t0}
	if added, err := db.AddMessage(mine); err != nil || !added {
		t.Fatalf("first AddMessage = %v, %v", added, err)
	}
	theirs := Message{ID: "x", Peer: "p", Direction: DirIn, Body: []byte("theirs"), At: t0.Add(time.Second)}
	if added, err := db.AddMessage(theirs); err != nil || added {
		t.Fatalf("AddMessage over an existing id = %v, %v; want false", added, err)
	}
	got, err := db.Message("p", "x")
	if err != nil || string(got.Body) != "mine" || got.Direction != DirOut || !got.At.Equal(t0) {
		t.Fatalf("message after a refused AddMessage = %+v, %v", got, err)
	}
	if ms, _, _ := db.Messages("p", Page{}); len(ms) != 1 {
		t.Fatalf("%d messages, want 1", len(ms))
	}
	// The same id under another peer is another message.
	theirs.Peer = "q"
	if added, err := db.AddMessage(theirs); err != nil || !added {
		t.Fatalf("AddMessage for another peer = %v, %v", added, err)
	}
}

// TestStateChangeLeavesBody: a state change rewrites the index entry only;
// the stored message value is byte for byte what it was.
func TestStateChangeLeavesBody(t *testing.T) {
	db := memDB(t)
	m := Message{ID: "m1", Peer: "p", Direction: DirOut, Body: []byte("body"), At: t0, State: "queued"}
	if err := db.PutMessage(m); err != nil {
		t.Fatal(err)
	}
	mk := key(pfxMsg, []byte("p"), sep, be64(t0), []byte("m1"))
	raw := func() []byte {
		var v []byte
		db.View(func(tx *store.Tx) error { v, _ = tx.Space(store.SpaceMsg).Get(mk); return nil })
		return v
	}
	before := raw()
	if err := db.SetMessageState("p", "m1", "delivered"); err != nil {
		t.Fatal(err)
	}
	if after := raw(); !bytes.Equal(before, after) {
		t.Fatalf("message value changed with its state: %x -> %x", before, after)
	}
	got, err := db.Message("p", "m1")
	if err != nil || got.State != "delivered" || string(got.Body) != "body" {
		t.Fatalf("Message = %+v, %v", got, err)
	}
	ms, _, err := db.Messages("p", Page{})
	if err != nil || len(ms) != 1 || ms[0].State != "delivered" {
		t.Fatalf("Messages = %+v, %v", ms, err)
	}
}
