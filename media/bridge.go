package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	pionreport "github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Bridge defaults.
const (
	// DefaultBridgeAttachTimeout bounds the time from NewBridge to the
	// tab's offer (Accept).
	DefaultBridgeAttachTimeout = 30 * time.Second
	// DefaultBridgeConnectTimeout bounds the time from Accept to a working
	// connection with the tab.
	DefaultBridgeConnectTimeout = 10 * time.Second

	// The tab is on this machine: a silent connection is a closed tab.
	bridgeDisconnectedTimeout = 2 * time.Second
	bridgeFailedTimeout       = 4 * time.Second
	bridgeKeepalive           = 500 * time.Millisecond

	// bridgeGatherTimeout bounds the wait for the node's own candidates
	// (host candidates on one or two addresses: milliseconds).
	bridgeGatherTimeout = 2 * time.Second
	// keyframeInterval spaces the keyframe requests passed on, so a
	// browser asking many times a second can't make the other end send
	// nothing but key frames.
	keyframeInterval = 300 * time.Millisecond
	// maxForwardPacket bounds one forwarded RTP packet.
	maxForwardPacket = 1500
)

// BridgeConfig configures a Bridge.
type BridgeConfig struct {
	// ID names the bridge in logs (the node uses the call's id). Required,
	// 1 to 128 bytes.
	ID string
	// LocalAddrs are this machine's own addresses: the tab's candidates
	// must be among them. nil means LocalAddrs().
	LocalAddrs []netip.Addr
	// AttachTimeout bounds NewBridge to Accept. Default
	// DefaultBridgeAttachTimeout.
	AttachTimeout time.Duration
	// ConnectTimeout bounds Accept to a working connection. Default
	// DefaultBridgeConnectTimeout.
	ConnectTimeout time.Duration
}

// Bridge is the node's end of a WebRTC connection to its own user's
// browser tab. A Call takes it as both its Source (the tab's camera and
// microphone) and its Sink (what the tab shows and plays), and the node
// forwards RTP between the two connections without transcoding: payload
// types and SSRCs are rewritten to each connection's, header extensions
// are dropped, sequence numbers and timestamps pass through. Keyframe
// requests (PLI, FIR) pass both ways, and the other end's receiver
// reports on what the tab sends reach the tab (with the tab's SSRC), so
// its encoder adapts to the real path rather than to loopback.
//
// The connection to the tab has its own pion API: Opus and VP8 with NACK
// and PLI, no receiver reports of its own, host candidates only on the
// addresses the tab offered, and short ICE timeouts (the tab is on this
// machine, so a silent connection means a closed tab).
//
// A Bridge ends, closing Done, when the tab closes its connection, the
// connection fails, the tab did not attach or connect in time, or the call
// using it ends (the Call closes its Sink). All methods are safe for
// concurrent use.
type Bridge struct {
	e       *Engine
	cfg     BridgeConfig
	log     *slog.Logger
	created time.Time

	tracks [2]*bridgeTrack // to the call: audio, video

	wake     chan struct{}
	done     chan struct{}
	loopDone chan struct{}
	wg       sync.WaitGroup // readers of the tab's connection

	keyframe   atomic.Pointer[func()] // asks the call's remote for a key frame
	keyframeIn pacer                  // paces those requests

	mu         sync.Mutex
	pc         *webrtc.PeerConnection
	out        map[Kind]*webrtc.TrackLocalStaticRTP // to the tab
	accepted   time.Time
	connected  bool
	ended      bool
	end        EventKind // what ended it; "" while it goes on
	tracksUsed bool
	closing    bool // we close pc ourselves
}

// bridgeTrack is one kind of the tab's media, forwarded into a call.
type bridgeTrack struct {
	b        *Bridge
	kind     Kind
	w        atomic.Pointer[func(*rtp.Packet)] // the call's writer, set while active
	ssrc     atomic.Uint32                     // the tab's SSRC, once its track arrived
	keyframe pacer                             // paces keyframe requests to the tab
}

// ErrBridged is returned by ReadSample of a bridged track: its media is
// forwarded as RTP, never read as samples.
var ErrBridged = errors.New("media: bridged track is forwarded, not read")

