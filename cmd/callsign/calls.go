package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/spf13/pflag"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callsign/callsign/api"
)

// mediaFlags are the media of a headless call: what to send and where to
// record what comes back.
type mediaFlags struct{ audio, video, record string }

func (m *mediaFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&m.audio, "audio", "", "`SOURCE` of the audio to send: tone, an Ogg/Opus file, a FIFO, or - for standard input")
	fs.StringVar(&m.video, "video", "", "`SOURCE` of the video to send: pattern, an IVF/VP8 file, a FIFO, or - for standard input")
	fs.StringVar(&m.record, "record", "", "record the received audio (Ogg/Opus) and video (IVF) into `DIR`")
}

// streamDetails is the help of a command that takes --audio and --video;
// example is how to call it.
func streamDetails(example string) []string {
	return []string{
		"The node opens files and FIFOs by path on its own machine. With - the call sends what comes " +
			"on standard input, Ogg/Opus for --audio or IVF/VP8 for --video, as ffmpeg writes it:",
		"  ffmpeg -re -i talk.mp3 -c:a libopus -f ogg - | " + example,
	}
}

// check checks the media flags before anything is asked of the node.
func (m *mediaFlags) check() error {
	if m.audio == "-" && m.video == "-" {
		return usageError{msg: "only one of --audio and --video can be - (standard input)"}
	}
	return nil
}

// liveInput is standard input fed to the node through a FIFO.
type liveInput struct {
	feed    *fifoFeed
	release func()
}

// prepare makes the media flags ready for the node: paths absolute (the
// node does not share the CLI's working directory), and "-" the path of a
// FIFO fed from standard input. The caller closes the returned liveInput
// (nil when no flag is "-") once the call is over.
func (m *mediaFlags) prepare(e *env) (*liveInput, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	for _, p := range []*string{&m.audio, &m.video, &m.record} {
		if *p == "" || *p == "tone" || *p == "pattern" || *p == "-" {
			continue
		}
		a, err := filepath.Abs(*p)
		if err != nil {
			return nil, err
		}
		*p = a
	}
	target, name := &m.audio, "audio.ogg"
	switch {
	case m.video == "-":
		target, name = &m.video, "video.ivf"
	case m.audio != "-":
		return nil, nil
	}
	src, release, err := stdinStream(e.stdin)
	if err != nil {
		return nil, err
	}
	feed, err := newFIFOFeed(src, name)
	if err != nil {
		release()
		return nil, err
	}
	*target = feed.path
	feed.Start()
	return &liveInput{feed: feed, release: release}, nil
}

// close stops feeding standard input and removes the FIFO.
func (l *liveInput) close(e *env) {
	if l == nil {
		return
	}
	if err := l.feed.Close(); err != nil {
		fmt.Fprintf(e.stderr, "warning: standard input stream: %s\n", oneLine(err.Error()))
	}
	l.release()
}

// callEvents subscribes to the node's events for following a call. The
// stream outlives ctx (the call is followed to its end after Ctrl-C) and
// ends with the returned stop. With no stream the follower polls.
func callEvents(ctx context.Context, c *api.Client) (<-chan api.Event, func()) {
	ctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	events, err := c.Events(ctx)
	if err != nil {
		return nil, stop
	}
	return events, stop
}

func callCommand() *command {
	var (
		m         mediaFlags
		dur       time.Duration
		relayOnly bool
	)
	return &command{
		name: "calls start", aliases: []string{"call"}, args: "NAME", read: true,
		summary: "call someone by handle (headless: send files, a stream or a tone and pattern, record what comes back); " +
			"progress goes to standard error, a summary to standard output",
		details: streamDetails("callsign call alice --audio -"),
		flags: func(fs *pflag.FlagSet) {
			m.register(fs)
			fs.DurationVar(&dur, "for", 0, "hang up `DURATION` after the call connects (default: until Ctrl-C or the other side hangs up)")
			fs.BoolVar(&relayOnly, "relay-only", false, "use the relay only, so the other side never learns your address")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if err := needArgs(args, 1, "NAME"); err != nil {
				return err
			}
			if err := m.check(); err != nil {
				return err
			}
			c, err := e.api()
			if err != nil {
				return err
			}
			live, err := m.prepare(e)
			if err != nil {
				return err
			}
			defer live.close(e)
			events, stop := callEvents(ctx, c)
			defer stop()
			call, err := c.Dial(ctx, api.CallRequest{To: args[0], Audio: m.audio, Video: m.video, Record: m.record, RelayOnly: relayOnly})
			if err != nil {
				return err
			}
			// Dial returns once the invite is delivered, when the other
			// side may be ringing already (or more): progress starts at
			// "calling", and the events, subscribed before Dial, tell
			// what came after, in order.
			if call.State != "ended" && events != nil {
				call.State = "calling"
			}
			final, err := followCall(ctx, e, c, events, call, dur)
			if err != nil {
				return err
			}
			return printCallResult(e, final)
		},
	}
}

