package node

// A network to join: invites, the bootstrap files a community ships, nodes
// found on the local network by mDNS, and saying so when the node is alone.
//
// Where a node finds the network, in order: the --bootstrap addresses and
// the --join invite it was given (remembered in the store, so a later
// plain start rejoins), the bootstrap files a community ships
// (Config.BootstrapFiles: read at every start, never remembered), and the
// nodes mDNS finds on the local network. Nothing is compiled in.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/p2p/invite"
	"github.com/callsign/callsign/store"
)

// DefaultMDNSService is the DNS-SD service callsign nodes announce and
// look for on the local network (not libp2p's "_p2p._udp", so that a node
// meets callsign nodes and not every libp2p program on the network).
const DefaultMDNSService = "_callsign._udp"

const (
	// aloneGrace is how long a node waits after start before it says it
	// has no peers, so that mDNS and a first dial have a moment.
	aloneGrace = 2 * time.Second
	// aloneFirst is when a node that knows bootstrap peers says it is alone
	// if no bootstrap round has finished by then.
	aloneFirst = 20 * time.Second
	// aloneRepeat is how often a node that stays alone says so again.
	aloneRepeat = 5 * time.Minute
	// maxBootstrapFile caps a bootstrap file's size.
	maxBootstrapFile = 64 << 10
	// mdnsDialTimeout bounds one dial to a node found on the local network.
	mdnsDialTimeout = 10 * time.Second
)

// joinState tracks whether the node has found a network.
type joinState struct {
	mu      sync.Mutex // guards the fields below
	rounds  int        // bootstrap rounds finished
	shipped []string   // lines of the bootstrap files, read at start
	mdns    bool       // mDNS runs
	wake    chan struct{}
}

func (j *joinState) init() {
	j.mu.Lock()
	if j.wake == nil {
		j.wake = make(chan struct{}, 1)
	}
	j.mu.Unlock()
}

// roundDone records a finished bootstrap round (connectBootstrap), so that
// a node alone says so at once rather than after aloneFirst.
func (n *Node) roundDone() {
	n.join.init()
	n.join.mu.Lock()
	n.join.rounds++
	n.join.mu.Unlock()
	select {
	case n.join.wake <- struct{}{}:
	default:
	}
}

// parseBootstrap reads one bootstrap entry: a multiaddr ending in
// /p2p/<peer>, or an invite.
func parseBootstrap(s string) (peer.AddrInfo, error) {
	if strings.HasPrefix(strings.ToLower(s), invite.Prefix) {
		inv, err := invite.Parse(s)
		if err != nil {
			return peer.AddrInfo{}, err
		}
		return inv.AddrInfo(), nil
	}
	ai, err := peer.AddrInfoFromString(s)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	return *ai, nil
}

// checkJoin validates Config.Join (New).
func checkJoin(s string) error {
	if s == "" {
		return nil
	}
	if _, err := invite.Parse(s); err != nil {
		return withHint(err, "an invite starts with "+invite.Prefix+"; ask the community node's operator for theirs (`callsign invite` on that node prints it)")
	}
	return nil
}

// readBootstrapFiles reads Config.BootstrapFiles. A missing file is
// skipped; an unreadable one or a bad line is an error that names it.
func (n *Node) readBootstrapFiles() error {
	var lines []string
	for _, name := range n.cfg.BootstrapFiles {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return withHint(fmt.Errorf("bootstrap file: %w", err), "check the file's permissions")
		}
		got, err := readBootstrapList(io.LimitReader(f, maxBootstrapFile+1), name)
		f.Close()
		if err != nil {
			return withHint(err, "each line is an invite (callsign:join/...) or a multiaddr ending in /p2p/<peer id>; # starts a comment")
		}
		n.log.Info("bootstrap file read", "file", name, "nodes", len(got))
		lines = append(lines, got...)
	}
	n.join.mu.Lock()
	n.join.shipped = lines
	n.join.mu.Unlock()
	return nil
}

// readBootstrapList parses a bootstrap file: one invite or multiaddr a
// line, blank lines and # comments skipped.
func readBootstrapList(r io.Reader, name string) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), invite.MaxLen+1024)
	size, line := 0, 0
	for sc.Scan() {
		line++
		size += len(sc.Bytes()) + 1
		if size > maxBootstrapFile {
			return nil, fmt.Errorf("bootstrap file %s: over %d KiB", name, maxBootstrapFile>>10)
		}
		s := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = strings.TrimSpace(s[:i])
		}
		if s == "" {
			continue
		}
		if _, err := parseBootstrap(s); err != nil {
			return nil, fmt.Errorf("bootstrap file %s, line %d: %v", name, line, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bootstrap file %s, line %d: %v", name, line+1, err)
	}
	return out, nil
}

