package msg

import (
	"context"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/store"
)

// TestSessionRestart: Alice starts a session with Bob from the bundle his
// record names while he is away, and Bob comes back with other prekeys
// (his store lost them): he can't open her messages and refuses them. Her
// node starts a new session from the bundle Bob hands out now and seals
// her queue again in it: both messages arrive, in order, and none fails.
func TestSessionRestart(t *testing.T) {
	a, b := pair(t, nil)
	b.stop()
	m1 := a.send(b, "first, while you were away")
	m2 := a.send(b, "second")
	dev := identity.DeviceIDOf(b.dh.PublicKey().Bytes())
	check.Until(t, 20*time.Second, "Alice's session started from Bob's record", func() bool {
		a.svc.mu.Lock()
		var lane *peerState
		if acct := a.svc.accts[b.id()]; acct != nil {
			lane = acct.lanes[dev]
		}
		a.svc.mu.Unlock()
		if lane == nil {
			return false
		}
		lane.mu.Lock()
		defer lane.mu.Unlock()
		return lane.set != nil && lane.set.Active() != nil
	})
	// Bob's store loses its prekeys: he starts with new ones.
	db, err := store.Open(context.Background(), store.Options{Dir: b.dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutPrekeys(nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b.start()
	a.know(b)
	b.know(a)
	check.Until(t, 30*time.Second, "both messages at Bob", func() bool {
		in := b.incoming(a.id())
		return len(in) == 2 && string(in[0].Body) == "first, while you were away" && string(in[1].Body) == "second"
	})
	// Bob commits before he acknowledges: Alice hears a moment later.
	for _, m := range []Message{m1, m2} {
		check.Until(t, 20*time.Second, "Alice hears each delivered", func() bool {
			st := a.state(b.id(), m.ID)
			return st == StateDelivered || st == StateRead
		})
	}
	for _, m := range []Message{m1, m2} {
		if st := a.state(b.id(), m.ID); st != StateDelivered && st != StateRead {
			t.Fatalf("message %s is %s at Alice, want delivered", m.ID, st)
		}
	}
}
