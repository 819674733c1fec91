package msg

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/callsign/callsign/store"
	"time"
)

// TestQueue: a queued text message keeps its envelope in its index entry
// through state changes and replacement, Dequeue drops it, and start-up
// finds exactly the queued ones from the queue start.
func TestQueue(t *testing.T) {
	db := memDB(t)
	out := func(id string, at time.Time) Message {
		return Message{ID: id, Peer: "p", Direction: DirOut, Body: []byte("body " + id), At: at, State: "queued"}
	}
	env := bytes.Repeat([]byte{2}, 2000) // a sealed envelope, as msg writes it
	err := db.Update(func(tx *store.Tx) error {
		if err := In(tx).InsertQueued(out("q1", t0), env); err != nil {
			return err
		}
		if err := In(tx).InsertQueued(out("q2", t0.Add(time.Second)), nil); err != nil { // not sealed yet
			return err
		}
		if err := In(tx).InsertMessage(out("done", t0.Add(2*time.Second))); err != nil {
			return err
		}
		if err := In(tx).InsertMessage(Message{ID: "in", Peer: "p", Direction: DirIn, Body: []byte("x"), At: t0.Add(3 * time.Second)}); err != nil {
			return err
		}
		return In(tx).SetQueueStart("p", t0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *store.Tx) error {
		return In(tx).InsertQueued(Message{ID: "bad", Peer: "p", Direction: DirIn, At: t0}, nil)
	}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("queuing an incoming message: %v, want store.ErrInvalid", err)
	}
	queued := func(from time.Time) string {
		t.Helper()
		var ids []string
		err := db.View(func(tx *store.Tx) error {
			qs, err := In(tx).QueuedMessages("p", from)
			for _, q := range qs {
				ids = append(ids, q.ID)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(ids, ",")
	}
	envOf := func(id string) ([]byte, error) {
		var e []byte
		err := db.View(func(tx *store.Tx) (err error) { e, err = In(tx).QueuedEnvelope("p", id); return err })
		return e, err
	}
	if got := queued(t0); got != "q1,q2" {
		t.Fatalf("queued from the start = %s, want q1,q2", got)
	}
	if got := queued(t0.Add(time.Nanosecond)); got != "q2" {
		t.Fatalf("queued after q1 = %s, want q2", got)
	}
	// State changes and replacing the message keep it queued with its envelope.
	if err := db.SetMessageState("p", "q1", "sent"); err != nil {
		t.Fatal(err)
	}
	if err := db.PutMessage(out("q1", t0)); err != nil {
		t.Fatal(err)
	}
	if e, err := envOf("q1"); err != nil || !bytes.Equal(e, env) {
		t.Fatalf("envelope after a state change and a replace: %d bytes, %v", len(e), err)
	}
	if m, err := db.Message("p", "q1"); err != nil || m.State != "queued" || string(m.Body) != "body q1" {
		t.Fatalf("Message(q1) = %+v, %v", m, err)
	}
	// Sealing later sets the envelope of q2.
	if err := db.Update(func(tx *store.Tx) error { return In(tx).SetQueuedEnvelope("p", "q2", []byte{2, 9}) }); err != nil {
		t.Fatal(err)
	}
	if e, err := envOf("q2"); err != nil || !bytes.Equal(e, []byte{2, 9}) {
		t.Fatalf("envelope of q2 = %x, %v", e, err)
	}
	for _, id := range []string{"done", "in", "nope"} {
		if _, err := envOf(id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("QueuedEnvelope(%s) = %v, want store.ErrNotFound", id, err)
		}
		if err := db.Update(func(tx *store.Tx) error { return In(tx).SetQueuedEnvelope("p", id, []byte{2}) }); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SetQueuedEnvelope(%s) = %v, want store.ErrNotFound", id, err)
		}
	}

	// Dequeue: the state the caller decides, no envelope, not queued.
	var m Message
	err = db.Update(func(tx *store.Tx) (err error) {
		m, err = In(tx).Dequeue("p", "q1", func(m Message) (string, bool) { return "delivered", m.State != "read" })
		return err
	})
	if err != nil || m.State != "delivered" || !m.At.Equal(t0) {
		t.Fatalf("Dequeue = %+v, %v", m, err)
	}
	if _, err := envOf("q1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("envelope after Dequeue: %v", err)
	}
	if got := queued(t0); got != "q2" {
		t.Fatalf("queued after Dequeue = %s, want q2", got)
	}
	if err := db.Update(func(tx *store.Tx) error {
		_, err := In(tx).Dequeue("p", "q1", func(Message) (string, bool) { return "x", true })
		return err
	}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Dequeue = %v, want store.ErrNotFound", err)
	}
	if got, _ := db.Message("p", "q1"); got.State != "delivered" {
		t.Fatalf("state after Dequeue = %q", got.State)
	}
	// A read receipt that came first is kept by the ack's decide.
	if err := db.SetMessageState("p", "q2", "read"); err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *store.Tx) (err error) {
		m, err = In(tx).Dequeue("p", "q2", func(m Message) (string, bool) { return "delivered", m.State != "read" })
		return err
	})
	if err != nil || m.State != "read" {
		t.Fatalf("Dequeue after a receipt = %+v, %v; want read", m, err)
	}
	// Deleting a queued message takes it out of the queue.
	if err := db.Update(func(tx *store.Tx) error { return In(tx).InsertQueued(out("q3", t0.Add(4*time.Second)), env) }); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteMessage("p", "q3"); err != nil {
		t.Fatal(err)
	}
	if got := queued(t0); got != "" {
		t.Fatalf("queued after deleting q3 = %q, want none", got)
	}

	// Queue starts.
	var starts map[string]time.Time
	db.View(func(tx *store.Tx) (err error) { starts, err = In(tx).QueueStarts(); return err })
	if len(starts) != 1 || !starts["p"].Equal(t0) {
		t.Fatalf("QueueStarts = %v", starts)
	}
	if err := db.Update(func(tx *store.Tx) error { return In(tx).DeleteQueueStart("p") }); err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *store.Tx) (err error) { starts, err = In(tx).QueueStarts(); return err })
	if len(starts) != 0 {
		t.Fatalf("QueueStarts after delete = %v", starts)
	}
}

