package media

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/turn"
)

// streamTURN starts callsign's TURN server on loopback with TCP and TLS
// listeners (a self-signed certificate) and returns ICE servers with only
// its "turn:…?transport=tcp" or only its "turns:" URL, as a member on a
// network that blocks UDP would use them.
func streamTURN(tb testing.TB) (tcpOnly, tlsOnly ICEServer, s *turn.Server) {
	tb.Helper()
	s, err := turn.New(turn.Config{
		ListenUDP: "127.0.0.1:0", ListenTCP: "127.0.0.1:0", ListenTLS: "127.0.0.1:0",
		AllowLoopbackPeers: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	c := s.Credentials("member")
	for _, u := range c.URLs {
		srv := ICEServer{URLs: []string{u}, Username: c.Username, Credential: c.Password}
		switch {
		case strings.HasPrefix(u, "turns:"):
			srv.TLSCertSHA256 = c.TLSCertSHA256
			tlsOnly = srv
		case strings.HasSuffix(u, "?transport=tcp"):
			tcpOnly = srv
		}
	}
	if tcpOnly.URLs == nil || tlsOnly.URLs == nil {
		tb.Fatalf("TURN URLs %q lack TCP or TLS", c.URLs)
	}
	return tcpOnly, tlsOnly, s
}

// TestRelayOnlyOverTCPAndTLS: a relay-only call whose only TURN URL is
// TURN over TCP, or TURN over TLS with a self-signed certificate pinned by
// hash, connects and carries media through the relay; with a wrong pin the
// TLS relay is refused and no relay candidate appears.
func TestRelayOnlyOverTCPAndTLS(t *testing.T) {
	tcpOnly, tlsOnly, s := streamTURN(t)
	for name, ts := range map[string]ICEServer{"tcp": tcpOnly, "tls": tlsOnly} {
		t.Run(name, func(t *testing.T) {
			eA := newEngine(t, Config{})
			eB := newEngine(t, Config{})
			cfg := func(out bool) CallConfig {
				return CallConfig{ID: "stream-" + name, Outgoing: out, RelayOnly: true, Source: Tone(), ICEServers: []ICEServer{ts}}
			}
			caller, callee := newCall(t, eA, cfg(true)), newCall(t, eB, cfg(false))
			wA, wB := watch(t, caller), watch(t, callee)
			connect(t, caller, callee, nil)
			wA.wait(t, Connected, 15*time.Second)
			wB.wait(t, Connected, 15*time.Second)
			check.Until(t, 10*time.Second, "media both ways", func() bool {
				return caller.Stats().SetupTime > 0 && callee.Stats().SetupTime > 0
			})
			if st := caller.Stats(); st.Path != PathRelay {
				t.Errorf("path %q, want relay", st.Path)
			}
			if n := s.Stats().TCPConns; n < 2 {
				t.Errorf("%d TURN connections over TCP during the call, want one per side", n)
			}
			caller.Close()
			wB.wait(t, RemoteClosed, 10*time.Second)
		})
	}

	t.Run("wrong pin", func(t *testing.T) {
		bad := tlsOnly
		bad.TLSCertSHA256 = make([]byte, 32)
		e := newEngine(t, Config{})
		c := newCall(t, e, CallConfig{ID: "bad-pin", Outgoing: true, RelayOnly: true, Source: Tone(), ICEServers: []ICEServer{bad}})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Offer(ctx); err != nil {
			t.Fatal(err)
		}
		var got []string
		for cand := range c.Candidates() {
			got = append(got, cand)
		}
		if len(got) != 0 {
			t.Errorf("candidates through a relay whose certificate fails the pin: %q", got)
		}
	})
}
