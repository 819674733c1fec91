package msg

import (
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
)

// TestContactOnNewDevice: a contact's account moves to a new device (a
// restore from a backup: the same account key, new device keys, an empty
// store). Messages sent to the account afterwards reach the new device:
// the sender sees that its session is with a device the account no longer
// names and starts one with the new device. Both ways, nothing failed.
func TestContactOnNewDevice(t *testing.T) {
	a, b := pair(t, nil)
	first := a.send(b, "before")
	check.Until(t, 10*time.Second, "the first message delivered", func() bool { return a.state(b.id(), first.ID) == StateDelivered })
	reply := b.send(a, "reply")
	check.Until(t, 10*time.Second, "the reply delivered", func() bool { return b.state(a.id(), reply.ID) == StateDelivered })

	a.stop()
	a2 := newDevice(t, a.w, a.acct, nil)
	a2.start()
	a2.know(b)
	b.know(a2)
	after := b.send(a2, "after the move")
	defer func() {
		if t.Failed() {
			t.Logf("b: the message is %s; the new device holds %d of b's messages; b's events %+v", b.state(a.id(), after.ID), len(a2.incoming(b.id())), b.eventsOf(EventState))
		}
	}()
	check.Until(t, 20*time.Second, "the message after the move on the new device", func() bool {
		in := a2.incoming(b.id())
		return len(in) == 1 && string(in[0].Body) == "after the move" && b.state(a.id(), after.ID) == StateDelivered
	})
	back := a2.send(b, "from the new device")
	check.Until(t, 20*time.Second, "the new device's message", func() bool {
		in := b.incoming(a.id())
		return len(in) == 2 && string(in[1].Body) == "from the new device" && a2.state(b.id(), back.ID) == StateDelivered
	})
	for _, e := range b.eventsOf(EventState) {
		if e.State == StateFailed {
			t.Errorf("b: message %s failed: %s", e.ID, e.Reason)
		}
	}
}
