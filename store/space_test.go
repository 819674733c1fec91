package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestSpace checks a keyspace: its values are sealed under their keys like
// every other, it reaches no key outside its owner's prefixes, it commits
// with the rest of its transaction, and Verify runs the owner's check on
// its values.
func TestSpace(t *testing.T) {
	db := memT(t)
	err := db.Update(func(tx *Tx) error {
		sp := tx.Space(SpaceMsg)
		for _, k := range []string{"sess/b", "sess/a", "sess/c", "sess/e"} {
			if err := sp.Set([]byte(k), []byte("v "+k)); err != nil {
				return err
			}
		}
		return tx.PutSetting("x", []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *Tx) error {
		sp := tx.Space(SpaceMsg)
		if v, err := sp.Get([]byte("sess/a")); err != nil || string(v) != "v sess/a" {
			return fmt.Errorf("Get = %q, %v", v, err)
		}
		if _, err := sp.Get([]byte("sess/none")); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("Get of a missing key = %v, want ErrNotFound", err)
		}
		var keys []string
		err := sp.Scan([]byte("sess/"), []byte("sess/b"), true, func(k []byte, val func() ([]byte, error)) (bool, error) {
			v, err := val()
			if err != nil || string(v) != "v "+string(k) {
				return false, fmt.Errorf("value of %q = %q, %v", k, v, err)
			}
			keys = append(keys, string(k))
			return true, nil
		})
		if err != nil || fmt.Sprint(keys) != "[sess/b sess/a]" {
			return fmt.Errorf("reverse Scan from sess/b = %v, %v", keys, err)
		}
		// Outside the space: another owner's keys, and a scan start off its prefix.
		for _, k := range []string{"set/x", "contact/a", "meta/schema", ""} {
			if _, err := sp.Get([]byte(k)); !errors.Is(err, ErrInvalid) {
				return fmt.Errorf("Get(%q) = %v, want ErrInvalid", k, err)
			}
		}
		if err := sp.Scan([]byte("sess/"), []byte("set/x"), false, nil); !errors.Is(err, ErrInvalid) {
			return fmt.Errorf("Scan from outside its prefix = %v, want ErrInvalid", err)
		}
		if err := sp.Scan([]byte("se"), nil, false, nil); !errors.Is(err, ErrInvalid) {
			return fmt.Errorf("Scan of a prefix wider than the space = %v, want ErrInvalid", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error { return tx.Space(SpaceMsg).Set([]byte("set/x"), []byte("2")) }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Set outside the space = %v, want ErrInvalid", err)
	}
	// A failed transaction keeps nothing the space wrote.
	boom := errors.New("boom")
	if err := db.Update(func(tx *Tx) error {
		if err := tx.Space(SpaceMsg).Delete([]byte("sess/a")); err != nil {
			return err
		}
		return boom
	}); err != boom {
		t.Fatal(err)
	}
	// Sealed like every value: moved under another key, it fails to open.
	err = db.Update(func(tx *Tx) error {
		it, err := tx.txn.Get([]byte("sess/a"))
		if err != nil {
			return err
		}
		sealed, err := it.ValueCopy(nil)
		if err != nil || bytes.Contains(sealed, []byte("v sess/a")) {
			return fmt.Errorf("stored value %q, %v: not sealed", sealed, err)
		}
		return tx.txn.Set([]byte("sess/d"), sealed)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *Tx) error {
		_, err := tx.Space(SpaceMsg).Get([]byte("sess/d"))
		var ce *CorruptError
		if !errors.As(err, &ce) || string(ce.Key) != "sess/d" {
			return fmt.Errorf("Get of a moved value = %v, want a *CorruptError naming it", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Verify hands the owner's check every value of its space that
	// authenticates, and reports what it says.
	db.checks = map[string]Check{SpaceMsg: func(sp *Space, k, v []byte, report func([]byte, string)) string {
		if string(k) == "sess/c" {
			report([]byte("conv/zz"), "pointed at and missing")
			return "rejected by the check"
		}
		if _, err := sp.Get(k); err != nil {
			return err.Error()
		}
		return ""
	}}
	var got []string
	st, err := db.Verify(context.Background(), func(d Damage) { got = append(got, d.Key+": "+d.Problem) })
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]string{
		`"conv/zz": pointed at and missing`,
		`"sess/c": rejected by the check`,
		`"sess/d": ` + errAuth.Error(),
	})
	if fmt.Sprint(got) != want || st.Damaged != 3 {
		t.Fatalf("Verify reported %v (%d), want %v", got, st.Damaged, want)
	}
}

func TestSpaceUnknownOwner(t *testing.T) {
	db := memT(t)
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("Space of an unknown owner did not panic")
		}
	}()
	db.View(func(tx *Tx) error { tx.Space("nobody"); return nil })
}
