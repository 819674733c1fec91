package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/store"
	"github.com/callsign/callsign/turn"
)

// Call policies (who may ring this node).
const (
	CallsEveryone  = "everyone"
	CallsContacts  = "contacts" // the default
	CallsFollowing = "following"
	CallsVerified  = "verified"
	CallsNobody    = "nobody"
)

const callSettingsKey = "calls"

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
	if err := n.loadCallSettings(); err != nil {
		return err
	}
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
		AlwaysRelay:      func() bool { return n.callSettings().AlwaysRelay },
		AutoAnswer:       func() (bool, string) { s := n.callSettings(); return s.AutoAnswer, s.RecordDir },
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
	// Before the call service closes: a tab's bridge ends with its call.
	n.closers = append(n.closers, n.callMedia.close)
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

func (s signaler) SendSignal(ctx context.Context, to identity.AccountID, payload []byte) error {
	return s.n.msg.SendSignal(ctx, to, payload)
}

// onSignal hands a decrypted signal to the call service, or an addresses
// signal to the privacy rule (node/privacy.go).
func (n *Node) onSignal(from identity.AccountID, payload []byte) {
	if n.priv.handleSignal(from, payload) {
		return
	}
	n.priv.contactSpoke(from)
	if svc := n.calls.Load(); svc != nil {
		svc.HandleSignal(from, payload)
	}
}

// callSettings returns the current call settings.
func (n *Node) callSettings() api.CallSettings {
	n.callMu.Lock()
	defer n.callMu.Unlock()
	return n.callCfg
}

func (n *Node) loadCallSettings() error {
	s := api.CallSettings{Policy: CallsContacts}
	b, ok, err := n.db.GetSetting(callSettingsKey)
	if err != nil {
		return err
	}
	if ok {
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("call settings: %w", err)
		}
	}
	n.callMu.Lock()
	n.callCfg = s
	n.callMu.Unlock()
	return nil
}

// callPolicy applies the user's call settings, before the call service
// reads anything of an invite but its header.
type callPolicy struct{ n *Node }

func (p callPolicy) Check(from identity.AccountID) call.Decision {
	s := p.n.callSettings()
	c, err := p.n.db.Contact(from.String())
	isContact := err == nil
	// Strangers never learn our address: their calls use the relay only.
	d := call.Decision{RelayOnly: !isContact}
	switch s.Rules[from.String()] {
	case "deny":
		return call.Decision{}
	case "allow":
		d.Allow = true
		return d
	}
	if isContact && (c.Blocked || c.KeyChanged) {
		return call.Decision{}
	}
	switch s.Policy {
	case CallsEveryone:
		d.Allow = true
	case CallsContacts, "":
		d.Allow = isContact
	case CallsFollowing:
		d.Allow = isContact && c.Following
	case CallsVerified:
		d.Allow = isContact && c.Verified
	}
	return d
}

// callLog persists call log records in the store.
type callLog struct{ n *Node }

func (l callLog) PutCall(r call.Record) error {
	return l.n.db.Update(func(tx *store.Tx) error {
		return tx.PutCall(store.Call{
			ID: r.ID, Peer: r.Peer, Direction: string(r.Direction), Start: r.Start, Duration: r.Duration,
			EndReason: string(r.EndReason), Path: string(r.Path), PacketsSent: r.PacketsSent, PacketsReceived: r.PacketsReceived,
			BytesSent: r.BytesSent, BytesReceived: r.BytesReceived, Loss: r.Loss, RTT: r.RTT, Blocked: r.Blocked,
		})
	})
}

func (n *Node) onCallEvent(ev call.Event) {
	typ := api.EventCallState
	if ev.Kind == call.EventIncoming {
		typ = api.EventIncomingCall
	}
	c := n.infoToAPI(ev.Call, ev.Stats)
	n.metrics.call(c)
	n.events.publish(api.NewEvent(typ, c))
}

// recentCalls keeps ended calls of this run for a while, so a client that
// polls a call sees its final figures.
type recentCalls struct {
	mu    sync.Mutex
	calls map[string]*call.Call
	order []string
}

