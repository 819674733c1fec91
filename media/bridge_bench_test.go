package media

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/callsign/callsign/internal/cputime"
)

// The forwarding benchmarks send stamped RTP packets from a sender S (as a
// browser tab would) to a receiver R (the other node), three ways, in the
// same run:
//
//	direct   S ─────────────────────────────> R
//	bare     S ──> pion read → write loop ──> R   (the baseline forwarder)
//	bridge   S ──> Bridge → Call ────────────> R   (the node's forwarding)
//
// S and R are plain pion peer connections with pion's default codecs and
// interceptors (NACK, reports, TWCC), as a browser and another node have;
// every hop is DTLS-SRTP over loopback UDP. Each packet carries its send
// time in its first 8 payload bytes.

const benchPayload = 1000 // bytes of RTP payload, a video packet's size

// rawAPI is a pion API like a browser's: default codecs and interceptors,
// host candidates on loopback only.
func rawAPI(tb testing.TB) *webrtc.API {
	tb.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		tb.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		tb.Fatal(err)
	}
	se := webrtc.SettingEngine{LoggerFactory: quietLogs()}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetIncludeLoopbackCandidate(true)
	n, err := newBufferedNet()
	if err != nil {
		tb.Fatal(err)
	}
	se.SetNet(n)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
}

func vp8Track(tb testing.TB) *webrtc.TrackLocalStaticRTP {
	tb.Helper()
	t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "bench")
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// vanilla completes an offer/answer between two plain peer connections,
// candidates in the descriptions.
func vanilla(tb testing.TB, offerer, answerer *webrtc.PeerConnection) {
	tb.Helper()
	o, err := offerer.CreateOffer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(o); err != nil {
		tb.Fatal(err)
	}
	<-g
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		tb.Fatal(err)
	}
	a, err := answerer.CreateAnswer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	g = webrtc.GatheringCompletePromise(answerer)
	if err := answerer.SetLocalDescription(a); err != nil {
		tb.Fatal(err)
	}
	<-g
	if err := offerer.SetRemoteDescription(*answerer.LocalDescription()); err != nil {
		tb.Fatal(err)
	}
}

// fwdPath is one way from S to R.
type fwdPath struct {
	send     *webrtc.TrackLocalStaticRTP // S's track
	received atomic.Uint64
	mu       sync.Mutex
	lat      []time.Duration // send-to-receive times, while recording
	record   atomic.Bool
	ready    chan struct{} // R's track has arrived
	closers  []func()
	wg       sync.WaitGroup
}

func (p *fwdPath) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.wg.Wait()
}

// receiver builds R: it reads the video it gets, counts it and notes each
// packet's latency while recording.
func (p *fwdPath) receiver(tb testing.TB, api *webrtc.API) *webrtc.PeerConnection {
	r, err := api.NewPeerConnection(webrtc.Configuration{RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire})
	if err != nil {
		tb.Fatal(err)
	}
	p.closers = append(p.closers, func() { _ = r.Close() })
	var once sync.Once
	r.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		once.Do(func() { close(p.ready) })
		p.wg.Go(func() {
			buf := make([]byte, 1500)
			var pkt rtp.Packet
			for {
				n, _, err := tr.Read(buf)
				if err != nil {
					return
				}
				now := time.Now().UnixNano()
				if pkt.Unmarshal(buf[:n]) != nil || len(pkt.Payload) < 8 {
					continue
				}
				p.received.Add(1)
				if p.record.Load() {
					d := time.Duration(now - int64(binary.BigEndian.Uint64(pkt.Payload)))
					p.mu.Lock()
					p.lat = append(p.lat, d)
					p.mu.Unlock()
				}
			}
		})
	})
	return r
}

func (p *fwdPath) sender(tb testing.TB, api *webrtc.API) *webrtc.PeerConnection {
	s, err := api.NewPeerConnection(webrtc.Configuration{RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire})
	if err != nil {
		tb.Fatal(err)
	}
	p.closers = append(p.closers, func() { _ = s.Close() })
	p.send = vp8Track(tb)
	tr, err := s.AddTransceiverFromTrack(p.send, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		tb.Fatal(err)
	}
	p.wg.Go(func() { // RTCP must be read for the interceptors
		for {
			if _, _, err := tr.Sender().ReadRTCP(); err != nil {
				return
			}
		}
	})
	return s
}