func TestQueuedIndexCodec(t *testing.T) {
	b, err := marshalQueued(t0, "sent", []byte{2, 0xaa})
	if err != nil {
		t.Fatal(err)
	}
	want := "03" + hex.EncodeToString(be64(t0)) + "04" + hex.EncodeToString([]byte("sent")) + "02aa"
	if hex.EncodeToString(b) != want {
		t.Fatalf("queued index = %x, want %s", b, want)
	}
	ix, err := unmarshalIndex(b)
	if err != nil || !ix.queued || ix.dir != DirOut || ix.state != "sent" || !bytes.Equal(ix.env, []byte{2, 0xaa}) || !ix.at.Equal(t0) {
		t.Fatalf("decoded = %+v, %v", ix, err)
	}
	if out, err := ix.marshal(); err != nil || !bytes.Equal(out, b) {
		t.Fatalf("re-encoded = %x, %v", out, err)
	}
	for name, bad := range map[string][]byte{
		"no state length": b[:9],
		"state overruns":  append(bytes.Clone(b[:9]), 0x7f, 's'),
		"non-minimal len": append(append(bytes.Clone(b[:9]), 0x84, 0x00), "sent"...),
		"state too long":  append(append(bytes.Clone(b[:9]), byte(maxStateLen+1)), strings.Repeat("s", maxStateLen+1)...),
		"state not utf8":  append(bytes.Clone(b[:9]), 1, 0xff),
	} {
		if _, err := unmarshalIndex(bad); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: unmarshalIndex(%x) = %v, want errCorrupt", name, bad, err)
		}
	}
	// An index read without its envelope can't be rewritten as queued.
	ix.envKnown = false
	if _, err := ix.marshal(); err == nil {
		t.Fatal("a queued index without its envelope was re-encoded")
	}
}
