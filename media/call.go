package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

// State is where a call is in its life.
type State string

// Call states, in order. Every call ends in StateEnded with a Reason.
const (
	// StateRinging: created, offer and answer not yet exchanged.
	StateRinging State = "ringing"
	// StateConnecting: offer and answer exchanged, ICE and DTLS under way.
	StateConnecting State = "connecting"
	// StateActive: a media path is up.
	StateActive State = "active"
	// StateEnded: over; Call.Reason says why.
	StateEnded State = "ended"
)

// Reason says why a call ended.
type Reason string

// End reasons. The node passes the first seven to Hangup as its signalling
// dictates; the engine sets the others itself.
const (
	ReasonHangup       Reason = "hangup"        // the local user hung up
	ReasonRemoteHangup Reason = "remote-hangup" // the remote hung up (signalled, or its DTLS close arrived)
	ReasonDeclined     Reason = "declined"      // the callee declined
	ReasonBusy         Reason = "busy"          // the callee was in another call
	ReasonMissed       Reason = "missed"        // nobody answered in time
	ReasonCancelled    Reason = "cancelled"     // the caller gave up before an answer
	ReasonUnavailable  Reason = "unavailable"   // the callee's policy refused the call
	ReasonFailed       Reason = "failed"        // DTLS or another local failure
	ReasonICEFailed    Reason = "ice-failed"    // no candidate pair worked, or the path died
	ReasonTimeout      Reason = "timeout"       // no media path within the connect timeout
)

// Path is the kind of network path a call's media takes.
type Path string

// Paths. The empty Path means no path has been selected yet.
const (
	PathDirect Path = "direct" // host, server-reflexive or peer-reflexive on both ends
	PathRelay  Path = "relay"  // through a TURN relay on at least one end
)

// StateChange is one transition, delivered in order on Call.StateChanges.
type StateChange struct {
	State  State
	Reason Reason // set when State is StateEnded
	At     time.Time
}

// CallConfig configures one call.
type CallConfig struct {
	// ID names the call in logs and in the node's signalling; 1 to 128
	// bytes. Required.
	ID string
	// Outgoing is true for the caller, who calls Offer and SetAnswer; the
	// callee calls Answer.
	Outgoing bool
	// RelayOnly restricts this call to relay candidates, so the remote
	// never learns a local or public address. Engine's Config.RelayOnly
	// forces it on for every call. Needs a TURN server.
	RelayOnly bool
	// ICEServers replaces the engine's servers for this call, e.g. with
	// short-lived TURN credentials. nil means the engine's.
	ICEServers []ICEServer
	// Source is the media to send. nil sends nothing (receive only).
	Source Source
	// Sink receives the remote media. nil discards it.
	Sink Sink
}

// Errors returned by Call methods for a call in the wrong state.
var (
	ErrEnded     = errors.New("media: call has ended")
	ErrWrongRole = errors.New("media: wrong call direction for this step")
	ErrSignal    = errors.New("media: signalling step out of order")
	ErrTooMany   = errors.New("media: too many remote candidates")
)

// Call is one voice/video call: one peer connection driven by the node
// with signalling messages it carries inside the E2E session. All methods
// are safe for concurrent use.
//
// Its goroutines end once StateEnded has been read from StateChanges, or
// when Close is called; call Close when done with a call.
type Call struct {
	e        *Engine
	id       string
	outgoing bool
	pc       *webrtc.PeerConnection
	log      *slog.Logger
	created  time.Time
	sink     Sink

	ctx    context.Context // media goroutines; cancelled at teardown
	cancel context.CancelFunc

	candOut  chan string
	stateOut chan StateChange
	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	torndown chan struct{} // closed once teardown is complete
	loopDone chan struct{}
	active   chan struct{} // closed when the call becomes active

	mediaWG sync.WaitGroup

	remoteVideoSSRC atomic.Uint32 // for keyframe requests; 0 until the remote's video arrives

	mu              sync.Mutex
	state           State
	reason          Reason
	localClosing    bool // we are closing pc ourselves
	mediaClosed     bool // no media goroutine may start
	offered         bool
	remoteSet       bool
	pending         []webrtc.ICECandidateInit
	remoteCands     int
	candQ           []string
	candDone        bool
	stateQ          []StateChange
	connectingSince time.Time
	counters        counters
	recvKinds       map[Kind]bool
	local           []localTrack
	final           *Stats
}

