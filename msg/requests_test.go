package msg

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/store"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// cheapStamps keeps the first-contact work small in tests (the default
// costs about half a second; BenchmarkStamp measures it).
func cheapStamps(c *Config) { c.StampBits = 1 }

// outcome waits until n's outbox is empty and returns how many of the
// messages n sent to peer ended delivered and failed, and the reasons.
func outcome(t *testing.T, n *node, peer identity.AccountID, sent []Message) (delivered, failed int, reasons map[string]int) {
	t.Helper()
	check.Until(t, 60*time.Second, "the sender's outbox to empty", func() bool { return len(n.outbox()) == 0 })
	for _, m := range sent {
		switch s := n.state(peer, m.ID); s {
		case StateDelivered:
			delivered++
		case StateFailed:
			failed++
		default:
			t.Fatalf("message %s is %q with an empty outbox", m.ID, s)
		}
	}
	reasons = map[string]int{}
	for _, e := range n.eventsOf(EventState) {
		if e.State == StateFailed {
			reasons[e.Reason]++
		}
	}
	return delivered, failed, reasons
}

// TestStrangerFloodStopsAtTheCaps: a stranger's flood stops at the
// per-sender caps (bytes for large messages, count for small ones), the
// rest is refused cleanly (the sender's copies fail with the reason and
// leave its outbox; nothing more is stored), a contact's messages still
// arrive, and the conversations page without error.
func TestStrangerFloodStopsAtTheCaps(t *testing.T) {
	w := newWorld()
	b := newNode(t, w, cheapStamps)
	big, small, contact := newNode(t, w, cheapStamps), newNode(t, w, cheapStamps), newNode(t, w, cheapStamps)
	for _, n := range []*node{b, big, small, contact} {
		n.start()
	}
	for _, n := range []*node{big, small, contact} {
		n.know(b)
		b.know(n)
	}
	b.pol.set(big.id(), Request)
	b.pol.set(small.id(), Request)

	// 150 messages of 20 KiB: 51 fit in 1 MiB. 130 small ones: 100 fit.
	body := strings.Repeat("x", 20<<10)
	var bigSent, smallSent, contactSent []Message
	for i := range 150 {
		bigSent = append(bigSent, big.send(b, fmt.Sprintf("%04d%s", i, body[4:])))
	}
	for i := range 130 {
		smallSent = append(smallSent, small.send(b, fmt.Sprintf("small %d", i)))
	}
	for i := range 5 {
		contactSent = append(contactSent, contact.send(b, fmt.Sprintf("from a contact %d", i)))
	}

	wantFit := DefaultMaxRequestBytes / len(body)
	d, f, reasons := outcome(t, big, b.id(), bigSent)
	if d != wantFit || f != 150-wantFit || reasons[reasonPeerRequests] != f {
		t.Errorf("large flood: %d delivered, %d failed (reasons %v); want %d and %d, failed for %q", d, f, reasons, wantFit, 150-wantFit, reasonPeerRequests)
	}
	d, f, reasons = outcome(t, small, b.id(), smallSent)
	if d != DefaultMaxRequests || f != 30 || reasons[reasonPeerRequests] != 30 {
		t.Errorf("small flood: %d delivered, %d failed (reasons %v); want %d and 30", d, f, reasons, DefaultMaxRequests)
	}
	if d, f, _ := outcome(t, contact, b.id(), contactSent); d != 5 || f != 0 {
		t.Errorf("the contact's messages: %d delivered, %d failed; want all 5 delivered", d, f)
	}

	// What b holds: the first messages of each flood, in order, and every
	// message of the contact; it pages in store pages of 1000 (what the
	// API asks for) without error.
	in := b.incoming(big.id())
	var bytes int
	for i, m := range in {
		bytes += len(m.Body)
		if !strings.HasPrefix(string(m.Body), fmt.Sprintf("%04d", i)) {
			t.Fatalf("b's large message %d starts %q", i, m.Body[:4])
		}
	}
	if len(in) != wantFit || bytes > DefaultMaxRequestBytes {
		t.Errorf("b holds %d messages (%d bytes) from the large flood; want %d, at most %d bytes", len(in), bytes, wantFit, DefaultMaxRequestBytes)
	}
	if in := b.incoming(small.id()); len(in) != DefaultMaxRequests {
		t.Errorf("b holds %d messages from the small flood, want %d", len(in), DefaultMaxRequests)
	}
	if in := b.incoming(contact.id()); len(in) != 5 {
		t.Errorf("b holds %d of the contact's messages, want 5", len(in))
	}
	for _, n := range []*node{big, small} {
		if c, err := b.db.Conversation(string(n.id())); err != nil || !c.Request {
			t.Errorf("conversation with a stranger: %+v, %v; want a request", c, err)
		}
	}
	// The stranger's later messages are refused too, and never retried.
	late := big.send(b, "late"+body[4:])
	check.Until(t, 10*time.Second, "the late message to fail", func() bool { return big.state(b.id(), late.ID) == StateFailed })
	if len(big.outbox()) != 0 {
		t.Error("a refused message stayed in the outbox")
	}
}

