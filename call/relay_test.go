package call

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/callsign/callsign/turn"
)

// candidateTap records the types of the candidates each account sends.
type candidateTap struct {
	mu    sync.Mutex
	types map[identity.AccountID]map[string]int
}

func tapCandidates(t *testing.T, n *fakeNet) *candidateTap {
	ct := &candidateTap{types: map[identity.AccountID]map[string]int{}}
	n.tap(func(from, _ identity.AccountID, sig signal) {
		if sig.typ != sigCandidate {
			return
		}
		typ := candidateType(t, sig.cand)
		ct.mu.Lock()
		if ct.types[from] == nil {
			ct.types[from] = map[string]int{}
		}
		ct.types[from][typ]++
		ct.mu.Unlock()
	})
	return ct
}

func (ct *candidateTap) of(id identity.AccountID) map[string]int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	out := map[string]int{}
	for k, v := range ct.types[id] {
		out[k] = v
	}
	return out
}

// connectAndCheck lets the call run until media flows both ways, checks
// the path on both ends, and hangs up.
func connectAndCheck(t *testing.T, ca, cb *Call, path media.Path, during func()) {
	t.Helper()
	waitState(t, ca, StateActive, 10*time.Second)
	waitState(t, cb, StateActive, 10*time.Second)
	check.Until(t, 5*time.Second, "media both ways", func() bool {
		return ca.Stats().Setup > 0 && cb.Stats().Setup > 0
	})
	for name, c := range map[string]*Call{"caller": ca, "callee": cb} {
		st := c.Stats()
		t.Logf("%s: %+v", name, st)
		if st.Path != path {
			t.Errorf("%s path %q, want %q", name, st.Path, path)
		}
		if st.PacketsReceived == 0 || st.PacketsSent == 0 {
			t.Errorf("%s: no media: %+v", name, st)
		}
	}
	if during != nil {
		during()
	}
	ca.Hangup()
	ended(t, ca, 10*time.Second)
	ended(t, cb, 10*time.Second)
}

// TestRelayOnlyCall: alice has "always relay" on and bob's policy answers
// her relay-only (a non-contact): both fetch TURN credentials from their
// community's public node over libp2p, neither sends a host candidate, and
// the call goes through the real TURN server.
func TestRelayOnlyCall(t *testing.T) {
	n := newFakeNet(t)
	r := newRelay(t, n, turn.Config{}, nil)
	a := newNode(t, n, withRelay(t, r, func(c *Config) { c.AlwaysRelay = func() bool { return true } }))
	b := newNode(t, n, withRelay(t, r, func(c *Config) {
		c.AutoAnswer = func() (bool, string) { return true, "" }
		c.AutoAnswerSource = media.Tone()
	}))
	b.policy.set(Decision{Allow: true, RelayOnly: true})
	seedCredentials(t, r, a, b)
	ct := tapCandidates(t, n)
	var sdpMu sync.Mutex
	var sdps []string
	n.tap(func(_, _ identity.AccountID, sig signal) {
		if sig.sdp != "" {
			sdpMu.Lock()
			sdps = append(sdps, sig.sdp)
			sdpMu.Unlock()
		}
	})

	ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.RelayOnly() {
		t.Error("caller's call is not relay-only with AlwaysRelay on")
	}
	cb := b.incoming(t)
	if !cb.RelayOnly() {
		t.Error("callee's call is not relay-only under a relay-only decision")
	}
	connectAndCheck(t, ca, cb, media.PathRelay, func() {
		if got := r.turn.Allocations(); got < 2 {
			t.Errorf("the TURN server holds %d allocations during the call, want one per side", got)
		}
	})
	for name, id := range map[string]identity.AccountID{"caller": a.id, "callee": b.id} {
		types := ct.of(id)
		if types["host"] > 0 || types["srflx"] > 0 || types["prflx"] > 0 {
			t.Errorf("%s revealed its addresses in a relay-only call: %v", name, types)
		}
		if types["relay"] == 0 {
			t.Errorf("%s sent no relay candidates: %v", name, types)
		}
	}
	sdpMu.Lock()
	if len(sdps) != 2 {
		t.Errorf("%d SDPs sent, want an offer and an answer", len(sdps))
	}
	for _, sdp := range sdps {
		if strings.Contains(sdp, "a=candidate") || strings.Contains(sdp, "127.0.0.1") {
			t.Errorf("a relay-only SDP carries an address:\n%s", sdp)
		}
	}
	sdpMu.Unlock()
	if ra := a.record(t, ca.ID()); ra.Path != media.PathRelay {
		t.Errorf("caller's log path %q, want relay", ra.Path)
	}
}

