package node

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"github.com/callsign/callsign/turn"
)

// TestTURNTLSFallsBackWhenDefaultPortTaken: when the default TLS address
// (port 443) can't be bound, the relay starts with the fallback port
// instead of failing; an address the operator named is not replaced.
func TestTURNTLSFallsBackWhenDefaultPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	old := turnTLSFallbackPort
	turnTLSFallbackPort = "0"
	defer func() { turnTLSFallbackPort = old }()

	n := &Node{log: slog.New(slog.DiscardHandler)}
	cfg := turn.Config{ListenUDP: "127.0.0.1:0", ListenTLS: taken.Addr().String(), AllowLoopbackPeers: true}
	ts, err := n.newTURN(context.Background(), cfg, true)
	if err != nil {
		t.Fatalf("default TLS port taken: %v", err)
	}
	defer ts.Close()
	if a := ts.TLSAddr(); a == nil || a.String() == taken.Addr().String() {
		t.Fatalf("TLS on %v, want the fallback port", a)
	}

	if _, err := n.newTURN(context.Background(), cfg, false); err == nil {
		t.Fatal("a named TLS address that can't be bound was replaced")
	}
}
