package msg

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/store"
)

type historyItem struct {
	kind byte
	body []byte
}

func exportHistory(t *testing.T, db testDB) []historyItem {
	t.Helper()
	var items []historyItem
	err := db.View(func(tx *store.Tx) error {
		return ExportHistory(tx, func(kind byte, body []byte) error {
			items = append(items, historyItem{kind, bytes.Clone(body)})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func importHistory(db testDB, items []historyItem) error {
	return db.Update(func(tx *store.Tx) error {
		for _, it := range items {
			if err := ImportHistory(tx, it.kind, it.body); err != nil {
				return err
			}
		}
		return nil
	})
}

func allMessages(t *testing.T, db testDB, peer string) []Message {
	t.Helper()
	var out []Message
	p := Page{Limit: 7}
	for {
		ms, next, err := db.Messages(peer, p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ms...)
		if next == "" {
			return out
		}
		p.Cursor = next
	}
}

// TestHistoryRoundTrip: a backup's history brings back every
// conversation and every message, in order, with its state; a message
// still queued comes back failed (nothing would send it); importing it
// again adds nothing twice.
func TestHistoryRoundTrip(t *testing.T) {
	src := memDB(t)
	peers := []string{"csa1bob", "csa1carol"}
	for i, p := range peers {
		if err := src.PutConversation(Conversation{Peer: p, NextSeq: uint64(10 + i), LastAt: t0, Unread: i, Request: i == 1}); err != nil {
			t.Fatal(err)
		}
	}
	states := []string{StateReceived, StateRead, StateSent, StateDelivered, StateRead, StateFailed}
	for i := range 30 { // more than one page
		m := Message{ID: fmt.Sprintf("m%02d", i), Peer: "csa1bob", Seq: uint64(i), Body: []byte(fmt.Sprintf("message %d", i)),
			SentAt: t0.Add(-1e9), At: t0.Add(timeStep(i))}
		m.State = states[i%len(states)]
		m.Direction = DirOut
		if i%len(states) < 2 {
			m.Direction = DirIn
		}
		if err := src.PutMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	queued := Message{ID: "q1", Peer: "csa1carol", Direction: DirOut, Seq: 1, Body: []byte("not sent yet"), SentAt: t0, At: t0.Add(1e9), State: StateQueued}
	if err := src.Update(func(tx *store.Tx) error { return In(tx).InsertQueued(queued, Copy{testDev, []byte("sealed envelope")}) }); err != nil {
		t.Fatal(err)
	}
	items := exportHistory(t, src)
	if len(items) != 2+31 {
		t.Fatalf("%d items, want 2 conversations and 31 messages", len(items))
	}

	dst := memDB(t)
	for range 2 {
		if err := importHistory(dst, items); err != nil {
			t.Fatalf("import: %v", err)
		}
	}
	if a, b := must(src.Conversations()), must(dst.Conversations()); !reflect.DeepEqual(a, b) {
		t.Errorf("conversations:\n%+v\nwant\n%+v", b, a)
	}
	if a, b := allMessages(t, src, "csa1bob"), allMessages(t, dst, "csa1bob"); !reflect.DeepEqual(a, b) {
		t.Errorf("messages with bob: %d restored, %d kept, or they differ", len(b), len(a))
	}
	got := allMessages(t, dst, "csa1carol")
	if len(got) != 1 || got[0].ID != queued.ID || got[0].State != StateFailed || !bytes.Equal(got[0].Body, queued.Body) || !got[0].At.Equal(queued.At) {
		t.Errorf("the queued message came back as %+v, want it failed", got)
	}
	if q, err := view(dst, (*Data).Queued); err != nil || len(q) != 0 {
		t.Errorf("queued after the restore: %+v %v, want none", q, err)
	}
}

func timeStep(i int) time.Duration { return time.Duration(i) * time.Second }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestHistoryHostile: an item that does not parse, or that no node would
// have stored (an incoming message sent, an outgoing one received, one
// still queued, a negative unread count, an id with a NUL), is refused as
// invalid and nothing is written.
func TestHistoryHostile(t *testing.T) {
	good := Message{ID: "m1", Peer: "csa1bob", Direction: DirIn, Seq: 1, Body: []byte("hi"), SentAt: t0, At: t0, State: StateReceived}
	msgItem := func(mod func(m *Message)) []byte {
		m := good
		mod(&m)
		b, err := marshalMessage(&m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var negUnread wire.Encoder
	negUnread.String(1, "csa1bob")
	negUnread.Sint(4, -1)
	for name, it := range map[string]historyItem{
		"garbage":           {store.PortableMessage, []byte{0xff, 0x01}},
		"empty message":     {store.PortableMessage, nil},
		"incoming sent":     {store.PortableMessage, msgItem(func(m *Message) { m.State = StateSent })},
		"outgoing received": {store.PortableMessage, msgItem(func(m *Message) { m.Direction, m.State = DirOut, StateReceived })},
		"queued":            {store.PortableMessage, msgItem(func(m *Message) { m.Direction, m.State = DirOut, StateQueued })},
		"no state":          {store.PortableMessage, msgItem(func(m *Message) { m.State = "" })},
		"NUL in the id":     {store.PortableMessage, msgItem(func(m *Message) { m.ID = "m\x001" })},
		"negative unread":   {store.PortableConversation, negUnread.B},
		"garbage convo":     {store.PortableConversation, []byte("conversation")},
		"other kind":        {store.PortableContact, msgItem(func(*Message) {})},
	} {
		t.Run(name, func(t *testing.T) {
			db := memDB(t)
			err := importHistory(db, []historyItem{{store.PortableConversation, must(marshalConversation(&Conversation{Peer: "csa1bob"}))}, it})
			if !errors.Is(err, store.ErrInvalid) && !errors.Is(err, store.ErrPortableKind) {
				t.Fatalf("import: %v, want invalid", err)
			}
			if cs := must(db.Conversations()); len(cs) != 0 {
				t.Errorf("written: %+v", cs)
			}
		})
	}
	if err := importHistory(memDB(t), []historyItem{{store.PortableMessage, msgItem(func(*Message) {})}}); err != nil {
		t.Errorf("the good message: %v", err)
	}
}

// FuzzImportHistory: whatever a backup's history item holds, importing it
// never panics, and what it stores reads back.
func FuzzImportHistory(f *testing.F) {
	m := Message{ID: "m1", Peer: "csa1bob", Direction: DirOut, Seq: 1, Body: []byte("hi"), SentAt: t0, At: t0, State: StateDelivered}
	f.Add(store.PortableMessage, must(marshalMessage(&m)))
	f.Add(store.PortableConversation, must(marshalConversation(&Conversation{Peer: "csa1bob", NextSeq: 2, LastAt: t0, Unread: 1})))
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		db := memDB(t)
		if err := importHistory(db, []historyItem{{kind, body}}); err != nil {
			return
		}
		if _, err := db.Conversations(); err != nil {
			t.Fatalf("conversations after an accepted item: %v", err)
		}
		if kind == store.PortableMessage {
			m, err := unmarshalMessage(body)
			if err != nil {
				t.Fatalf("accepted a message that does not parse: %v", err)
			}
			if got, err := db.Message(m.Peer, m.ID); err != nil || got.State != m.State || !bytes.Equal(got.Body, m.Body) {
				t.Fatalf("accepted %+v, read back %+v %v", m, got, err)
			}
		}
	})
}