type localTrack struct {
	src   Track
	track *webrtc.TrackLocalStaticRTP
}

// outboundMTU caps the RTP packets the call sends, well inside a UDP
// datagram through a TURN relay.
const outboundMTU = 1200

// packetizer turns a Track's samples into RTP packets; the track rewrites
// SSRC and payload type per peer connection.
type packetizer struct {
	p         rtp.Packetizer
	clockRate float64
	remainder float64
}

func newPacketizer(k Kind) *packetizer {
	if k == KindVideo {
		return &packetizer{
			p:         rtp.NewPacketizer(outboundMTU, 0, 0, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewRandomSequencer(), vp8ClockRate),
			clockRate: vp8ClockRate,
		}
	}
	return &packetizer{
		p:         rtp.NewPacketizer(outboundMTU, 0, 0, &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), opusClockRate),
		clockRate: opusClockRate,
	}
}

func (p *packetizer) packetize(s Sample) []*rtp.Packet {
	ticks := s.Duration.Seconds()*p.clockRate + p.remainder
	whole := uint32(ticks)
	p.remainder = ticks - float64(whole)
	return p.p.Packetize(s.Data, whole)
}

func codecFor(k Kind) webrtc.RTPCodecCapability {
	if k == KindVideo {
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: vp8ClockRate}
	}
	return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: opusClockRate, Channels: opusChannels}
}

