package node

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/p2p"
)

// Your address stays yours (issue 11, item 6).
//
// A member node that reaches the world through relays (the public nodes it
// bootstraps from) keeps its own addresses to itself: it announces only
// its relay addresses (p2p.HostConfig.Direct), so identify, the addresses
// DHT servers hand out for it, and the identity record (which names only
// the relays) never show its IP. Only its relays and its contacts' devices
// may connect to it directly; anyone else reaches it through a relay, and
// hole punching runs only with contacts.
//
// Contacts learn the direct addresses inside the E2E session: when a
// message or call signal arrives from a contact, the node sends that
// contact (at most once per addrOfferEvery, or when its addresses change)
// an addresses signal, and a node that gets one from a contact dials the
// addresses, so contacts end up directly connected.
//
// A public node, a DHT server, a node without relays and a node with
// Config.DirectFromEveryone announce their addresses as before.
//
// # Addresses signal
//
// It travels through msg.SendSignal like a call signal and is told apart
// by its first field (p2p.IsAddrsSignal; the format is p2p's). A signal
// from an account that is not a contact, for a peer that is not its
// device, or malformed is dropped (logged at debug).

const (
	addrOfferEvery  = 10 * time.Minute
	addrDialTimeout = 10 * time.Second
	addrTTL         = 30 * time.Minute
	ownAddrsFresh   = 5 * time.Second // how long an encoded addresses signal is reused
	privacyQueue    = 64              // offers and dials waiting; beyond, dropped
	maxOffered      = 4096
)

// privacy holds the state of the rule above. Its fields are set before the
// host starts and read-only afterwards, except where noted.
type privacy struct {
	n      *Node
	on     bool             // this node keeps its address
	relays map[peer.ID]bool // may connect directly: the community nodes we join through
	msg    atomic.Pointer[msg.Service]

	offers chan identity.AccountID
	dials  chan peer.AddrInfo

	mu      sync.Mutex // guards offered, own and ownAt
	offered map[identity.AccountID]offered
	own     []byte    // our addresses signal, as last encoded
	ownAt   time.Time // when
}

type offered struct {
	at    time.Time
	addrs string // the addresses offered, as encoded
}

// newPrivacy decides whether the node keeps its address, given the relays
// it joins through.
func (n *Node) newPrivacy(relays []peer.AddrInfo) *privacy {
	p := &privacy{n: n, relays: map[peer.ID]bool{}, offered: map[identity.AccountID]offered{},
		offers: make(chan identity.AccountID, privacyQueue), dials: make(chan peer.AddrInfo, privacyQueue)}
	p.on = !n.cfg.Public && !n.cfg.DHTServer && !n.cfg.DirectFromEveryone && n.cfg.NewHost == nil && len(relays) > 0
	for _, r := range relays {
		p.relays[r.ID] = true
	}
	return p
}

// AllowDirect implements p2p.DirectPolicy: the node's relays and its
// contacts' devices.
func (p *privacy) AllowDirect(id peer.ID) bool {
	if p.relays[id] {
		return true
	}
	svc := p.msg.Load()
	if svc == nil {
		return false
	}
	_, ok := svc.ContactDevice(id)
	return ok
}

// AllowInbound implements p2p.InboundPolicy: while a link waits for a new
// device, which dials the direct addresses its code carries, any peer that
// knows them may connect (link.go).
func (p *privacy) AllowInbound(peer.ID) bool { return p.n.linkOpen() }

// start runs the loop that sends offers (a node that keeps its address)
// and dials the addresses contacts offer (every node), once messaging runs.
func (p *privacy) start(svc *msg.Service) {
	p.msg.Store(svc)
	p.n.wg.Go(p.loop)
}

func (p *privacy) loop() {
	ctx := p.n.ctx
	for {
		select {
		case <-ctx.Done():
			return
		case to := <-p.offers:
			p.sendOffer(ctx, to)
		case ai := <-p.dials:
			p.dial(ctx, ai)
		}
	}
}