// seedCredentials fetches each node's TURN credentials from r before its
// calls, without the 3 s per-call deadline: the relay tests check which
// candidates a call gathers and which path it takes, not how fast
// credentials arrive on a machine loaded by -race (TestTURNCredentials
// covers the protocol and the cache).
func seedCredentials(t *testing.T, r *relayNode, nodes ...*tnode) {
	t.Helper()
	for _, nd := range nodes {
		c, err := nd.svc.fetchCredentials(dialCtx(t), r.host.ID())
		if err != nil {
			t.Fatal(err)
		}
		nd.svc.creds.mu.Lock()
		nd.svc.creds.m[r.host.ID()] = c
		nd.svc.creds.mu.Unlock()
	}
}

// TestPolicyMatrix runs one invite through each policy verdict.
func TestPolicyMatrix(t *testing.T) {
	n := newFakeNet(t)
	r := newRelay(t, n, turn.Config{}, nil)
	a := newNode(t, n, withRelay(t, r, nil))
	b := newNode(t, n, withRelay(t, r, nil))
	ct := tapCandidates(t, n)
	seedCredentials(t, r, a, b)

	t.Run("deny", func(t *testing.T) {
		b.policy.set(Decision{Allow: false})
		parsed, global := b.eng.ParseCount(), media.ParseCount()
		evs := len(b.ev.events())
		ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
		if err != nil {
			t.Fatal(err)
		}
		h := ended(t, ca, 5*time.Second)
		if ca.Reason() != ReasonUnavailable || states(h) != "ended" {
			t.Errorf("refused caller: %q after %s, want unavailable without ringing", ca.Reason(), states(h))
		}
		rb := b.record(t, ca.ID())
		if !rb.Blocked || rb.EndReason != ReasonUnavailable || rb.Peer != string(a.id) || rb.Direction != DirectionIn {
			t.Errorf("callee's record of the refused call: %+v", rb)
		}
		if b.eng.ParseCount() != parsed || media.ParseCount() != global {
			t.Errorf("the refused caller's SDP reached the parser (%d→%d here, %d→%d in the process)",
				parsed, b.eng.ParseCount(), global, media.ParseCount())
		}
		if got := b.ev.events(); len(got) != evs {
			t.Errorf("the callee was told of a refused call: %+v", got[evs:])
		}
		if ra := a.record(t, ca.ID()); ra.EndReason != ReasonUnavailable || ra.Blocked {
			t.Errorf("caller's record %+v", ra)
		}
		if len(b.svc.Calls()) != 0 {
			t.Error("a refused call is listed")
		}
	})

	t.Run("allow", func(t *testing.T) {
		b.policy.set(Decision{Allow: true})
		parsed := b.eng.ParseCount()
		ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
		if err != nil {
			t.Fatal(err)
		}
		cb := b.incoming(t)
		if cb.RelayOnly() {
			t.Error("an allowed contact is answered relay-only")
		}
		if err := b.svc.Answer(cb.ID(), AnswerOptions{Source: media.Tone()}); err != nil {
			t.Fatal(err)
		}
		if b.eng.ParseCount() != parsed+1 {
			t.Errorf("answering parsed %d SDPs, want 1", b.eng.ParseCount()-parsed)
		}
		// Host and relay candidates are gathered together, not relay after
		// a failed direct attempt: both trickle out while the call sets up.
		// (Polled: under -race the TURN allocation can land after media.)
		check.Until(t, 10*time.Second, "the callee's host and relay candidates", func() bool {
			types := ct.of(b.id)
			return types["host"] > 0 && types["relay"] > 0
		})
		connectAndCheck(t, ca, cb, media.PathDirect, nil)
	})

	t.Run("relay-only", func(t *testing.T) {
		b.policy.set(Decision{Allow: true, RelayOnly: true})
		before := ct.of(b.id)
		ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
		if err != nil {
			t.Fatal(err)
		}
		cb := b.incoming(t)
		if err := b.svc.Answer(cb.ID(), AnswerOptions{Source: media.Tone()}); err != nil {
			t.Fatal(err)
		}
		connectAndCheck(t, ca, cb, media.PathRelay, nil)
		after := ct.of(b.id)
		for _, typ := range []string{"host", "srflx", "prflx"} {
			if after[typ] != before[typ] {
				t.Errorf("relay-only callee sent %d %s candidates", after[typ]-before[typ], typ)
			}
		}
		if after["relay"] == before["relay"] {
			t.Error("relay-only callee sent no relay candidates")
		}
	})
}