// NewBridge prepares a bridge for a call; the tab attaches with Accept.
func (e *Engine) NewBridge(cfg BridgeConfig) (*Bridge, error) {
	if len(cfg.ID) == 0 || len(cfg.ID) > 128 {
		return nil, fmt.Errorf("media: bridge ID of %d bytes, want 1 to 128", len(cfg.ID))
	}
	if cfg.AttachTimeout < 0 || cfg.ConnectTimeout < 0 {
		return nil, errors.New("media: negative bridge timeout")
	}
	if cfg.AttachTimeout == 0 {
		cfg.AttachTimeout = DefaultBridgeAttachTimeout
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultBridgeConnectTimeout
	}
	if cfg.LocalAddrs == nil {
		addrs, err := LocalAddrs()
		if err != nil {
			return nil, err
		}
		cfg.LocalAddrs = addrs
	}
	b := &Bridge{
		e: e, cfg: cfg, created: time.Now(),
		log:      e.log.With("bridge", cfg.ID),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	b.tracks = [2]*bridgeTrack{{b: b, kind: KindAudio}, {b: b, kind: KindVideo}}
	for _, t := range b.tracks {
		t.keyframe.send = t.sendKeyframeRequest
	}
	b.keyframeIn.send = func() {
		if f := b.keyframe.Load(); f != nil {
			(*f)()
		}
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	e.bridges[b] = struct{}{}
	e.mu.Unlock()
	go b.run()
	return b, nil
}

// Done is closed once the bridge has ended and its connection is closed.
func (b *Bridge) Done() <-chan struct{} { return b.done }

// End says what ended the bridge: Closed (closed by the node or its call),
// RemoteClosed (the tab closed its connection), ICEFailed or DTLSFailed
// (the tab's connection failed), SetupTimeout (no offer or no connection
// in time) or SetupFailed (the tab's offer could not be set up); "" while
// it goes on.
func (b *Bridge) End() EventKind {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.end
}

// Connected reports whether the tab's connection is up.
func (b *Bridge) Connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connected
}

// Accept takes the tab's offer (checked by CheckBrowserOffer against the
// bridge's LocalAddrs), sets up the connection to it and returns the
// node's answer, with the node's candidates in it. A bridge accepts one
// offer: a second one fails with ErrSignal (another tab already joined).
func (b *Bridge) Accept(ctx context.Context, offer string) (string, error) {
	filtered, addrs, err := CheckBrowserOffer(offer, b.cfg.LocalAddrs)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	switch {
	case b.ended:
		b.mu.Unlock()
		return "", ErrEnded
	case !b.accepted.IsZero():
		b.mu.Unlock()
		return "", fmt.Errorf("accept: already joined: %w", ErrSignal)
	}
	b.accepted = time.Now()
	b.mu.Unlock()
	b.kick()

	answer, err := b.accept(ctx, filtered, addrs)
	if err != nil {
		b.finish(SetupFailed)
		return "", err
	}
	return answer, nil
}

func (b *Bridge) accept(ctx context.Context, offer string, addrs []netip.Addr) (string, error) {
	if len(addrs) == 0 {
		// The tab hid its addresses (mDNS): offer ours on every address
		// of this machine; the tab's checks reach one of them.
		addrs = b.cfg.LocalAddrs
	}
	api, err := b.e.bridgeAPI(addrs)
	if err != nil {
		return "", err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	})
	if err != nil {
		return "", fmt.Errorf("media: bridge %s: peer connection: %w", b.cfg.ID, err)
	}
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		_ = pc.Close()
		return "", ErrEnded
	}
	b.pc = pc
	b.mu.Unlock()
	pc.OnTrack(b.onTrack)
	pc.OnConnectionStateChange(b.onState)

	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("media: bridge %s: set offer: %w", b.cfg.ID, err)
	}
	out := map[Kind]*webrtc.TrackLocalStaticRTP{}
	var senders []*webrtc.RTPSender
	for _, tr := range pc.GetTransceivers() {
		k := KindAudio
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			k = KindVideo
		}
		if out[k] != nil {
			continue
		}
		t, err := webrtc.NewTrackLocalStaticRTP(codecFor(k), string(k), "callsign")
		if err != nil {
			return "", fmt.Errorf("media: bridge %s: %w", b.cfg.ID, err)
		}
		s, err := pc.AddTrack(t)
		if err != nil {
			return "", fmt.Errorf("media: bridge %s: add %s track: %w", b.cfg.ID, k, err)
		}
		out[k] = t
		senders = append(senders, s)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("media: bridge %s: create answer: %w", b.cfg.ID, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("media: bridge %s: set answer: %w", b.cfg.ID, err)
	}
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return "", ErrEnded
	}
	b.out = out
	for _, s := range senders {
		b.wg.Go(func() { b.readSenderRTCP(s) })
	}
	b.mu.Unlock()

	timer := time.NewTimer(bridgeGatherTimeout)
	defer timer.Stop()
	select {
	case <-gathered:
	case <-timer.C:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	ld := pc.LocalDescription()
	if ld == nil {
		return "", fmt.Errorf("media: bridge %s: no local description", b.cfg.ID)
	}
	return ld.SDP, nil
}

