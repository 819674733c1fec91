package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
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
