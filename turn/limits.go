package turn

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// limiter enforces the allocation quotas (per IP, per user, in total), the
// per-IP allocation rate, and the per-allocation permission and channel
// caps. pion/turn calls its hooks (QuotaHandler, PermissionHandler and the
// EventHandler callbacks) from the goroutine that reads the client's
// socket, synchronously with the request, so for one client 5-tuple a quota
// decision and the resulting created/error event never interleave with
// another request of the same 5-tuple.
type limiter struct {
	maxPerIP, maxPerUser, maxTotal int
	maxPerms, maxChans             int
	rate                           float64
	burst                          float64
	allowLoopback                  bool
	now                            func() time.Time

	mu      sync.Mutex // guards the fields below
	buckets map[netip.Addr]*bucket
	perIP   map[netip.Addr]int
	perUser map[string]int
	total   int
	// pending holds reservations made by QuotaHandler whose allocation is
	// being created; active holds created allocations. Both are keyed by
	// allocKey of the client's address.
	pending map[string]allocRef
	active  map[string]*allocState
}

type allocRef struct {
	ip   netip.Addr
	user string
}

type allocState struct {
	allocRef
	perms    map[netip.Addr]struct{}
	channels map[uint16]struct{}
}

// bucket is a token bucket: tokens refill at limiter.rate up to burst.
type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(cfg *Config, now func() time.Time) *limiter {
	return &limiter{
		maxPerIP:      cfg.MaxAllocationsPerIP,
		maxPerUser:    cfg.MaxAllocationsPerUser,
		maxTotal:      cfg.MaxAllocations,
		maxPerms:      cfg.MaxPermissionsPerAllocation,
		maxChans:      cfg.MaxChannelsPerAllocation,
		rate:          cfg.AllocationRate,
		burst:         float64(cfg.AllocationBurst),
		allowLoopback: cfg.AllowLoopbackPeers,
		now:           now,
		buckets:       make(map[netip.Addr]*bucket),
		perIP:         make(map[netip.Addr]int),
		perUser:       make(map[string]int),
		pending:       make(map[string]allocRef),
		active:        make(map[string]*allocState),
	}
}

// allocKey identifies an allocation by its client transport address. The
// network is part of it because pion uses the same 5-tuple protocol for
// UDP and TCP clients.
func allocKey(src net.Addr) string {
	if src == nil {
		return ""
	}
	return src.Network() + "/" + src.String()
}

// addrIP extracts the IP of a UDP or TCP address; ok is false otherwise.
func addrIP(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	}
	return netip.Addr{}, false
}

// refusal reasons, for logs and tests.
const (
	refusedIPCap    = "per-IP allocation limit"
	refusedUserCap  = "per-user allocation limit"
	refusedTotalCap = "server allocation limit"
	refusedRate     = "allocation rate limit"
	refusedAddr     = "unusable client address"
)

// reserve decides whether the client at src may create an allocation for
// user, and if so counts it as pending. It returns "" on success and the
// refusal reason otherwise.
func (l *limiter) reserve(user string, src net.Addr) string {
	ip, ok := addrIP(src)
	if !ok {
		return refusedAddr
	}
	key := allocKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.pending[key]; ok { // a request that never reported back
		l.releaseLocked(old)
		delete(l.pending, key)
	}
	switch {
	case l.total >= l.maxTotal:
		return refusedTotalCap
	case l.perIP[ip] >= l.maxPerIP:
		return refusedIPCap
	case l.perUser[user] >= l.maxPerUser:
		return refusedUserCap
	case !l.takeTokenLocked(ip):
		return refusedRate
	}
	ref := allocRef{ip: ip, user: user}
	l.pending[key] = ref
	l.total++
	l.perIP[ip]++
	l.perUser[user]++
	return ""
}

// takeTokenLocked takes one token from ip's bucket. The table of buckets
// is bounded: when full, idle (refilled) buckets are dropped, and if none
// is idle the request is refused.
func (l *limiter) takeTokenLocked(ip netip.Addr) bool {
	now := l.now()
	b := l.buckets[ip]
	if b == nil {
		if len(l.buckets) >= maxTrackedIPs {
			l.sweepBucketsLocked(now)
			if len(l.buckets) >= maxTrackedIPs {
				return false
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[ip] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *limiter) sweepBucketsLocked(now time.Time) {
	for ip, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, ip)
		}
	}
}

