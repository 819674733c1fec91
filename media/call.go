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

// Path is the kind of network path a call's media takes.
type Path string

// Paths. The empty Path means no path has been selected yet.
const (
	PathDirect Path = "direct" // host, server-reflexive or peer-reflexive on both ends
	PathRelay  Path = "relay"  // through a TURN relay on at least one end
)

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

// Errors returned by Call methods for a connection in the wrong state.
var (
	// ErrEnded: the connection has failed (a final Event) or been
	// closed; a Bridge that has ended.
	ErrEnded     = errors.New("media: connection has ended")
	ErrWrongRole = errors.New("media: wrong call direction for this step")
	ErrSignal    = errors.New("media: signalling step out of order")
	ErrTooMany   = errors.New("media: too many remote candidates")
)

// Call is one call's peer connection, driven by package call with the
// signalling it carries inside the E2E session. It has no call states of
// its own: it reports what the engine detects on Events, and lives until
// Close. All methods are safe for concurrent use.
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

	candOut   chan string
	evOut     chan Event
	wake      chan struct{}
	stop      chan struct{}
	closeOnce sync.Once
	loopDone  chan struct{}
	active    chan struct{} // closed when a media path is first up

	// handshook is closed once the peer connection has reported how its
	// transports' start ended (connected, disconnected, failed, closed);
	// see awaitHandshake.
	handshook     chan struct{}
	handshookOnce sync.Once

	mediaWG sync.WaitGroup

	remoteVideoSSRC atomic.Uint32 // for keyframe requests; 0 until the remote's video arrives

	mu           sync.Mutex
	closing      bool      // Close has begun: nothing more is reported
	connected    bool      // a media path has been up
	down         EventKind // the final kind detected; "" while none
	localClosing bool      // we are closing pc ourselves
	mediaClosed  bool      // no media goroutine may start
	offered      bool
	remoteSet    bool
	remoteAt     time.Time // when the remote description was applied
	pending      []webrtc.ICECandidateInit
	remoteCands  int
	candQ        []string
	candDone     bool
	evQ          []Event
	counters     counters
	recvKinds    map[Kind]bool
	local        []localTrack
	final        *Stats
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

// NewCall creates a call's peer connection. For an outgoing call it prepares
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

		candOut:   make(chan string),
		evOut:     make(chan Event),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		loopDone:  make(chan struct{}),
		active:    make(chan struct{}),
		handshook: make(chan struct{}),

		recvKinds: map[Kind]bool{},
		local:     local,
	}

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

// Events delivers what the connection detects, in order: Connected at most
// once, then at most one final kind (ICEFailed, DTLSFailed, RemoteClosed,
// SetupTimeout). It is closed when Close begins; events not read by then
// are dropped.
func (c *Call) Events() <-chan Event { return c.evOut }

// Down returns the final kind the connection detected, or "" while it has
// detected none.
func (c *Call) Down() EventKind {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down
}

// Candidates delivers the local ICE candidates as they are gathered, each
// as RTCIceCandidateInit JSON for the node to send to the remote's
// AddRemoteCandidate. It is closed when gathering completes or Close
// begins. Gathering starts with Offer (caller) or Answer (callee).
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
	case c.endedLocked():
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

