package msg

import (
	"strings"
	"testing"
	"time"
)

// Additions a later version might send, in the additions range: on a
// Deliver, field 17 (a varint) and field 19 (bytes); inside the Content,
// field 20 (a group id, bytes) and field 21 (a varint).
const (
	laterDeliverAdditions = "8801" + "05" + "9a01" + "03616263"
	laterContentAdditions = "f201" + "07" + "67726f75702d37" + "f801" + "03" // fields 30 and 31
)

// TestNewerPeerReadAsKnownParts: a newer peer's Deliver frame, with
// additions this version does not know and a Content with additions of its
// own, goes through the inbound handler like any other: acknowledged as
// stored, and the person sees the text. A Content of a newer version is
// refused with a reason that says so, and nothing is stored.
func TestNewerPeerReadAsKnownParts(t *testing.T) {
	w := newWorld()
	b := newNode(t, w, nil)
	b.start()
	r := newRawPeer(t, w)
	st := r.open(t, b)

	c := content{kind: contentText, seq: 1, sentAt: time.Now().UnixNano(), body: []byte("hello from a newer callsign"),
		skipped: mustHex(laterContentAdditions)}
	id := newMsgID()
	f := r.seal(t, b, id, c)
	f.skipped = mustHex(laterDeliverAdditions)
	frame := f.marshal()
	if !strings.HasSuffix(string(frame), string(mustHex(laterDeliverAdditions))) {
		t.Fatalf("frame %x does not end with the additions", frame)
	}
	if a := exchange(t, st, frame); a.id != id || a.status != statusStored {
		t.Fatalf("ack for a newer peer's frame = %+v, want stored", a)
	}
	got := b.incoming(r.id())
	if len(got) != 1 || string(got[0].Body) != "hello from a newer callsign" {
		t.Fatalf("b holds %+v, want the newer peer's text", got)
	}
	if ev := b.eventsOf(EventMessage); len(ev) != 1 {
		t.Fatalf("%d message events, want 1", len(ev))
	}

	// Version 2 of the Content (field 15): this version can't know what it
	// means, so it refuses it rather than show a part of it.
	c = content{kind: contentText, seq: 2, sentAt: time.Now().UnixNano(), body: []byte("a version 2 message"),
		skipped: mustHex("7802")}
	id = newMsgID()
	f = r.seal(t, b, id, c)
	a := exchange(t, st, f.marshal())
	if a.id != id || a.status != statusRefused || a.reason != reasonNewerContent {
		t.Fatalf("ack for a version 2 content = %+v, want refused with %q", a, reasonNewerContent)
	}
	if got := b.incoming(r.id()); len(got) != 1 {
		t.Fatalf("b holds %d messages after a version 2 content, want 1", len(got))
	}
}