// mdnsOn reports whether mDNS runs.
func (n *Node) mdnsOn() bool {
	n.join.mu.Lock()
	defer n.join.mu.Unlock()
	return n.join.mdns
}

// shippedBootstrap is what the bootstrap files list.
func (n *Node) shippedBootstrap() []string {
	n.join.mu.Lock()
	defer n.join.mu.Unlock()
	return n.join.shipped
}

// inviteInfo is the invite status shows: a public node's own, else the
// one this node joined with (to pass on to a friend), else nil.
func (n *Node) inviteInfo() *api.Invite {
	var inv invite.Invite
	own := n.cfg.Public
	if own {
		var err error
		if inv, err = invite.ForNode(n.host.ID(), n.host.Addrs(), n.cfg.Community); err != nil {
			return nil
		}
	} else {
		var found bool
		if inv, found = n.joinedInvite(); !found {
			return nil
		}
	}
	text, err := inv.Encode()
	if err != nil {
		return nil
	}
	out := &api.Invite{Invite: text, Peer: inv.Peer.String(), Name: inv.Name, Own: own, Addrs: []string{}}
	for _, a := range inv.Addrs {
		out.Addrs = append(out.Addrs, a.String())
	}
	return out
}

// joinedInvite is the newest invite this node was started with (the
// remembered ones, then the bootstrap files').
func (n *Node) joinedInvite() (invite.Invite, bool) {
	var remembered []string
	if n.db != nil {
		_ = n.db.View(func(tx *store.Tx) error {
			var err error
			remembered, err = tx.Bootstraps()
			return err
		})
	}
	cands := append([]string{n.cfg.Join}, remembered...)
	for _, s := range append(cands, n.shippedBootstrap()...) {
		if !strings.HasPrefix(strings.ToLower(s), invite.Prefix) {
			continue
		}
		if inv, err := invite.Parse(s); err == nil {
			return inv, true
		}
	}
	return invite.Invite{}, false
}

// aloneHint says what to do when the node has no peers, or "" when it has
// some.
func (n *Node) aloneHint(peers int) string {
	if peers > 0 {
		return ""
	}
	if n.cfg.Public {
		return "no peers yet: this community node waits for its members; give them the invite `callsign invite` prints, to run `callsign up --join INVITE`"
	}
	known, err := n.knownBootstrap()
	switch {
	case err != nil:
		return "no peers: the community nodes this node knows can't be read (" + err.Error() + "); it keeps trying"
	case known == 0:
		return "no peers: this node knows no network. Ask a community node for an invite and run `callsign up --join INVITE`, or start one with `callsign up --public`"
	case known == 1:
		return "no peers: the community node this node knows does not answer; it keeps trying. Check this machine's network, or ask for a fresh invite and run `callsign up --join INVITE`"
	}
	return fmt.Sprintf("no peers: none of the %d community nodes this node knows answers; it keeps trying. Check this machine's network, or ask for a fresh invite and run `callsign up --join INVITE`", known)
}

// knownBootstrap counts the community nodes this node knows of. Unlike
// bootstrapPeers it only reads.
func (n *Node) knownBootstrap() (int, error) {
	var all []string
	err := n.db.View(func(tx *store.Tx) error {
		var err error
		all, err = tx.Bootstraps()
		return err
	})
	if err != nil {
		return 0, err
	}
	all = append(append(append(all, n.cfg.Bootstrap...), n.cfg.Join), n.shippedBootstrap()...)
	ids := map[peer.ID]bool{}
	for _, s := range all {
		if ai, err := parseBootstrap(s); err == nil && ai.ID != n.host.ID() {
			ids[ai.ID] = true
		}
	}
	return len(ids), nil
}

// startJoin starts mDNS (when configured) and the watcher that says when
// the node is alone.
func (n *Node) startJoin() {
	n.join.init()
	if n.cfg.MDNS && !n.cfg.BehindNAT {
		n.startMDNS()
	}
	n.wg.Go(n.aloneLoop)
}