// SetAnswer applies the callee's answer, checked by ValidateSDP first;
// the connect timeout starts.
func (c *Call) SetAnswer(answer string) error {
	if !c.outgoing {
		return fmt.Errorf("set answer: %w", ErrWrongRole)
	}
	c.mu.Lock()
	switch {
	case c.endedLocked():
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
// returns the answer; the connect timeout starts. Package call calls it
// only once its call policy has admitted the caller and the user has
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
	case c.endedLocked():
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
// description and starts the connect timeout.
func (c *Call) remoteApplied() {
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.remoteSet = true
	c.remoteAt = time.Now()
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
	if c.endedLocked() {
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

// Close tears the connection down: it stops the media, closes the peer
// connection (the remote hears a DTLS close; a DTLS handshake under way is
// given up to 2 s to end first, so that it can send one) and the Sink
// (recordings are complete), and waits for every goroutine of the call.
// Stats keeps the figures from this moment. Idempotent; concurrent calls
// wait for the first.
func (c *Call) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		close(c.stop)
		<-c.loopDone
		c.teardown()
	})
	return nil
}

// endedLocked reports whether the connection is unusable: failed or
// closing. c.mu must be held.
func (c *Call) endedLocked() bool { return c.closing || c.down != "" }

// detectLocked queues what the engine detected for Events. Nothing is
// reported after a final kind or once Close has begun. c.mu must be held;
// the caller kicks the loop.
func (c *Call) detectLocked(k EventKind) {
	if c.endedLocked() {
		return
	}
	if k.Final() {
		c.down = k
		c.log.Debug("connection down", "detected", k)
	}
	c.evQ = append(c.evQ, Event{Kind: k, At: time.Now()})
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
	c.mu.Lock()
	c.detectLocked(ICEFailed)
	c.mu.Unlock()
	c.kick()
}

func (c *Call) onPCState(s webrtc.PeerConnectionState) {
	// pion reports an ICE failure twice, as ICE and as connection state,
	// from different goroutines: name it the same either way.
	iceFailed := s == webrtc.PeerConnectionStateFailed && c.pc.ICEConnectionState() == webrtc.ICEConnectionStateFailed
	if s != webrtc.PeerConnectionStateNew && s != webrtc.PeerConnectionStateConnecting {
		c.handshookOnce.Do(func() { close(c.handshook) })
	}
	c.mu.Lock()
	switch s {
	case webrtc.PeerConnectionStateConnected:
		// The callee's connection may be up before Answer has returned.
		if !c.connected && !c.endedLocked() {
			c.connected = true
			close(c.active)
			c.detectLocked(Connected)
		}
	case webrtc.PeerConnectionStateFailed:
		if iceFailed {
			c.detectLocked(ICEFailed)
		} else {
			c.detectLocked(DTLSFailed)
		}
	case webrtc.PeerConnectionStateClosed:
		if !c.localClosing {
			// pion closes the connection when the remote's DTLS
			// close_notify arrives.
			c.detectLocked(RemoteClosed)
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

// run is the call's own goroutine: it delivers candidates and events and
// detects the connect timeout, until Close.
func (c *Call) run() {
	defer close(c.loopDone)
	candOpen := true
	var timer *time.Timer
	var timeout <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c.mu.Lock()
		if !c.remoteAt.IsZero() && timer == nil && !c.connected && c.down == "" {
			timer = time.NewTimer(time.Until(c.remoteAt.Add(c.e.cfg.ConnectTimeout)))
			timeout = timer.C
		}
		var candCh chan<- string
		var cand string
		if len(c.candQ) > 0 {
			candCh, cand = c.candOut, c.candQ[0]
		}
		closeCand := candOpen && len(c.candQ) == 0 && c.candDone
		var evCh chan<- Event
		var ev Event
		if len(c.evQ) > 0 {
			evCh, ev = c.evOut, c.evQ[0]
		}
		c.mu.Unlock()

		if closeCand {
			close(c.candOut)
			candOpen = false
			continue
		}
		if ev.Kind == Connected && ev.Path == "" {
			// The selected pair is known once connected.
			ev.Path = c.collectStats().Path
			c.mu.Lock()
			c.evQ[0].Path = ev.Path
			c.mu.Unlock()
		}
		select {
		case <-c.wake:
		case <-timeout:
			timeout = nil
			c.mu.Lock()
			if !c.connected {
				c.detectLocked(SetupTimeout)
			}
			c.mu.Unlock()
		case candCh <- cand:
			c.mu.Lock()
			c.candQ = c.candQ[1:]
			c.mu.Unlock()
		case evCh <- ev:
			c.mu.Lock()
			c.evQ = c.evQ[1:]
			c.mu.Unlock()
		case <-c.stop:
			if candOpen {
				close(c.candOut)
			}
			close(c.evOut)
			return
		}
	}
}

// awaitHandshake lets a DTLS handshake in progress end, for at most
// handshakeGrace, before Close closes the peer connection. Only a
// finished handshake can send the DTLS close that tells the remote this
// end has gone, and the remote may already be connected: the DTLS server
// is done once it has sent its last flight, the client only once that
// flight has arrived. Closed in between, this end would vanish without a
// word, and a remote whose hangup signal went astray would wait for ICE to
// fail instead of seeing RemoteClosed at once.
//
// It waits for the peer connection's state, not the DTLS transport's:
// pion starts SRTP, and only then reports the connection state and starts
// accepting the remote's streams; closed in between, with a stream
// arriving, pion deadlocks (DTLSTransport.Stop holds its lock while the
// SRTP session waits for a stream to be accepted).
func (c *Call) awaitHandshake() {
	select {
	case <-c.handshook:
		return
	default:
	}
	switch c.pc.SCTP().Transport().State() {
	case webrtc.DTLSTransportStateConnecting, webrtc.DTLSTransportStateConnected:
	default:
		return // not started: the remote can't be connected either
	}
	if h := c.e.testHookHandshakeWait; h != nil {
		h(c)
	}
	t := time.NewTimer(handshakeGrace)
	defer t.Stop()
	select {
	case <-c.handshook:
	case <-t.C:
		c.log.Debug("closing before the DTLS handshake ended", "waited", handshakeGrace)
	}
}

// teardown stops the media, closes the peer connection and the sink, and
// keeps the final Stats. Runs once, from Close, after the loop has ended.
func (c *Call) teardown() {
	c.cancel()
	st := c.collectStats()
	c.mu.Lock()
	c.localClosing = true
	down := c.down
	c.mu.Unlock()
	if down == "" {
		c.awaitHandshake()
	}
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
	down = c.down
	c.mu.Unlock()
	c.e.forget(c)
	c.log.Debug("connection closed", "detected", down, "path", st.Path, "sent", st.PacketsSent, "received", st.PacketsReceived)
}