func newDirectPath(tb testing.TB, api *webrtc.API) *fwdPath {
	p := &fwdPath{ready: make(chan struct{})}
	s, r := p.sender(tb, api), p.receiver(tb, api)
	vanilla(tb, s, r)
	return p
}

// newBarePath forwards with the loop every pion SFU example has: read a
// packet from one connection's track, write it to the other's.
func newBarePath(tb testing.TB, api *webrtc.API) *fwdPath {
	p := &fwdPath{ready: make(chan struct{})}
	s := p.sender(tb, api)
	f1, err := api.NewPeerConnection(webrtc.Configuration{RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire})
	if err != nil {
		tb.Fatal(err)
	}
	f2, err := api.NewPeerConnection(webrtc.Configuration{RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire})
	if err != nil {
		tb.Fatal(err)
	}
	p.closers = append(p.closers, func() { _ = f1.Close() }, func() { _ = f2.Close() })
	out := vp8Track(tb)
	tr, err := f2.AddTransceiverFromTrack(out, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		tb.Fatal(err)
	}
	p.wg.Go(func() {
		for {
			if _, _, err := tr.Sender().ReadRTCP(); err != nil {
				return
			}
		}
	})
	f1.OnTrack(func(in *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		p.wg.Go(func() {
			buf := make([]byte, 1500)
			var pkt rtp.Packet
			for {
				n, _, err := in.Read(buf)
				if err != nil {
					return
				}
				if pkt.Unmarshal(buf[:n]) == nil {
					_ = out.WriteRTP(&pkt)
				}
			}
		})
	})
	vanilla(tb, s, f1)
	r := p.receiver(tb, api)
	vanilla(tb, f2, r)
	return p
}

// newBridgePath forwards through the node's own parts: S is the tab of a
// Bridge whose call goes to R.
func newBridgePath(tb testing.TB, api *webrtc.API, e *Engine) *fwdPath {
	p := &fwdPath{ready: make(chan struct{})}
	s := p.sender(tb, api)
	br, err := e.NewBridge(BridgeConfig{ID: "bench", LocalAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := e.NewCall(CallConfig{ID: "bench", Outgoing: true, Source: br, Sink: br})
	if err != nil {
		tb.Fatal(err)
	}
	p.closers = append(p.closers, func() { _ = c.Close(); _ = br.Close() })
	p.wg.Go(func() {
		for range c.Events() {
		}
	})
	r := p.receiver(tb, api)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offer, err := c.Offer(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if err := r.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		tb.Fatal(err)
	}
	p.wg.Go(func() {
		for cand := range c.Candidates() {
			var ci webrtc.ICECandidateInit
			if err := jsonUnmarshal(cand, &ci); err == nil {
				_ = r.AddICECandidate(ci)
			}
		}
	})
	a, err := r.CreateAnswer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(r)
	if err := r.SetLocalDescription(a); err != nil {
		tb.Fatal(err)
	}
	<-g
	// pion lists each candidate for RTCP too; the node's checks take
	// rtcp-mux only (its own peers trickle their candidates instead).
	var answer []string
	for _, l := range strings.Split(r.LocalDescription().SDP, "\r\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(l, "a=candidate:") && f[1] == "2" {
			continue
		}
		answer = append(answer, l)
	}
	if err := c.SetAnswer(strings.Join(answer, "\r\n")); err != nil {
		tb.Fatal(err)
	}
	o, err := s.CreateOffer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	g = webrtc.GatheringCompletePromise(s)
	if err := s.SetLocalDescription(o); err != nil {
		tb.Fatal(err)
	}
	<-g
	ans, err := br.Accept(ctx, s.LocalDescription().SDP)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans}); err != nil {
		tb.Fatal(err)
	}
	return p
}

