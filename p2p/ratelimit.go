package p2p

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// maxTrackedPeers bounds the limiter's memory; beyond it, peers whose
// bucket has refilled (indistinguishable from new ones) are forgotten.
const maxTrackedPeers = 4096

// peerLimiter is a token bucket per peer.
type peerLimiter struct {
	r     rate.Limit
	burst int

	mu    sync.Mutex
	peers map[peer.ID]*rate.Limiter // guarded by mu
}

func newPeerLimiter(r rate.Limit, burst int) *peerLimiter {
	return &peerLimiter{r: r, burst: burst, peers: map[peer.ID]*rate.Limiter{}}
}

func (l *peerLimiter) allow(p peer.ID, now time.Time) bool {
	if l.r == rate.Inf {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.peers[p]
	if !ok {
		if len(l.peers) >= maxTrackedPeers {
			l.sweepLocked(now)
		}
		lim = rate.NewLimiter(l.r, l.burst)
		l.peers[p] = lim
	}
	return lim.AllowN(now, 1)
}

func (l *peerLimiter) sweepLocked(now time.Time) {
	for p, lim := range l.peers {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.peers, p)
		}
	}
}