// TestRelayOnlyWithoutRelay: a relay-only call with no relay to ask fails
// at Dial instead of leaking an address.
func TestRelayOnlyWithoutRelay(t *testing.T) {
	n := newFakeNet(t)
	a, b := newNode(t, n, nil), newNode(t, n, nil)
	if _, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{RelayOnly: true}); err == nil {
		t.Fatal("relay-only Dial without a TURN server succeeded")
	}
	if n.sends != 0 {
		t.Errorf("%d signals sent for a call that could not start", n.sends)
	}
}

// TestTURNCredentials covers the credential protocol on real libp2p hosts
// and the real TURN server's checks.
func TestTURNCredentials(t *testing.T) {
	n := newFakeNet(t)
	r := newRelay(t, n, turn.Config{}, nil)
	member := newNode(t, n, withRelay(t, r, nil))
	ctx := dialCtx(t)

	t.Run("served to a connected peer", func(t *testing.T) {
		c, err := member.svc.fetchCredentials(ctx, r.host.ID())
		if err != nil {
			t.Fatal(err)
		}
		user, err := r.turn.Verify(c.Username, c.Password)
		if err != nil {
			t.Fatalf("the TURN server refuses the credentials it issued: %v", err)
		}
		if user != member.host.ID().String() {
			t.Errorf("credentials issued to %q, want the requesting peer %s", user, member.host.ID())
		}
		if ttl := time.Until(c.Expires); ttl < 9*time.Minute || ttl > 10*time.Minute {
			t.Errorf("credentials valid for %v", ttl)
		}
		if len(c.URLs) == 0 || c.URLs[0] != r.turn.URLs()[0] {
			t.Errorf("URLs %v, want %v", c.URLs, r.turn.URLs())
		}
		// A call asks afresh (turnpath_test.go has the relay that
		// changed); what it gets are credentials of the relay as it is.
		servers := member.svc.iceServers(ctx, true)
		if len(servers) != 1 || !slices.Equal(servers[0].URLs, r.turn.URLs()) {
			t.Fatalf("ICE servers %+v, want the relay's %v", servers, r.turn.URLs())
		}
		if _, err := r.turn.Verify(servers[0].Username, servers[0].Credential); err != nil {
			t.Errorf("a call's credentials: %v", err)
		}
	})

	t.Run("rate limited per peer", func(t *testing.T) {
		h := p2ptest.NewHost(t, nil)
		p2ptest.Connect(t, h, r.host)
		var codes []string
		for range turnBurst + 1 {
			_, err := p2p.Request(ctx, h, r.host.ID(), ProtocolTURN, false, encodeTURNRequest(member.id), maxCredentials)
			if err == nil {
				codes = append(codes, "ok")
				continue
			}
			code, ok := p2p.CodeOf(err)
			if !ok {
				t.Fatalf("request failed without a code: %v", err)
			}
			codes = append(codes, p2p.CodeName(code))
		}
		want := strings.Repeat("ok,", turnBurst) + "rate-limited"
		if got := strings.Join(codes, ","); got != want {
			t.Errorf("requests: %s, want %s", got, want)
		}
	})

	t.Run("malformed request refused", func(t *testing.T) {
		for name, req := range map[string][]byte{
			"empty (1.0.0's request)": nil,
			"not an account id":       encodeTURNRequest("csa1-not-an-account"),
			"upper case account id":   encodeTURNRequest(identity.AccountID(strings.ToUpper(string(member.id)))),
			"a second field":          append(encodeTURNRequest(member.id), encodeTURNRequest(member.id)...),
		} {
			h := p2ptest.NewHost(t, nil)
			p2ptest.Connect(t, h, r.host)
			_, err := p2p.Request(ctx, h, r.host.ID(), ProtocolTURN, false, req, maxCredentials)
			if code, ok := p2p.CodeOf(err); !ok || code != p2p.CodeBadRequest {
				t.Errorf("%s: %v, want bad-request", name, err)
			}
		}
	})

	t.Run("a stranger gets no credentials, a member does", func(t *testing.T) {
		stranger := newNode(t, n, nil)
		mem := &memberList{}
		r2 := newRelay(t, n, turn.Config{}, func(c *Config) { c.TURNMembers = mem })
		m := newNode(t, n, withRelay(t, r2, nil))
		mem.mu.Lock()
		mem.admit = map[peer.ID]identity.AccountID{m.host.ID(): m.id}
		mem.mu.Unlock()
		// A stranger's peer asking as itself, and then naming the
		// member's account: both refused, with nothing issued.
		h := p2ptest.NewHost(t, nil)
		p2ptest.Connect(t, h, r2.host)
		for _, acct := range []identity.AccountID{stranger.id, m.id} {
			resp, err := p2p.Request(ctx, h, r2.host.ID(), ProtocolTURN, false, encodeTURNRequest(acct), maxCredentials)
			if code, ok := p2p.CodeOf(err); !ok || code != p2p.CodeBadRequest || len(resp) != 0 {
				t.Errorf("stranger naming %s: %d bytes, %v; want bad-request", acct, len(resp), err)
			}
		}
		if mem.Known(h.ID()) {
			t.Error("the stranger counts as a known member")
		}
		c, err := m.svc.fetchCredentials(ctx, r2.host.ID())
		if err != nil {
			t.Fatalf("member: %v", err)
		}
		if user, err := r2.turn.Verify(c.Username, c.Password); err != nil || user != m.host.ID().String() {
			t.Errorf("member's credentials: user %q, %v", user, err)
		}
		if !mem.Known(m.host.ID()) {
			t.Error("the member is not known after its first request")
		}
		mem.mu.Lock()
		defer mem.mu.Unlock()
		if want := []identity.AccountID{stranger.id, m.id, m.id}; !slices.Equal(mem.asked, want) {
			t.Errorf("accounts checked %v, want %v", mem.asked, want)
		}
	})

	t.Run("expired and forged refused by the TURN server", func(t *testing.T) {
		// Long enough to outlast starting a second relay under -race, so
		// that the forgery checks below see live credentials.
		short := newRelay(t, n, turn.Config{CredentialTTL: 5 * time.Second}, nil)
		m := newNode(t, n, withRelay(t, short, nil))
		c, err := m.svc.fetchCredentials(ctx, short.host.ID())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := short.turn.Verify(c.Username, c.Password+"x"); !errors.Is(err, turn.ErrForged) {
			t.Errorf("tampered password: %v, want ErrForged", err)
		}
		other := newRelay(t, n, turn.Config{Secret: []byte("another secret, another server")}, nil)
		if _, err := other.turn.Verify(c.Username, c.Password); !errors.Is(err, turn.ErrForged) {
			t.Errorf("credentials of another server: %v, want ErrForged", err)
		}
		exp, _, _ := strings.Cut(c.Username, ":")
		forged := exp + ":" + "someone-else"
		if _, err := short.turn.Verify(forged, c.Password); !errors.Is(err, turn.ErrForged) {
			t.Errorf("username rewritten for another user: %v, want ErrForged", err)
		}
		check.Until(t, 12*time.Second, "the credentials to expire", func() bool {
			_, err := short.turn.Verify(c.Username, c.Password)
			return errors.Is(err, turn.ErrExpired)
		})
	})
}

