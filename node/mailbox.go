package node

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/mailbox"
)

// Mailboxes: a public node holds sealed envelopes for its members
// (package mailbox); every other node names its mailboxes in its identity
// record (Config.Mailboxes, else the first two nodes it bootstraps from),
// registers with them and drains them (msg/mailbox.go).

// maxMailboxes is how many mailboxes a node names in its record.
const maxMailboxes = 2

// mailboxes is the node's mailbox state; the zero value is ready.
type mailboxes struct {
	srv *mailbox.Server // a public node's mailbox; nil otherwise

	mu     sync.Mutex
	peers  []peer.AddrInfo // cached: this node's own mailboxes
	at     time.Time       // when peers was computed
	static bool            // peers come from Config.Mailboxes
}

func (n *Node) mbox() *mailboxes { return &n.mboxes }

// startMailbox parses Config.Mailboxes and, on a public node, starts its
// mailbox.
func (n *Node) startMailbox(ctx context.Context) error {
	mb := n.mbox()
	var static []peer.AddrInfo
	for _, s := range n.cfg.Mailboxes {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return withHint(fmt.Errorf("bad mailbox address %q: %v", s, err), "a mailbox address is a community node's multiaddr ending in /p2p/<peer id>")
		}
		static = append(static, *ai)
	}
	if len(static) > 0 {
		mb.mu.Lock()
		mb.peers, mb.static = mergeAddrInfos(static), true
		mb.mu.Unlock()
	}
	if !n.cfg.Public {
		return nil
	}
	srv, err := mailbox.New(mailbox.Config{Host: n.host, DB: n.db, Logger: n.log,
		// Members' attachments parked by senders who can't reach them
		// (node/files.go), each up to this node's own file limit.
		FilesDir: filepath.Join(n.cfg.DataDir, "parked"), MaxFile: n.cfg.FileLimit})
	if err != nil {
		return fmt.Errorf("mailbox: %w", err)
	}
	if err := srv.Start(ctx); err != nil {
		return fmt.Errorf("mailbox: %w", err)
	}
	mb.srv = srv
	n.closers = append(n.closers, srv.Close)
	return nil
}

// mailboxPeers are this node's own mailboxes: Config.Mailboxes, else the
// first nodes it bootstraps from (a public node: none but those given).
// The bootstrap list is read at most once a minute.
func (n *Node) mailboxPeers() []peer.AddrInfo {
	mb := n.mbox()
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.static || n.cfg.Public || time.Since(mb.at) < time.Minute {
		return mb.peers
	}
	mb.at = time.Now()
	boot, err := n.bootstrapPeers()
	if err != nil {
		return mb.peers
	}
	var out []peer.AddrInfo
	for _, ai := range mergeAddrInfos(boot) {
		if ai.ID == n.host.ID() {
			continue
		}
		if out = append(out, ai); len(out) == maxMailboxes {
			break
		}
	}
	mb.peers = out
	return out
}

// mailboxAddrs are the addresses of this node's mailboxes for its identity
// record.
func (n *Node) mailboxAddrs() []ma.Multiaddr { return recordAddrs(n.mailboxPeers()) }

// fillMailboxStatus adds the mailboxes to a status: this node's own, and
// on a public node what its mailbox holds.
func (n *Node) fillMailboxStatus(st *api.Status) {
	if n.msg != nil {
		for _, m := range n.msg.Mailboxes() {
			ms := api.MailboxStatus{Peer: m.Peer.String(), Registered: m.Registered, Waiting: m.Waiting, Drained: m.Drained, Error: m.LastError, Prekeys: m.Prekeys}
			if !m.LastDrain.IsZero() {
				t := m.LastDrain.UTC()
				ms.LastDrain = &t
			}
			st.Mailboxes = append(st.Mailboxes, ms)
		}
	}
	if srv := n.mbox().srv; srv != nil {
		s := srv.Stats()
		st.Mailbox = &api.MailboxHeld{Members: s.Members, Waiting: s.Waiting, Bytes: s.Bytes, Prekeys: s.Prekeys}
		pf := srv.ParkedFiles()
		st.Mailbox.Files, st.Mailbox.FileBytes, st.Mailbox.PartialFiles = pf.Files, pf.Bytes, pf.Partial
	}
}