// bridgeAPI builds the pion API of one bridge: Opus and VP8 with NACK and
// keyframe requests, NACK and sender reports (no receiver reports: the
// tab gets the other end's instead), host candidates on addrs only.
func (e *Engine) bridgeAPI(addrs []netip.Addr) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: opusClockRate, Channels: opusChannels,
			SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: opusPayloadType,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("media: bridge: register opus: %w", err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: vp8ClockRate, RTCPFeedback: fb},
		PayloadType:        vp8PayloadType,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("media: bridge: register vp8: %w", err)
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		// The MID extension lets pion tell the tab's streams apart before
		// their SSRCs are known.
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: "urn:ietf:params:rtp-hdrext:sdes:mid"}, k); err != nil {
			return nil, fmt.Errorf("media: bridge: mid extension: %w", err)
		}
	}
	reg := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, err
	}
	resp, err := nack.NewResponderInterceptor()
	if err != nil {
		return nil, err
	}
	sr, err := pionreport.NewSenderInterceptor()
	if err != nil {
		return nil, err
	}
	reg.Add(gen)
	reg.Add(resp)
	reg.Add(sr)

	se := webrtc.SettingEngine{LoggerFactory: slogFactory{log: e.log}}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(bridgeDisconnectedTimeout, bridgeFailedTimeout, bridgeKeepalive)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	netw := e.cfg.Net
	if netw == nil {
		var err error
		if netw, err = newBufferedNet(); err != nil {
			return nil, fmt.Errorf("media: bridge network: %w", err)
		}
	}
	se.SetNet(netw)
	allowed := slices.Clone(addrs)
	loopback := slices.ContainsFunc(allowed, netip.Addr.IsLoopback)
	se.SetIPFilter(func(ip net.IP) bool {
		a, ok := netip.AddrFromSlice(ip)
		return ok && slices.Contains(allowed, a.Unmap())
	})
	se.SetIncludeLoopbackCandidate(loopback)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// onTrack starts forwarding one of the tab's tracks. pion callback: it
// only starts the reader.
func (b *Bridge) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	t := b.tracks[0]
	if remote.Kind() == webrtc.RTPCodecTypeVideo {
		t = b.tracks[1]
	}
	b.mu.Lock()
	if b.ended || t.ssrc.Load() != 0 {
		b.mu.Unlock()
		return
	}
	t.ssrc.Store(uint32(remote.SSRC()))
	b.wg.Go(func() { t.forward(remote) })
	b.wg.Go(func() {
		for {
			if _, _, err := recv.ReadRTCP(); err != nil {
				return
			}
		}
	})
	b.mu.Unlock()
	if t.kind == KindVideo && t.w.Load() != nil {
		t.requestKeyframe()
	}
}

// forward reads the tab's track and hands each packet to the call while
// one is attached. It reuses one buffer and one packet: the call's track
// copies what it sends.
func (t *bridgeTrack) forward(remote *webrtc.TrackRemote) {
	buf := make([]byte, maxForwardPacket)
	var p rtp.Packet
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		w := t.w.Load()
		if w == nil {
			continue // not in a call yet, or no longer
		}
		if err := p.Unmarshal(buf[:n]); err != nil {
			continue
		}
		stripExtensions(&p)
		(*w)(&p)
	}
}

func stripExtensions(p *rtp.Packet) {
	p.Header.Extension = false
	p.Header.ExtensionProfile = 0
	p.Header.Extensions = nil
}

// Kind implements Track.
func (t *bridgeTrack) Kind() Kind { return t.kind }

// ReadSample implements Track; a bridged track is never read as samples.
func (t *bridgeTrack) ReadSample(context.Context) (Sample, error) { return Sample{}, ErrBridged }