// How often followCall asks the node for the call's state: often once the
// event stream is gone, rarely while it runs, in case the node dropped an
// event (it drops events for a slow subscriber rather than wait).
var (
	callPollFallback = time.Second
	callPollGuard    = 10 * time.Second
)

// hangupWait is how long a call may take to end once hung up.
const hangupWait = 10 * time.Second

// stateRank orders call states, so that a late event never takes a call
// back to an earlier state.
var stateRank = map[string]int{"calling": 1, "ringing": 2, "connecting": 3, "active": 4, "ended": 5}

// followCall reports a call's progress on stderr until it ends, hanging up
// after dur once active (dur > 0) or when ctx ends (Ctrl-C). It follows
// the call on events (from callEvents, subscribed before the call began so
// that no state is missed), and polls when there are none. cur is the call
// as the node last gave it. It returns the ended call with its figures.
func followCall(ctx context.Context, e *env, c *api.Client, events <-chan api.Event, cur api.Call, dur time.Duration) (api.Call, error) {
	bg := context.WithoutCancel(ctx) // the follower outlives Ctrl-C
	get := func() (api.Call, error) {
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		return c.Call(ctx, cur.ID)
	}
	if cur.PeerName == "" {
		if n, ok := newPetnames(c).lookup(bg, cur.Peer); ok {
			cur.PeerName = n
		}
	}
	// advance moves cur on to next, never back, keeping what next lacks
	// (events carry the state, not the name, path or figures).
	advance := func(next api.Call) {
		if next.ID != cur.ID || stateRank[next.State] < stateRank[cur.State] {
			return
		}
		if next.PeerName == "" {
			next.PeerName = cur.PeerName
		}
		if next.Path == "" {
			next.Path = cur.Path
		}
		cur = next
	}

	poll := time.NewTicker(callPollGuard)
	defer poll.Stop()
	if events == nil {
		poll.Reset(callPollFallback)
	}
	hangTimer := time.NewTimer(time.Hour)
	hangTimer.Stop()
	defer hangTimer.Stop()
	var hangC, endBy <-chan time.Time
	hungUp := false
	hangup := func() error {
		hungUp, hangC = true, nil
		endBy = time.After(hangupWait)
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		cl, err := c.CallAction(ctx, cur.ID, "hangup", nil)
		if err != nil {
			if now, gerr := get(); gerr == nil && now.State == "ended" {
				advance(now) // it ended meanwhile
				return nil
			}
			return err
		}
		advance(cl)
		poll.Reset(callPollFallback) // the end is near: a lost event costs little
		return nil
	}
	interrupt := ctx.Done()
	shown := ""
	for {
		if cur.State != shown {
			shown = cur.State
			printCallState(e.stderr, cur)
		}
		if cur.State == "ended" {
			if fin, err := get(); err == nil && fin.State == "ended" {
				advance(fin) // the final figures: path, setup, packets, recordings
			}
			return cur, nil
		}
		if cur.State == "active" && dur > 0 && !hungUp && hangC == nil {
			hangTimer.Reset(dur)
			hangC = hangTimer.C
		}
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil // the stream dropped: poll
				poll.Reset(callPollFallback)
				continue
			}
			next, ok := callFromEvent(ev, cur.ID)
			if !ok {
				continue
			}
			if next.State == "active" && next.Path == "" {
				if full, err := get(); err == nil {
					next = full
				}
			}
			advance(next)
		case <-poll.C:
			now, err := get()
			if err != nil {
				return cur, err
			}
			advance(now)
		case <-hangC:
			if err := hangup(); err != nil {
				return cur, err
			}
		case <-endBy:
			return cur, fmt.Errorf("call %s did not end within %v of hanging up", cur.ID, hangupWait)
		case <-interrupt:
			interrupt = nil
			if !hungUp {
				if err := hangup(); err != nil {
					return cur, err
				}
			}
		}
	}
}

// callFromEvent returns the call an event is about, if it is call id.
func callFromEvent(ev api.Event, id string) (api.Call, bool) {
	if ev.Type != api.EventCallState && ev.Type != api.EventIncomingCall {
		return api.Call{}, false
	}
	var cl api.Call
	if json.Unmarshal(ev.Data, &cl) != nil || cl.ID != id {
		return api.Call{}, false
	}
	return cl, true
}