func (l *limiter) releaseLocked(ref allocRef) {
	l.total--
	if l.perIP[ref.ip]--; l.perIP[ref.ip] <= 0 {
		delete(l.perIP, ref.ip)
	}
	if l.perUser[ref.user]--; l.perUser[ref.user] <= 0 {
		delete(l.perUser, ref.user)
	}
}

// created moves src's pending reservation to the active set.
func (l *limiter) created(src net.Addr, user string) {
	key := allocKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	ref, ok := l.pending[key]
	if ok {
		delete(l.pending, key)
	} else {
		// Not reserved through reserve (cannot happen with pion's order of
		// calls); count it anyway so the matching delete balances.
		ip, _ := addrIP(src)
		ref = allocRef{ip: ip, user: user}
		l.total++
		l.perIP[ip]++
		l.perUser[user]++
	}
	if old, ok := l.active[key]; ok {
		l.releaseLocked(old.allocRef)
	}
	l.active[key] = &allocState{
		allocRef: ref,
		perms:    make(map[netip.Addr]struct{}),
		channels: make(map[uint16]struct{}),
	}
}

// failed drops src's pending reservation, if any: its allocation was not
// created.
func (l *limiter) failed(src net.Addr) {
	key := allocKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	if ref, ok := l.pending[key]; ok {
		delete(l.pending, key)
		l.releaseLocked(ref)
	}
}

// deleted releases src's allocation.
func (l *limiter) deleted(src net.Addr) {
	key := allocKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	if st, ok := l.active[key]; ok {
		delete(l.active, key)
		l.releaseLocked(st.allocRef)
	}
}

// live is the number of allocations pending or active.
func (l *limiter) live() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending) + len(l.active)
}

// counts reports the active allocations from ip and of user.
func (l *limiter) counts(ip netip.Addr, user string) (perIP, perUser, total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perIP[ip], l.perUser[user], l.total
}

// peerAllowed reports whether relaying to peer is allowed at all.
func (l *limiter) peerAllowed(peer netip.Addr) bool {
	peer = peer.Unmap()
	if !peer.IsValid() || peer.IsMulticast() || peer.IsInterfaceLocalMulticast() {
		return false
	}
	if !l.allowLoopback && (peer.IsLoopback() || peer.IsUnspecified()) {
		return false
	}
	return true
}

// permit is the PermissionHandler: it admits a peer IP for the allocation
// of the client at src if the peer is allowed and the allocation is under
// its permission cap. pion calls it for CreatePermission and ChannelBind,
// including refreshes of an existing permission.
func (l *limiter) permit(src net.Addr, peerIP net.IP) bool {
	peer, ok := netip.AddrFromSlice(peerIP)
	if !ok || !l.peerAllowed(peer) {
		return false
	}
	peer = peer.Unmap()
	key := allocKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.active[key]
	if st == nil {
		return false
	}
	if _, ok := st.perms[peer]; ok {
		return true
	}
	if len(st.perms) >= l.maxPerms {
		return false
	}
	st.perms[peer] = struct{}{}
	return true
}

// permissionDeleted forgets an expired or removed permission.
func (l *limiter) permissionDeleted(src net.Addr, peerIP net.IP) {
	peer, ok := netip.AddrFromSlice(peerIP)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.active[allocKey(src)]; st != nil {
		delete(st.perms, peer.Unmap())
	}
}

// channelAllowed reports whether the allocation of the client at src may
// bind channel number: an already bound number (a refresh) always may, a
// new one only under the cap.
func (l *limiter) channelAllowed(src net.Addr, number uint16) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.active[allocKey(src)]
	if st == nil {
		return true // pion refuses it for lack of an allocation
	}
	if _, ok := st.channels[number]; ok {
		return true
	}
	return len(st.channels) < l.maxChans
}

// channelCreated records a bound channel and reports whether the
// allocation is still within its channel cap.
func (l *limiter) channelCreated(src net.Addr, number uint16) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.active[allocKey(src)]
	if st == nil {
		return true
	}
	st.channels[number] = struct{}{}
	return len(st.channels) <= l.maxChans
}

func (l *limiter) channelDeleted(src net.Addr, number uint16) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.active[allocKey(src)]; st != nil {
		delete(st.channels, number)
	}
}