// NewCall creates a call in StateRinging. For an outgoing call it prepares
// one audio and one video section (sending what the Source has, receiving
// both). It fails before anything touches the network if the Source can't
// be read, the ID is bad, or a relay-only call has no TURN server.
func (e *Engine) NewCall(cfg CallConfig) (*Call, error) {
	if len(cfg.ID) == 0 || len(cfg.ID) > 128 {
		return nil, fmt.Errorf("media: call ID of %d bytes, want 1 to 128", len(cfg.ID))
	}
	servers := e.servers
	if cfg.ICEServers != nil {
		var err error
		if servers, err = toPionServers(cfg.ICEServers); err != nil {
			return nil, fmt.Errorf("media: call %s: %w", cfg.ID, err)
		}
		e.turnTCP.register(cfg.ICEServers)
	}
	policy := webrtc.ICETransportPolicyAll
	if cfg.RelayOnly || e.cfg.RelayOnly {
		policy = webrtc.ICETransportPolicyRelay
		if !hasTURN(servers) {
			return nil, fmt.Errorf("media: call %s: relay-only needs a TURN server", cfg.ID)
		}
	}
	var tracks []Track
	if cfg.Source != nil {
		var err error
		if tracks, err = cfg.Source.Tracks(); err != nil {
			return nil, fmt.Errorf("media: call %s: source: %w", cfg.ID, err)
		}
	}
	local := make([]localTrack, 0, len(tracks))
	seen := map[Kind]bool{}
	for _, t := range tracks {
		k := t.Kind()
		if (k != KindAudio && k != KindVideo) || seen[k] {
			return nil, fmt.Errorf("media: call %s: source has a second or unknown %q track", cfg.ID, k)
		}
		seen[k] = true
		lt, err := webrtc.NewTrackLocalStaticRTP(codecFor(k), string(k), "callsign")
		if err != nil {
			return nil, fmt.Errorf("media: call %s: %w", cfg.ID, err)
		}
		local = append(local, localTrack{src: t, track: lt})
	}

	pc, err := e.api.NewPeerConnection(webrtc.Configuration{
		ICEServers:         servers,
		ICETransportPolicy: policy,
		BundlePolicy:       webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy:      webrtc.RTCPMuxPolicyRequire,
	})
	if err != nil {
		return nil, fmt.Errorf("media: call %s: peer connection: %w", cfg.ID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Call{
		e: e, id: cfg.ID, outgoing: cfg.Outgoing, pc: pc, created: time.Now(), sink: cfg.Sink,
		log:    e.log.With("call", cfg.ID),
		ctx:    ctx,
		cancel: cancel,

		candOut:  make(chan string),
		stateOut: make(chan StateChange),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		torndown: make(chan struct{}),
		loopDone: make(chan struct{}),
		active:   make(chan struct{}),

		state:     StateRinging,
		recvKinds: map[Kind]bool{},
		local:     local,
	}
	c.stateQ = append(c.stateQ, StateChange{State: StateRinging, At: c.created})

	fail := func(err error) (*Call, error) {
		cancel()
		_ = pc.Close()
		return nil, fmt.Errorf("media: call %s: %w", cfg.ID, err)
	}
	if cfg.Outgoing {
		for _, k := range []Kind{KindAudio, KindVideo} {
			var lt *localTrack
			for i := range local {
				if local[i].src.Kind() == k {
					lt = &local[i]
				}
			}
			if lt != nil {
				if _, err := pc.AddTransceiverFromTrack(lt.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
					return fail(err)
				}
				continue
			}
			if _, err := pc.AddTransceiverFromKind(rtpKind(k), webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				return fail(err)
			}
		}
	}

	pc.OnICECandidate(c.onCandidate)
	pc.OnICEConnectionStateChange(c.onICEState)
	pc.OnConnectionStateChange(c.onPCState)
	pc.OnTrack(c.onTrack)

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return fail(ErrClosed)
	}
	e.calls[c] = struct{}{}
	e.mu.Unlock()

	if ks, ok := cfg.Sink.(keyframeSink); ok {
		ks.bindCall(c.RequestKeyframe)
	}
	if cfg.Outgoing {
		c.startSenders()
	}
	go c.run()
	c.log.Debug("call created", "outgoing", cfg.Outgoing, "relay_only", policy == webrtc.ICETransportPolicyRelay, "tracks", len(local))
	return c, nil
}

func hasTURN(servers []webrtc.ICEServer) bool {
	for _, s := range servers {
		for _, u := range s.URLs {
			if len(u) >= 5 && (u[:5] == "turn:" || (len(u) >= 6 && u[:6] == "turns:")) {
				return true
			}
		}
	}
	return false
}

func rtpKind(k Kind) webrtc.RTPCodecType {
	if k == KindVideo {
		return webrtc.RTPCodecTypeVideo
	}
	return webrtc.RTPCodecTypeAudio
}

// ID returns the call's ID.
func (c *Call) ID() string { return c.id }

// Outgoing reports whether this end placed the call.
func (c *Call) Outgoing() bool { return c.outgoing }

// State returns the call's current state.
func (c *Call) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Reason returns why the call ended, or "" while it has not.
func (c *Call) Reason() Reason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// StateChanges delivers every state change in order, starting with
// StateRinging. StateEnded is delivered once the call's media is torn down
// and its Sink closed (recordings are complete); the channel is then
// closed.
func (c *Call) StateChanges() <-chan StateChange { return c.stateOut }

// Candidates delivers the local ICE candidates as they are gathered, each
// as RTCIceCandidateInit JSON for the node to send to the remote's
// AddRemoteCandidate. It is closed when gathering completes or the call
// ends. Gathering starts with Offer (caller) or Answer (callee).
func (c *Call) Candidates() <-chan string { return c.candOut }

// Offer creates the caller's offer. The offer carries no candidates: they
// follow on Candidates.
func (c *Call) Offer(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if !c.outgoing {
		return "", fmt.Errorf("offer: %w", ErrWrongRole)
	}
	c.mu.Lock()
	switch {
	case c.state == StateEnded:
		c.mu.Unlock()
		return "", fmt.Errorf("offer: %w", ErrEnded)
	case c.offered:
		c.mu.Unlock()
		return "", fmt.Errorf("offer: already made: %w", ErrSignal)
	}
	c.offered = true
	c.mu.Unlock()
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("media: call %s: create offer: %w", c.id, err)
	}
	if err := c.pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("media: call %s: set offer: %w", c.id, err)
	}
	return offer.SDP, nil
}