func (r *recentCalls) add(c *call.Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]*call.Call{}
	}
	if _, ok := r.calls[c.ID()]; ok {
		return
	}
	r.calls[c.ID()] = c
	r.order = append(r.order, c.ID())
	if len(r.order) > 64 {
		delete(r.calls, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *recentCalls) get(id string) *call.Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

func (n *Node) callService() (*call.Service, error) {
	svc := n.calls.Load()
	if svc == nil {
		return nil, api.Errorf(api.CodeUnavailable, "", "calls are not available on this node")
	}
	return svc, nil
}

// source builds the media to send from the CLI's words: "tone",
// "pattern", a file (looped) or a FIFO (a live stream, played once). The
// returned release closes what was opened; call it when the call that
// plays the source has ended, or at once when it never started.
func source(audio, video string) (media.Source, func(), error) {
	var srcs []media.Source
	var opened []media.Input
	release := func() {
		for _, in := range opened {
			_ = in.Close()
		}
	}
	for _, spec := range []struct {
		v, synth string
		kind     media.Kind
	}{{audio, "tone", media.KindAudio}, {video, "pattern", media.KindVideo}} {
		switch spec.v {
		case "":
		case spec.synth:
			if spec.synth == "tone" {
				srcs = append(srcs, media.Tone())
			} else {
				srcs = append(srcs, media.Pattern())
			}
		default:
			in, err := media.OpenSource(spec.v)
			if err != nil {
				release()
				return nil, nil, api.Errorf(api.CodeBadRequest, "use an Ogg/Opus file or stream (one packet per page), an IVF/VP8 file or stream, or tone/pattern",
					"cannot use %s as %s: %v", spec.v, spec.kind, err)
			}
			opened = append(opened, in)
			if in.Kind() != spec.kind {
				release()
				return nil, nil, api.Errorf(api.CodeBadRequest, "pass Ogg/Opus as audio and IVF/VP8 as video",
					"%s is %s, not %s", spec.v, in.Kind(), spec.kind)
			}
			srcs = append(srcs, in)
		}
	}
	if len(srcs) == 0 {
		return nil, release, nil
	}
	return media.Sources(srcs...), release, nil
}

func checkRecordDir(dir string) error {
	if dir == "" {
		return nil
	}
	if !filepath.IsAbs(dir) {
		return api.Errorf(api.CodeBadRequest, "pass an absolute path (the CLI does this for you)", "record directory %q is not absolute", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return api.Errorf(api.CodeBadRequest, "", "cannot create record directory: %v", err)
	}
	return nil
}

// Dial implements api.Backend.
func (n *Node) Dial(ctx context.Context, req api.CallRequest) (api.Call, error) {
	svc, err := n.callService()
	if err != nil {
		return api.Call{}, err
	}
	if req.Browser && (req.Audio != "" || req.Video != "" || req.Record != "") {
		return api.Call{}, api.Errorf(api.CodeBadRequest, "", "a browser call takes its media from the tab: no audio, video or record")
	}
	if err := checkRecordDir(req.Record); err != nil {
		return api.Call{}, err
	}
	id, _, _, err := n.peerFor(ctx, req.To, true)
	if err != nil {
		return api.Call{}, err
	}
	src, release, err := source(req.Audio, req.Video)
	if err != nil {
		return api.Call{}, err
	}
	opts := call.DialOptions{Source: src, RecordDir: req.Record, RelayOnly: req.RelayOnly}
	var bridge *media.Bridge
	if req.Browser {
		if bridge, err = n.newBridge(); err != nil {
			return api.Call{}, err
		}
		opts.Source, opts.Sink = bridge, bridge
	}
	c, err := svc.Dial(ctx, id, opts)
	if err != nil {
		release()
	} else {
		n.callMedia.release(c, release)
	}
	if bridge != nil {
		if err != nil {
			_ = bridge.Close()
		} else {
			n.callMedia.watch(c, bridge, n.endBridged)
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, call.ErrInCall):
			return api.Call{}, api.Errorf(api.CodeConflict, "hang up first: callsign hangup", "already in a call")
		case errors.Is(err, call.ErrSelf):
			return api.Call{}, api.Errorf(api.CodeBadRequest, "", "that is your own account")
		}
		return api.Call{}, err
	}
	n.recent.add(c)
	return n.callToAPI(c), nil
}

func (n *Node) callToAPI(c *call.Call) api.Call {
	info, st := c.Info(), c.Stats()
	out := n.infoToAPI(info, st)
	out.RecordedAudio, out.RecordedVideo = c.Recordings()
	return out
}

// infoToAPI is a call as the API shows it, live or just ended.
func (n *Node) infoToAPI(info call.Info, st call.Stats) api.Call {
	out := api.Call{
		ID: info.ID, Peer: info.Peer.String(), Direction: string(info.Direction), State: string(info.State),
		EndReason: string(info.Reason), Path: string(st.Path), SetupMS: st.Setup.Milliseconds(),
		PacketsSent: st.PacketsSent, PacketsReceived: st.PacketsReceived, BytesSent: st.BytesSent, BytesReceived: st.BytesReceived,
		Loss: st.Loss, RTTMS: st.RTT.Milliseconds(), Start: info.Start.UTC(), DurationS: info.Duration().Seconds(),
		RelayOnly: info.RelayOnly, Browser: n.callMedia.get(info.ID) != nil,
	}
	out.PeerName = n.petname(out.Peer)
	return out
}

func storeCallToAPI(c store.Call) api.Call {
	return api.Call{ID: c.ID, Peer: c.Peer, Direction: c.Direction, State: "ended", EndReason: c.EndReason, Path: c.Path,
		PacketsSent: c.PacketsSent, PacketsReceived: c.PacketsReceived, BytesSent: c.BytesSent, BytesReceived: c.BytesReceived,
		Loss: c.Loss, RTTMS: c.RTT.Milliseconds(), Start: c.Start.UTC(), DurationS: c.Duration.Seconds(), Blocked: c.Blocked}
}

// findCall finds a live or recent call of this run.
func (n *Node) findCall(id string) (*call.Call, error) {
	svc, err := n.callService()
	if err != nil {
		return nil, err
	}
	for _, c := range svc.Calls() {
		if c.ID() == id {
			n.recent.add(c)
			return c, nil
		}
	}
	if c := n.recent.get(id); c != nil {
		return c, nil
	}
	return nil, api.Errorf(api.CodeNotFound, "`callsign calls` lists calls", "no call %q", id)
}

// CallInfo implements api.Backend.
func (n *Node) CallInfo(ctx context.Context, id string) (api.Call, error) {
	c, err := n.findCall(id)
	if err == nil {
		return n.callToAPI(c), nil
	}
	log, lerr := n.CallLog(ctx, store.MaxCalls)
	if lerr != nil {
		return api.Call{}, lerr
	}
	for _, l := range log {
		if l.ID == id {
			return l, nil
		}
	}
	return api.Call{}, err
}

// CallLog implements api.Backend: live calls, then the log, newest first.
func (n *Node) CallLog(ctx context.Context, limit int) ([]api.Call, error) {
	out := []api.Call{}
	if svc := n.calls.Load(); svc != nil {
		for _, c := range svc.Calls() {
			out = append(out, n.callToAPI(c))
		}
	}
	var logged []store.Call
	if err := n.db.View(func(tx *store.Tx) error {
		var err error
		logged, err = tx.Calls(limit)
		return err
	}); err != nil {
		return nil, err
	}
	names := n.petnames()
	for _, c := range logged {
		a := storeCallToAPI(c)
		a.PeerName = names[a.Peer]
		out = append(out, a)
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// CallAction implements api.Backend: answer, decline or hang up.
func (n *Node) CallAction(ctx context.Context, id, action string, req api.AnswerRequest) (api.Call, error) {
	svc, err := n.callService()
	if err != nil {
		return api.Call{}, err
	}
	c, err := n.findCall(id)
	if err != nil {
		return api.Call{}, err
	}
	switch action {
	case "answer":
		if req.Tab != "" {
			req.Browser = true
		}
		if req.Browser && (req.Audio != "" || req.Video != "" || req.Record != "") {
			return api.Call{}, api.Errorf(api.CodeBadRequest, "", "a browser answer takes its media from the tab: no audio, video or record")
		}
		if err := checkRecordDir(req.Record); err != nil {
			return api.Call{}, err
		}
		src, release, err := source(req.Audio, req.Video)
		if err != nil {
			return api.Call{}, err
		}
		opts := call.AnswerOptions{Source: src, RecordDir: req.Record}
		var bridge *media.Bridge
		switch {
		case req.Tab != "":
			if bridge = n.callMedia.takeRinging(id, req.Tab); bridge == nil {
				release()
				return api.Call{}, api.Errorf(api.CodeConflict, "answer again without the tab's connection",
					"the tab's connection for call %s is gone: the call was answered elsewhere, ended, or the tab closed it", id)
			}
			opts.Source, opts.Sink = bridge, bridge
		case req.Browser:
			if bridge, err = n.newBridge(); err != nil {
				release()
				return api.Call{}, err
			}
			opts.Source, opts.Sink = bridge, bridge
		}
		err = svc.Answer(id, opts)
		if err != nil {
			release()
		} else {
			n.callMedia.release(c, release)
		}
		if bridge != nil {
			if err != nil {
				_ = bridge.Close()
			} else {
				n.callMedia.watch(c, bridge, n.endBridged)
			}
		}
		if errors.Is(err, call.ErrNotRinging) {
			return api.Call{}, api.Errorf(api.CodeConflict, "", "call %s is not ringing here: it was answered elsewhere or has ended", id)
		} else if err != nil {
			return api.Call{}, err
		}
	case "decline":
		if err := svc.Decline(id); errors.Is(err, call.ErrNotRinging) {
			return api.Call{}, api.Errorf(api.CodeConflict, "hang up instead: callsign hangup", "call %s is not ringing here", id)
		} else if err != nil {
			return api.Call{}, err
		}
	case "hangup":
		if err := svc.Hangup(id); err != nil && !errors.Is(err, call.ErrUnknownCall) {
			return api.Call{}, err
		}
	default:
		return api.Call{}, api.Errorf(api.CodeNotFound, "", "no call action %q (answer, decline, hangup)", action)
	}
	return n.callToAPI(c), nil
}

// CallSettings implements api.Backend.
func (n *Node) CallSettings(ctx context.Context) (api.CallSettings, error) {
	return n.callSettings(), nil
}

// ChangeCallSettings implements api.Backend.
func (n *Node) ChangeCallSettings(ctx context.Context, ch api.CallSettingsChange) (api.CallSettings, error) {
	var ruleAccount string
	if ch.RuleName != "" {
		id, _, _, err := n.peerFor(ctx, ch.RuleName, true)
		if err != nil {
			return api.CallSettings{}, err
		}
		ruleAccount = id.String()
		if ch.Rule != "allow" && ch.Rule != "deny" && ch.Rule != "default" {
			return api.CallSettings{}, api.Errorf(api.CodeBadRequest, "", "rule must be allow, deny or default")
		}
	}
	if ch.Policy != nil {
		switch *ch.Policy {
		case CallsEveryone, CallsContacts, CallsFollowing, CallsVerified, CallsNobody:
		default:
			return api.CallSettings{}, api.Errorf(api.CodeBadRequest, "everyone, contacts, following, verified or nobody", "unknown call policy %q", *ch.Policy)
		}
	}
	if ch.RecordDir != nil {
		if err := checkRecordDir(*ch.RecordDir); err != nil {
			return api.CallSettings{}, err
		}
	}
	n.callMu.Lock()
	s := n.callCfg
	rules := map[string]string{}
	for k, v := range s.Rules {
		rules[k] = v
	}
	s.Rules = rules
	if ch.Policy != nil {
		s.Policy = *ch.Policy
	}
	if ch.AlwaysRelay != nil {
		s.AlwaysRelay = *ch.AlwaysRelay
	}
	if ch.AutoAnswer != nil {
		s.AutoAnswer = *ch.AutoAnswer
	}
	if ch.RecordDir != nil {
		s.RecordDir = *ch.RecordDir
	}
	if ruleAccount != "" {
		if ch.Rule == "default" {
			delete(s.Rules, ruleAccount)
		} else {
			s.Rules[ruleAccount] = ch.Rule
		}
	}
	b, err := json.Marshal(s)
	if err == nil {
		err = n.db.PutSetting(callSettingsKey, b)
	}
	if err == nil {
		n.callCfg = s
	}
	n.callMu.Unlock()
	if err != nil {
		return api.CallSettings{}, err
	}
	return s, nil
}