// printCallState prints one line of a call's progress.
func printCallState(w io.Writer, c api.Call) {
	switch c.State {
	case "calling":
		fmt.Fprintf(w, "calling %s\n", callPeer(c))
	case "active":
		if c.Path != "" {
			fmt.Fprintf(w, "connected (%s)\n", c.Path)
		} else {
			fmt.Fprintln(w, "connected")
		}
	case "ended":
		if c.EndReason != "" {
			fmt.Fprintf(w, "ended: %s\n", c.EndReason)
		} else {
			fmt.Fprintln(w, "ended")
		}
	default:
		fmt.Fprintln(w, c.State)
	}
}

// callPeer is the name a call's other side goes by: the contact's
// petname, else the account id.
func callPeer(c api.Call) string {
	if c.PeerName != "" {
		return c.PeerName
	}
	return c.Peer
}

func printCallResult(e *env, c api.Call) error {
	return e.print(struct {
		ID              string `json:"id"`
		Peer            string `json:"peer"`
		State           string `json:"state"`
		EndReason       string `json:"end_reason"`
		Path            string `json:"path"`
		SetupMS         int64  `json:"setup_ms"`
		PacketsSent     uint64 `json:"packets_sent"`
		PacketsReceived uint64 `json:"packets_received"`
		PeerName        string `json:"peer_name,omitempty"`
		RecordedAudio   string `json:"recorded_audio,omitempty"`
		RecordedVideo   string `json:"recorded_video,omitempty"`
	}{c.ID, c.Peer, c.State, c.EndReason, c.Path, c.SetupMS, c.PacketsSent, c.PacketsReceived, c.PeerName, c.RecordedAudio, c.RecordedVideo},
		func(w io.Writer) {
			fmt.Fprintf(w, "call %s with %s: %s (%s), path %s, setup %d ms, packets sent %d, received %d\n",
				c.ID, callPeer(c), c.State, c.EndReason, orNone(c.Path), c.SetupMS, c.PacketsSent, c.PacketsReceived)
		})
}

func runCalls(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 0, "no arguments")
	if err != nil {
		return err
	}
	calls, err := c.Calls(ctx, 100)
	if err != nil {
		return err
	}
	names := newPetnames(c)
	for i, cl := range calls {
		if n, ok := names.lookup(ctx, cl.Peer); ok && cl.PeerName == "" {
			calls[i].PeerName = n
		}
	}
	return e.print(calls, func(w io.Writer) {
		if len(calls) == 0 {
			fmt.Fprintln(w, "no calls yet")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tWHEN\tDIR\tWITH\tSTATE\tREASON\tPATH\tDURATION")
		for _, c := range calls {
			reason := c.EndReason
			if c.Blocked {
				reason = "blocked by your call settings"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0fs\n", c.ID, c.Start.Local().Format("2006-01-02 15:04:05"),
				c.Direction, callPeer(c), c.State, reason, c.Path, c.DurationS)
		}
		tw.Flush()
	})
}

// pickCall finds the call an action without an ID means: the ringing
// incoming call (answer, decline) or the live one (hangup); none says
// what there is none of.
func pickCall(ctx context.Context, c *api.Client, args []string, none string, want func(api.Call) bool) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	calls, err := c.Calls(ctx, 10)
	if err != nil {
		return "", err
	}
	for _, cl := range calls {
		if cl.State != "ended" && want(cl) {
			return cl.ID, nil
		}
	}
	return "", &hintError{msg: none, hint: "`callsign calls` lists calls and their IDs"}
}

func atMostOneID(args []string) error {
	if len(args) > 1 {
		return usageError{msg: fmt.Sprintf("expected at most one call ID, got %d arguments", len(args))}
	}
	return nil
}

func ringingIn(cl api.Call) bool { return cl.Direction == "in" && cl.State == "ringing" }

func answerCommand() *command {
	var m mediaFlags
	return &command{
		name: "calls answer", aliases: []string{"answer"}, args: "[ID]", summary: "answer a ringing call (default: the one ringing now); with a stream on standard input, " +
			"stay until the call ends",
		details: streamDetails("callsign answer --audio -"),
		flags:   m.register,
		run: func(ctx context.Context, e *env, args []string) error {
			if err := atMostOneID(args); err != nil {
				return err
			}
			if err := m.check(); err != nil {
				return err
			}
			c, err := e.api()
			if err != nil {
				return err
			}
			id, err := pickCall(ctx, c, args, "no call is ringing", ringingIn)
			if err != nil {
				return err
			}
			live, err := m.prepare(e)
			if err != nil {
				return err
			}
			defer live.close(e)
			var events <-chan api.Event
			if live != nil {
				var stop func()
				events, stop = callEvents(ctx, c)
				defer stop()
			}
			cl, err := c.CallAction(ctx, id, "answer", &api.AnswerRequest{Audio: m.audio, Video: m.video, Record: m.record})
			if err != nil {
				return err
			}
			cl.PeerName = newPetnames(c).name(ctx, cl.Peer, cl.PeerName)
			fmt.Fprintf(e.stdout, "answered %s (%s)\n", cl.ID, callPeer(cl))
			if live == nil {
				return nil
			}
			_, err = followCall(ctx, e, c, events, cl, 0)
			return err
		},
	}
}

