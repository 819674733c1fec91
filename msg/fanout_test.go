package msg

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
)

// TestFanOut: Alice has three devices, Bob one. Bob's message is stored
// once on each of Alice's devices and is delivered at the first ack; a
// device that is away gets the messages sent meanwhile when it is back,
// while the others have them already, and Bob's outbox keeps only its
// copy until then. Bob sees each state once. A reply from Alice's second
// device reaches Bob.
func TestFanOut(t *testing.T) {
	a1, b := pair(t, nil)
	a2, a3 := linkDevice(t, a1, nil), linkDevice(t, a1, nil)
	alice := []*node{a1, a2, a3}
	for _, d := range alice[1:] {
		d.start()
		d.know(b)
		b.know(d)
	}
	got := func(d *node) []string {
		var bodies []string
		for _, m := range d.incoming(b.id()) {
			bodies = append(bodies, string(m.Body))
		}
		return bodies
	}
	m1 := b.send(a1, "hello, all of you")
	check.Until(t, 20*time.Second, "the message on each of Alice's devices", func() bool {
		for _, d := range alice {
			if len(got(d)) != 1 {
				return false
			}
		}
		return len(b.outbox()) == 0
	})
	for i, d := range alice {
		if g := got(d); !slices.Equal(g, []string{"hello, all of you"}) {
			t.Fatalf("device %d shows %q", i+1, g)
		}
	}
	if s := b.state(a1.id(), m1.ID); s != StateDelivered {
		t.Fatalf("Bob's message is %s, want delivered", s)
	}

	a3.stop()
	m2 := b.send(a1, "while 3 is away")
	check.Until(t, 20*time.Second, "the message on the devices that are there", func() bool {
		return len(got(a1)) == 2 && len(got(a2)) == 2 && b.state(a1.id(), m2.ID) == StateDelivered
	})
	if ob := b.outbox(); len(ob) != 1 || ob[0].ID != m2.ID {
		t.Fatalf("Bob's outbox while device 3 is away = %+v, want its copy of the second message", ob)
	}
	a3.start()
	a3.know(b)
	b.know(a3)
	b.svc.Kick(a1.id())
	check.Until(t, 30*time.Second, "the second message on device 3", func() bool {
		return len(got(a3)) == 2 && len(b.outbox()) == 0
	})
	if g := got(a3); !slices.Equal(g, []string{"hello, all of you", "while 3 is away"}) {
		t.Fatalf("device 3 shows %q", g)
	}
	for _, m := range []Message{m1, m2} {
		var states []string
		for _, e := range b.eventsOf(EventState) {
			if e.ID == m.ID {
				states = append(states, e.State)
			}
		}
		if s := fmt.Sprint(states); s != "[queued sent delivered]" {
			t.Errorf("Bob's events for %q: %s, want each state once", m.Body, s)
		}
	}

	reply := a2.send(b, "from my laptop")
	check.Until(t, 20*time.Second, "the reply at Bob", func() bool {
		in := b.incoming(a1.id())
		return len(in) == 1 && string(in[0].Body) == "from my laptop" && a2.state(b.id(), reply.ID) == StateDelivered
	})
}