// SetAnswer applies the callee's answer, checked by ValidateSDP first, and
// moves the call to StateConnecting.
func (c *Call) SetAnswer(answer string) error {
	if !c.outgoing {
		return fmt.Errorf("set answer: %w", ErrWrongRole)
	}
	c.mu.Lock()
	switch {
	case c.state == StateEnded:
		c.mu.Unlock()
		return fmt.Errorf("set answer: %w", ErrEnded)
	case !c.offered || c.remoteSet:
		c.mu.Unlock()
		return fmt.Errorf("set answer: %w", ErrSignal)
	}
	c.mu.Unlock()
	c.e.parseSeen.inc()
	if err := ValidateSDP(answer); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("media: call %s: set answer: %w", c.id, err)
	}
	c.remoteApplied()
	return nil
}

// Answer accepts the caller's offer, checked by ValidateSDP first, and
// returns the answer; the call moves to StateConnecting. The node calls
// it only once its call policy has admitted the caller and the user has
// accepted.
func (c *Call) Answer(ctx context.Context, offer string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if c.outgoing {
		return "", fmt.Errorf("answer: %w", ErrWrongRole)
	}
	c.mu.Lock()
	switch {
	case c.state == StateEnded:
		c.mu.Unlock()
		return "", fmt.Errorf("answer: %w", ErrEnded)
	case c.offered:
		c.mu.Unlock()
		return "", fmt.Errorf("answer: already answered: %w", ErrSignal)
	}
	c.offered = true
	c.mu.Unlock()
	c.e.parseSeen.inc()
	if err := ValidateSDP(offer); err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("media: call %s: set offer: %w", c.id, err)
	}
	offered := map[webrtc.RTPCodecType]bool{}
	for _, tr := range c.pc.GetTransceivers() {
		offered[tr.Kind()] = true
	}
	for _, lt := range c.local {
		if !offered[rtpKind(lt.src.Kind())] {
			continue // the caller offered no section for it: nothing to send on
		}
		if _, err := c.pc.AddTrack(lt.track); err != nil {
			return "", fmt.Errorf("media: call %s: add %s track: %w", c.id, lt.src.Kind(), err)
		}
	}
	answer, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("media: call %s: create answer: %w", c.id, err)
	}
	if err := c.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("media: call %s: set answer: %w", c.id, err)
	}
	c.startSenders()
	c.remoteApplied()
	return answer.SDP, nil
}

// remoteApplied flushes the candidates that arrived before the remote
// description and moves the call to StateConnecting.
func (c *Call) remoteApplied() {
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.remoteSet = true
	if c.state == StateRinging {
		c.setStateLocked(StateConnecting)
		c.connectingSince = time.Now()
	}
	c.mu.Unlock()
	for _, ci := range pending {
		if err := c.pc.AddICECandidate(ci); err != nil {
			c.log.Debug("remote candidate refused by ICE", "err", err)
		}
	}
	c.kick()
}

