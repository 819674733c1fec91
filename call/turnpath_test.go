package call

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/callsign/callsign/turn"
)

// TestRelayChangedIsLearntAtOnce: the community node restarts (same peer
// id) with its TURN relay on new ports and a new secret while both members
// still hold credentials for the old one. The next relay-only call asks
// afresh, gets the new relay, and connects through it at once instead of
// sitting in calling on the old credentials.
func TestRelayChangedIsLearntAtOnce(t *testing.T) {
	n := newFakeNet(t)
	old := newRelay(t, n, turn.Config{ListenTCP: "127.0.0.1:0", ListenTLS: "127.0.0.1:0"}, nil)
	a := newNode(t, n, withRelay(t, old, func(c *Config) { c.AlwaysRelay = func() bool { return true } }))
	b := newNode(t, n, withRelay(t, old, func(c *Config) {
		c.AutoAnswer = func() (bool, string) { return true, "" }
		c.AutoAnswerSource = media.Tone()
	}))
	b.policy.set(Decision{Allow: true, RelayOnly: true})
	seedCredentials(t, old, a, b)
	stale := a.svc.creds.m[old.host.ID()]
	if stale.TLSCertSHA256 == nil || len(stale.URLs) != 3 {
		t.Fatalf("credentials over %s carry URLs %q and pin %x, want UDP, TCP and TLS and a pin",
			ProtocolTURN, stale.URLs, stale.TLSCertSHA256)
	}

	// The restart: the old relay goes away, a new one comes up on the
	// same libp2p host with other ports and another secret.
	_ = old.svc.Close()
	_ = old.turn.Close()
	relay := newRelayOn(t, n, old.host, turn.Config{Secret: []byte("the secret after the restart!!")}, nil)
	if slices.Equal(relay.turn.URLs()[:1], stale.URLs[:1]) {
		t.Fatalf("the restarted relay reuses the old port %v", stale.URLs[0])
	}

	start := time.Now()
	ca, err := a.svc.Dial(dialCtx(t), b.id, DialOptions{Source: media.Tone()})
	if err != nil {
		t.Fatal(err)
	}
	cb := b.incoming(t)
	connectAndCheck(t, ca, cb, media.PathRelay, func() {
		t.Logf("relay-only call active %v after dialling", time.Since(start))
		if got := relay.turn.Allocations(); got < 2 {
			t.Errorf("the new relay holds %d allocations during the call, want one per side", got)
		}
	})
	if got := a.svc.creds.m[old.host.ID()]; got.Password == stale.Password || !slices.Equal(got.URLs, relay.turn.URLs()) {
		t.Errorf("the caller still caches %q for %v, want the new relay's %v", got.Username, got.URLs, relay.turn.URLs())
	}
}

// TestCredentialFallback: when a fresh request fails (here the relay is
// gone) a call uses the last credentials, and a call that fails to find a
// path drops them.
func TestCredentialFallback(t *testing.T) {
	n := newFakeNet(t)
	r := newRelay(t, n, turn.Config{}, nil)
	m := newNode(t, n, withRelay(t, r, nil))
	seedCredentials(t, r, m)
	_ = r.svc.Close()
	servers := m.svc.iceServers(dialCtx(t), true)
	if len(servers) != 1 || !slices.Equal(servers[0].URLs, r.turn.URLs()) {
		t.Fatalf("ICE servers %+v, want the last credentials", servers)
	}
	m.svc.creds.drop()
	if s := m.svc.iceServers(dialCtx(t), true); len(s) != 0 {
		t.Fatalf("ICE servers %+v after the cache was dropped", s)
	}
}

// TestLegacyCredentialProtocol: a relay still answers 2.0.0, without the
// pin and the "turns:" URL that protocol's strict decoder refuses.
func TestLegacyCredentialProtocol(t *testing.T) {
	c := turn.Credentials{
		Username: "1767225600:peer", Password: "cGFzc3dvcmQ=", Expires: time.Unix(1767225600, 0),
		URLs:          []string{"turn:192.0.2.1:3478?transport=udp", "turn:192.0.2.1:3478?transport=tcp", "turns:192.0.2.1:443?transport=tcp"},
		TLSCertSHA256: make([]byte, 32),
	}
	l := legacyCredentials(c)
	if l == nil || len(l.URLs) != 2 || l.TLSCertSHA256 != nil {
		t.Fatalf("legacy credentials %+v", l)
	}
	if _, err := decodeCredentials(encodeCredentials(*l)); err != nil {
		t.Fatal(err)
	}
	c.URLs = c.URLs[2:]
	if legacyCredentials(c) != nil {
		t.Error("legacy credentials with only a turns: URL")
	}
	got, err := decodeCredentials(encodeCredentials(c))
	if err != nil || len(got.TLSCertSHA256) != 32 {
		t.Fatalf("2.1.0 credentials with a pin: %+v, %v", got, err)
	}
	short := append(encodeCredentials(turn.Credentials{Username: c.Username, Password: c.Password, Expires: c.Expires, URLs: c.URLs}), 0x2a, 0x01, 0x00)
	if _, err := decodeCredentials(short); err == nil {
		t.Error("a 1-byte pin was accepted")
	}
}

// TestAsksLegacyRelayFor200: a relay that speaks only 2.0.0 is asked in
// 2.0.0.
func TestAsksLegacyRelayFor200(t *testing.T) {
	n := newFakeNet(t)
	old := p2ptest.NewHost(t, nil)
	want := turn.Credentials{Username: "1:x", Password: "cA==", Expires: time.Now().Add(time.Hour).Truncate(time.Second),
		URLs: []string{"turn:127.0.0.1:3478?transport=udp"}}
	srv := p2p.Handle(old, ProtocolTURNLegacy, p2p.HandlerConfig{MaxRequest: maxTURNRequest}, func(context.Context, peer.ID, []byte) ([]byte, error) {
		return encodeCredentials(want), nil
	})
	t.Cleanup(func() { _ = srv.Close() })
	m := newNode(t, n, func(c *Config) {
		c.Host = p2ptest.NewHost(t, nil)
		p2ptest.Connect(t, c.Host, old)
		c.Relays = func() []peer.ID { return []peer.ID{old.ID()} }
	})
	got, err := m.svc.fetchCredentials(dialCtx(t), old.ID())
	if err != nil || got.Password != want.Password {
		t.Fatalf("credentials from a 2.0.0 relay: %+v, %v", got, err)
	}
}
