package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/contacts"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/store"
	"github.com/callsign/callsign/turn"
)

// Call policies (who may ring this node; contacts.Book.CallFrom applies
// them).
const (
	CallsEveryone  = contacts.CallsEveryone
	CallsContacts  = contacts.CallsContacts // the default
	CallsFollowing = contacts.CallsFollowing
	CallsVerified  = contacts.CallsVerified
	CallsNobody    = contacts.CallsNobody
)

// startCalls starts the media engine, the TURN relay on public nodes, and
// the call service. Signals travel through the msg service (inside the E2E
// session); the msg service was built first, so it reaches the call
// service through n.calls, set here (a late-bound adapter breaking the
// msg ↔ call cycle).
func (n *Node) startCalls(ctx context.Context) error {
	loopback := n.cfg.BehindNAT || n.cfg.NewHost != nil || isLoopbackListen(n.listenAddrs())
	engCfg := media.Config{Logger: n.log.With("component", "media")}
	if loopback {
		// A node kept on loopback (tests, the walkthrough) offers only
		// loopback host candidates.
		engCfg.IPs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	eng, err := media.NewEngine(engCfg)
	if err != nil {
		return fmt.Errorf("media engine: %w", err)
	}
	n.closers = append(n.closers, eng.Close)

	var ts *turn.Server
	if n.cfg.Public {
		if ts, err = n.startTURN(ctx, loopback); err != nil {
			return err
		}
	}
	if n.callCfg, err = loadCallSettings(n.db); err != nil {
		return err
	}
	n.callCfg.changed, n.callCfg.committed = n.callSettingsChanged, n.kickSync
	// The relay serves members only (the call package doc has the rule).
	var members call.Members
	if ts != nil {
		members = newMembers(n.host.ID(), n.dht.ResolveIdentity)
	}
	svc, err := call.New(call.Config{
		Host:             n.host,
		Self:             n.Account(),
		Engine:           eng,
		Signal:           signaler{n},
		Policy:           callPolicy{n},
		Log:              callLog{n},
		TURN:             ts,
		TURNMembers:      members,
		Relays:           n.relayPeers,
		AlwaysRelay:      func() bool { return n.callCfg.Get().AlwaysRelay },
		AutoAnswer:       func() (bool, string) { s := n.callCfg.Get(); return s.AutoAnswer, s.RecordDir },
		AutoAnswerSource: media.Sources(media.Tone(), media.Pattern()),
		RingTimeout:      n.cfg.Network.RingTimeout,
		OnEvent:          n.onCallEvent,
		Logger:           n.log.With("component", "call"),
	})
	if err != nil {
		return fmt.Errorf("calls: %w", err)
	}
	if err := svc.Start(ctx); err != nil {
		return fmt.Errorf("calls: %w", err)
	}
	n.calls.Store(svc)
	n.closers = append(n.closers, svc.Close)
	n.media = eng
	return nil
}

// startTURN runs the TURN relay of a public node: on loopback for a node
// kept there, else on TURNListen (default 0.0.0.0:3478) announcing the
// first IPv4 address of --announce, or else of the host's addresses. Its
// credentials go to the node's members only (see members).
func (n *Node) startTURN(ctx context.Context, loopback bool) (*turn.Server, error) {
	cfg := turn.Config{ListenUDP: n.cfg.TURNListen, Logger: n.log.With("component", "turn")}
	cfg.RelayPortMin, cfg.RelayPortMax, _ = parsePortRange(n.cfg.TURNPorts) // checked by New
	switch {
	case loopback && cfg.ListenUDP == "":
		// Everyone is on this machine: relay to loopback peers too (a
		// public relay refuses them).
		cfg.ListenUDP, cfg.RelayAddress, cfg.AllowLoopbackPeers = "127.0.0.1:0", net.IPv4(127, 0, 0, 1), true
	case n.cfg.TURNRelayIP != "":
		cfg.RelayAddress = net.ParseIP(n.cfg.TURNRelayIP)
	default:
		cfg.RelayAddress = n.publicIPv4()
		if cfg.RelayAddress == nil {
			n.log.Warn("no public IPv4 address to announce for TURN; calls through this node's relay are off", "hint", "pass --turn-relay-ip or --announce /ip4/<public ip>/tcp/4141")
			return nil, nil
		}
	}
	tlsDefault, err := n.turnStreams(&cfg, loopback)
	if err != nil {
		return nil, err
	}
	ts, err := n.newTURN(ctx, cfg, tlsDefault)
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, ts.Close)
	n.log.Info("TURN relay up", "addr", ts.Addr(), "urls", ts.URLs())
	return ts, nil
}

// publicIPv4 is the address a public node's relay announces.
func (n *Node) publicIPv4() net.IP {
	var addrs []ma.Multiaddr
	for _, a := range n.cfg.Announce {
		if m, err := ma.NewMultiaddr(a); err == nil {
			addrs = append(addrs, m)
		}
	}
	addrs = append(addrs, n.host.Addrs()...)
	for _, a := range addrs {
		if s, err := a.ValueForProtocol(ma.P_IP4); err == nil {
			if ip := net.ParseIP(s); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
				return ip
			}
		}
	}
	return nil
}

// relayPeers are the public nodes asked for TURN credentials: the
// bootstrap peers.
func (n *Node) relayPeers() []peer.ID {
	boot, err := n.bootstrapPeers()
	if err != nil {
		return nil
	}
	out := make([]peer.ID, 0, len(boot))
	for _, ai := range boot {
		out = append(out, ai.ID)
	}
	return out
}

// signaler carries call signals inside the E2E session.
type signaler struct{ n *Node }

