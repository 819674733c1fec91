package store

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

type portableItem struct {
	kind byte
	body []byte
}

func exportAll(t *testing.T, db *DB) []portableItem {
	t.Helper()
	var items []portableItem
	err := db.View(func(tx *Tx) error {
		return tx.ExportPortable(func(kind byte, body []byte) error {
			items = append(items, portableItem{kind, bytes.Clone(body)})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// TestPortableRoundTrip: what a backup carries comes back the same in a
// new store, the account seed first; what belongs to the device or the
// machine (its keys, the recording folder, listen ports) does not travel.
func TestPortableRoundTrip(t *testing.T) {
	src := openT(t, t.TempDir(), nil)
	at := time.Unix(1_764_892_800, 0)
	seed := bytes.Repeat([]byte{7}, 32)
	cs := CallSettings{Policy: "contacts", AutoAnswer: true, RecordDir: "/home/alice/calls", Rules: map[string]string{"csa1x": "allow"}}
	err := src.Update(func(tx *Tx) error {
		if err := tx.PutSecrets(Secrets{AccountSeed: seed, DeviceKey: []byte("device"), X25519: bytes.Repeat([]byte{1}, 32)}); err != nil {
			return err
		}
		for _, err := range []error{
			tx.PutClaim(HandleClaim{Name: "alice", Nonce: 42, Seq: 3, ClaimedAt: at}),
			tx.PutContact(Contact{Account: "csa1bob", PubKey: bytes.Repeat([]byte{2}, 32), Petname: "bob", Handle: "bob", AddedAt: at, PinnedAt: at, Verified: true}),
			tx.PutContact(Contact{Account: "csa1eve", PubKey: bytes.Repeat([]byte{3}, 32), AddedAt: at, Blocked: true}),
			tx.PutCallSettings(cs),
			tx.PutSetting("theme", []byte("dark")),
			tx.AddBootstrap("/ip4/192.0.2.1/tcp/4141/p2p/12D3KooWtest"),
			tx.PutListenPorts(ListenPorts{TCP: 4141}),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	items := exportAll(t, src)
	if len(items) != 7 || items[0].kind != PortableAccountSeed || !bytes.Equal(items[0].body, seed) {
		t.Fatalf("%d items, the first of kind %d", len(items), items[0].kind)
	}
	dst := openT(t, t.TempDir(), nil)
	err = dst.Update(func(tx *Tx) error {
		for _, it := range items {
			if err := tx.ImportPortable(it.kind, it.body); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = dst.View(func(tx *Tx) error {
		sec, _ := tx.Secrets()
		if !bytes.Equal(sec.AccountSeed, seed) || sec.DeviceKey != nil || sec.X25519 != nil {
			t.Errorf("secrets restored: seed %v, device key %q, x25519 %x", bytes.Equal(sec.AccountSeed, seed), sec.DeviceKey, sec.X25519)
		}
		want := map[string]any{}
		got := map[string]any{}
		_ = src.View(func(stx *Tx) error {
			want["claims"], _ = stx.Claims()
			want["contacts"], _ = stx.Contacts()
			want["boot"], _ = stx.Bootstraps()
			want["settings"], _ = stx.Settings()
			return nil
		})
		got["claims"], _ = tx.Claims()
		got["contacts"], _ = tx.Contacts()
		got["boot"], _ = tx.Bootstraps()
		got["settings"], _ = tx.Settings()
		for k := range want {
			if !reflect.DeepEqual(got[k], want[k]) {
				t.Errorf("%s: got %+v, want %+v", k, got[k], want[k])
			}
		}
		gcs, err := tx.CallSettings()
		cs.RecordDir = ""
		if err != nil || !reflect.DeepEqual(gcs, cs) {
			t.Errorf("call settings %+v, %v; want %+v", gcs, err, cs)
		}
		if _, err := tx.ListenPorts(); !errors.Is(err, ErrNotFound) {
			t.Errorf("listen ports travelled: %v", err)
		}
		return nil
	})
	// Into a store that holds an account it does not go.
	err = dst.Update(func(tx *Tx) error { return tx.ImportPortable(PortableAccountSeed, seed) })
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("a second account seed: %v", err)
	}
}

// TestPortableHostile: an item that does not decode, or of an unknown
// kind, is refused with nothing written; a store without an account has
// nothing to back up.
func TestPortableHostile(t *testing.T) {
	db := openT(t, t.TempDir(), nil)
	if err := db.View(func(tx *Tx) error { return tx.ExportPortable(func(byte, []byte) error { return nil }) }); !errors.Is(err, ErrNotFound) {
		t.Errorf("an empty store backed up: %v", err)
	}
	claim, _ := marshalClaim(&HandleClaim{Name: "alice", Nonce: 1})
	for name, tc := range map[string]struct {
		kind byte
		body []byte
		want error
	}{
		"seed of 31 bytes":  {PortableAccountSeed, make([]byte, 31), ErrInvalid},
		"a claim cut short": {PortableClaim, claim[:len(claim)-1], ErrInvalid},
		"a claim's field 9": {PortableClaim, append(bytes.Clone(claim), 0x48, 1), ErrInvalid},
		"a contact of junk": {PortableContact, []byte{0xff, 0xff}, ErrInvalid},
		"call settings":     {PortableCallSettings, []byte{0x0a, 0x40}, ErrInvalid},
		"a setting no name": {PortableSetting, []byte{0x12, 1, 'x'}, ErrInvalid},
		"an empty address":  {PortableBootstrap, nil, ErrInvalid},
		"kind 7":            {7, []byte("anything"), ErrPortableKind},
		"kind 0":            {0, nil, ErrPortableKind},
	} {
		err := db.Update(func(tx *Tx) error { return tx.ImportPortable(tc.kind, tc.body) })
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if items := 0; db.View(func(tx *Tx) error {
		return tx.scan(nil, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
			if !bytes.HasPrefix(k, []byte("meta/")) {
				items++
				t.Errorf("left behind: %q", k)
			}
			return true, nil
		})
	}) != nil || items != 0 {
		t.Errorf("%d entries written by refused items", items)
	}
}