// aloneLoop logs, on the node's log (stderr for `callsign up`), that the
// node has no peers and what to do: once after start-up (as soon as the
// first bootstrap round failed, after aloneGrace, or aloneFirst at the
// latest) and again every aloneRepeat while it stays alone; and that it
// found the network once it does.
func (n *Node) aloneLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var aloneSince, warned time.Time
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.join.wake:
		}
		peers := len(n.host.Network().Peers())
		now := time.Now()
		if peers > 0 {
			if !warned.IsZero() {
				n.log.Info("connected to the network", "peers", peers)
			}
			aloneSince, warned = time.Time{}, time.Time{}
			continue
		}
		if aloneSince.IsZero() {
			aloneSince = now
		}
		n.join.mu.Lock()
		ready := n.join.rounds > 0 || now.Sub(n.started) >= aloneFirst
		n.join.mu.Unlock()
		// Alone for aloneGrace on end, not a connection coming and going.
		if (warned.IsZero() && ready && now.Sub(aloneSince) >= aloneGrace) ||
			(!warned.IsZero() && now.Sub(warned) >= aloneRepeat) {
			n.warnAlone(n.aloneHint(0))
			warned = now
		}
	}
}

func (n *Node) warnAlone(hint string) {
	if n.cfg.Public {
		n.log.Info(hint)
		return
	}
	n.log.Warn(hint)
}

// mdnsFound hands the peers mDNS finds to mdnsLoop. mDNS calls it on a
// goroutine of its own per answer, so it never blocks: answers beyond the
// buffer are dropped.
type mdnsFound chan peer.AddrInfo

func (f mdnsFound) HandlePeerFound(ai peer.AddrInfo) {
	select {
	case f <- ai:
	default:
	}
}

func (n *Node) startMDNS() {
	name := n.cfg.MDNSService
	if name == "" {
		name = DefaultMDNSService
	}
	found := make(mdnsFound, 16)
	svc := mdns.NewMdnsService(n.host, name, found)
	if err := svc.Start(); err != nil {
		n.log.Warn("finding nodes on the local network (mDNS) is off", "err", err)
		svc.Close()
		return
	}
	n.closers = append(n.closers, svc.Close)
	n.join.mu.Lock()
	n.join.mdns = true
	n.join.mu.Unlock()
	n.log.Info("looking for nodes on the local network (mDNS)", "service", name)
	n.wg.Go(func() { n.mdnsLoop(found) })
}

// mdnsLoop dials the nodes mDNS finds, one at a time. Once connected, a
// node that is a DHT server joins the routing table (kad-dht adds it when
// identify shows its protocols), so it serves lookups like any other.
func (n *Node) mdnsLoop(found <-chan peer.AddrInfo) {
	connected := func(id peer.ID) bool { return n.host.Network().Connectedness(id) == network.Connected }
	mdnsDial(n.ctx, found, n.host.ID(), connected, n.host.Connect, n.log, mdnsRetry)
}

// mDNS reports a node once, until its record expires (an hour): a dial
// that fails (a busy machine, a network still coming up) is tried again,
// after mdnsRetry, doubling up to a minute, mdnsTries times in all, for
// at most mdnsWaiting nodes at once.
const (
	mdnsRetry   = 2 * time.Second
	mdnsTries   = 8
	mdnsWaiting = 16
)

// mdnsDial dials each node found until connected (connect, within
// mdnsDialTimeout), trying again as the constants above say, until ctx
// ends. A node found again is tried again at once, with the addresses of
// the new answer.
func mdnsDial(ctx context.Context, found <-chan peer.AddrInfo, self peer.ID, connected func(peer.ID) bool,
	connect func(context.Context, peer.AddrInfo) error, log *slog.Logger, retry time.Duration) {
	type waiting struct {
		ai    peer.AddrInfo
		tries int
		next  time.Time
	}
	nodes := map[peer.ID]*waiting{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ai := <-found:
			if ai.ID == self {
				continue
			}
			if len(ai.Addrs) > 8 {
				ai.Addrs = ai.Addrs[:8] // an answer from the network: bounded
			}
			if w, ok := nodes[ai.ID]; ok {
				w.ai, w.next = ai, time.Time{}
			} else if len(nodes) < mdnsWaiting {
				nodes[ai.ID] = &waiting{ai: ai}
			}
		case <-timer.C:
		}
		next := time.Now().Add(time.Hour)
		for id, w := range nodes {
			if time.Now().Before(w.next) {
				if w.next.Before(next) {
					next = w.next
				}
				continue
			}
			if connected(id) {
				delete(nodes, id)
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, mdnsDialTimeout)
			err := connect(dctx, w.ai)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				log.Info("connected to a node on the local network (mDNS)", "peer", id)
				delete(nodes, id)
				continue
			}
			w.tries++
			if w.tries >= mdnsTries {
				log.Info("a node found on the local network stays unreachable", "peer", id, "err", err)
				delete(nodes, id)
				continue
			}
			log.Debug("node found on the local network unreachable; trying again", "peer", id, "err", err)
			w.next = time.Now().Add(min(retry<<(w.tries-1), time.Minute))
			if w.next.Before(next) {
				next = w.next
			}
		}
		timer.Reset(time.Until(next))
	}
}
