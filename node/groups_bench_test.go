package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

// arrivals records, per text, when each member's event stream showed it,
// and says when the last of the members did.
type arrivals struct {
	mu      sync.Mutex
	want    int
	seen    map[string]int
	last    map[string]time.Time
	waiting map[string]chan struct{}
}

func (a *arrivals) expect(text string) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := make(chan struct{})
	a.waiting[text] = ch
	if a.seen[text] >= a.want {
		close(ch)
	}
	return ch
}

func (a *arrivals) arrive(text string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen[text]++
	if a.seen[text] == a.want {
		a.last[text] = time.Now()
		if ch := a.waiting[text]; ch != nil {
			close(ch)
		}
	}
}

// watch counts the incoming messages of nd's event stream.
func watch(b *testing.B, ctx context.Context, nd *testnet.Node, a *arrivals) {
	events, err := nd.Client.Events(ctx)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for ev := range events {
			if ev.Type != api.EventMessage {
				continue
			}
			var m api.Message
			if json.Unmarshal(ev.Data, &m) == nil && m.Direction == "in" {
				a.arrive(m.Text)
			}
		}
	}()
}

// BenchmarkGroup is a group of 100 members, each on a node of its own
// (full nodes on libp2p's mocknet: DHT, messaging, stores, the API and its
// event streams are real). One member sends; each figure is beside the
// same send to one member, one to one, in the same run:
//
//   - send → event: from the send on the sender's API to the message
//     event on the last of the 99 other members' event streams (p50, p99),
//     beside a one-to-one message's send → event;
//
//   - throughput: 100 messages sent back to back, until the last member
//     has the last (group messages a second, and deliveries a second),
//     beside 100 one-to-one messages to one member.
//
//     go test -run '^$' -bench 'BenchmarkGroup$/members=100' -benchtime 30x -timeout 30m ./node/
func BenchmarkGroup(b *testing.B) {
	for _, members := range []int{10, 100} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) { benchGroup(b, members) })
	}
}

func benchGroup(b *testing.B, members int) {
	net := testnet.New(b, members+1, testnet.Options{Mocknet: true, Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sender, others := net.Nodes[1], net.Nodes[2:]
	// Each member and the sender are contacts: no first-contact stamps.
	// (A record published as the network started may not be found by
	// every node at once among 101: each is tried again for a minute.)
	var ids []string
	for i, nd := range others {
		ids = append(ids, nd.Account().String())
		check.Eventually(b, time.Minute, func() error {
			_, err := sender.Client.AddContact(ctx, nd.Account().String(), fmt.Sprintf("m%d", i))
			return err
		})
		check.Eventually(b, time.Minute, func() error {
			_, err := nd.Client.AddContact(ctx, sender.Account().String(), "sender")
			return err
		})
	}
	g, err := sender.Client.CreateGroup(ctx, "Hundred")
	if err != nil {
		b.Fatal(err)
	}
	if g, err = sender.Client.GroupAction(ctx, g.ID, "invite", api.GroupAction{Members: ids}); err != nil || len(g.Members) != members {
		b.Fatalf("invite: %d members, %v", len(g.Members), err)
	}
	for _, nd := range others {
		check.Until(b, 5*time.Minute, "the invitation", func() bool {
			_, err := nd.Client.Group(ctx, g.ID)
			return err == nil
		})
		if _, err := nd.Client.GroupAction(ctx, g.ID, "join", api.GroupAction{}); err != nil {
			b.Fatal(err)
		}
	}
	group := &arrivals{want: members - 1, seen: map[string]int{}, last: map[string]time.Time{}, waiting: map[string]chan struct{}{}}
	one := &arrivals{want: 1, seen: map[string]int{}, last: map[string]time.Time{}, waiting: map[string]chan struct{}{}}
	for _, nd := range others {
		watch(b, ctx, nd, group)
	}
	// The one-to-one messages go to others[0]; its stream feeds both.
	watch(b, ctx, others[0], one)
	peer := ids[0]
	send := func(to, text string, a *arrivals) time.Duration {
		done := a.expect(text)
		t0 := time.Now()
		if _, err := sender.Client.Send(ctx, to, text); err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("%q not everywhere after 2 minutes", text)
		}
		return time.Since(t0)
	}
	// Warm up: sessions, the sender key's first share.
	for i := range 5 {
		send(g.ID, fmt.Sprintf("warm %d", i), group)
		send(peer, fmt.Sprintf("warm 1:1 %d", i), one)
	}

	var lat, base []time.Duration
	b.ResetTimer()
	for i := range b.N {
		lat = append(lat, send(g.ID, fmt.Sprintf("g%d", i), group))
		base = append(base, send(peer, fmt.Sprintf("o%d", i), one))
	}
	b.StopTimer()

	// Throughput: 100 back to back, then the same one to one.
	burst := func(to, prefix string, a *arrivals) time.Duration {
		var dones []chan struct{}
		t0 := time.Now()
		for i := range 100 {
			text := fmt.Sprintf("%s%d", prefix, i)
			dones = append(dones, a.expect(text))
			if _, err := sender.Client.Send(ctx, to, text); err != nil {
				b.Fatal(err)
			}
		}
		for _, d := range dones {
			select {
			case <-d:
			case <-time.After(5 * time.Minute):
				b.Fatal("a burst did not arrive")
			}
		}
		return time.Since(t0)
	}
	gBurst := burst(g.ID, "burst ", group)
	oBurst := burst(peer, "burst 1:1 ", one)

	p50, p99, o50, o99 := pctl(lat, 50), pctl(lat, 99), pctl(base, 50), pctl(base, 99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "group-p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "group-p99-ms")
	b.ReportMetric(float64(o50.Microseconds())/1000, "1:1-p50-ms")
	b.ReportMetric(float64(o99.Microseconds())/1000, "1:1-p99-ms")
	b.ReportMetric(float64(p50)/float64(o50), "p50-ratio")
	b.ReportMetric(100/gBurst.Seconds(), "group-msg/s")
	b.ReportMetric(100*float64(members-1)/gBurst.Seconds(), "group-deliveries/s")
	b.ReportMetric(100/oBurst.Seconds(), "1:1-msg/s")
}
