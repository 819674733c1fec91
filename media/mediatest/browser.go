package mediatest

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"
)

// Frame is one encoded frame a Browser sends.
type Frame struct {
	Data     []byte
	Duration time.Duration
}

// Browser stands in for a web app tab in tests that need no real browser:
// a pion peer connection with pion's default codecs (Opus, VP8, VP9,
// H.264 and more, as a browser offers them), host candidates on the given
// addresses only, sending audio and video frames in real time and
// counting what it receives. It goes back to its first video frame (a key
// frame) when asked for one.
type Browser struct {
	PC *webrtc.PeerConnection

	audio, video *webrtc.TrackLocalStaticSample
	received     [2]atomic.Uint64 // audio, video packets
	plis         atomic.Uint64
	keyframe     atomic.Bool
	videoIn      atomic.Uint32
	stop         chan struct{}
	stopOnce     sync.Once
	wg           sync.WaitGroup
}

// NewBrowser builds a tab on ips; it is closed at the end of the test.
func NewBrowser(tb testing.TB, ips []netip.Addr) *Browser {
	tb.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		tb.Fatal(err)
	}
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	se := webrtc.SettingEngine{LoggerFactory: quiet}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool {
		a, _ := netip.AddrFromSlice(ip)
		return slices.Contains(ips, a.Unmap())
	})
	se.SetIncludeLoopbackCandidate(true)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		tb.Fatal(err)
	}
	b := &Browser{PC: pc, stop: make(chan struct{})}
	b.audio, _ = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "tab")
	b.video, _ = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "tab")
	if _, err := pc.AddTransceiverFromTrack(b.audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
		tb.Fatal(err)
	}
	vt, err := pc.AddTransceiverFromTrack(b.video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		tb.Fatal(err)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		i := 0
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			i = 1
			b.videoIn.Store(uint32(tr.SSRC()))
		}
		b.wg.Go(func() {
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				b.received[i].Add(1)
			}
		})
	})
	sender := vt.Sender()
	b.wg.Go(func() {
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				switch p.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					b.plis.Add(1)
					b.keyframe.Store(true)
				}
			}
		}
	})
	tb.Cleanup(b.Close)
	return b
}

// Offer makes the tab's offer, with its candidates in it.
func (b *Browser) Offer(tb testing.TB) string {
	tb.Helper()
	o, err := b.PC.CreateOffer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(b.PC)
	if err := b.PC.SetLocalDescription(o); err != nil {
		tb.Fatal(err)
	}
	<-done
	return b.PC.LocalDescription().SDP
}

// SetAnswer applies the node's answer.
func (b *Browser) SetAnswer(tb testing.TB, sdp string) {
	tb.Helper()
	if err := b.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		tb.Fatalf("browser: set answer: %v", err)
	}
}

// Play sends audio (one frame every 20 ms) and video (one frame every
// 60 ms) in a loop until Close; video starts again at its first frame
// when the node asks for a key frame. Either may be nil.
func (b *Browser) Play(audio, video []Frame) {
	b.wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		ai, vi, n := 0, 0, 0
		for {
			select {
			case <-b.stop:
				return
			case <-tick.C:
			}
			if len(audio) > 0 {
				_ = b.audio.WriteSample(pionmedia.Sample{Data: audio[ai].Data, Duration: audio[ai].Duration})
				ai = (ai + 1) % len(audio)
			}
			if n++; n%3 == 0 && len(video) > 0 {
				if b.keyframe.Swap(false) {
					vi = 0
				}
				_ = b.video.WriteSample(pionmedia.Sample{Data: video[vi].Data, Duration: video[vi].Duration})
				vi = (vi + 1) % len(video)
			}
		}
	})
}

// Received returns the audio and video packets the tab has received.
func (b *Browser) Received() (audio, video uint64) {
	return b.received[0].Load(), b.received[1].Load()
}

// KeyframeRequests counts the keyframe requests the node sent the tab.
func (b *Browser) KeyframeRequests() uint64 { return b.plis.Load() }

// RequestKeyframe asks the node for a key frame of the video it sends
// the tab; it reports false before that video has arrived.
func (b *Browser) RequestKeyframe() bool {
	ssrc := b.videoIn.Load()
	if ssrc == 0 {
		return false
	}
	_ = b.PC.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	return true
}

// Close stops sending and closes the connection (the node sees the tab
// close it). Idempotent.
func (b *Browser) Close() {
	b.stopOnce.Do(func() { close(b.stop) })
	_ = b.PC.Close()
	b.wg.Wait()
}
