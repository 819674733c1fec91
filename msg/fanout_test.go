package msg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/cputime"
	"github.com/callsign/callsign/store"
)

// threeDevices starts Alice with three devices, the first started before
// the other two were linked, and Bob with one, who know each other.
func threeDevices(t *testing.T) (alice []*node, b *node) {
	a1, b := pair(t, nil)
	alice = []*node{a1, linkDevice(t, a1, nil), linkDevice(t, a1, nil)}
	for _, d := range alice[1:] {
		d.start()
		d.know(b)
		b.know(d)
	}
	return alice, b
}

// introduce gives each running node of ns the others' addresses.
func introduce(ns []*node) {
	for _, d := range ns {
		for _, e := range ns {
			if d != e && d.svc != nil && e.svc != nil {
				d.know(e)
			}
		}
	}
}

// TestFanOut: Alice has three devices, Bob one. Bob's message is stored
// once on each of Alice's devices and is delivered at the first ack; a
// device that is away gets the messages sent meanwhile when it is back,
// while the others have them already, and Bob's outbox keeps only its
// copy until then. Bob sees each state once. A reply from Alice's second
// device reaches Bob.
func TestFanOut(t *testing.T) {
	alice, b := threeDevices(t)
	a1, a2, a3 := alice[0], alice[1], alice[2]
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
	check.Until(t, 20*time.Second, "the message on the devices that are there, acked", func() bool {
		return len(got(a1)) == 2 && len(got(a2)) == 2 && b.state(a1.id(), m2.ID) == StateDelivered && len(b.outbox()) == 1
	})
	var waiting []QueuedMessage
	if err := b.db.View(func(tx *store.Tx) (err error) { waiting, err = In(tx).Queued(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(waiting) != 1 || waiting[0].ID != m2.ID || waiting[0].Dev != a3.cert.DeviceID() {
		t.Fatalf("Bob's outbox while device 3 is away = %+v, want device 3's copy of the second message", waiting)
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

// devicesBench starts A with one device and B with n, and warms their
// sessions up: a first message to each of B's devices and a reply from
// each, so a run measures ratchet messages, not PQXDH handshakes. onEvent
// gets the events of B's device i from the end of the warm-up on.
func devicesBench(b *testing.B, n int, onEvent func(i int, e Event)) (a, first *node) {
	w := newWorld()
	a = newNode(b, w, nil)
	a.start()
	first = newNode(b, w, nil)
	devs := []*node{first}
	for i := 1; i < n; i++ {
		devs = append(devs, linkDevice(b, first, nil))
	}
	var armed atomic.Bool
	warm := make([]atomic.Int64, n)
	for i, d := range devs {
		d.mod = func(cfg *Config) {
			cfg.OnEvent = func(e Event) {
				if armed.Load() {
					onEvent(i, e)
				} else if e.Kind == EventMessage {
					warm[i].Add(1)
				}
			}
		}
		d.start()
		a.know(d)
		d.know(a)
	}
	if _, err := a.svc.Send(context.Background(), first.id(), []byte("warm")); err != nil {
		b.Fatal(err)
	}
	for i := range warm {
		check.Until(b, time.Minute, "the warm-up message on each device", func() bool { return warm[i].Load() == 1 })
	}
	for _, d := range devs {
		if _, err := d.svc.Send(context.Background(), a.id(), []byte("back")); err != nil {
			b.Fatal(err)
		}
	}
	check.Until(b, time.Minute, "the replies", func() bool { return len(a.incoming(first.id())) == n })
	armed.Store(true)
	return a, first
}

// BenchmarkThroughputDevices measures 1 KiB messages A → B, durable and
// acked, as BenchmarkThroughput does (32 senders), to a B with three
// devices and, as the baseline in the same run, to a B with one: the clock
// stops when every device of B has stored every message. msg/s counts
// messages (each stored three times in "3-devices"); cpu-µs/msg is the
// whole process's, all of B's devices included.
func BenchmarkThroughputDevices(b *testing.B) {
	body := make([]byte, 1024)
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("%d-devices", n), func(b *testing.B) {
			stored := make([]atomic.Int64, n)
			done := make(chan struct{}, n)
			target := int64(b.N)
			a, first := devicesBench(b, n, func(i int, e Event) {
				if e.Kind == EventMessage && stored[i].Add(1) == target {
					done <- struct{}{}
				}
			})
			b.SetBytes(1024)
			b.ResetTimer()
			start := time.Now()
			cpu0 := cputime.Process()
			var wg sync.WaitGroup
			for g := range 32 {
				wg.Go(func() {
					for i := g; i < b.N; i += 32 {
						if _, err := a.svc.Send(context.Background(), first.id(), body); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			for range n {
				select {
				case <-done:
				case <-time.After(5 * time.Minute):
					b.Fatalf("not every message stored on every device within 5 minutes")
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
			b.ReportMetric(float64((cputime.Process()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
		})
	}
}

// BenchmarkLatencyDevices measures one 1 KiB message at a time from Send
// until each of B's devices has its message event (the last of them), to
// a B with three devices and, in the same run, one: what the fan-out adds
// to a message's latency.
func BenchmarkLatencyDevices(b *testing.B) {
	body := make([]byte, 1024)
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("%d-devices", n), func(b *testing.B) {
			stored := make(chan string, 64)
			a, first := devicesBench(b, n, func(_ int, e Event) {
				if e.Kind == EventMessage {
					stored <- e.ID
				}
			})
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				m, err := a.svc.Send(context.Background(), first.id(), body)
				if err != nil {
					b.Fatal(err)
				}
				for range n {
					if id := <-stored; id != m.ID {
						b.Fatalf("stored %s, sent %s", id, m.ID)
					}
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// TestSiblingCopies: what Alice sends from one device shows on her others
// as sent, once, in the conversation with its recipient, after what came
// before it; a device that learns of its siblings when one writes copies
// to them from then on; a copy for a device that is away waits for it,
// across a restart of the sender.
func TestSiblingCopies(t *testing.T) {
	alice, b := threeDevices(t)
	a1, a2, a3 := alice[0], alice[1], alice[2]
	knowEachOther := func() { introduce(alice) }
	knowEachOther()
	// conv is the conversation with Bob on d, as direction and text.
	conv := func(d *node) []string {
		var out []string
		for _, m := range d.messages(b.id()) {
			out = append(out, m.Direction+" "+string(m.Body))
		}
		return out
	}
	b.send(a1, "hello, all of you")
	check.Until(t, 20*time.Second, "Bob's message on each of Alice's devices", func() bool {
		return len(conv(a1)) == 1 && len(conv(a2)) == 1 && len(conv(a3)) == 1
	})

	// a2 was started after the others were linked: it knows them.
	reply := a2.send(b, "from my laptop")
	want := []string{"in hello, all of you", "out from my laptop"}
	// (An event follows its commit: wait for it too.)
	check.Until(t, 20*time.Second, "the reply on Alice's other devices and at Bob", func() bool {
		return slices.Equal(conv(a1), want) && slices.Equal(conv(a3), want) && len(b.incoming(a1.id())) == 1 &&
			len(a2.outbox()) == 0 && eventCount(a1, EventMessage, reply.ID, "") > 0 && eventCount(a3, EventMessage, reply.ID, "") > 0
	})
	for _, d := range []*node{a1, a3} {
		m, err := d.db.Message(string(b.id()), reply.ID)
		if err != nil || m.Direction != DirOut || m.State != StateSent || !m.SentAt.Equal(reply.SentAt) || m.Seq != reply.Seq {
			t.Fatalf("the copy = %+v, %v; want the reply as sent, as it was sent", m, err)
		}
		var copies int
		for _, e := range d.eventsOf(EventMessage) {
			if e.ID == reply.ID {
				copies++
				if e.Peer != b.id() || e.Message == nil || e.Message.Direction != DirOut {
					t.Errorf("the copy's event = %+v", e)
				}
			}
		}
		if copies != 1 {
			t.Errorf("%d events for the copy, want 1", copies)
		}
		if c, err := d.db.Conversation(string(b.id())); err != nil || c.Unread != 1 {
			t.Errorf("conversation = %+v, %v; want Bob's message unread, the copy not counted", c, err)
		}
	}
	if in := b.incoming(a1.id()); len(in) != 1 || in[0].ID != reply.ID {
		t.Fatalf("Bob has %+v, want the reply once", in)
	}

	// a1 was started before the others were linked: a2's copy made it
	// look its account up again, and it copies to both from now on.
	check.Until(t, 20*time.Second, "device 1 knows its siblings", func() bool {
		sibs, known := a1.svc.siblings()
		return known && len(sibs) == 2
	})
	a1.send(b, "from my phone")
	want = append(want, "out from my phone")
	check.Until(t, 20*time.Second, "device 1's message on 2 and 3", func() bool {
		return slices.Equal(conv(a2), want) && slices.Equal(conv(a3), want) && len(a1.outbox()) == 0
	})

	// A copy for a device that is away waits in the sender's outbox, for
	// that device alone, across a restart of the sender.
	a3.stop()
	away := a1.send(b, "while 3 is away")
	want = append(want, "out while 3 is away")
	check.Until(t, 20*time.Second, "the message on device 2 and at Bob, acked", func() bool {
		return slices.Equal(conv(a2), want) && len(b.incoming(a1.id())) == 3 && len(a1.outbox()) == 1
	})
	waiting := a1.outbox()
	if len(waiting) != 1 || waiting[0].ID != away.ID || waiting[0].Dev != a3.cert.DeviceID() {
		t.Fatalf("device 1's outbox = %+v, want the copy for device 3", waiting)
	}
	a1.stop()
	a1.start()
	a3.start()
	knowEachOther()
	a1.know(b)
	a1.svc.Kick(a1.id())
	check.Until(t, 30*time.Second, "the copy on device 3 after both came back", func() bool {
		return slices.Equal(conv(a3), want) && len(a1.outbox()) == 0
	})
	if got := conv(a2); !slices.Equal(got, want) {
		t.Fatalf("device 2 shows %q, want %q", got, want)
	}
}

// TestReadEverywhere: Bob's read receipt reaches each of Alice's devices,
// so her reply shows read on all three, whichever sent it; what Alice
// reads on one device is read on the others, unread counts included, and
// Bob is told once, by that device.
func TestReadEverywhere(t *testing.T) {
	alice, b := threeDevices(t)
	a1, a2, a3 := alice[0], alice[1], alice[2]
	introduce(alice)
	unread := func(d *node) int {
		c, err := d.db.Conversation(string(b.id()))
		if err != nil {
			return -1
		}
		return c.Unread
	}
	m := b.send(a1, "read me")
	reply := a2.send(b, "a reply")
	check.Until(t, 20*time.Second, "Bob's message and the reply on each of Alice's devices", func() bool {
		for _, d := range alice {
			if len(d.messages(b.id())) != 2 || unread(d) != 1 {
				return false
			}
		}
		return len(b.incoming(a1.id())) == 1
	})

	if err := b.svc.MarkRead(context.Background(), a1.id(), []string{reply.ID}); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 20*time.Second, "the reply read on each of Alice's devices", func() bool {
		for _, d := range alice {
			if d.state(b.id(), reply.ID) != StateRead {
				return false
			}
		}
		return len(b.outbox()) == 0
	})

	if err := a3.svc.MarkRead(context.Background(), b.id(), []string{m.ID}); err != nil {
		t.Fatal(err)
	}
	check.Until(t, 20*time.Second, "Bob's message read on Alice's other devices, and at Bob", func() bool {
		for _, d := range alice {
			if d.state(b.id(), m.ID) != StateRead || unread(d) != 0 {
				return false
			}
		}
		// (An event follows its commit: wait for them too.)
		return b.state(a1.id(), m.ID) == StateRead && len(a3.outbox()) == 0 && eventCount(b, EventState, m.ID, StateRead) > 0 &&
			eventCount(a1, EventState, m.ID, StateRead) > 0 && eventCount(a2, EventState, m.ID, StateRead) > 0
	})
	for _, d := range []*node{a1, a2} {
		if n := eventCount(d, EventState, m.ID, StateRead); n != 1 {
			t.Errorf("%d read events for Bob's message on a device that did not read it, want 1", n)
		}
		if out := d.outbox(); len(out) != 0 {
			t.Errorf("a device that did not read Bob's message queued %+v", out)
		}
	}
	if receipts := eventCount(b, EventState, m.ID, StateRead); receipts != 1 {
		t.Fatalf("Bob saw his message read %d times, want once", receipts)
	}
}

// eventCount counts d's events of kind about message id, in state (any
// state when "").
func eventCount(d *node, kind EventKind, id, state string) int {
	n := 0
	for _, e := range d.eventsOf(kind) {
		if e.ID == id && (state == "" || e.State == state) {
			n++
		}
	}
	return n
}

// TestRevokedDevice: Alice revokes her second device, which is not told.
// Once Bob's node reads her record, what the revoked device sends him is
// refused, nothing of it stored; the refusal makes it read its own record,
// which lists it as revoked: it is marked revoked (OnRevoked, once) and
// sends nothing more. Bob's next message goes to the first device only.
func TestRevokedDevice(t *testing.T) {
	var told atomic.Int32
	a1, b := pair(t, nil)
	a2 := linkDevice(t, a1, func(c *Config) { c.OnRevoked = func() { told.Add(1) } })
	a2.start()
	introduce([]*node{a1, a2, b})
	m := b.send(a1, "before")
	check.Until(t, 20*time.Second, "Bob's message on both devices", func() bool {
		return len(a1.incoming(b.id())) == 1 && len(a2.incoming(b.id())) == 1
	})

	a1.w.revoke(a2)
	ba := b.svc.acct(a1.id())
	b.svc.refreshView(ba, true)
	check.Until(t, 20*time.Second, "Bob's node reads the record with the device revoked", func() bool {
		return b.svc.isRevoked(a1.id(), a2.cert.DeviceID())
	})
	r := a2.send(b, "from a revoked device")
	check.Until(t, 20*time.Second, "the revoked device's message refused", func() bool {
		return a2.state(b.id(), r.ID) == StateFailed
	})
	if got := b.incoming(a1.id()); len(got) != 0 {
		t.Fatalf("Bob stored %d messages from the revoked device", len(got))
	}
	check.Until(t, 20*time.Second, "the revoked device learns it", a2.svc.Revoked)
	if _, err := a2.svc.Send(context.Background(), b.id(), []byte("again")); !errors.Is(err, ErrDeviceRevoked) {
		t.Fatalf("a send after the revocation: %v, want ErrDeviceRevoked", err)
	}
	if n := told.Load(); n != 1 {
		t.Fatalf("OnRevoked called %d times, want once", n)
	}

	m2 := b.send(a1, "after")
	// Every copy of it acknowledged: had one gone to the revoked device
	// (still running), it would hold it by now.
	check.Until(t, 20*time.Second, "Bob's next message on the first device, every copy acknowledged", func() bool {
		return len(a1.incoming(b.id())) == 2 && !slices.ContainsFunc(b.outbox(), func(e OutboxEntry) bool { return e.ID == m2.ID })
	})
	if got := a2.incoming(b.id()); len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("the revoked device has %d messages from Bob, want only the one before", len(got))
	}
}

// TestViewAge: Bob wrote to Alice when she had one device; she links a
// second, which does not write to him. His first send once his view of her
// is older than Config.ViewAge reads her record again first, so that
// message reaches both devices; a send within ViewAge does not look her
// up again.
func TestViewAge(t *testing.T) {
	const age = 300 * time.Millisecond
	a1, b := pair(t, func(c *Config) { c.ViewAge = age })
	b.send(a1, "one device")
	check.Until(t, 20*time.Second, "the first message", func() bool { return len(a1.incoming(b.id())) == 1 })
	a2 := linkDevice(t, a1, nil)
	a2.start()
	introduce([]*node{a1, a2, b})
	ba := b.svc.acct(a1.id())
	b.svc.mu.Lock()
	viewAt := ba.viewAt
	b.svc.mu.Unlock()
	b.send(a1, "within the age")
	b.svc.mu.Lock()
	same := ba.viewAt.Equal(viewAt)
	b.svc.mu.Unlock()
	if !same && time.Since(viewAt) < age {
		t.Fatal("a send within ViewAge looked the contact up again")
	}
	time.Sleep(age + 50*time.Millisecond)
	b.send(a1, "both of you")
	check.Until(t, 20*time.Second, "the message after ViewAge on both devices", func() bool {
		has := func(d *node) bool {
			return slices.ContainsFunc(d.incoming(b.id()), func(m Message) bool { return string(m.Body) == "both of you" })
		}
		return has(a1) && has(a2)
	})
}