// attach makes w receive the tab's packets of this kind (nil stops them).
// The call attaches once it is active and asks for a key frame, so the
// other end can decode from the first frame it gets.
func (t *bridgeTrack) attach(w func(*rtp.Packet)) {
	if w == nil {
		t.w.Store(nil)
		return
	}
	t.w.Store(&w)
	if t.kind == KindVideo {
		t.requestKeyframe()
	}
}

// requestKeyframe asks the tab for a key frame, at most once per
// keyframeInterval.
func (t *bridgeTrack) requestKeyframe() {
	if t.ssrc.Load() != 0 {
		t.keyframe.request()
	}
}

func (t *bridgeTrack) sendKeyframeRequest() {
	if ssrc := t.ssrc.Load(); ssrc != 0 {
		t.b.writeRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	}
}

// onRTCP takes the call's remote's RTCP about this track: keyframe requests
// and receiver reports go on to the tab, with the tab's SSRC.
func (t *bridgeTrack) onRTCP(pkts []rtcp.Packet) {
	ssrc := t.ssrc.Load()
	if ssrc == 0 {
		return
	}
	var reports []rtcp.ReceptionReport
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			t.requestKeyframe()
		case *rtcp.ReceiverReport:
			reports = append(reports, p.Reports...)
		case *rtcp.SenderReport:
			reports = append(reports, p.Reports...)
		}
	}
	if len(reports) == 0 {
		return
	}
	// One report on the tab's stream: the loss and jitter the other end
	// sees. The round-trip fields refer to this node's sender reports,
	// not the tab's, so they are left empty.
	r := reports[len(reports)-1]
	r.SSRC, r.LastSenderReport, r.Delay = ssrc, 0, 0
	t.b.writeRTCP([]rtcp.Packet{&rtcp.ReceiverReport{Reports: []rtcp.ReceptionReport{r}}})
}

func (b *Bridge) writeRTCP(pkts []rtcp.Packet) {
	b.mu.Lock()
	pc, ok := b.pc, b.connected && !b.ended
	b.mu.Unlock()
	if !ok {
		return
	}
	if err := pc.WriteRTCP(pkts); err != nil {
		b.log.Debug("rtcp to tab", "err", err)
	}
}

// pacer passes keyframe requests on at most once per keyframeInterval. A
// request inside the interval is not dropped: it goes out when the
// interval ends, and any more made meanwhile coalesce into it, so a request
// that matters (a tab that has just connected) is never lost to one made a
// moment before.
type pacer struct {
	send func()

	mu      sync.Mutex
	last    time.Time
	timer   *time.Timer
	stopped bool
	wg      sync.WaitGroup // a scheduled send
}

func (p *pacer) request() {
	p.mu.Lock()
	if p.stopped || p.timer != nil {
		p.mu.Unlock()
		return
	}
	wait := keyframeInterval - time.Since(p.last)
	if wait <= 0 {
		p.last = time.Now()
		p.mu.Unlock()
		p.send()
		return
	}
	p.wg.Add(1)
	p.timer = time.AfterFunc(wait, func() {
		defer p.wg.Done()
		p.mu.Lock()
		p.timer = nil
		stopped := p.stopped
		p.last = time.Now()
		p.mu.Unlock()
		if !stopped {
			p.send()
		}
	})
	p.mu.Unlock()
}

// stop cancels a scheduled send and waits for one under way.
func (p *pacer) stop() {
	p.mu.Lock()
	p.stopped = true
	if p.timer != nil && p.timer.Stop() {
		p.timer = nil
		p.wg.Done()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// readSenderRTCP reads the tab's RTCP on what the node sends it: a
// keyframe request goes on to the call's remote.
func (b *Bridge) readSenderRTCP(s *webrtc.RTPSender) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				b.requestCallKeyframe()
			}
		}
	}
}

func (b *Bridge) requestCallKeyframe() {
	if b.keyframe.Load() != nil {
		b.keyframeIn.request()
	}
}

// Tracks implements Source: the tab's audio and video, forwarded by the
// call that takes them. A bridge gives its tracks to one call only.
func (b *Bridge) Tracks() ([]Track, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tracksUsed {
		return nil, errors.New("media: bridge already feeds a call")
	}
	b.tracksUsed = true
	return []Track{b.tracks[0], b.tracks[1]}, nil
}

