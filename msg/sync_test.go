package msg

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/callsign/callsign/store"
)

// syncLog records the batches OnSync is given; a batch starting with
// "bad" is refused.
type syncLog struct {
	mu      sync.Mutex
	batches []string
}

func (l *syncLog) apply(b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if bytes.HasPrefix(b, []byte("bad")) {
		return errors.New("not a batch")
	}
	l.batches = append(l.batches, string(b))
	return nil
}

func (l *syncLog) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.batches)
}

// TestSyncFrames: a sibling's sync batch is handed to OnSync once, however
// often it comes; one OnSync refuses is refused with its reason, and the
// session goes on; anyone else's is refused unread, as is a relay from
// anyone but a sibling, or of a text this account sent.
func TestSyncFrames(t *testing.T) {
	w := newWorld()
	var log syncLog
	a := newNode(t, w, func(c *Config) { c.OnSync = log.apply })
	a.start()
	n := linkDevice(t, a, nil)
	n.host = p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.PrivKey = n.key; c.Listen = p2ptest.ListenTCP })
	sib := &rawPeer{node: n, self: e2e.Identity{Signer: ed25519.NewKeyFromSeed(n.acct.Seed()), DH: n.dh}}
	st := sib.open(t, a)
	syncOf := func(b string) content { return content{kind: contentSync, body: []byte(b)} }

	id := newMsgID()
	f := sib.sealBytes(t, a, id, syncOf("ops"))
	if ack := exchange(t, st, f); ack.status != statusStored {
		t.Fatalf("a sibling's sync: ack %+v, want stored", ack)
	}
	if ack := exchange(t, st, f); ack.status != statusDuplicate {
		t.Fatalf("the sync again: ack %+v, want duplicate", ack)
	}
	f = sib.sealBytes(t, a, newMsgID(), syncOf("bad ops"))
	if ack := exchange(t, st, f); ack.status != statusRefused || !strings.HasPrefix(ack.reason, "sync refused: not a batch") {
		t.Fatalf("a sync OnSync refuses: ack %+v", ack)
	}
	f = sib.sealBytes(t, a, newMsgID(), content{kind: contentSync, body: []byte("ops"), to: a.id().Hash()})
	if ack := exchange(t, st, f); ack.status != statusRefused || ack.reason != "malformed content" {
		t.Fatalf("a sync with a conversation: ack %+v, want malformed", ack)
	}
	f = sib.sealBytes(t, a, newMsgID(), syncOf(strings.Repeat("x", maxSyncBody+1)))
	if ack := exchange(t, st, f); ack.status != statusRefused || ack.reason != "malformed content" {
		t.Fatalf("a sync over %d bytes: ack %+v, want malformed", maxSyncBody, ack)
	}
	// The session went on through the refusals.
	f = sib.sealBytes(t, a, newMsgID(), syncOf("more ops"))
	if ack := exchange(t, st, f); ack.status != statusStored {
		t.Fatalf("a sibling's next sync: ack %+v, want stored", ack)
	}

	other := newRawPeer(t, w)
	ost := other.open(t, a)
	f = other.sealBytes(t, a, newMsgID(), syncOf("forged ops"))
	if ack := exchange(t, ost, f); ack.status != statusRefused || ack.reason != reasonSiblingOnly {
		t.Fatalf("another account's sync: ack %+v, want refused: %s", ack, reasonSiblingOnly)
	}
	relay := content{kind: contentRelay, seq: 1, body: []byte("forged"), to: other.id().Hash()}
	if ack := exchange(t, ost, other.sealBytes(t, a, newMsgID(), relay)); ack.status != statusRefused || ack.reason != reasonSiblingOnly {
		t.Fatalf("another account's relay: ack %+v, want refused: %s", ack, reasonSiblingOnly)
	}
	relay.to = a.id().Hash()
	if ack := exchange(t, st, sib.sealBytes(t, a, newMsgID(), relay)); ack.status != statusRefused || ack.reason != "malformed content" {
		t.Fatalf("a relay of a text from this account itself: ack %+v, want malformed", ack)
	}
	if cs, err := a.db.Conversations(); err != nil || len(cs) != 0 {
		t.Fatalf("conversations after refused relays: %+v %v", cs, err)
	}
	if got := log.got(); !slices.Equal(got, []string{"ops", "more ops"}) {
		t.Fatalf("OnSync got %q, want the sibling's two batches once each", got)
	}
}

// TestQueueSync: what one device queues reaches its siblings' OnSync once,
// through the outbox: a sibling that is away gets it when it is back, also
// after the sender restarted. take's writes commit with the queueing.
func TestQueueSync(t *testing.T) {
	w := newWorld()
	var logs [3]syncLog
	devs := make([]*node, 3)
	for i := range devs {
		mod := func(c *Config) { c.OnSync = logs[i].apply }
		if i == 0 {
			devs[0] = newNode(t, w, mod)
		} else {
			devs[i] = linkDevice(t, devs[0], mod)
		}
	}
	for _, d := range devs {
		d.start()
	}
	a1, a3 := devs[0], devs[2]
	introduce(devs)
	queue := func(what string, batches ...string) {
		t.Helper()
		check.Until(t, 20*time.Second, what, func() bool {
			queued, err := a1.svc.QueueSync(nil, func(tx *store.Tx) ([][]byte, error) {
				var out [][]byte
				for _, b := range batches {
					out = append(out, []byte(b))
				}
				return out, tx.PutSetting("taken", []byte(what))
			})
			if err != nil {
				t.Fatal(err)
			}
			return queued
		})
	}
	queue("the first device knows its siblings", "one", "two")
	for i := 1; i < 3; i++ {
		check.Until(t, 20*time.Second, "the batches at each sibling", func() bool {
			return slices.Equal(logs[i].got(), []string{"one", "two"})
		})
	}
	if v, ok, err := a1.db.GetSetting("taken"); err != nil || !ok || len(v) == 0 {
		t.Fatalf("what take wrote: %v %v, want committed", ok, err)
	}
	// The third device is away: the batch waits for it, across a restart
	// of the sender.
	a3.stop()
	queue("the third device away", "three")
	check.Until(t, 20*time.Second, "the batch at the sibling that is there", func() bool {
		return slices.Equal(logs[1].got(), []string{"one", "two", "three"})
	})
	a1.stop()
	a1.start()
	a3.start()
	introduce(devs)
	check.Until(t, 30*time.Second, "the batch at the sibling that was away", func() bool {
		return slices.Equal(logs[2].got(), []string{"one", "two", "three"})
	})
	check.Until(t, 20*time.Second, "the outbox empty", func() bool { return len(a1.outbox()) == 0 })
	if got := logs[1].got(); len(got) != 3 {
		t.Fatalf("the second device got %q: want each batch once", got)
	}
}
