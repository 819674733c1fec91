package media

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/media/mediatest"
)

func newBrowser(tb testing.TB, ips []netip.Addr) *mediatest.Browser {
	return mediatest.NewBrowser(tb, ips)
}

// playClips plays the tone and the pattern from the tab.
func playClips(b *mediatest.Browser) {
	frames := func(c *Clip) []mediatest.Frame {
		var out []mediatest.Frame
		for _, s := range c.Samples() {
			out = append(out, mediatest.Frame{Data: s.Data, Duration: s.Duration})
		}
		return out
	}
	b.Play(frames(Tone()), frames(Pattern()))
}

// rtcpSource is the tone and pattern, noting the keyframe requests that
// reach its video track.
type rtcpSource struct{ plis *atomic.Uint64 }

type rtcpClip struct {
	*clipPlayer
	plis *atomic.Uint64
}

func (s rtcpSource) Tracks() ([]Track, error) {
	return []Track{&clipPlayer{clip: Tone()}, rtcpClip{&clipPlayer{clip: Pattern()}, s.plis}}, nil
}

func (c rtcpClip) onRTCP(pkts []rtcp.Packet) {
	for _, p := range pkts {
		if _, ok := p.(*rtcp.PictureLossIndication); ok {
			c.plis.Add(1)
		}
	}
	c.clipPlayer.onRTCP(pkts)
}

// countSink counts packets per kind.
type countSink struct{ n [2]atomic.Uint64 }

func (s *countSink) WriteRTP(k Kind, _ *rtp.Packet) error {
	if k == KindVideo {
		s.n[1].Add(1)
	} else {
		s.n[0].Add(1)
	}
	return nil
}
func (s *countSink) Close() error { return nil }

// TestBridgeForwardsBothWays: a tab's media goes through its node's call to
// a headless node and back, keyframe requests pass in both directions, and
// closing the tab ends the bridge.
func TestBridgeForwardsBothWays(t *testing.T) {
	eA, eB := newEngine(t, Config{}), newEngine(t, Config{})
	br, err := eA.NewBridge(BridgeConfig{ID: "b1", LocalAddrs: loopback})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	var remotePLIs atomic.Uint64
	sinkB := &countSink{}
	callA := newCall(t, eA, CallConfig{ID: "c1", Outgoing: true, Source: br, Sink: br})
	callB := newCall(t, eB, CallConfig{ID: "c1", Source: rtcpSource{&remotePLIs}, Sink: sinkB})
	wA, wB := watch(t, callA), watch(t, callB)
	connect(t, callA, callB, nil)
	wA.wait(t, Connected, 10*time.Second)
	wB.wait(t, Connected, 10*time.Second)

	tab := newBrowser(t, loopback)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, err := br.Accept(ctx, tab.Offer(t))
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	tab.SetAnswer(t, answer)
	if strings.Contains(answer, "H264") || strings.Contains(answer, "VP9") {
		t.Errorf("the node answered a codec it does not forward:\n%s", answer)
	}
	playClips(tab)

	check.Until(t, 10*time.Second, "tab media at the other node", func() bool { return sinkB.n[0].Load() > 50 && sinkB.n[1].Load() > 20 })
	check.Until(t, 10*time.Second, "the other node's media in the tab", func() bool { a, v := tab.Received(); return a > 50 && v > 20 })
	// The node asked the tab for a key frame when the call took its video.
	check.Until(t, 5*time.Second, "a keyframe request to the tab", func() bool { return tab.KeyframeRequests() > 0 })

	// The tab asks for a key frame: it reaches the other node's video.
	before := remotePLIs.Load()
	check.Until(t, 5*time.Second, "the tab's keyframe request at the other node", func() bool {
		tab.RequestKeyframe()
		return remotePLIs.Load() > before
	})

	// The other node's keyframe request reaches the tab.
	plis := tab.KeyframeRequests()
	check.Until(t, 5*time.Second, "the other node's keyframe request at the tab", func() bool {
		callB.RequestKeyframe()
		return tab.KeyframeRequests() > plis
	})

	// Closing the tab ends the bridge.
	tab.Close()
	select {
	case <-br.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the bridge did not end after the tab closed")
	}
	if k := br.End(); k != RemoteClosed && k != ICEFailed {
		t.Errorf("bridge ended with %q, want remote-closed (or ice-failed)", k)
	}
}

