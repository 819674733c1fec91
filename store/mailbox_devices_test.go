package store

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// TestMailboxDeviceQueues: a member's queues (the account's and each
// device's) keep their envelopes, digests and one-time prekeys apart, the
// account's as before; devices read back; counts come from keys alone.
func TestMailboxDeviceQueues(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, nil)
	acct := bytes.Repeat([]byte{7}, MailboxAccountSize)
	d1, d2 := bytes.Repeat([]byte{1}, MailboxDeviceSize), bytes.Repeat([]byte{2}, MailboxDeviceSize)
	env := func(seq uint64, dg byte) MailboxEnvelope {
		return MailboxEnvelope{Seq: seq, Expires: time.Unix(100, 0), Digest: bytes.Repeat([]byte{dg}, MailboxDigestSize), Data: []byte{byte(seq)}}
	}
	err := db.Update(func(tx *Tx) error {
		for _, e := range []struct {
			dev []byte
			e   MailboxEnvelope
		}{{nil, env(1, 9)}, {d1, env(2, 9)}, {d1, env(4, 8)}, {d2, env(3, 7)}} {
			if err := tx.PutMailboxDeviceEnvelope(acct, e.dev, e.e); err != nil {
				return err
			}
		}
		if err := tx.PutMailboxDevicePrekey(acct, d1, MailboxPrekeyX25519, 5, []byte{5}); err != nil {
			return err
		}
		if err := tx.PutMailboxPrekey(acct, MailboxPrekeyPQ, 6, []byte{6}); err != nil {
			return err
		}
		for _, d := range []MailboxDevice{{Account: acct, ID: d1, Peer: []byte("p1"), First: true}, {Account: acct, ID: d2, Peer: []byte("p2")}} {
			if err := tx.PutMailboxDevice(d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openT(t, dir, nil)
	defer db.Close()
	err = db.Update(func(tx *Tx) error {
		seqs := func(dev []byte) []uint64 {
			es, err := tx.MailboxDeviceEnvelopes(acct, dev, 0, 10, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var out []uint64
			for _, e := range es {
				out = append(out, e.Seq)
			}
			return out
		}
		if a, q1, q2 := seqs(nil), seqs(d1), seqs(d2); len(a) != 1 || a[0] != 1 || len(q1) != 2 || q1[0] != 2 || q1[1] != 4 || len(q2) != 1 || q2[0] != 3 {
			t.Errorf("queues hold %v, %v, %v; want [1], [2 4], [3]", a, q1, q2)
		}
		if es, _ := tx.MailboxEnvelopes(acct, 0, 10, 1<<20); len(es) != 1 {
			t.Errorf("the account's queue (MailboxEnvelopes) holds %d, want 1", len(es))
		}
		// One digest, in two queues: each its own.
		for _, c := range []struct {
			dev  []byte
			dg   byte
			want bool
		}{{nil, 9, true}, {d1, 9, true}, {d2, 9, false}, {nil, 8, false}, {d1, 8, true}} {
			if got, err := tx.MailboxDeviceDigest(acct, c.dev, bytes.Repeat([]byte{c.dg}, MailboxDigestSize)); err != nil || got != c.want {
				t.Errorf("digest %d in queue %x: %v, %v", c.dg, c.dev, got, err)
			}
		}
		// Another queue's sequence number is not found.
		if _, err := tx.DeleteMailboxDeviceEnvelope(acct, d2, 2); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete of another queue's seq: %v", err)
		}
		if _, err := tx.DeleteMailboxDeviceEnvelope(acct, d1, 2); err != nil {
			t.Error(err)
		}
		if ok, _ := tx.MailboxDeviceDigest(acct, d1, bytes.Repeat([]byte{9}, MailboxDigestSize)); ok {
			t.Error("the digest outlived its envelope")
		}
		if ok, _ := tx.MailboxDigest(acct, bytes.Repeat([]byte{9}, MailboxDigestSize)); !ok {
			t.Error("a delete in a device's queue took the account's digest")
		}
		q, err := tx.MailboxDeviceQueued()
		if err != nil || len(q) != 2 || q[string(acct)+string(d1)] != 1 || q[string(acct)+string(d2)] != 1 {
			t.Errorf("queued = %v, %v", q, err)
		}
		dc, err := tx.MailboxDevicePrekeyCounts()
		if err != nil || len(dc) != 1 || dc[string(acct)+string(d1)] != [2]int{1, 0} {
			t.Errorf("device prekey counts = %v, %v", dc, err)
		}
		ac, err := tx.MailboxPrekeyCounts()
		if err != nil || len(ac) != 1 || ac[string(acct)] != [2]int{0, 1} {
			t.Errorf("account prekey counts = %v, %v", ac, err)
		}
		if _, err := tx.TakeMailboxDevicePrekey(acct, d2, MailboxPrekeyX25519); !errors.Is(err, ErrNotFound) {
			t.Errorf("another device's prekey handed out: %v", err)
		}
		if k, err := tx.TakeMailboxDevicePrekey(acct, d1, MailboxPrekeyX25519); err != nil || !bytes.Equal(k, []byte{5}) {
			t.Errorf("take = %v, %v", k, err)
		}
		ds, err := tx.MailboxDevices()
		if err != nil || len(ds) != 2 || !bytes.Equal(ds[0].ID, d1) || !ds[0].First || string(ds[1].Peer) != "p2" || ds[1].First || !bytes.Equal(ds[1].Account, acct) {
			t.Errorf("devices = %+v, %v", ds, err)
		}
		if err := tx.DeleteMailboxDevice(acct, d1); err != nil {
			t.Error(err)
		}
		if ds, _ := tx.MailboxDevices(); len(ds) != 1 {
			t.Errorf("%d devices after a delete", len(ds))
		}
		if err := tx.PutMailboxDeviceEnvelope(acct, []byte{1}, env(9, 1)); !errors.Is(err, ErrInvalid) {
			t.Errorf("a device id of 1 byte: %v", err)
		}
		if err := tx.PutMailboxDevice(MailboxDevice{Account: acct, ID: d1}); !errors.Is(err, ErrInvalid) {
			t.Errorf("a device without a peer: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