func (s signaler) SendSignal(ctx context.Context, to identity.AccountID, dev identity.DeviceID, payload []byte) error {
	return s.n.msg.SendSignalTo(ctx, to, dev, payload)
}

// onSignal hands a decrypted signal to the call service, or an addresses
// signal to the privacy rule (node/privacy.go).
func (n *Node) onSignal(from identity.AccountID, dev identity.DeviceID, payload []byte) {
	if n.priv.handleSignal(from, payload) || n.handleTyping(from, payload) {
		return
	}
	n.priv.contactSpoke(from)
	if svc := n.calls.Load(); svc != nil {
		svc.HandleSignal(from, dev, payload)
	}
}

// callSettings holds the user's call settings (backend.CallSettings),
// which the call policy and the call service's hooks read. They are kept
// in the store as store.CallSettings.
type callSettings struct {
	db *store.DB
	// changed runs in the transaction that stores settings a person
	// changed, committed after it (node/sync.go); nil: nothing.
	changed   func(tx *store.Tx, old, s store.CallSettings) error
	committed func()

	mu  sync.Mutex // guards cur and serialises Update
	cur api.CallSettings
}

func loadCallSettings(db *store.DB) (*callSettings, error) {
	s := api.CallSettings{Policy: CallsContacts}
	switch st, err := db.CallSettings(); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("call settings: %w", err)
	default:
		s = fromStoreCallSettings(st)
	}
	return &callSettings{db: db, cur: s}, nil
}

// Get returns the current call settings.
func (cs *callSettings) Get() api.CallSettings {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.cur
}

// Update changes the settings with f and keeps them; on error nothing
// changes. f gets a copy whose Rules it must copy before changing them.
func (cs *callSettings) Update(f func(*api.CallSettings)) (api.CallSettings, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	s := cs.cur
	f(&s)
	old, st := toStoreCallSettings(cs.cur), toStoreCallSettings(s)
	err := cs.db.Update(func(tx *store.Tx) error {
		if err := tx.PutCallSettings(st); err != nil {
			return err
		}
		if cs.changed == nil {
			return nil
		}
		return cs.changed(tx, old, st)
	})
	if err != nil {
		return api.CallSettings{}, err
	}
	cs.cur = s
	if cs.committed != nil {
		cs.committed()
	}
	return s, nil
}

func fromStoreCallSettings(s store.CallSettings) api.CallSettings {
	return api.CallSettings{Policy: s.Policy, AlwaysRelay: s.AlwaysRelay, AutoAnswer: s.AutoAnswer, RecordDir: s.RecordDir, Rules: s.Rules}
}

func toStoreCallSettings(s api.CallSettings) store.CallSettings {
	return store.CallSettings{Policy: s.Policy, AlwaysRelay: s.AlwaysRelay, AutoAnswer: s.AutoAnswer, RecordDir: s.RecordDir, Rules: s.Rules}
}

// reload reads the settings again, after a sibling changed them.
func (cs *callSettings) reload() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	st, err := cs.db.CallSettings()
	if err != nil {
		return err
	}
	cs.cur = fromStoreCallSettings(st)
	return nil
}

// acceptSignal is the msg service's gate on the signal lane, asked before
// anything of a signal is decrypted or stored: signals are read from
// accounts in the address book (contacts, and blocked ones, whose invites
// the call service refuses and logs), from the other end of a call going
// on (a stranger this node called answers), and from anyone the call
// policy lets ring. A stranger the policy refuses has its stream reset
// with nothing stored, and its call ends as unavailable.
func (n *Node) acceptSignal(from identity.AccountID) bool {
	if _, err := n.contacts.Get(from); err == nil {
		return true
	}
	if svc := n.calls.Load(); svc != nil {
		for _, c := range svc.Calls() {
			if c.Peer() == from {
				return true
			}
		}
	}
	return callPolicy{n}.Check(from).Allow
}

// callPolicy applies the user's call settings, before the call service
// reads anything of an invite but its header: what the address book says
// about the caller under them (contacts.Book.CallFrom).
type callPolicy struct{ n *Node }

func (p callPolicy) Check(from identity.AccountID) call.Decision {
	s := p.n.callCfg.Get()
	d := p.n.contacts.CallFrom(from, contacts.CallRules{Policy: s.Policy, Rule: s.Rules[from.String()]})
	return call.Decision{Allow: d.Allow, RelayOnly: d.RelayOnly}
}

// callLog persists call log records in the store.
type callLog struct{ n *Node }

func (l callLog) PutCall(r call.Record) error {
	c := store.Call{
		ID: r.ID, Peer: r.Peer, Direction: string(r.Direction), Start: r.Start, Duration: r.Duration,
		EndReason: string(r.EndReason), Path: string(r.Path), PacketsSent: r.PacketsSent, PacketsReceived: r.PacketsReceived,
		BytesSent: r.BytesSent, BytesReceived: r.BytesReceived, Loss: r.Loss, RTT: r.RTT, Blocked: r.Blocked,
	}
	err := l.n.db.Update(func(tx *store.Tx) error {
		if err := tx.PutCall(c); err != nil {
			return err
		}
		return l.n.callMade(tx, c)
	})
	if err == nil && c.Direction == "out" {
		l.n.kickSync()
	}
	return err
}

// onCallEvent counts a call that ended and hands the event to the API's
// subscribers.
func (n *Node) onCallEvent(ev call.Event) {
	n.metrics.call(ev.Call)
	// Nil until the API is about to start: nobody can be subscribed yet.
	if b := n.backend.Load(); b != nil {
		b.CallEvent(ev)
	}
}
