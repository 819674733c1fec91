package groupchat

import (
	"bytes"
	"testing"
	"time"

	"github.com/callsign/callsign/group"
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
	n := newNet(f)
	alice, bob := n.account("alice"), n.account("bob")
	info, err := alice.svc.Create(alice.ctx(), "Fuzz")
	if err != nil {
		f.Fatal(err)
	}
	if _, err := alice.svc.Invite(alice.ctx(), info.ID, bob.pub()); err != nil {
		f.Fatal(err)
	}
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
