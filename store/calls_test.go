package store

import (
	"fmt"
	"testing"
	"time"
)

func TestCallLog(t *testing.T) {
	db := openT(t, t.TempDir(), nil)
	base := time.Unix(1_700_000_000, 0)
	for i := range MaxCalls + 5 {
		c := Call{ID: fmt.Sprintf("%032x", i), Peer: "csa1peer", Direction: "in", Start: base.Add(time.Duration(i) * time.Second), EndReason: "hangup", Path: "direct"}
		if err := db.Update(func(tx *Tx) error { return tx.PutCall(c) }); err != nil {
			t.Fatal(err)
		}
	}
	var got []Call
	if err := db.View(func(tx *Tx) error { var err error; got, err = tx.Calls(0); return err }); err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxCalls {
		t.Fatalf("kept %d entries, want %d", len(got), MaxCalls)
	}
	if got[0].ID != fmt.Sprintf("%032x", MaxCalls+4) || got[len(got)-1].ID != fmt.Sprintf("%032x", 5) {
		t.Fatalf("order or trimming wrong: newest %s oldest %s", got[0].ID, got[len(got)-1].ID)
	}
	var two []Call
	db.View(func(tx *Tx) error { var err error; two, err = tx.Calls(2); return err })
	if len(two) != 2 || two[0].Start.Before(two[1].Start) {
		t.Fatalf("limit: %+v", two)
	}
	if err := db.Update(func(tx *Tx) error { return tx.PutCall(Call{ID: "", Start: base}) }); err == nil {
		t.Fatal("empty id accepted")
	}
}