// TestRequestsTotalCap: the senders together stop at the total cap, and
// accepting a request frees its share for the others.
func TestRequestsTotalCap(t *testing.T) {
	w := newWorld()
	b := newNode(t, w, func(c *Config) { cheapStamps(c); c.MaxRequests, c.MaxRequestsTotal = 10, 15 })
	s1, s2 := newNode(t, w, cheapStamps), newNode(t, w, cheapStamps)
	for _, n := range []*node{b, s1, s2} {
		n.start()
	}
	for _, n := range []*node{s1, s2} {
		n.know(b)
		b.know(n)
		b.pol.set(n.id(), Request)
	}
	sendN := func(from *node, n int) []Message {
		var out []Message
		for i := range n {
			out = append(out, from.send(b, fmt.Sprintf("m%d", i)))
		}
		return out
	}
	if d, f, _ := outcome(t, s1, b.id(), sendN(s1, 10)); d != 10 || f != 0 {
		t.Fatalf("first stranger: %d delivered, %d failed; want 10 and 0", d, f)
	}

	// Accepted: s1 is a contact now, its conversation no request.
	b.pol.set(s1.id(), Deliver)
	err := b.db.Update(func(tx *store.Tx) error {
		c, err := In(tx).Conversation(string(s1.id()))
		if err != nil {
			return err
		}
		c.Request = false
		return In(tx).PutConversation(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	// s2 is limited by its own cap (10), not by s1's accepted share.
	if d, f, reasons := outcome(t, s2, b.id(), sendN(s2, 12)); d != 10 || f != 2 || reasons[reasonPeerRequests] != 2 {
		t.Fatalf("second stranger after the first was accepted: %d delivered, %d failed (%v); want 10 and 2", d, f, reasons)
	}

	// A third stranger finds the total full: 15 - s2's 10.
	s3 := newNode(t, w, cheapStamps)
	s3.start()
	s3.know(b)
	b.know(s3)
	b.pol.set(s3.id(), Request)
	d, f, reasons := outcome(t, s3, b.id(), sendN(s3, 8))
	if d != 5 || f != 3 || reasons[reasonTotalRequests] != 3 {
		t.Fatalf("third stranger at the total cap: %d delivered, %d failed (%v); want 5 and 3 for %q", d, f, reasons, reasonTotalRequests)
	}
}

// TestFirstContactStamp: a stranger's first frames are answered with the
// stamp status; the sender computes the stamp and resends; a peer that
// speaks only 1.0.0 is refused with the reason; a wrong stamp is refused.
func TestFirstContactStamp(t *testing.T) {
	w := newWorld()
	b := newNode(t, w, func(c *Config) { c.StampBits = 4 })
	b.start()
	r := newRawPeer(t, w)
	b.pol.set(r.id(), Request)

	// 1.1.0 without a stamp: asked for one; nothing read, nothing stored.
	st := r.open(t, b)
	id, f := r.frame(t, b, "hello, stranger here")
	if a := exchange(t, st, f); a.id != id || a.status != statusStamp || a.stampBits != 4 {
		t.Fatalf("first contact without a stamp: %+v, want the stamp status with 4 bits", a)
	}
	// A wrong stamp is refused (the odds that a fixed nonce passes 4 bits
	// are 1/16: find one that fails).
	bad := make([]byte, stampSize)
	for i := 0; checkStamp(r.acct.Public().Bytes(), b.acct.Public().Bytes(), bad, 4); i++ {
		bad[0] = byte(i)
	}
	if a := exchange(t, st, withStamp(f, bad)); a.status != statusRefused || a.reason != reasonBadStamp {
		t.Fatalf("a wrong stamp: %+v", a)
	}
	if len(b.messages(r.id())) != 0 {
		t.Fatal("stored without a valid stamp")
	}
	// The same frame with a valid stamp is read and stored: the session
	// did not move on for the unread ones.
	good, err := solveStamp(context.Background(), r.acct.Public().Bytes(), b.acct.Public().Bytes(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if a := exchange(t, st, withStamp(f, good)); a.status != statusStored {
		t.Fatalf("with a valid stamp: %+v", a)
	}
	// Known now: no stamp needed, on any stream.
	if _, f := r.frame(t, b, "second"); exchange(t, r.open(t, b), f).status != statusStored {
		t.Fatal("second message without a stamp refused")
	}
	if got := b.incoming(r.id()); len(got) != 2 {
		t.Fatalf("b holds %d messages, want 2", len(got))
	}

	// A 1.0.0 peer has no stamps: refused with the reason, nothing stored.
	r2 := newRawPeer(t, w)
	b.pol.set(r2.id(), Request)
	r2.host.Peerstore().AddAddrs(b.host.ID(), b.host.Addrs(), time.Hour)
	st10, err := r2.host.NewStream(context.Background(), b.host.ID(), ProtocolMsg10)
	if err != nil {
		t.Fatal(err)
	}
	defer st10.Reset()
	st10.SetDeadline(time.Now().Add(20 * time.Second))
	_, f10 := r2.frame(t, b, "old client")
	if a := exchange(t, st10, f10); a.status != statusRefused || a.reason != reasonStampV10 {
		t.Fatalf("1.0.0 first contact: %+v", a)
	}

	// A Service pays by itself: one message from a stranger to b arrives.
	a := newNode(t, w, nil)
	a.start()
	a.know(b)
	b.pol.set(a.id(), Request)
	m := a.send(b, "paid for")
	check.Until(t, 30*time.Second, "the stranger's message", func() bool { return a.state(b.id(), m.ID) == StateDelivered })
}

// dialOnlyHost is a bare libp2p host that only dials out (TCP, Noise,
// yamux): an attacker's identity, cheaper to make than a node's host.
func dialOnlyHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New), libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(), libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.Ping(false), libp2p.DisableMetrics(), libp2p.DisableIdentifyAddressDiscovery())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestContactNotHeldUpByIdleStrangers: 70 identities each hold 4 idle msg
// streams open at b. A contact's message still reaches b's store within a
// second of Send: a contact b knows the device of has its own slots, and
// one b does not know yet takes the place of an idle stranger's stream.
func TestContactNotHeldUpByIdleStrangers(t *testing.T) {
	w := newWorld()
	var mu sync.Mutex
	committed := map[string]time.Time{}
	b := newNode(t, w, func(c *Config) {
		prev := c.OnEvent
		c.OnEvent = func(e Event) {
			if e.Kind == EventMessage {
				mu.Lock()
				committed[e.ID] = time.Now()
				mu.Unlock()
			}
			prev(e)
		}
	})
	friend, newFriend := newNode(t, w, nil), newNode(t, w, nil)
	for _, n := range []*node{b, friend, newFriend} {
		n.start()
	}
	for _, n := range []*node{friend, newFriend} {
		n.know(b)
		b.know(n)
	}
	// b has written to friend, so knows its device; b has never seen
	// newFriend's. newFriend has its session with b already (prekeys
	// fetched from b's device), so the time measured below is delivery.
	m0 := b.send(friend, "hi friend")
	check.Until(t, 10*time.Second, "b's message to friend", func() bool { return b.state(friend.id(), m0.ID) == StateDelivered })
	if _, _, err := newFriend.svc.reach(context.Background(), newFriend.lane(b)); err != nil {
		t.Fatal(err)
	}

	// 70 identities, 4 streams each, each stream negotiated and then idle
	// (one byte of a frame length, never completed).
	const identities, perIdentity = 70, 4
	// Eight at a time: a burst of 70 handshakes is not what this test is
	// about (b's resource manager limits connections being set up).
	next := make(chan int, identities)
	for i := range identities {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	errs := make(chan error, identities)
	for range 8 {
		wg.Go(func() {
			for range next {
				h := dialOnlyHost(t)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if err := h.Connect(ctx, peer.AddrInfo{ID: b.host.ID(), Addrs: b.host.Addrs()}); err != nil {
					errs <- err
					return
				}
				for range perIdentity {
					st, err := h.NewStream(ctx, b.host.ID(), ProtocolMsg)
					if err == nil {
						_, err = st.Write([]byte{0x80})
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("open an idle stream: %v", err)
	}
	// b serves a full pool of them.
	held := func() int {
		b.svc.mu.Lock()
		defer b.svc.mu.Unlock()
		n := 0
		for _, c := range b.svc.inbound {
			n += c
		}
		return n
	}
	check.Until(t, 10*time.Second, "b to hold the idle streams", func() bool { return held() >= maxUnknownStreams })

	for _, sender := range []*node{friend, newFriend} {
		start := time.Now()
		m := sender.send(b, "through the crowd")
		check.Until(t, 30*time.Second, "the contact's message in b's store", func() bool {
			mu.Lock()
			defer mu.Unlock()
			_, ok := committed[m.ID]
			return ok
		})
		mu.Lock()
		took := committed[m.ID].Sub(start)
		mu.Unlock()
		t.Logf("%s's message committed %v after Send, past %d idle streams", map[*node]string{friend: "friend", newFriend: "newFriend"}[sender], took, held())
		if took > time.Second {
			t.Errorf("a contact's message took %v to reach b's store past idle strangers; want at most 1 s", took)
		}
	}
}
