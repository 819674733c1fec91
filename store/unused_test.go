package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestDiscardUnusedAccount: the account a first start made gives way to
// a restored one only while it holds nothing a person would miss; then its
// keys, prekeys and sessions go and what belongs to the machine stays.
// Each thing a person would miss keeps it, and nothing is deleted.
func TestDiscardUnusedAccount(t *testing.T) {
	fresh := func(t *testing.T) *DB {
		db := openT(t, t.TempDir(), nil)
		err := db.Update(func(tx *Tx) error {
			if err := tx.PutSecrets(Secrets{AccountSeed: bytes.Repeat([]byte{7}, 32), DeviceKey: []byte("device"), X25519: bytes.Repeat([]byte{1}, 32), Prekeys: []byte("prekeys")}); err != nil {
				return err
			}
			if err := tx.Space(SpaceMsg).Set([]byte("sess/csa1peer\x0012345678"), []byte("session")); err != nil {
				return err
			}
			if err := tx.Space(SpaceMsg).Set([]byte("dq/csa1peer\x0012345678\x00m1"), []byte("envelope")); err != nil {
				return err
			}
			if err := tx.AddBootstrap("/ip4/127.0.0.1/tcp/4141/p2p/12D3KooWA"); err != nil {
				return err
			}
			return tx.PutListenPorts(ListenPorts{TCP: 4141})
		})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := fresh(t)
	if err := db.Update(func(tx *Tx) error { return tx.DiscardUnusedAccount() }); err != nil {
		t.Fatalf("an unused account: %v", err)
	}
	err := db.View(func(tx *Tx) error {
		sec, err := tx.Secrets()
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("secrets left: %+v %v", sec, err)
		}
		if ok, err := tx.Space(SpaceMsg).Has([]byte("sess/csa1peer\x0012345678")); ok || err != nil {
			t.Errorf("a session left (%v)", err)
		}
		if ok, err := tx.Space(SpaceMsg).Has([]byte("dq/csa1peer\x0012345678\x00m1")); ok || err != nil {
			t.Errorf("a queued copy left (%v)", err)
		}
		if b, err := tx.Bootstraps(); len(b) != 1 || err != nil {
			t.Errorf("community nodes: %q %v, want the one kept", b, err)
		}
		if p, err := tx.ListenPorts(); p.TCP != 4141 || err != nil {
			t.Errorf("listen ports: %+v %v, want them kept", p, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	for what, use := range map[string]func(tx *Tx) error{
		"a handle": func(tx *Tx) error {
			return tx.PutClaim(HandleClaim{Name: "alice", Nonce: 1, ClaimedAt: time.Unix(1_764_892_800, 0)})
		},
		"contacts": func(tx *Tx) error {
			return tx.PutContact(Contact{Account: "csa1bob", Petname: "bob", AddedAt: time.Unix(1_764_892_800, 0)})
		},
		"conversations": func(tx *Tx) error { return tx.Space(SpaceMsg).Set([]byte("conv/csa1bob"), []byte{1}) },
		"messages":      func(tx *Tx) error { return tx.Space(SpaceMsg).Set([]byte("msg/csa1bob\x00x"), []byte{1}) },
		"calls": func(tx *Tx) error {
			return tx.PutCall(Call{ID: "c1", Peer: "csa1bob", Direction: "in", Start: time.Unix(1_764_892_800, 0), EndReason: "missed"})
		},
	} {
		t.Run(what, func(t *testing.T) {
			db := fresh(t)
			if err := db.Update(use); err != nil {
				t.Fatal(err)
			}
			err := db.Update(func(tx *Tx) error { return tx.DiscardUnusedAccount() })
			if !errors.Is(err, ErrAccountInUse) || !strings.Contains(err.Error(), what) {
				t.Fatalf("discard: %v, want %v naming %s", err, ErrAccountInUse, what)
			}
			if sec, err := db.Secrets(); err != nil || sec.AccountSeed == nil || sec.DeviceKey == nil {
				t.Errorf("after the refusal: %v; want the account kept", err)
			}
		})
	}
}
