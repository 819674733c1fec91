package media

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

func golden(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func goldenCandidates(t testing.TB) []string {
	return strings.Split(strings.TrimSpace(golden(t, "candidates.jsonl")), "\n")
}

func TestValidateSDPGolden(t *testing.T) {
	for _, name := range []string{"offer.sdp", "answer.sdp"} {
		if err := ValidateSDP(golden(t, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidateSDPRejects(t *testing.T) {
	offer := golden(t, "offer.sdp")
	audioOnly := offer[:strings.Index(offer, "m=video")]
	cand := "a=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\n"
	cases := map[string]string{
		"empty":             "",
		"oversized":         offer + strings.Repeat("a=x:"+strings.Repeat("y", 100)+"\r\n", 200),
		"too many lines":    offer + strings.Repeat("a=x\r\n", maxSDPLines),
		"long line":         offer + "a=x:" + strings.Repeat("y", maxSDPLineLen) + "\r\n",
		"binary byte":       strings.Replace(offer, "s=-", "s=\x01", 1),
		"not sdp":           "hello world",
		"no media":          offer[:strings.Index(offer, "m=audio")],
		"h264":              strings.Replace(offer, "VP8/90000", "H264/90000", 1),
		"static pt":         strings.Replace(audioOnly, "SAVPF 111", "SAVPF 0", 1),
		"pt without map":    strings.Replace(audioOnly, "SAVPF 111", "SAVPF 111 112", 1),
		"mono opus":         strings.Replace(offer, "opus/48000/2", "opus/48000/1", 1),
		"three media":       offer + offer[strings.Index(offer, "m=video"):],
		"two audio":         audioOnly + strings.Replace(offer[strings.Index(offer, "m=audio"):strings.Index(offer, "m=video")], "mid:0", "mid:2", 1),
		"data channel":      audioOnly + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n",
		"plain rtp":         strings.Replace(audioOnly, "UDP/TLS/RTP/SAVPF", "RTP/AVP", 1),
		"no fingerprint":    removeLines(offer, "a=fingerprint"),
		"md5 fingerprint":   strings.Replace(offer, "sha-256 82:5B", "md5 82:5B", 1),
		"short fingerprint": strings.Replace(offer, "82:5B:68:AF:", "", 1),
		"no ufrag":          removeLines(offer, "a=ice-ufrag"),
		"no pwd":            removeLines(offer, "a=ice-pwd"),
		"short pwd":         strings.ReplaceAll(offer, "frDuqSLrHPldIEAUMabIxpBtvnrhLIxh", "short"),
		"bad setup":         strings.Replace(offer, "setup:actpass", "setup:holdconn", 1),
		"mdns candidate":    audioOnly + strings.Replace(cand, "192.0.2.1", "abcd.local", 1),
		"host candidate":    audioOnly + strings.Replace(cand, "192.0.2.1", "evil.example.com", 1),
		"tcp candidate":     audioOnly + strings.Replace(cand, "udp", "tcp", 1),
		"rtcp component":    audioOnly + strings.Replace(cand, " 1 udp", " 2 udp", 1),
		"multicast cand":    audioOnly + strings.Replace(cand, "192.0.2.1", "224.0.0.1", 1),
		"many candidates":   audioOnly + strings.Repeat(cand, maxSDPCandidates+1),
		"long mid":          strings.Replace(offer, "a=mid:0", "a=mid:"+strings.Repeat("m", 40), 1),
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			err := ValidateSDP(s)
			t.Log(err)
			if !errors.Is(err, ErrBadSDP) {
				t.Fatalf("ValidateSDP = %v, want ErrBadSDP", err)
			}
		})
	}
	// Within the caps the same SDP with candidates is fine.
	if err := ValidateSDP(audioOnly + cand); err != nil {
		t.Errorf("audio-only offer with a candidate: %v", err)
	}
}

func removeLines(s, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(line, prefix) {
			b.WriteString(line)
		}
	}
	return b.String()
}

func TestValidateCandidate(t *testing.T) {
	for _, c := range goldenCandidates(t) {
		if err := ValidateCandidate(c); err != nil {
			t.Errorf("golden %s: %v", c, err)
		}
	}
	ok := []string{
		`{"candidate":""}`,
		`{"candidate":"candidate:1 1 udp 2130706431 2001:db8::1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}`,
	}
	for _, c := range ok {
		if err := ValidateCandidate(c); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
	bad := map[string]string{
		"oversized":     `{"candidate":"` + strings.Repeat("a", MaxCandidateSize) + `"}`,
		"not json":      `candidate:1 1 udp 1 192.0.2.1 5000 typ host`,
		"unknown field": `{"candidate":"","evil":1}`,
		"trailing data": `{"candidate":""} {}`,
		"garbage":       `{"candidate":"candidate:nonsense"}`,
		"mdns":          `{"candidate":"candidate:1 1 udp 1 x.local 5000 typ host"}`,
		"hostname":      `{"candidate":"candidate:1 1 udp 1 example.com 5000 typ host"}`,
		"tcp":           `{"candidate":"candidate:1 1 tcp 1 192.0.2.1 5000 typ host tcptype passive"}`,
		"port zero":     `{"candidate":"candidate:1 1 udp 1 192.0.2.1 0 typ host"}`,
		"unspecified":   `{"candidate":"candidate:1 1 udp 1 0.0.0.0 5000 typ host"}`,
		"bad typ":       `{"candidate":"candidate:1 1 udp 1 192.0.2.1 5000 typ wormhole"}`,
		"long mid":      `{"candidate":"","sdpMid":"` + strings.Repeat("m", 40) + `"}`,
		"mline index":   `{"candidate":"","sdpMLineIndex":7}`,
		"bad ufrag":     `{"candidate":"","usernameFragment":"a b"}`,
		"wrong type":    `{"candidate":5}`,
	}
	for name, c := range bad {
		t.Run(name, func(t *testing.T) {
			err := ValidateCandidate(c)
			t.Log(err)
			if !errors.Is(err, ErrBadCandidate) {
				t.Fatalf("ValidateCandidate = %v, want ErrBadCandidate", err)
			}
		})
	}
}

// TestHostileSignalling: a bad answer or candidate from the remote is
// refused with a clear error before pion sees it, counted by the engine,
// and leaves the call usable.
func TestHostileSignalling(t *testing.T) {
	e := newEngine(t, Config{})
	c := newCall(t, e, CallConfig{ID: "h", Outgoing: true, Source: Tone()})
	if _, err := c.Offer(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, global := e.ParseCount(), ParseCount()
	bad := strings.Replace(golden(t, "answer.sdp"), "VP8/90000", "H264/90000", 1)
	if err := c.SetAnswer(bad); !errors.Is(err, ErrBadSDP) {
		t.Fatalf("SetAnswer(h264) = %v, want ErrBadSDP", err)
	}
	if err := c.SetAnswer(strings.Repeat("v=0\r\n", 10000)); !errors.Is(err, ErrBadSDP) {
		t.Fatalf("SetAnswer(oversized) = %v, want ErrBadSDP", err)
	}
	if got := e.ParseCount() - before; got != 2 {
		t.Errorf("engine ParseCount grew by %d, want 2", got)
	}
	if got := ParseCount() - global; got < 2 {
		t.Errorf("ParseCount grew by %d, want at least 2", got)
	}
	if err := c.AddRemoteCandidate(`{"candidate":"candidate:1 1 udp 1 x.local 5000 typ host"}`); !errors.Is(err, ErrBadCandidate) {
		t.Errorf("AddRemoteCandidate(mdns) = %v, want ErrBadCandidate", err)
	}
	if k := c.Down(); k != "" {
		t.Errorf("refused input brought the connection down (%s)", k)
	}
	// Flooding candidates hits the per-call cap.
	cand := `{"candidate":"candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}`
	var err error
	for range maxRemoteCandidates + 1 {
		if err = c.AddRemoteCandidate(cand); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrTooMany) {
		t.Errorf("candidate flood: %v, want ErrTooMany", err)
	}
}

// TestPolicyRefusalNeverParses: package call refuses a caller by closing
// the connection without Answer; the SDP parser is never reached.
func TestPolicyRefusalNeverParses(t *testing.T) {
	e := newEngine(t, Config{})
	c := newCall(t, e, CallConfig{ID: "refused"})
	c.Close()
	if n := e.ParseCount(); n != 0 {
		t.Errorf("ParseCount = %d after a refused call, want 0", n)
	}
	if _, err := c.Answer(context.Background(), golden(t, "offer.sdp")); !errors.Is(err, ErrEnded) {
		t.Errorf("Answer after Close = %v, want ErrEnded", err)
	}
	if n := e.ParseCount(); n != 0 {
		t.Errorf("ParseCount = %d after Answer on an ended call, want 0", n)
	}
}

func FuzzValidateSDP(f *testing.F) {
	f.Add(golden(f, "offer.sdp"))
	f.Add(golden(f, "answer.sdp"))
	f.Add("v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateSDP(s)
		if err != nil && !errors.Is(err, ErrBadSDP) {
			t.Fatalf("error does not wrap ErrBadSDP: %v", err)
		}
		if err == nil && len(s) > MaxSDPSize {
			t.Fatalf("accepted %d bytes", len(s))
		}
	})
}

func FuzzValidateCandidate(f *testing.F) {
	for _, c := range goldenCandidates(f) {
		f.Add(c)
	}
	f.Add(`{"candidate":""}`)
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateCandidate(s)
		if err != nil && !errors.Is(err, ErrBadCandidate) {
			t.Fatalf("error does not wrap ErrBadCandidate: %v", err)
		}
		if err == nil && len(s) > MaxCandidateSize {
			t.Fatalf("accepted %d bytes", len(s))
		}
	})
}