// AddRemoteCandidate adds one candidate trickled by the remote, checked by
// ValidateCandidate first. Candidates that arrive before the offer or
// answer are held until it is applied. At most 64 per call.
func (c *Call) AddRemoteCandidate(candidate string) error {
	cj, err := parseCandidate(candidate)
	if err != nil {
		return err
	}
	ci := webrtc.ICECandidateInit{
		Candidate: cj.Candidate, SDPMid: cj.SDPMid,
		SDPMLineIndex: cj.SDPMLineIndex, UsernameFragment: cj.UsernameFragment,
	}
	c.mu.Lock()
	if c.state == StateEnded {
		c.mu.Unlock()
		return fmt.Errorf("add candidate: %w", ErrEnded)
	}
	if c.remoteCands >= maxRemoteCandidates {
		c.mu.Unlock()
		return fmt.Errorf("add candidate: %w", ErrTooMany)
	}
	c.remoteCands++
	if !c.remoteSet {
		c.pending = append(c.pending, ci)
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	if err := c.pc.AddICECandidate(ci); err != nil {
		return fmt.Errorf("media: call %s: add candidate: %w", c.id, err)
	}
	return nil
}

// Hangup ends the call with reason (ReasonHangup if empty) and returns once
// its media is torn down and its Sink closed. The first reason wins: on a
// call that has already ended it only waits.
func (c *Call) Hangup(reason Reason) {
	if reason == "" {
		reason = ReasonHangup
	}
	c.end(reason)
	<-c.torndown
}

// Close hangs up (ReasonHangup) if the call is still going, then waits for
// all its goroutines. State changes not yet read are dropped. Idempotent.
func (c *Call) Close() error {
	c.Hangup(ReasonHangup)
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.loopDone
	return nil
}

// end records the end of the call; the loop tears it down.
func (c *Call) end(reason Reason) {
	c.mu.Lock()
	c.endLocked(reason)
	c.mu.Unlock()
	c.kick()
}

func (c *Call) endLocked(reason Reason) {
	if c.state == StateEnded {
		return
	}
	c.state = StateEnded
	c.reason = reason
	c.log.Debug("call ending", "reason", reason)
}

func (c *Call) setStateLocked(s State) {
	c.state = s
	c.stateQ = append(c.stateQ, StateChange{State: s, At: time.Now()})
}

func (c *Call) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// pion callbacks: they only record what happened and wake the loop.

func (c *Call) onCandidate(cand *webrtc.ICECandidate) {
	c.mu.Lock()
	defer c.kick()
	defer c.mu.Unlock()
	if c.candDone {
		return
	}
	if cand == nil {
		c.candDone = true
		return
	}
	b, err := json.Marshal(cand.ToJSON())
	if err != nil {
		return
	}
	c.candQ = append(c.candQ, string(b))
}

func (c *Call) onICEState(s webrtc.ICEConnectionState) {
	if s != webrtc.ICEConnectionStateFailed {
		return
	}
	c.end(ReasonICEFailed)
}

func (c *Call) onPCState(s webrtc.PeerConnectionState) {
	// pion reports an ICE failure twice, as ICE and as connection state,
	// from different goroutines: name it the same either way.
	iceFailed := s == webrtc.PeerConnectionStateFailed && c.pc.ICEConnectionState() == webrtc.ICEConnectionStateFailed
	c.mu.Lock()
	switch s {
	case webrtc.PeerConnectionStateConnected:
		if c.state == StateRinging {
			// The callee's answer is applied and connected before
			// Answer has returned.
			c.setStateLocked(StateConnecting)
		}
		if c.state == StateConnecting {
			c.setStateLocked(StateActive)
			close(c.active)
		}
	case webrtc.PeerConnectionStateFailed:
		if iceFailed {
			c.endLocked(ReasonICEFailed)
		} else {
			c.endLocked(ReasonFailed)
		}
	case webrtc.PeerConnectionStateClosed:
		if !c.localClosing {
			// pion closes the connection when the remote's DTLS
			// close_notify arrives: the remote hung up.
			c.endLocked(ReasonRemoteHangup)
		}
	}
	c.mu.Unlock()
	c.kick()
}

func (c *Call) onTrack(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	kind := KindAudio
	if remote.Kind() == webrtc.RTPCodecTypeVideo {
		kind = KindVideo
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mediaClosed || c.recvKinds[kind] {
		return
	}
	c.recvKinds[kind] = true
	if kind == KindVideo {
		c.remoteVideoSSRC.Store(uint32(remote.SSRC()))
	}
	c.mediaWG.Add(1)
	go func() {
		defer c.mediaWG.Done()
		c.receive(kind, remote)
	}()
}

// receive reads one remote track until the connection closes. It reuses
// one buffer and one packet: a Sink copies what it keeps.
func (c *Call) receive(kind Kind, remote *webrtc.TrackRemote) {
	sinkOK := c.sink != nil
	if _, ok := c.sink.(keyframeSink); ok && kind == KindVideo {
		// A sink that joins mid-stream (a tab already connected) decodes
		// from a key frame: ask for one as the remote's video starts.
		c.RequestKeyframe()
	}
	var seq seqTracker
	buf := make([]byte, maxForwardPacket)
	var p rtp.Packet
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		if err := p.Unmarshal(buf[:n]); err != nil {
			continue
		}
		c.counters.received(len(p.Payload), seq.expect(p.SequenceNumber))
		if sinkOK {
			if err := c.sink.WriteRTP(kind, &p); err != nil {
				c.log.Warn("sink refused media; dropping the rest", "kind", kind, "err", err)
				sinkOK = false
			}
		}
	}
}

// startSenders starts one goroutine per local track, each pacing its
// Track into pion once the call is active, and one per sender reading
// RTCP (pion's interceptors need it read).
func (c *Call) startSenders() {
	senders := map[*webrtc.TrackLocalStaticRTP]*webrtc.RTPSender{}
	for _, s := range c.pc.GetSenders() {
		if t, ok := s.Track().(*webrtc.TrackLocalStaticRTP); ok {
			senders[t] = s
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mediaClosed {
		return
	}
	for _, lt := range c.local {
		s := senders[lt.track]
		if s == nil {
			continue // not negotiated
		}
		c.mediaWG.Add(2)
		go func() {
			defer c.mediaWG.Done()
			if ft, ok := lt.src.(forwardedTrack); ok {
				c.forward(lt, ft)
				return
			}
			c.send(lt)
		}()
		rt, _ := lt.src.(rtcpTrack)
		go func() {
			defer c.mediaWG.Done()
			for {
				pkts, _, err := s.ReadRTCP()
				if err != nil {
					return
				}
				c.noteRTCP(pkts)
				if rt != nil {
					rt.onRTCP(pkts)
				}
			}
		}()
	}
}

func (c *Call) send(lt localTrack) {
	select {
	case <-c.active:
	case <-c.ctx.Done():
		return
	}
	pz := newPacketizer(lt.src.Kind())
	for {
		s, err := lt.src.ReadSample(c.ctx)
		if err != nil {
			switch {
			case c.ctx.Err() != nil:
			case errors.Is(err, io.EOF):
				// A live stream ended; the call goes on without it.
				c.log.Info("media source ended", "kind", lt.src.Kind())
			default:
				c.log.Warn("media source stopped", "kind", lt.src.Kind(), "err", err)
			}
			return
		}
		for _, p := range pz.packetize(s) {
			if err := lt.track.WriteRTP(p); err != nil {
				if c.ctx.Err() != nil {
					return
				}
				c.log.Debug("write rtp", "kind", lt.src.Kind(), "err", err)
				continue
			}
			c.counters.sent(len(p.Payload))
		}
	}
}

// forwardedTrack is a Track whose media arrives as RTP from elsewhere (a
// Bridge's browser tab): once the call is active, the call forwards its
// packets as they come instead of pacing and packetizing samples.
type forwardedTrack interface {
	Track
	// attach makes w receive the track's packets, each on the track's own
	// goroutine and not retained after w returns; nil stops them.
	attach(w func(*rtp.Packet))
}

// rtcpTrack is a Track that wants the remote's RTCP about what the call
// sends from it: keyframe requests and receiver reports.
type rtcpTrack interface {
	onRTCP(pkts []rtcp.Packet)
}

// keyframeSink is a Sink that asks the call's remote for key frames (a
// Bridge, for its tab). NewCall binds it to Call.RequestKeyframe.
type keyframeSink interface {
	bindCall(requestKeyframe func())
}

// forward attaches a forwarded track to the call's outgoing track while
// the call is active.
func (c *Call) forward(lt localTrack, ft forwardedTrack) {
	select {
	case <-c.active:
	case <-c.ctx.Done():
		return
	}
	ft.attach(func(p *rtp.Packet) {
		if err := lt.track.WriteRTP(p); err != nil {
			return
		}
		c.counters.sent(len(p.Payload))
	})
	<-c.ctx.Done()
	ft.attach(nil)
}

// RequestKeyframe asks the remote for a video key frame (an RTCP picture
// loss indication), for a sink that has to start decoding mid-stream. It
// does nothing before the remote's video has arrived.
func (c *Call) RequestKeyframe() {
	ssrc := c.remoteVideoSSRC.Load()
	if ssrc == 0 || c.ctx.Err() != nil {
		return
	}
	if err := c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		c.log.Debug("keyframe request", "err", err)
	}
}

// run is the call's own goroutine: it delivers events, enforces the
// connect timeout and tears the call down when it ends.
func (c *Call) run() {
	defer close(c.loopDone)
	defer c.e.forget(c)
	candOpen := true
	tornDown := false
	var timer *time.Timer
	var timeout <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c.mu.Lock()
		needTeardown := c.state == StateEnded && !tornDown
		if c.state == StateConnecting && timer == nil {
			timer = time.NewTimer(time.Until(c.connectingSince.Add(c.e.cfg.ConnectTimeout)))
			timeout = timer.C
		}
		var candCh chan<- string
		var cand string
		if len(c.candQ) > 0 {
			candCh, cand = c.candOut, c.candQ[0]
		}
		closeCand := candOpen && len(c.candQ) == 0 && (c.candDone || tornDown)
		var stCh chan<- StateChange
		var st StateChange
		if len(c.stateQ) > 0 {
			stCh, st = c.stateOut, c.stateQ[0]
		}
		finished := tornDown && len(c.stateQ) == 0
		c.mu.Unlock()

		switch {
		case needTeardown:
			c.teardown()
			tornDown = true
			continue
		case closeCand:
			close(c.candOut)
			candOpen = false
			continue
		case finished:
			if candOpen {
				close(c.candOut)
			}
			close(c.stateOut)
			return
		}
		select {
		case <-c.wake:
		case <-timeout:
			timeout = nil
			c.mu.Lock()
			if c.state == StateConnecting {
				c.endLocked(ReasonTimeout)
			}
			c.mu.Unlock()
		case candCh <- cand:
			c.mu.Lock()
			c.candQ = c.candQ[1:]
			c.mu.Unlock()
		case stCh <- st:
			c.mu.Lock()
			c.stateQ = c.stateQ[1:]
			c.mu.Unlock()
		case <-c.stop:
			// Close: only reachable after teardown (Close hangs up first).
			if candOpen {
				close(c.candOut)
			}
			close(c.stateOut)
			return
		}
	}
}

// teardown stops the media, closes the peer connection and the sink, and
// queues StateEnded. Runs once, on the loop goroutine.
func (c *Call) teardown() {
	c.cancel()
	st := c.collectStats()
	c.mu.Lock()
	c.localClosing = true
	c.mu.Unlock()
	if err := c.pc.Close(); err != nil {
		c.log.Debug("close peer connection", "err", err)
	}
	c.mu.Lock()
	c.mediaClosed = true
	c.mu.Unlock()
	c.mediaWG.Wait()
	if c.sink != nil {
		if err := c.sink.Close(); err != nil {
			c.log.Warn("close sink", "err", err)
		}
	}
	c.mu.Lock()
	c.final = &st
	c.stateQ = append(c.stateQ, StateChange{State: StateEnded, Reason: c.reason, At: time.Now()})
	c.mu.Unlock()
	c.log.Debug("call ended", "reason", c.reason, "path", st.Path, "sent", st.PacketsSent, "received", st.PacketsReceived)
	close(c.torndown)
}