// run sends n stamped packets, at most window ahead of what R has
// received, after warming the path up until R gets packets.
func (p *fwdPath) run(tb testing.TB, n int, gap time.Duration, window uint64, seq *uint16) {
	payload := make([]byte, benchPayload)
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}, Payload: payload}
	start := p.received.Load()
	sent := uint64(0)
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < n; i++ {
		for sent-(p.received.Load()-start) >= window {
			if time.Now().After(deadline) {
				tb.Fatalf("receiver stalled: %d sent, %d received", sent, p.received.Load()-start)
			}
			time.Sleep(20 * time.Microsecond)
		}
		*seq++
		pkt.SequenceNumber = *seq
		pkt.Timestamp += 3000
		binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
		_ = p.send.WriteRTP(pkt)
		sent++
		if gap > 0 {
			time.Sleep(gap)
		}
	}
}

// warm sends until R receives, so every hop is up.
func (p *fwdPath) warm(tb testing.TB, seq *uint16) {
	deadline := time.Now().Add(20 * time.Second)
	for p.received.Load() < 50 {
		if time.Now().After(deadline) {
			tb.Fatal("no packet reached the receiver")
		}
		p.run(tb, 10, 2*time.Millisecond, 1<<30, seq)
	}
}

// BenchmarkForwardLatency: one packet every 2 ms (a video call's rate)
// through each path; the p50 of send-to-receive time. The forwarding's
// added latency is bridge minus direct, beside bare minus direct.
func BenchmarkForwardLatency(b *testing.B) {
	api := rawAPI(b)
	e := newEngine(b, Config{})
	for _, tc := range []struct {
		name string
		make func() *fwdPath
	}{
		{"direct", func() *fwdPath { return newDirectPath(b, api) }},
		{"bare", func() *fwdPath { return newBarePath(b, api) }},
		{"bridge", func() *fwdPath { return newBridgePath(b, api, e) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := tc.make()
			defer p.close()
			var seq uint16
			p.warm(b, &seq)
			p.record.Store(true)
			b.ResetTimer()
			p.run(b, b.N, 2*time.Millisecond, 1<<30, &seq)
			deadline := time.Now().Add(5 * time.Second)
			for {
				p.mu.Lock()
				got := len(p.lat)
				p.mu.Unlock()
				if got >= b.N*99/100 || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			p.record.Store(false)
			p.mu.Lock()
			lat := slices.Clone(p.lat)
			p.mu.Unlock()
			if len(lat) == 0 {
				b.Fatal("no packet arrived")
			}
			slices.Sort(lat)
			us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			b.ReportMetric(us(lat[len(lat)/2]), "p50-us")
			b.ReportMetric(us(lat[len(lat)*99/100]), "p99-us")
			b.ReportMetric(float64(b.N-len(lat)), "lost")
		})
	}
}

// BenchmarkForwardThroughput: packets as fast as R takes them (at most 256
// in flight); wall-clock packets per second and process CPU per packet.
// The forwarding hop's own CPU per packet is bridge minus direct (S and R
// are in the same process); one core forwards 1 s / that many packets.
func BenchmarkForwardThroughput(b *testing.B) {
	api := rawAPI(b)
	e := newEngine(b, Config{})
	for _, tc := range []struct {
		name string
		make func() *fwdPath
	}{
		{"direct", func() *fwdPath { return newDirectPath(b, api) }},
		{"bare", func() *fwdPath { return newBarePath(b, api) }},
		{"bridge", func() *fwdPath { return newBridgePath(b, api, e) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := tc.make()
			defer p.close()
			var seq uint16
			p.warm(b, &seq)
			start := p.received.Load()
			cpu0, t0 := cputime.Process(), time.Now()
			b.ResetTimer()
			p.run(b, b.N, 0, 256, &seq)
			for p.received.Load()-start < uint64(b.N)*99/100 && time.Since(t0) < time.Minute {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			got := p.received.Load() - start
			wall, cpu := time.Since(t0), cputime.Process()-cpu0
			b.ReportMetric(float64(got)/wall.Seconds(), "pkts/s")
			b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(got), "cpu-us/pkt")
			b.ReportMetric(float64(uint64(b.N)-got), "lost")
		})
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
