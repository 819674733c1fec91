package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestMDNSDialsAgain: mDNS reports a node once, so a node whose first
// dials fail (a busy machine, a network coming up) is dialled again until
// it answers; one that never answers is given up after mdnsTries; this
// node itself is never dialled.
func TestMDNSDialsAgain(t *testing.T) {
	const self, late, dead = peer.ID("self"), peer.ID("late"), peer.ID("dead")
	var mu sync.Mutex
	calls := map[peer.ID]int{}
	up := map[peer.ID]bool{}
	connect := func(_ context.Context, ai peer.AddrInfo) error {
		mu.Lock()
		defer mu.Unlock()
		calls[ai.ID]++
		if ai.ID == late && calls[ai.ID] == 3 {
			up[ai.ID] = true
			return nil
		}
		return errors.New("connection refused")
	}
	connected := func(id peer.ID) bool {
		mu.Lock()
		defer mu.Unlock()
		return up[id]
	}
	ctx, cancel := context.WithCancel(context.Background())
	found := make(chan peer.AddrInfo, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		mdnsDial(ctx, found, self, connected, connect, slog.New(slog.DiscardHandler), time.Millisecond)
	}()
	defer func() { cancel(); <-done }()
	for _, id := range []peer.ID{self, late, dead} {
		found <- peer.AddrInfo{ID: id}
	}
	check.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !up[late] || calls[dead] < mdnsTries {
			return errors.New("still dialling")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // a dial after the last would show below
	mu.Lock()
	defer mu.Unlock()
	if calls[late] != 3 || calls[dead] != mdnsTries || calls[self] != 0 {
		t.Fatalf("dials: %v; want late 3, dead %d, self none", calls, mdnsTries)
	}
}
