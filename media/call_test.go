package media

import (
	"encoding/json"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/media/mediatest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func within(got, want int, tol float64) bool {
	return float64(got) >= float64(want)*(1-tol) && float64(got) <= float64(want)*(1+tol)
}

// TestDirectCall is the main user story: two nodes on one machine call
// each other with audio and video, both record what they receive, and the
// recordings hold as many frames as were played.
func TestDirectCall(t *testing.T) {
	eA := newEngine(t, Config{})
	eB := newEngine(t, Config{})
	dir := t.TempDir()
	recA, err := NewRecorder(filepath.Join(dir, "a.ogg"), filepath.Join(dir, "a.ivf"))
	if err != nil {
		t.Fatal(err)
	}
	recB, err := NewRecorder(filepath.Join(dir, "b.ogg"), filepath.Join(dir, "b.ivf"))
	if err != nil {
		t.Fatal(err)
	}
	src := Sources(Tone(), Pattern())
	caller := newCall(t, eA, CallConfig{ID: "call-1", Outgoing: true, Source: src, Sink: recA})
	callee := newCall(t, eB, CallConfig{ID: "call-1", Source: src, Sink: recB})
	wA, wB := watch(t, caller), watch(t, callee)

	var mu sync.Mutex
	var cands []string
	connect(t, caller, callee, func(c string) { mu.Lock(); cands = append(cands, c); mu.Unlock() })
	activeA := wA.wait(t, Connected, 10*time.Second)
	activeB := wB.wait(t, Connected, 10*time.Second)
	for name, ev := range map[string]Event{"caller": activeA, "callee": activeB} {
		if ev.Path != PathDirect {
			t.Errorf("%s connected over path %q, want direct", name, ev.Path)
		}
	}

	check.Until(t, 5*time.Second, "media both ways", func() bool {
		return caller.Stats().SetupTime > 0 && callee.Stats().SetupTime > 0
	})
	const playFor = 2 * time.Second
	time.Sleep(playFor) // let media flow for a known time
	live := caller.Stats()

	caller.Close()
	endA := time.Now()
	wB.wait(t, RemoteClosed, 10*time.Second) // the caller's DTLS close
	callee.Close()                           // as its owner does: the recording is complete
	<-wA.done
	<-wB.done
	if got, want := kindsOf(wA.history()), []EventKind{Connected}; !slices.Equal(got, want) {
		t.Errorf("caller reported %v, want %v (closing is its owner's doing, not an event)", got, want)
	}
	if got, want := kindsOf(wB.history()), []EventKind{Connected, RemoteClosed}; !slices.Equal(got, want) {
		t.Errorf("callee reported %v, want %v", got, want)
	}

	if live.Path != PathDirect || live.LocalCandidate != "host" {
		t.Errorf("path %q over %s/%s, want direct host", live.Path, live.LocalCandidate, live.RemoteCandidate)
	}
	activeFor := endA.Sub(activeA.At)
	for name, c := range map[string]*Call{"caller": caller, "callee": callee} {
		st := c.Stats()
		t.Logf("%s: %+v", name, st)
		// 50 audio packets/s plus at least 15 video packets/s each way.
		if min := uint64(activeFor.Seconds() * 50); st.PacketsSent < min || st.PacketsReceived < min {
			t.Errorf("%s sent %d and received %d packets in %v, want at least %d each way", name, st.PacketsSent, st.PacketsReceived, activeFor, min)
		}
		if st.BytesSent == 0 || st.BytesReceived == 0 {
			t.Errorf("%s bytes sent %d, received %d", name, st.BytesSent, st.BytesReceived)
		}
		if st.SetupTime <= 0 || st.SetupTime > 5*time.Second {
			t.Errorf("%s setup time %v", name, st.SetupTime)
		}
		if st.Loss > 0.01 {
			t.Errorf("%s loss %.3f on loopback", name, st.Loss)
		}
	}
	if live.RTT <= 0 || live.RTT > time.Second {
		t.Errorf("RTT %v on loopback", live.RTT)
	}

	// Recordings: one Opus packet per 20 ms and 15 video frames per second
	// of media received, decodable frame by frame.
	for _, side := range []string{"a", "b"} {
		// Every audio page must be an Opus packet.
		audio := mediatest.OggPacketsCheck(t, filepath.Join(dir, side+".ogg"), func(p []byte) error {
			_, err := opusSamples(p)
			return err
		})
		video := mediatest.IVFFrames(t, filepath.Join(dir, side+".ivf"))
		wantAudio := int(activeFor.Seconds() * 50)
		wantVideo := int(activeFor.Seconds() * 15)
		if !within(audio, wantAudio, 0.25) {
			t.Errorf("%s.ogg holds %d Opus packets for %v of call, want about %d", side, audio, activeFor, wantAudio)
		}
		if !within(video, wantVideo, 0.3) {
			t.Errorf("%s.ivf holds %d VP8 frames for %v of call, want about %d", side, video, activeFor, wantVideo)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for _, c := range cands {
		var ci struct{ Candidate string }
		if err := json.Unmarshal([]byte(c), &ci); err != nil || !strings.Contains(ci.Candidate, "127.0.0.1") {
			t.Errorf("candidate %s: want a loopback candidate", c)
		}
	}
	if len(cands) == 0 {
		t.Error("no candidates were trickled")
	}
}

// TestReceiveOnly: a caller with no source (a bot that only records, or a
// user without microphone) still receives both kinds and sends nothing.
func TestReceiveOnly(t *testing.T) {
	eA, eB := newEngine(t, Config{}), newEngine(t, Config{})
	caller := newCall(t, eA, CallConfig{ID: "r", Outgoing: true})
	callee := newCall(t, eB, CallConfig{ID: "r", Source: Sources(Tone(), Pattern())})
	wA := watch(t, caller)
	connect(t, caller, callee, nil)
	wA.wait(t, Connected, 10*time.Second)
	check.Until(t, 5*time.Second, "audio and video at the caller", func() bool {
		return caller.Stats().PacketsReceived >= 40
	})
	if st := caller.Stats(); st.PacketsSent != 0 || st.SetupTime != 0 {
		t.Errorf("receive-only caller sent %d packets (setup %v)", st.PacketsSent, st.SetupTime)
	}
	caller.mu.Lock()
	kinds := len(caller.recvKinds)
	caller.mu.Unlock()
	if kinds != 2 {
		t.Errorf("caller receives %d kinds, want audio and video", kinds)
	}
}

// TestAudioOnlyOffer: an offer without video gets an audio-only answer
// even when the callee could send video.
func TestAudioOnlyOffer(t *testing.T) {
	e := newEngine(t, Config{})
	callee := newCall(t, e, CallConfig{ID: "a", Source: Sources(Tone(), Pattern())})
	offer := golden(t, "offer.sdp")
	offer = strings.Replace(offer[:strings.Index(offer, "m=video")], "BUNDLE 0 1", "BUNDLE 0", 1)
	answer, err := callee.Answer(t.Context(), offer)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(answer, "m=video") || !strings.Contains(answer, "m=audio") {
		t.Errorf("answer to an audio-only offer:\n%s", answer)
	}
	if n := len(callee.pc.GetSenders()); n != 1 {
		t.Errorf("%d senders, want 1 (audio)", n)
	}
}
