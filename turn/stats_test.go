package turn

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
)

// TestStatsCountRelayedBytes: Stats counts the payload bytes an
// allocation relays, each direction on its own.
func TestStatsCountRelayedBytes(t *testing.T) {
	s := startServer(t, Config{})
	creds := s.Credentials("alice")
	c := newClient(t, s, "127.0.0.1", creds.Username, creds.Password)
	if err := c.allocate(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.RelayedToPeers != 0 || st.RelayedFromPeers != 0 {
		t.Fatalf("relayed bytes before any data: %+v", st)
	}
	peer := listenPeer(t, "127.0.0.1")
	roundTrip(t, c, peer, "hello") // 5 bytes out, "re:hello" back
	// A relay socket counts a datagram just after passing it on, so the
	// echo can reach the client a moment before the count of what went
	// out moves.
	var st Stats
	check.Eventually(t, 10*time.Second, func() error {
		if st = s.Stats(); st.RelayedToPeers < 5 || st.RelayedFromPeers < 8 {
			return fmt.Errorf("after a round trip: %d bytes to peers, %d from peers", st.RelayedToPeers, st.RelayedFromPeers)
		}
		return nil
	})

	// 1000 bytes from the peer: counted from peers only.
	big := bytes.Repeat([]byte{'x'}, 1000)
	if _, err := peer.WriteTo(big, c.relay.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = c.relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1600)
	if n, _, err := c.relay.ReadFrom(buf); err != nil || n != len(big) {
		t.Fatalf("client read %d bytes, %v", n, err)
	}
	after := s.Stats()
	if got := after.RelayedFromPeers - st.RelayedFromPeers; got != uint64(len(big)) {
		t.Errorf("a 1000-byte datagram from the peer counted as %d bytes from peers", got)
	}
	if after.RelayedToPeers != st.RelayedToPeers {
		t.Errorf("a datagram from the peer counted %d bytes to peers", after.RelayedToPeers-st.RelayedToPeers)
	}
}