func callAction(action string) func(ctx context.Context, e *env, args []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if err := atMostOneID(args); err != nil {
			return err
		}
		c, err := e.api()
		if err != nil {
			return err
		}
		none, want := "no call is ringing", ringingIn
		if action == "hangup" {
			none, want = "no call is live", func(api.Call) bool { return true }
		}
		id, err := pickCall(ctx, c, args, none, want)
		if err != nil {
			return err
		}
		cl, err := c.CallAction(ctx, id, action, nil)
		if err != nil {
			return err
		}
		cl.PeerName = newPetnames(c).name(ctx, cl.Peer, cl.PeerName)
		fmt.Fprintf(e.stdout, "%s %s (%s)\n", map[string]string{"decline": "declined", "hangup": "hung up"}[action], cl.ID, callPeer(cl))
		return nil
	}
}

func settingsCallsCommand() *command {
	var record string
	return &command{
		name: "settings calls", args: "[SETTING...]", read: true,
		forms: []string{"", "everyone|contacts|following|verified|nobody", "always-relay on|off",
			"autoanswer --record DIR", "autoanswer off", "allow|deny|default NAME"},
		summary: "who may call you and how; with no argument, show the settings",
		details: []string{
			"everyone, contacts (the default), following, verified or nobody: who may call you. " +
				"always-relay on: calls go through a relay, so no caller learns your address. " +
				"autoanswer: your node answers every call it lets ring, sending a tone and a pattern and recording into DIR. " +
				"allow, deny or default NAME: a contact's own rule, over who may call.",
		},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&record, "record", "", "with autoanswer: record answered calls into `DIR`")
		},
		run: func(ctx context.Context, e *env, args []string) error { return runCallSettings(ctx, e, args, record) },
	}
}

func runCallSettings(ctx context.Context, e *env, args []string, record string) error {
	var ch api.CallSettingsChange
	on := func(v string) (*bool, error) {
		switch v {
		case "on":
			t := true
			return &t, nil
		case "off":
			f := false
			return &f, nil
		}
		return nil, usageError{msg: fmt.Sprintf("expected on or off, got %q", v)}
	}
	var err error
	switch {
	case len(args) == 0:
	case len(args) == 1 && args[0] == "autoanswer":
		if record == "" {
			return usageError{msg: "autoanswer needs --record DIR (or: autoanswer off)"}
		}
		t := true
		dir, err := filepath.Abs(record)
		if err != nil {
			return err
		}
		ch.AutoAnswer, ch.RecordDir = &t, &dir
	case len(args) == 1:
		p := args[0]
		ch.Policy = &p
	case len(args) == 2 && args[0] == "always-relay":
		if ch.AlwaysRelay, err = on(args[1]); err != nil {
			return err
		}
	case len(args) == 2 && args[0] == "autoanswer":
		if args[1] != "off" {
			return usageError{msg: fmt.Sprintf("expected autoanswer off, or autoanswer --record DIR, got autoanswer %q", args[1])}
		}
		f := false
		ch.AutoAnswer = &f
	case len(args) == 2 && (args[0] == "allow" || args[0] == "deny" || args[0] == "default"):
		ch.RuleName, ch.Rule = args[1], args[0]
	default:
		return usageError{msg: fmt.Sprintf("unknown call setting %q", strings.Join(args, " "))}
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var s api.CallSettings
	if len(args) == 0 {
		s, err = c.CallSettings(ctx)
	} else {
		s, err = c.ChangeCallSettings(ctx, ch)
	}
	if err != nil {
		return err
	}
	return e.print(s, func(w io.Writer) {
		fmt.Fprintf(w, "who may call  %s\nalways relay  %v\nautoanswer    %v", s.Policy, s.AlwaysRelay, s.AutoAnswer)
		if s.AutoAnswer && s.RecordDir != "" {
			fmt.Fprintf(w, " (recording into %s)", s.RecordDir)
		}
		fmt.Fprintln(w)
		names := newPetnames(c)
		for _, acct := range slices.Sorted(maps.Keys(s.Rules)) {
			fmt.Fprintf(w, "%-13s %s\n", s.Rules[acct], names.name(ctx, acct, ""))
		}
	})
}