// TestBridgeTimeouts: a tab that never attaches, or never connects, ends
// the bridge with SetupTimeout.
func TestBridgeTimeouts(t *testing.T) {
	e := newEngine(t, Config{})
	br, err := e.NewBridge(BridgeConfig{ID: "b2", LocalAddrs: loopback, AttachTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-br.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a bridge nobody attached to did not end")
	}
	if br.End() != SetupTimeout {
		t.Errorf("ended with %q, want setup-timeout", br.End())
	}

	br, err = e.NewBridge(BridgeConfig{ID: "b3", LocalAddrs: loopback, ConnectTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tab := newBrowser(t, loopback)
	offer := tab.Offer(t)
	tab.Close() // the tab never answers a connectivity check
	if _, err := br.Accept(context.Background(), offer); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	select {
	case <-br.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a bridge whose tab never connected did not end")
	}
	if br.End() != SetupTimeout {
		t.Errorf("ended with %q, want setup-timeout", br.End())
	}
	if _, err := br.Accept(context.Background(), offer); !errors.Is(err, ErrEnded) {
		t.Errorf("Accept on an ended bridge: %v, want ErrEnded", err)
	}
}

// TestBridgeSecondTab: a second offer to the same bridge is refused.
func TestBridgeSecondTab(t *testing.T) {
	e := newEngine(t, Config{})
	br, err := e.NewBridge(BridgeConfig{ID: "b4", LocalAddrs: loopback})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	one, two := newBrowser(t, loopback), newBrowser(t, loopback)
	if _, err := br.Accept(context.Background(), one.Offer(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Accept(context.Background(), two.Offer(t)); !errors.Is(err, ErrSignal) {
		t.Errorf("second tab: %v, want ErrSignal", err)
	}
}

func TestCheckBrowserOffer(t *testing.T) {
	tab := newBrowser(t, loopback)
	offer := tab.Offer(t)
	if !strings.Contains(offer, "127.0.0.1") {
		t.Fatalf("test offer has no loopback candidate:\n%s", offer)
	}
	local := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.10")}
	firstCand := func(s string) string {
		for l := range strings.Lines(s) {
			if strings.HasPrefix(l, "a=candidate:") {
				return strings.TrimRight(l, "\r\n")
			}
		}
		t.Fatal("no candidate")
		return ""
	}
	cand := firstCand(offer)
	withCand := func(c string) string { return strings.Replace(offer, cand, cand+"\r\n"+c, 1) }
	port := strings.Fields(cand)[5]

	ok, addrs, err := CheckBrowserOffer(offer, local)
	if err != nil {
		t.Fatalf("a browser's offer with VP8 among other codecs: %v", err)
	}
	if len(addrs) != 1 || addrs[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("addrs %v, want [127.0.0.1]", addrs)
	}
	if !strings.Contains(ok, "127.0.0.1") {
		t.Errorf("the loopback candidate was dropped")
	}

	for _, tc := range []struct {
		name, offer string
		err         string   // "" = accepted
		dropped     string   // a candidate that must not be passed on
		addrs       []string // the addresses the node gathers on
	}{
		{name: "foreign address", offer: withCand("a=candidate:9 1 udp 2130706431 203.0.113.5 " + port + " typ host"), err: "not an address of this machine"},
		{name: "srflx from a STUN server", offer: withCand("a=candidate:9 1 udp 1694498815 198.51.100.7 40000 typ srflx raddr 0.0.0.0 rport 0"), err: "not an address of this machine"},
		{name: "tcp dropped", offer: withCand("a=candidate:9 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active"), dropped: "tcptype active", addrs: []string{"127.0.0.1"}},
		{name: "mdns dropped", offer: withCand("a=candidate:9 1 udp 2130706431 3f2a1b6c-1111-2222-3333-444455556666.local " + port + " typ host"), dropped: ".local", addrs: []string{"127.0.0.1"}},
		{name: "interface address dropped beside loopback", offer: withCand("a=candidate:9 1 udp 2130706431 192.0.2.10 " + port + " typ host"), dropped: "192.0.2.10", addrs: []string{"127.0.0.1"}},
		{name: "interface address alone", offer: strings.Replace(offer, "127.0.0.1", "192.0.2.10", -1), addrs: []string{"192.0.2.10"}},
		{name: "h264 only", offer: onlyCodec(t, offer, "video", "H264"), err: "not VP8"},
		{name: "no opus", offer: onlyCodec(t, offer, "audio", "PCMU"), err: "not Opus"},
		{name: "too large", offer: offer + strings.Repeat("a=x-pad:"+strings.Repeat("y", 900)+"\r\n", 40), err: "bytes, at most"},
		{name: "not sdp", offer: "<script>alert(1)</script>", err: "invalid session description"},
		{name: "no fingerprint", offer: dropLines(offer, "a=fingerprint"), err: "no DTLS fingerprint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, addrs, err := CheckBrowserOffer(tc.offer, local)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadSDP) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.dropped != "" && strings.Contains(out, tc.dropped) {
				t.Errorf("%q was passed on", tc.dropped)
			}
			var got []string
			for _, a := range addrs {
				got = append(got, a.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.addrs, ",") {
				t.Errorf("addrs %v, want %v", got, tc.addrs)
			}
		})
	}
}

// onlyCodec rewrites an offer's section of kind to offer only the
// payload types of codec.
func onlyCodec(tb testing.TB, offer, kind, codec string) string {
	tb.Helper()
	var out []string
	section := ""
	keep := map[string]bool{}
	lines := strings.Split(strings.TrimRight(offer, "\r\n"), "\r\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "a=rtpmap:") {
			pt, c, _ := strings.Cut(strings.TrimPrefix(l, "a=rtpmap:"), " ")
			if strings.HasPrefix(c, codec+"/") {
				keep[pt] = true
			}
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "m=") {
			section = strings.Fields(l[2:])[0]
			if section == kind {
				f := strings.Fields(l)
				var pts []string
				for _, pt := range f[3:] {
					if keep[pt] {
						pts = append(pts, pt)
					}
				}
				if len(pts) == 0 {
					tb.Fatalf("no %s in the %s section", codec, kind)
				}
				l = strings.Join(append(f[:3], pts...), " ")
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\r\n") + "\r\n"
}

func dropLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\r\n") {
		if !strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n")
}

// TestPacer: keyframe requests go out at most once per interval, and one
// made inside the interval goes out when it ends instead of being lost.
func TestPacer(t *testing.T) {
	var sent atomic.Int32
	p := &pacer{send: func() { sent.Add(1) }}
	p.request() // at once
	if sent.Load() != 1 {
		t.Fatalf("first request: %d sends, want 1", sent.Load())
	}
	start := time.Now()
	p.request() // deferred to the end of the interval
	p.request() // coalesced with it
	check.Until(t, 5*time.Second, "the deferred request", func() bool { return sent.Load() == 2 })
	if d := time.Since(start); d < keyframeInterval/2 {
		t.Errorf("the deferred request went out after %v, inside the %v interval", d, keyframeInterval)
	}
	p.request()
	p.stop() // cancels the scheduled one
	p.request()
	if n := sent.Load(); n != 2 {
		t.Errorf("%d sends after stop, want 2", n)
	}
}
