package msg

import (
	"errors"
	"testing"

	"github.com/callsign/callsign/store"
)

// TestStoredValuesRefuseAdditions: a stored value keeps one byte form
// (docs/ARCHITECTURE.md, "Wire formats"), so a field in the additions
// range, which a frame between peers would skip, makes the value corrupt:
// reading the conversation says so instead of dropping what it can't read.
func TestStoredValuesRefuseAdditions(t *testing.T) {
	db := openDB(t, t.TempDir())
	c := Conversation{Peer: "p", NextSeq: 4, Unread: 2}
	if err := db.PutConversation(c); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Conversation("p"); err != nil || !sameConv(got, c) {
		t.Fatalf("conversation = %+v, %v", got, err)
	}
	b, err := marshalConversation(&c)
	if err != nil {
		t.Fatal(err)
	}
	addition := []byte{0xc0, 0x02, 0x05} // field 40, varint 5
	if err := db.Update(func(tx *store.Tx) error {
		return tx.Space(store.SpaceMsg).Set(key(pfxConv, []byte("p")), append(b, addition...))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Conversation("p"); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("conversation with an addition: %v, want store.ErrCorrupt", err)
	}
	mb, err := marshalMessage(&goldenMessage)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unmarshalMessage(append(mb, addition...)); !errors.Is(err, errCorrupt) {
		t.Errorf("message with an addition: %v, want errCorrupt", err)
	}
	ob, err := marshalOutbox(&goldenOutbox)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unmarshalOutbox(append(ob, addition...)); !errors.Is(err, errCorrupt) {
		t.Errorf("outbox entry with an addition: %v, want errCorrupt", err)
	}
}