// contactSpoke is called when a message or signal from account from was
// received: a contact is offered our direct addresses.
func (p *privacy) contactSpoke(from identity.AccountID) {
	if !p.on || (policy{p.n}).Classify(from) != msg.Deliver {
		return
	}
	own := p.encodeOwn()
	p.mu.Lock()
	o, ok := p.offered[from]
	p.mu.Unlock()
	if own == nil || ok && time.Since(o.at) < addrOfferEvery && o.addrs == string(own) {
		return
	}
	select {
	case p.offers <- from:
	default:
	}
}

// ownAddrs are this host's direct addresses, the ones it does not announce.
func (p *privacy) ownAddrs() []ma.Multiaddr {
	var all []ma.Multiaddr
	if h, ok := p.n.host.(interface{ AllAddrs() []ma.Multiaddr }); ok {
		all = h.AllAddrs()
	} else {
		all, _ = p.n.host.Network().InterfaceListenAddresses()
	}
	var out []ma.Multiaddr
	for _, a := range all {
		if p2p.OfferableAddr(a) && len(out) < p2p.MaxSignalAddrs {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b ma.Multiaddr) int { return a.Compare(b) })
	return out
}

// encodeOwn is our addresses signal (nil without addresses), encoded at
// most every ownAddrsFresh: it is checked for every message a contact
// sends.
func (p *privacy) encodeOwn() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.own != nil && time.Since(p.ownAt) < ownAddrsFresh {
		return p.own
	}
	p.own, p.ownAt = nil, time.Now()
	if addrs := p.ownAddrs(); len(addrs) > 0 {
		p.own = p2p.EncodeAddrsSignal(p.n.host.ID(), addrs)
	}
	return p.own
}

func (p *privacy) sendOffer(ctx context.Context, to identity.AccountID) {
	b := p.encodeOwn()
	if b == nil {
		return
	}
	p.mu.Lock()
	if o, ok := p.offered[to]; ok && time.Since(o.at) < addrOfferEvery && o.addrs == string(b) {
		p.mu.Unlock()
		return
	}
	if len(p.offered) >= maxOffered {
		clear(p.offered)
	}
	p.offered[to] = offered{at: time.Now(), addrs: string(b)}
	p.mu.Unlock()
	if err := p.n.msg.SendSignal(ctx, to, b); err != nil {
		p.n.log.Debug("offer addresses to a contact", "to", to, "err", err)
	}
}

// handleSignal takes an addresses signal and reports whether payload was
// one (anything else is a call signal).
func (p *privacy) handleSignal(from identity.AccountID, payload []byte) bool {
	if !p2p.IsAddrsSignal(payload) {
		return false
	}
	ai, err := p2p.DecodeAddrsSignal(payload)
	if err != nil {
		p.n.log.Debug("dropped an addresses signal", "from", from, "err", err)
		return true
	}
	svc := p.msg.Load()
	if svc == nil {
		return true
	}
	if acct, ok := svc.ContactDevice(ai.ID); !ok || acct != from {
		p.n.log.Debug("dropped an addresses signal: not a contact's device", "from", from, "peer", ai.ID)
		return true
	}
	// Our turn to tell them, so that either side can dial.
	p.contactSpoke(from)
	if p.direct(ai.ID) {
		return true
	}
	select {
	case p.dials <- ai:
	default:
	}
	return true
}

// direct reports whether we hold a direct connection to id.
func (p *privacy) direct(id peer.ID) bool {
	for _, c := range p.n.host.Network().ConnsToPeer(id) {
		if !c.Stat().Limited {
			return true
		}
	}
	return false
}

func (p *privacy) dial(ctx context.Context, ai peer.AddrInfo) {
	if p.direct(ai.ID) {
		return
	}
	p.n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, addrTTL)
	ctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "a contact's addresses"), addrDialTimeout)
	defer cancel()
	if err := p.n.host.Connect(ctx, ai); err != nil {
		p.n.log.Debug("dial a contact's direct addresses", "peer", ai.ID, "err", err)
	}
}
