package msg

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// TestQueue: a queued text message keeps its copy for the peer's device
// through state changes and replacement, MoveCopy hands a copy on to
// another device unsealed, Dequeue drops it, and start-up finds exactly
// the queued copies.
func TestQueue(t *testing.T) {
	db := memDB(t)
	out := func(id string, at time.Time) Message {
		return Message{ID: id, Peer: "p", Direction: DirOut, Body: []byte("body " + id), At: at, State: "queued"}
	}
	env := bytes.Repeat([]byte{2}, 2000) // a sealed envelope, as msg writes it
	other := identity.DeviceID{9}
	err := db.Update(func(tx *store.Tx) error {
		if err := In(tx).InsertQueued(out("q1", t0), Copy{testDev, env}); err != nil {
			return err
		}
		if err := In(tx).InsertQueued(out("q2", t0.Add(time.Second)), Copy{}); err != nil { // no device known yet
			return err
		}
		if err := In(tx).InsertMessage(out("done", t0.Add(2*time.Second))); err != nil {
			return err
		}
		return In(tx).InsertMessage(Message{ID: "in", Peer: "p", Direction: DirIn, Body: []byte("x"), At: t0.Add(3 * time.Second)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *store.Tx) error {
		return In(tx).InsertQueued(Message{ID: "bad", Peer: "p", Direction: DirIn, At: t0}, Copy{testDev, nil})
	}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("queuing an incoming message: %v, want store.ErrInvalid", err)
	}
	queued := func() string {
		t.Helper()
		var ids []string
		err := db.View(func(tx *store.Tx) error {
			qs, err := In(tx).Queued()
			for _, q := range qs {
				ids = append(ids, fmt.Sprintf("%s@%x@%d", q.ID, q.Dev[:1], q.At.Sub(t0)/time.Second))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(ids, ",")
	}
	envOf := func(dev identity.DeviceID, id string) ([]byte, error) {
		var e []byte
		err := db.View(func(tx *store.Tx) (err error) { e, err = In(tx).QueuedEnvelope("p", dev, id); return err })
		return e, err
	}
	if got := queued(); got != "q2@00@1,q1@01@0" {
		t.Fatalf("queued = %s, want q2 (no device) and q1 (testDev) with their times", got)
	}
	// State changes and replacing the message keep it queued with its copy.
	if err := db.SetMessageState("p", "q1", "sent"); err != nil {
		t.Fatal(err)
	}
	if err := db.PutMessage(out("q1", t0)); err != nil {
		t.Fatal(err)
	}
	if e, err := envOf(testDev, "q1"); err != nil || !bytes.Equal(e, env) {
		t.Fatalf("envelope after a state change and a replace: %d bytes, %v", len(e), err)
	}
	if m, err := db.Message("p", "q1"); err != nil || m.State != "queued" || string(m.Body) != "body q1" {
		t.Fatalf("Message(q1) = %+v, %v", m, err)
	}
	if _, err := envOf(other, "q1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("q1's copy for another device: %v", err)
	}
	// MoveCopy hands q2's copy on to the device, unsealed; sealing sets it.
	var added []identity.DeviceID
	if err := db.Update(func(tx *store.Tx) (err error) {
		added, err = In(tx).MoveCopy("p", "q2", identity.DeviceID{}, []identity.DeviceID{testDev})
		return err
	}); err != nil || len(added) != 1 || added[0] != testDev {
		t.Fatalf("MoveCopy = %v, %v; want the device", added, err)
	}
	if err := db.Update(func(tx *store.Tx) error {
		_, err := In(tx).MoveCopy("p", "q2", identity.DeviceID{}, []identity.DeviceID{testDev})
		return err
	}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("MoveCopy of a copy moved already: %v, want store.ErrNotFound", err)
	}
	if err := db.Update(func(tx *store.Tx) error { return In(tx).SetQueuedEnvelope("p", testDev, "q2", []byte{2, 9}) }); err != nil {
		t.Fatal(err)
	}
	if e, err := envOf(testDev, "q2"); err != nil || !bytes.Equal(e, []byte{2, 9}) {
		t.Fatalf("envelope of q2 = %x, %v", e, err)
	}
	if got := queued(); got != "q1@01@0,q2@01@1" {
		t.Fatalf("queued after MoveCopy = %s", got)
	}
	for _, id := range []string{"done", "in", "nope"} {
		if _, err := envOf(testDev, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("QueuedEnvelope(%s) = %v, want store.ErrNotFound", id, err)
		}
		if err := db.Update(func(tx *store.Tx) error { return In(tx).SetQueuedEnvelope("p", testDev, id, []byte{2}) }); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SetQueuedEnvelope(%s) = %v, want store.ErrNotFound", id, err)
		}
		if err := db.Update(func(tx *store.Tx) error {
			_, err := In(tx).MoveCopy("p", id, testDev, []identity.DeviceID{other})
			return err
		}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("MoveCopy(%s) = %v, want store.ErrNotFound", id, err)
		}
	}

	// Dequeue: the state the caller decides, no copy, not queued.
	var m Message
	err = db.Update(func(tx *store.Tx) (err error) {
		m, err = In(tx).Dequeue("p", testDev, "q1", func(m Message, last bool) (string, bool) { return "delivered", last && m.State != "read" })
		return err
	})
	if err != nil || m.State != "delivered" || !m.At.Equal(t0) {
		t.Fatalf("Dequeue = %+v, %v", m, err)
	}
	if _, err := envOf(testDev, "q1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("envelope after Dequeue: %v", err)
	}
	if got := queued(); got != "q2@01@1" {
		t.Fatalf("queued after Dequeue = %s, want q2", got)
	}
	if err := db.Update(func(tx *store.Tx) error {
		_, err := In(tx).Dequeue("p", testDev, "q1", func(Message, bool) (string, bool) { return "x", true })
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
		m, err = In(tx).Dequeue("p", testDev, "q2", func(m Message, _ bool) (string, bool) { return "delivered", m.State != "read" })
		return err
	})
	if err != nil || m.State != "read" {
		t.Fatalf("Dequeue after a receipt = %+v, %v; want read", m, err)
	}
	// Deleting a queued message takes its copies out of the queue.
	if err := db.Update(func(tx *store.Tx) error {
		return In(tx).InsertQueued(out("q3", t0.Add(4*time.Second)), Copy{other, env}, Copy{testDev, nil})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteMessage("p", "q3"); err != nil {
		t.Fatal(err)
	}
	if got := queued(); got != "" {
		t.Fatalf("queued after deleting q3 = %q, want none", got)
	}
}

func TestQueuedIndexCodec(t *testing.T) {
	devs := []identity.DeviceID{{1, 2, 3, 4, 5, 6, 7, 8}, {}}
	b, err := marshalQueued(t0, "sent", devs)
	if err != nil {
		t.Fatal(err)
	}
	want := "03" + hex.EncodeToString(be64(t0)) + "04" + hex.EncodeToString([]byte("sent")) + "0102030405060708" + "0000000000000000"
	if hex.EncodeToString(b) != want {
		t.Fatalf("queued index = %x, want %s", b, want)
	}
	ix, err := unmarshalIndex(b)
	if err != nil || !ix.queued || ix.dir != DirOut || ix.state != "sent" || len(ix.targets) != 2 || ix.targets[0] != devs[0] || !ix.targets[1].IsZero() || !ix.at.Equal(t0) {
		t.Fatalf("decoded = %+v, %v", ix, err)
	}
	if out, err := ix.marshal(); err != nil || !bytes.Equal(out, b) {
		t.Fatalf("re-encoded = %x, %v", out, err)
	}
	nine := append(bytes.Clone(b[:14]), bytes.Repeat([]byte{1}, 9*identity.DeviceIDSize)...)
	for name, bad := range map[string][]byte{
		"no state length": b[:9],
		"state overruns":  append(bytes.Clone(b[:9]), 0x7f, 's'),
		"non-minimal len": append(append(bytes.Clone(b[:9]), 0x84, 0x00), "sent"...),
		"state too long":  append(append(bytes.Clone(b[:9]), byte(maxStateLen+1)), strings.Repeat("s", maxStateLen+1)...),
		"state not utf8":  append(bytes.Clone(b[:9]), 1, 0xff),
		"no device":       b[:14],
		"part of one":     b[:len(b)-1],
		"nine devices":    nine,
	} {
		if _, err := unmarshalIndex(bad); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: unmarshalIndex(%x) = %v, want errCorrupt", name, bad, err)
		}
	}
	for _, n := range []int{0, maxTargets + 1} {
		if _, err := marshalQueued(t0, "sent", make([]identity.DeviceID, n)); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("marshalQueued with %d devices: %v", n, err)
		}
	}
}

// TestQueueCopies: a message queued for three devices leaves the outbox
// when the last copy is acknowledged, its state the caller's at each ack;
// MoveCopy hands a copy on only to devices that have none.
func TestQueueCopies(t *testing.T) {
	db := memDB(t)
	a, b, c, d := identity.DeviceID{1}, identity.DeviceID{2}, identity.DeviceID{3}, identity.DeviceID{4}
	m := Message{ID: "m", Peer: "p", Direction: DirOut, Body: []byte("hi"), At: t0, State: "queued"}
	if err := db.Update(func(tx *store.Tx) error { return In(tx).InsertQueued(m, Copy{a, nil}, Copy{a, nil}) }); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("two copies for one device: %v", err)
	}
	if err := db.Update(func(tx *store.Tx) error {
		return In(tx).InsertQueued(m, Copy{a, []byte("ea")}, Copy{b, nil}, Copy{c, nil})
	}); err != nil {
		t.Fatal(err)
	}
	var added []identity.DeviceID
	if err := db.Update(func(tx *store.Tx) (err error) {
		added, err = In(tx).MoveCopy("p", "m", c, []identity.DeviceID{a, b, d})
		return err
	}); err != nil || len(added) != 1 || added[0] != d {
		t.Fatalf("MoveCopy(c → a, b, d) = %v, %v; want d alone", added, err)
	}
	var lasts []bool
	for i, dev := range []identity.DeviceID{b, a, d} {
		var got Message
		err := db.Update(func(tx *store.Tx) (err error) {
			got, err = In(tx).Dequeue("p", dev, "m", func(m Message, last bool) (string, bool) {
				lasts = append(lasts, last)
				return fmt.Sprint("state", i), true
			})
			return err
		})
		if err != nil || got.State != fmt.Sprint("state", i) {
			t.Fatalf("Dequeue #%d = %+v, %v", i, got, err)
		}
		var n int
		db.View(func(tx *store.Tx) error { qs, err := In(tx).Queued(); n = len(qs); return err })
		if n != 2-i {
			t.Fatalf("after ack #%d: %d copies queued, want %d", i, n, 2-i)
		}
	}
	if fmt.Sprint(lasts) != "[false false true]" {
		t.Fatalf("last = %v, want only the third", lasts)
	}
	if got, err := db.Message("p", "m"); err != nil || got.State != "state2" {
		t.Fatalf("after the last ack: %+v, %v", got, err)
	}
	if err := db.Update(func(tx *store.Tx) error {
		_, err := In(tx).Dequeue("p", a, "m", func(Message, bool) (string, bool) { return "", false })
		return err
	}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an ack after the last: %v, want store.ErrNotFound", err)
	}
}

// TestCheckQueue: Verify's check names a queued copy its message does not
// name, a copy of a message that is not queued, and a queued message
// without its copy; sound ones pass.
func TestCheckQueue(t *testing.T) {
	db := memDB(t)
	other := identity.DeviceID{9}
	m := Message{ID: "q1", Peer: "p", Direction: DirOut, Body: []byte("hi"), At: t0, State: "queued"}
	if err := db.Update(func(tx *store.Tx) error {
		d := In(tx)
		if err := d.InsertQueued(m, Copy{testDev, []byte("e")}); err != nil {
			return err
		}
		return d.InsertMessage(Message{ID: "done", Peer: "p", Direction: DirOut, At: t0, State: "delivered"})
	}); err != nil {
		t.Fatal(err)
	}
	check := func(k []byte) string {
		t.Helper()
		var got string
		err := db.View(func(tx *store.Tx) error {
			sp := tx.Space(store.SpaceMsg)
			v, err := sp.Get(k)
			if errors.Is(err, store.ErrNotFound) {
				v, err = nil, nil
			}
			got = Check(sp, k, v, func([]byte, string) {})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	index := key(pfxMsgID, []byte("p"), sep, []byte("q1"))
	for _, k := range [][]byte{queueKey("p", testDev, "q1"), index} {
		if got := check(k); got != "" {
			t.Fatalf("sound %q: %q", k, got)
		}
	}
	for _, c := range []struct {
		k    []byte
		want string
	}{
		{queueKey("p", other, "q1"), "does not name"},
		{queueKey("p", testDev, "done"), "not queued"},
		{key(pfxQueue, []byte("p"), sep, []byte("short")), "malformed"},
	} {
		if err := db.Update(func(tx *store.Tx) error { return tx.Space(store.SpaceMsg).Set(c.k, []byte("e")) }); err != nil {
			t.Fatal(err)
		}
		if got := check(c.k); !strings.Contains(got, c.want) {
			t.Errorf("%q: Check = %q, want %q", c.k, got, c.want)
		}
	}
	if err := db.Update(func(tx *store.Tx) error { return tx.Space(store.SpaceMsg).Delete(queueKey("p", testDev, "q1")) }); err != nil {
		t.Fatal(err)
	}
	if got := check(index); !strings.Contains(got, "without its copy") {
		t.Fatalf("a queued message without its copy: Check = %q", got)
	}
}