// WriteRTP implements Sink: the call's remote media goes on to the tab
// once its connection is up; before that it is dropped.
func (b *Bridge) WriteRTP(kind Kind, p *rtp.Packet) error {
	b.mu.Lock()
	t, ok := b.out[kind], b.connected && !b.ended
	b.mu.Unlock()
	if !ok || t == nil {
		return nil
	}
	q := *p
	stripExtensions(&q)
	if err := t.WriteRTP(&q); err != nil {
		b.log.Debug("rtp to tab", "kind", kind, "err", err)
	}
	return nil
}

// bindCall lets the bridge ask the call's remote for key frames when the
// tab asks for one or has just connected.
func (b *Bridge) bindCall(requestKeyframe func()) {
	b.keyframe.Store(&requestKeyframe)
}

// Close implements Sink: the call is over, and so is the bridge. It waits
// until the connection to the tab is closed. Idempotent.
func (b *Bridge) Close() error {
	b.finish(Closed)
	<-b.done
	return nil
}

// finish records what ended the bridge (the first wins); its loop tears
// it down.
func (b *Bridge) finish(k EventKind) {
	b.mu.Lock()
	if !b.ended {
		b.ended, b.end = true, k
		b.log.Debug("bridge ending", "detected", k)
	}
	b.mu.Unlock()
	b.kick()
}

func (b *Bridge) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Bridge) onState(s webrtc.PeerConnectionState) {
	iceFailed := false
	if s == webrtc.PeerConnectionStateFailed {
		b.mu.Lock()
		pc := b.pc
		b.mu.Unlock()
		iceFailed = pc == nil || pc.ICEConnectionState() == webrtc.ICEConnectionStateFailed
	}
	b.mu.Lock()
	switch s {
	case webrtc.PeerConnectionStateConnected:
		b.connected = true
	case webrtc.PeerConnectionStateFailed:
		if !b.ended {
			b.ended, b.end = true, DTLSFailed
			if iceFailed {
				b.end = ICEFailed
			}
		}
	case webrtc.PeerConnectionStateClosed:
		if !b.ended && !b.closing {
			// The tab closed its connection (DTLS close_notify).
			b.ended, b.end = true, RemoteClosed
		}
	}
	connected := b.connected && !b.ended
	b.mu.Unlock()
	if s == webrtc.PeerConnectionStateConnected && connected {
		// Both ends decode from a key frame: ask the other end for one for
		// the tab, and the tab for one if the call already takes its
		// video, rather than wait for their own requests.
		b.requestCallKeyframe()
		if t := b.tracks[1]; t.w.Load() != nil {
			t.requestKeyframe()
		}
	}
	b.kick()
}

// run is the bridge's goroutine: it enforces the attach and connect
// timeouts and tears the bridge down when it ends.
func (b *Bridge) run() {
	defer close(b.loopDone)
	attach := time.NewTimer(b.cfg.AttachTimeout)
	defer attach.Stop()
	var connect *time.Timer
	var connectC <-chan time.Time
	defer func() {
		if connect != nil {
			connect.Stop()
		}
	}()
	for {
		b.mu.Lock()
		ended, accepted, connected := b.ended, b.accepted, b.connected
		b.mu.Unlock()
		if ended {
			break
		}
		if !accepted.IsZero() && !connected && connect == nil {
			connect = time.NewTimer(time.Until(accepted.Add(b.cfg.ConnectTimeout)))
			connectC = connect.C
		}
		if connected {
			connectC = nil
		}
		attachC := attach.C
		if !accepted.IsZero() {
			attachC = nil
		}
		select {
		case <-b.wake:
		case <-attachC:
			b.finish(SetupTimeout)
		case <-connectC:
			b.mu.Lock()
			if !b.connected {
				b.mu.Unlock()
				b.finish(SetupTimeout)
				continue
			}
			b.mu.Unlock()
		}
	}
	b.teardown()
}

func (b *Bridge) teardown() {
	for _, t := range b.tracks {
		t.w.Store(nil)
		t.keyframe.stop()
	}
	b.keyframeIn.stop()
	b.mu.Lock()
	pc := b.pc
	b.closing = true
	b.connected = false
	b.mu.Unlock()
	if pc != nil {
		if err := pc.Close(); err != nil {
			b.log.Debug("close tab connection", "err", err)
		}
	}
	b.wg.Wait()
	b.e.mu.Lock()
	delete(b.e.bridges, b)
	b.e.mu.Unlock()
	b.log.Debug("bridge ended", "detected", b.End())
	close(b.done)
}
