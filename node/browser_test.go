package node_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/media/mediatest"
)

var loopback = []netip.Addr{netip.MustParseAddr("127.0.0.1")}

func frames(c *media.Clip) []mediatest.Frame {
	var out []mediatest.Frame
	for _, s := range c.Samples() {
		out = append(out, mediatest.Frame{Data: s.Data, Duration: s.Duration})
	}
	return out
}

// attachTab joins a stand-in browser tab to a browser call and starts its
// tone and pattern.
func attachTab(t *testing.T, c *api.Client, id string) *mediatest.Browser {
	t.Helper()
	tab := mediatest.NewBrowser(t, loopback)
	ans, err := c.AttachBrowser(context.Background(), id, api.BrowserOffer{SDP: tab.Offer(t)})
	if err != nil {
		t.Fatalf("attach tab: %v", err)
	}
	tab.SetAnswer(t, ans.SDP)
	tab.Play(frames(media.Tone()), frames(media.Pattern()))
	return tab
}

// TestBrowserCalls: calls whose media comes from a browser tab through its
// own node (the tab here is a pion stand-in; web/ has the real browser's
// tests). The other node sees an ordinary call, records it, and its media
// reaches the tab; a second tab is refused; closing the tab ends the call
// on both ends; a tab that never connects fails the call.
func TestBrowserCalls(t *testing.T) {
	// The tab's connect timeout stays the default (10 s): a 2 s one failed
	// the first call before the stand-in tab connected, under the race
	// detector on a busy machine.
	net := testnet.New(t, 3, testnet.Options{})
	ctx := ctxT(t, 3*time.Minute)
	alice, bob := net.Nodes[1], net.Nodes[2]
	if _, err := alice.Client.AddContact(ctx, bob.Account().String(), "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.AddContact(ctx, alice.Account().String(), "alice"); err != nil {
		t.Fatal(err)
	}
	rec := t.TempDir()
	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{AutoAnswer: boolp(true), RecordDir: &rec}); err != nil {
		t.Fatal(err)
	}

	// Alice's tab calls Bob's headless node, which answers and records.
	c, err := alice.Client.Dial(ctx, api.CallRequest{To: "bob", Browser: true})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Browser {
		t.Errorf("the call does not say its media is bridged: %+v", c)
	}
	tab := attachTab(t, alice.Client, c.ID)
	waitCall(t, alice.Client, c.ID, "active")
	waitDirect(t, alice.Client, c.ID)
	check.Eventually(t, 20*time.Second, func() error {
		if a, v := tab.Received(); a < 50 || v < 20 {
			return fmt.Errorf("the tab received %d audio and %d video packets from Bob", a, v)
		}
		return nil
	})
	check.Eventually(t, 20*time.Second, func() error {
		if got, err := bob.Client.Call(ctx, c.ID); err != nil || got.PacketsReceived < 80 {
			return fmt.Errorf("bob received %d packets from the tab: %v", got.PacketsReceived, err)
		}
		return nil
	})
	// A second tab can't take over the call.
	other := mediatest.NewBrowser(t, loopback)
	if _, err := alice.Client.AttachBrowser(ctx, c.ID, api.BrowserOffer{SDP: other.Offer(t)}); !api.IsCode(err, api.CodeConflict) {
		t.Errorf("second tab: %v, want conflict", err)
	}
	// Closing the tab ends the call, on both ends, without a timeout.
	closed := time.Now()
	tab.Close()
	end := waitCall(t, alice.Client, c.ID, "ended")
	if end.EndReason != "hangup" {
		t.Errorf("caller's call ended %q, want hangup", end.EndReason)
	}
	if d := time.Since(closed); d > 8*time.Second {
		t.Errorf("the call ended %v after the tab closed", d)
	}
	// The call and the call log agree on how long it lasted.
	var log []api.Call
	check.Eventually(t, 20*time.Second, func() error {
		var err error
		if log, err = alice.Client.Calls(ctx, 10); err != nil || len(log) == 0 || log[0].ID != c.ID {
			return fmt.Errorf("alice's call log: %+v %v", log, err)
		}
		return nil
	})
	if end.DurationS <= 0 || end.DurationS != log[0].DurationS {
		t.Errorf("duration_s %v in GET /calls/{id}, %v in the list", end.DurationS, log[0].DurationS)
	}
	check.Eventually(t, 20*time.Second, func() error {
		got, err := bob.Client.Call(ctx, c.ID)
		if err != nil || got.State != "ended" || got.EndReason != "remote-hangup" {
			return fmt.Errorf("bob's call: %+v %v", got, err)
		}
		return nil
	})
	audio, video := mediatest.Frames(t, rec+"/"+c.ID+".ogg", rec+"/"+c.ID+".ivf")
	if audio < 45 || video < 8 {
		t.Fatalf("Bob recorded %d audio and %d video frames from the tab", audio, video)
	}

	// Bob's headless node calls Alice; two of her tabs get ready while it
	// rings; she answers in one: it gets Bob's media at once, the other's
	// connection is closed, and its answer is refused.
	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{AutoAnswer: boolp(false)}); err != nil {
		t.Fatal(err)
	}
	c1, err := bob.Client.Dial(ctx, api.CallRequest{To: "alice", Audio: "tone", Video: "pattern"})
	if err != nil {
		t.Fatal(err)
	}
	waitCall(t, alice.Client, c1.ID, "ringing")
	ready := func() (*mediatest.Browser, string) {
		tab := mediatest.NewBrowser(t, loopback)
		ans, err := alice.Client.AttachBrowser(ctx, c1.ID, api.BrowserOffer{SDP: tab.Offer(t)})
		if err != nil || ans.Tab == "" {
			t.Fatalf("a ringing tab attaching: %+v %v", ans, err)
		}
		tab.SetAnswer(t, ans.SDP)
		return tab, ans.Tab
	}
	one, oneTab := ready()
	two, twoTab := ready()
	for _, tab := range []*mediatest.Browser{one, two} {
		check.Eventually(t, 10*time.Second, func() error {
			if s := tab.PC.ConnectionState(); s != webrtc.PeerConnectionStateConnected {
				return fmt.Errorf("a ringing tab's connection is %s", s)
			}
			return nil
		})
	}
	if a, v := one.Received(); a+v != 0 {
		t.Errorf("a tab got %d packets before the call was answered", a+v)
	}
	one.Play(frames(media.Tone()), frames(media.Pattern()))
	if _, err := alice.Client.CallAction(ctx, c1.ID, "answer", &api.AnswerRequest{Tab: oneTab}); err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, 20*time.Second, func() error {
		if a, v := one.Received(); a < 50 || v < 20 {
			return fmt.Errorf("the answering tab received %d audio and %d video packets", a, v)
		}
		if s := two.PC.ConnectionState(); s == webrtc.PeerConnectionStateConnected {
			return fmt.Errorf("the other tab's connection is still %s", s)
		}
		return nil
	})
	if _, err := alice.Client.CallAction(ctx, c1.ID, "answer", &api.AnswerRequest{Tab: twoTab}); !api.IsCode(err, api.CodeConflict) {
		t.Errorf("the other tab's answer: %v, want conflict", err)
	}
	if _, err := alice.Client.CallAction(ctx, c1.ID, "hangup", nil); err != nil {
		t.Fatal(err)
	}
	if got := waitCall(t, bob.Client, c1.ID, "ended"); got.EndReason != "remote-hangup" || got.PacketsReceived < 20 {
		t.Errorf("bob's call with the ready tab: %+v", got)
	}

	// Bob's headless node calls Alice; her tab answers and gets his
	// pattern. A second tab's answer is refused.
	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{AutoAnswer: boolp(false)}); err != nil {
		t.Fatal(err)
	}
	c2, err := bob.Client.Dial(ctx, api.CallRequest{To: "alice", Audio: "tone", Video: "pattern"})
	if err != nil {
		t.Fatal(err)
	}
	waitCall(t, alice.Client, c2.ID, "ringing")
	if _, err := alice.Client.CallAction(ctx, c2.ID, "answer", &api.AnswerRequest{Browser: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.CallAction(ctx, c2.ID, "answer", &api.AnswerRequest{Browser: true}); !api.IsCode(err, api.CodeConflict) {
		t.Errorf("a second tab's answer: %v, want conflict", err)
	}
	tab2 := attachTab(t, alice.Client, c2.ID)
	check.Eventually(t, 20*time.Second, func() error {
		if a, v := tab2.Received(); a < 50 || v < 20 {
			return fmt.Errorf("the tab received %d audio and %d video packets from Bob's headless node", a, v)
		}
		return nil
	})
	if _, err := alice.Client.CallAction(ctx, c2.ID, "hangup", nil); err != nil {
		t.Fatal(err)
	}
	if got := waitCall(t, bob.Client, c2.ID, "ended"); got.EndReason != "remote-hangup" || got.PacketsReceived < 50 {
		t.Errorf("bob's call: %+v", got)
	}

	// A tab that never completes ICE fails the call within the connect
	// timeout.
	c3, err := alice.Client.Dial(ctx, api.CallRequest{To: "bob", Browser: true})
	if err != nil {
		t.Fatal(err)
	}
	dead := mediatest.NewBrowser(t, loopback)
	offer := dead.Offer(t)
	dead.Close()
	if _, err := alice.Client.AttachBrowser(ctx, c3.ID, api.BrowserOffer{SDP: offer}); err != nil {
		t.Fatal(err)
	}
	if got := waitCall(t, alice.Client, c3.ID, "ended"); got.EndReason != "failed" {
		t.Errorf("call with a dead tab ended %q, want failed", got.EndReason)
	}

	// Bad input: an offer without VP8, a headless call, mixed options.
	c4, err := alice.Client.Dial(ctx, api.CallRequest{To: "bob", Browser: true})
	if err != nil {
		t.Fatal(err)
	}
	h264 := strings.ReplaceAll(mediatest.NewBrowser(t, loopback).Offer(t), "VP8/90000", "VP7/90000")
	if _, err := alice.Client.AttachBrowser(ctx, c4.ID, api.BrowserOffer{SDP: h264}); !api.IsCode(err, api.CodeBadRequest) || !strings.Contains(err.Error(), "VP8") {
		t.Errorf("an offer without VP8: %v", err)
	}
	if _, err := alice.Client.AttachBrowser(ctx, c4.ID, api.BrowserOffer{SDP: "<img src=x onerror=alert(1)>"}); !api.IsCode(err, api.CodeBadRequest) {
		t.Errorf("garbage offer: %v", err)
	}
	if _, err := alice.Client.CallAction(ctx, c4.ID, "hangup", nil); err != nil {
		t.Fatal(err)
	}
	waitCall(t, alice.Client, c4.ID, "ended")
	c5, err := alice.Client.Dial(ctx, api.CallRequest{To: "bob", Audio: "tone"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.AttachBrowser(ctx, c5.ID, api.BrowserOffer{SDP: offer}); !api.IsCode(err, api.CodeConflict) {
		t.Errorf("attaching a tab to a headless call: %v, want conflict", err)
	}
	if _, err := alice.Client.CallAction(ctx, c5.ID, "hangup", nil); err != nil {
		t.Fatal(err)
	}
	waitCall(t, alice.Client, c5.ID, "ended")
	if _, err := alice.Client.Dial(ctx, api.CallRequest{To: "bob", Browser: true, Audio: "tone"}); !api.IsCode(err, api.CodeBadRequest) {
		t.Errorf("browser and tone: %v, want bad request", err)
	}
}

// TestLiveStreamCall: a call plays a FIFO as it is written (a bot piping
// ffmpeg's Ogg output), and the other node records it; a stream of the
// wrong kind is refused before anything is sent.
func TestLiveStreamCall(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{})
	ctx := ctxT(t, 2*time.Minute)
	alice, bob := net.Nodes[1], net.Nodes[2]
	if _, err := bob.Client.AddContact(ctx, alice.Account().String(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.AddContact(ctx, bob.Account().String(), "bob"); err != nil {
		t.Fatal(err)
	}
	rec := t.TempDir()
	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{AutoAnswer: boolp(true), RecordDir: &rec}); err != nil {
		t.Fatal(err)
	}
	tone, err := os.ReadFile("../media/clips/tone.ogg")
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "mic.ogg")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		_, _ = f.Write(tone) // one second of the tone, then the end of the stream
	})
	c, err := alice.Client.Dial(ctx, api.CallRequest{To: "bob", Audio: fifo})
	if err != nil {
		t.Fatal(err)
	}
	waitCall(t, alice.Client, c.ID, "active")
	check.Eventually(t, 20*time.Second, func() error {
		got, err := alice.Client.Call(ctx, c.ID)
		if err != nil || got.PacketsSent < 45 {
			return fmt.Errorf("sent %d packets of the 50-packet stream: %v", got.PacketsSent, err)
		}
		return nil
	})
	// The stream plays once: a second after it ended nothing more was
	// sent (a file would have looped).
	time.Sleep(time.Second) // asserting that nothing happens takes a wait
	if got, err := alice.Client.Call(ctx, c.ID); err != nil || got.PacketsSent > 55 {
		t.Fatalf("sent %d packets of a 50-packet live stream: %v", got.PacketsSent, err)
	}
	if _, err := alice.Client.CallAction(ctx, c.ID, "hangup", nil); err != nil {
		t.Fatal(err)
	}
	waitCall(t, bob.Client, c.ID, "ended")
	if n := mediatest.OggPackets(t, rec+"/"+c.ID+".ogg"); n < 45 {
		t.Fatalf("Bob recorded %d audio packets of the 50-packet stream", n)
	}

	// An IVF stream passed as audio is refused.
	pattern, err := os.ReadFile("../media/clips/pattern.ivf")
	if err != nil {
		t.Fatal(err)
	}
	cam := filepath.Join(t.TempDir(), "cam.ivf")
	if err := syscall.Mkfifo(cam, 0o600); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		f, err := os.OpenFile(cam, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		_, _ = f.Write(pattern)
	})
	if _, err := alice.Client.Dial(ctx, api.CallRequest{To: "bob", Audio: cam}); !api.IsCode(err, api.CodeBadRequest) || !strings.Contains(err.Error(), "not audio") {
		t.Fatalf("video stream as audio: %v", err)
	}
}