// TestCredentialsClientRefusesHostileRelay: a relay that answers garbage,
// names a host name or sends expired credentials is skipped.
func TestCredentialsClientRefusesHostileRelay(t *testing.T) {
	n := newFakeNet(t)
	bad := p2ptest.NewHost(t, nil)
	answers := [][]byte{
		[]byte("garbage"),
		encodeCredentials(turn.Credentials{Username: "1:x", Password: "p", Expires: time.Now().Add(time.Hour), URLs: []string{"turn:relay.example.org:3478"}}),
		encodeCredentials(turn.Credentials{Username: "1:x", Password: "p", Expires: time.Now().Add(-time.Minute), URLs: []string{"turn:127.0.0.1:3478"}}),
	}
	var mu sync.Mutex
	i := 0
	srv := p2p.Handle(bad, ProtocolTURN, p2p.HandlerConfig{MaxRequest: 1}, func(context.Context, peer.ID, []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		a := answers[i%len(answers)]
		i++
		return a, nil
	})
	t.Cleanup(func() { _ = srv.Close() })
	m := newNode(t, n, func(c *Config) {
		c.Host = p2ptest.NewHost(t, nil)
		p2ptest.Connect(t, c.Host, bad)
		c.Relays = func() []peer.ID { return []peer.ID{bad.ID()} }
	})
	for range answers {
		if _, err := m.svc.fetchCredentials(dialCtx(t), bad.ID()); err == nil {
			t.Error("hostile credentials accepted")
		}
	}
	if s := m.svc.iceServers(dialCtx(t), true); len(s) != 0 {
		t.Errorf("ICE servers from a hostile relay: %+v", s)
	}
}
