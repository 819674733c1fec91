package node

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// TestSyncAppliersRefuse: call settings and call records a sibling sends
// are checked before they are kept: an unknown policy, a rule that is not
// allow or deny or not for an account, a record of a call not made, for
// another id, or with a peer that is no account, are refused, and nothing
// changes; good ones keep this device's auto-answer and recording folder.
func TestSyncAppliersRefuse(t *testing.T) {
	db, err := store.Open(context.Background(), store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k, err := identity.GenerateAccountKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	acct := k.Public().ID().String()
	mine := store.CallSettings{Policy: "contacts", AutoAnswer: true, RecordDir: "/srv/calls"}
	if err := db.PutCallSettings(mine); err != nil {
		t.Fatal(err)
	}
	apply := func(f devices.Applier, kind devices.Kind, key []byte, v any) error {
		var b []byte
		switch x := v.(type) {
		case store.CallSettings:
			b, _ = store.MarshalCallSettings(x)
		case store.Call:
			b, _ = store.MarshalCall(x)
		case []byte:
			b = x
		}
		return db.Update(func(tx *store.Tx) error { return f(tx, devices.Op{Kind: kind, Key: key, Value: b}) })
	}
	for name, s := range map[string]store.CallSettings{
		"an unknown policy":      {Policy: "friends"},
		"no policy":              {},
		"a rule of another word": {Policy: "everyone", Rules: map[string]string{acct: "maybe"}},
		"a rule for no account":  {Policy: "everyone", Rules: map[string]string{"bob": "allow"}},
	} {
		if err := apply(applyCallSettings, devices.KindCallSettings, nil, s); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want refused", name, err)
		}
	}
	if err := apply(applyCallSettings, devices.KindCallSettings, nil, []byte{0xff}); err == nil {
		t.Error("call settings that do not parse were taken")
	}
	if got, _ := db.CallSettings(); got.Policy != "contacts" {
		t.Fatalf("after refused settings: %+v", got)
	}
	if err := apply(applyCallSettings, devices.KindCallSettings, nil, store.CallSettings{Policy: "everyone", Rules: map[string]string{acct: "deny"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.CallSettings(); got.Policy != "everyone" || got.Rules[acct] != "deny" || !got.AutoAnswer || got.RecordDir != "/srv/calls" {
		t.Fatalf("settings from a sibling: %+v, want its policy and rule, this device's auto-answer", got)
	}

	start := time.Now().UTC()
	good := store.Call{ID: "c1", Peer: acct, Direction: "out", Start: start, EndReason: "hangup"}
	for name, c := range map[string]store.Call{
		"a call not made": {ID: "c1", Peer: acct, Direction: "in", Start: start},
		"no account":      {ID: "c1", Peer: "bob", Direction: "out", Start: start},
	} {
		if err := apply(applyCallRecord, devices.KindCallRecord, []byte("c1"), c); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want refused", name, err)
		}
	}
	if err := apply(applyCallRecord, devices.KindCallRecord, []byte("c2"), good); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a record under another id: %v, want refused", err)
	}
	for range 2 {
		if err := apply(applyCallRecord, devices.KindCallRecord, []byte("c1"), good); err != nil {
			t.Fatal(err)
		}
	}
	var calls []store.Call
	db.View(func(tx *store.Tx) (err error) { calls, err = tx.Calls(0); return err })
	if len(calls) != 1 || calls[0].ID != "c1" {
		t.Fatalf("the call log after a record came twice: %+v", calls)
	}
}
