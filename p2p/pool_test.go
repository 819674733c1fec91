package p2p_test

import (
	"context"
	"testing"
	"time"

	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

const poolProto = "/callsign-test/pool/1.0.0"

// servePool answers each frame with "known" or "unknown" (the stream's
// pool), after moving the stream to the known pool if the frame is
// "promote", until the stream ends.
func servePool(t *testing.T, h host.Host, cfg p2p.HandlerConfig) {
	srv := p2p.HandleStream(h, poolProto, cfg, func(ctx context.Context, s network.Stream) error {
		for {
			req, err := p2p.ReadFrame(s, 100)
			if err != nil {
				return err
			}
			if string(req) == "promote" {
				p2p.Promote(ctx)
			}
			ans := "unknown"
			if p2p.IsKnown(ctx) {
				ans = "known"
			}
			if err := p2p.WriteFrame(s, []byte(ans)); err != nil {
				return err
			}
		}
	})
	t.Cleanup(func() { srv.Close() })
}

// poolStream opens a stream from a to b and asks which pool it is in.
func poolStream(t *testing.T, a, b host.Host, req string) (network.Stream, string) {
	t.Helper()
	s, err := a.NewStream(ctxT(t, 5*time.Second), b.ID(), poolProto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	s.SetDeadline(time.Now().Add(10 * time.Second))
	return s, ask(t, s, req)
}

func ask(t *testing.T, s network.Stream, req string) string {
	t.Helper()
	if err := p2p.WriteFrame(s, []byte(req)); err != nil {
		t.Fatal(err)
	}
	ans, err := p2p.ReadFrame(s, 100)
	if err != nil {
		t.Fatalf("ask %q: %v", req, err)
	}
	return string(ans)
}

// TestKnownPeersHaveTheirOwnSlots: unknown peers fill their pool and
// cannot take a known peer's slot; a full unknown pool makes room for a
// newcomer by dropping the stream that has been quiet longest; Promote
// moves a stream to the known pool; unknown streams end at their shorter
// deadline.
func TestKnownPeersHaveTheirOwnSlots(t *testing.T) {
	b := p2ptest.NewHost(t, nil)
	friend, s1, s2 := p2ptest.NewHost(t, nil), p2ptest.NewHost(t, nil), p2ptest.NewHost(t, nil)
	servePool(t, b, p2p.HandlerConfig{
		Rate: rate.Inf, MaxConcurrent: 2, MaxUnknown: 2, UnknownTimeout: 1500 * time.Millisecond,
		Known: func(p peer.ID) bool { return p == friend.ID() },
	})
	for _, h := range []host.Host{friend, s1, s2} {
		p2ptest.Connect(t, h, b)
	}

	// s1 fills the unknown pool: the first stream has been quiet longest.
	quiet, ans := poolStream(t, s1, b, "hello")
	if ans != "unknown" {
		t.Fatalf("a stranger's stream is %s", ans)
	}
	active, _ := poolStream(t, s1, b, "hello")
	// A known peer gets a slot however full the unknown pool is, and
	// takes none from it.
	f1, ans := poolStream(t, friend, b, "hello")
	if ans != "known" {
		t.Fatalf("the known peer's stream is %s", ans)
	}
	if got := ask(t, active, "still here?"); got != "unknown" {
		t.Fatalf("the active stranger stream answered %q", got)
	}

	// A newcomer takes the quiet stream's place.
	newcomer, ans := poolStream(t, s2, b, "hello")
	if ans != "unknown" {
		t.Fatalf("the newcomer's stream is %s", ans)
	}
	_, err := p2p.ReadFrame(quiet, 100)
	if code, ok := p2p.CodeOf(err); !ok || code != p2p.CodeOverloaded {
		t.Fatalf("the quiet stream: %v, want a reset with overloaded", err)
	}
	if got := ask(t, active, "still here?"); got != "unknown" {
		t.Fatalf("the active stranger stream answered %q", got)
	}

	// Promoted, the newcomer leaves the unknown pool (room for another
	// without dropping anyone) and its short deadline.
	if got := ask(t, newcomer, "promote"); got != "known" {
		t.Fatalf("after Promote the stream is %s", got)
	}
	another, _ := poolStream(t, s2, b, "hello")
	// The known pool (2) is full now: a third known stream is refused.
	s, err := friend.NewStream(ctxT(t, 5*time.Second), b.ID(), poolProto)
	if err != nil {
		t.Fatal(err)
	}
	p2p.WriteFrame(s, []byte("hello"))
	_, err = p2p.ReadFrame(s, 100)
	if code, ok := p2p.CodeOf(err); !ok || code != p2p.CodeOverloaded {
		t.Fatalf("a third known stream: %v, want a reset with overloaded", err)
	}

	// The unknown streams end at UnknownTimeout from their arrival; the
	// known and promoted ones outlive it.
	for _, st := range []network.Stream{active, another} {
		_, err := p2p.ReadFrame(st, 100)
		if code, ok := p2p.CodeOf(err); !ok || code != p2p.CodeTimeout {
			t.Fatalf("an unknown stream after its deadline: %v, want a reset with timeout", err)
		}
	}
	for _, st := range []network.Stream{f1, newcomer} {
		if got := ask(t, st, "still here?"); got != "known" {
			t.Fatalf("a known stream after the unknown deadline answered %q", got)
		}
	}
}
