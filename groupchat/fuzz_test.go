package groupchat

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/store"
)

// FuzzCarrier: any bytes decode to a carrier whose encoding decodes to
// the same, or fail; a plaintext likewise; and Receive, given them at a
// member's node, refuses or applies without a panic.
func FuzzCarrier(f *testing.F) {
	var g group.ID
	f.Add((&carrier{kind: kindOps, group: g, ops: [][]byte{{1, 2}}}).marshal())
	f.Add((&carrier{kind: kindKey, group: g, epoch: 1, gen: 1, share: []byte{1}}).marshal())
	f.Add((&carrier{kind: kindMessage, group: g, epoch: 2, sealed: []byte{1, 2, 3}}).marshal())
	f.Add((&carrier{kind: kindKeyRequest, group: g, epoch: 1}).marshal())
	f.Add((&carrier{kind: kindReceipt, group: g, ids: make([]byte, 32), read: true}).marshal())
	f.Add((&plain{id: [16]byte{1}, text: []byte("hi")}).marshal())
	f.Add((&plain{id: [16]byte{1}, sentAt: time.Unix(1, 0), text: []byte("hi"), replyTo: make([]byte, 16)}).marshal())
	f.Add((&plain{id: [16]byte{2}, sentAt: time.Unix(1, 0), action: &action{kind: ActionReact, emoji: "👍"}}).marshal())
	f.Add((&plain{id: [16]byte{3}, sentAt: time.Unix(1, 0), text: []byte("new"), action: &action{kind: ActionEdit}}).marshal())
	f.Add((&stored{id: [16]byte{4}, from: "a", sentAt: time.Unix(1, 0), at: time.Unix(2, 0), reactions: []Reaction{{From: "b", Emoji: "🎉"}}, edited: true}).marshal())
	n, alice, bob, info := fuzzGroup(f)
	n.deliver()
	if _, err := bob.svc.Join(bob.ctx(), info.ID); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := unmarshalCarrier(b); err == nil {
			c2, err := unmarshalCarrier(c.marshal())
			if err != nil || !bytes.Equal(c2.marshal(), c.marshal()) {
				t.Fatalf("carrier %x: re-encoded %v", b, err)
			}
			// Aimed at the group the node is in.
			c.group = info.ID
			bob.svc.Receive(alice.acct(), alice.id, c.marshal(), false)
		}
		if p, err := unmarshalPlain(b); err == nil {
			p2, err := unmarshalPlain(p.marshal())
			if err != nil || !bytes.Equal(p2.marshal(), p.marshal()) {
				t.Fatalf("plain %x: re-encoded %v", b, err)
			}
		}
		if m, err := unmarshalStored(b); err == nil {
			m2, err := unmarshalStored(m.marshal())
			if err != nil || !bytes.Equal(m2.marshal(), m.marshal()) {
				t.Fatalf("stored %x: re-encoded %v", b, err)
			}
		}
		bob.svc.Receive(alice.acct(), alice.id, b, false)
	})
}

// FuzzBackupItem: any bytes, as any of a backup's group items, are
// imported or refused with store.ErrInvalid (never a panic), and a
// restore that takes them is whole or refused by FinishImport.
func FuzzBackupItem(f *testing.F) {
	n, alice, _, info := fuzzGroup(f)
	if _, err := alice.svc.Send(alice.ctx(), info.ID, []byte("hi"), nil); err != nil {
		f.Fatal(err)
	}
	var items []item
	err := alice.db.View(func(tx *store.Tx) error {
		return ExportBackup(tx, true, func(kind byte, body []byte) error {
			items = append(items, item{kind, bytes.Clone(body)})
			f.Add(kind, bytes.Clone(body))
			return nil
		})
	})
	if err != nil {
		f.Fatal(err)
	}
	db := n.db()
	errRollback := errors.New("rolled back")
	f.Fuzz(func(t *testing.T, kind byte, b []byte) {
		if !IsBackupKind(kind) {
			return
		}
		err := db.Update(func(tx *store.Tx) error {
			for _, it := range items {
				if err := ImportBackup(tx, it.kind, it.body); err != nil {
					t.Fatal(err)
				}
			}
			if err := ImportBackup(tx, kind, b); err != nil {
				if !errors.Is(err, store.ErrInvalid) {
					t.Fatalf("item %d %x: %v, want %v", kind, b, err, store.ErrInvalid)
				}
				return errRollback
			}
			if err := FinishImport(tx, alice.pub()); err != nil && !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("item %d %x: FinishImport: %v", kind, b, err)
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatal(err)
		}
	})
}

// fuzzGroup is Alice's group Fuzz, Bob invited to it.
func fuzzGroup(f *testing.F) (n *net, alice, bob *dev, info Info) {
	n = newNet(f)
	alice, bob = n.account("alice"), n.account("bob")
	info, err := alice.svc.Create(alice.ctx(), "Fuzz")
	if err != nil {
		f.Fatal(err)
	}
	if _, err := alice.svc.Invite(alice.ctx(), info.ID, bob.pub()); err != nil {
		f.Fatal(err)
	}
	return n, alice, bob, info
}
