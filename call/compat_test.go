package call

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
)

// laterAdditions are fields a later version might add to a signal, in the
// additions range: 20 (bytes, say a device id) and 21 (a varint).
const laterAdditions = "\xa2\x01\x07device7" + "\xa8\x01\x03"

func newCallID(t *testing.T) callID {
	var id callID
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestNewerPeerSignals: signals from a newer peer, with additions this
// version does not know, reach the call as the parts it knows: its invite
// rings, its cancel ends the call as missed. A signal of a newer version
// (field 15) is dropped: that invite never rings.
func TestNewerPeerSignals(t *testing.T) {
	n := newFakeNet(t)
	a, b := newNode(t, n, nil), newNode(t, n, nil)

	v2 := newCallID(t)
	b.svc.HandleSignal(a.id, identity.DeviceID{}, signal{typ: sigInvite, id: v2, sdp: "v=0", skipped: "\x78\x02"}.marshal())

	id := newCallID(t)
	b.svc.HandleSignal(a.id, identity.DeviceID{}, signal{typ: sigInvite, id: id, sdp: "v=0", skipped: laterAdditions}.marshal())
	cb := b.incoming(t)
	if cb.ID() != id.String() || cb.Peer() != a.id {
		t.Fatalf("incoming call %s from %s, want %s from %s (the version 2 invite must not ring)", cb.ID(), cb.Peer(), id, a.id)
	}
	b.svc.HandleSignal(a.id, identity.DeviceID{}, signal{typ: sigCancel, id: id, reason: reasonMissed, skipped: laterAdditions}.marshal())
	if h := ended(t, cb, 5*time.Second); cb.Reason() != ReasonMissed || len(h) == 0 {
		t.Fatalf("call ended %q (%s), want missed", cb.Reason(), states(h))
	}
	if c := b.svc.lookup(v2.String()); c != nil {
		t.Fatalf("the version 2 invite made call %s", c.ID())
	}
	for _, ev := range b.ev.events() {
		if ev.Kind == EventIncoming && ev.Call.ID == v2.String() {
			t.Fatal("the version 2 invite rang")
		}
	}
}
