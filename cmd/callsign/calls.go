package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callsign/callsign/api"
)

func callCommands() []*command {
	return []*command{
		callCommand(),
		{name: "calls", summary: "list live calls and the call log, newest first", read: true, run: runCalls},
		answerCommand(),
		{name: "decline", args: "[ID]", summary: "decline the ringing call", run: callAction("decline")},
		{name: "hangup", args: "[ID]", summary: "hang up the live call", run: callAction("hangup")},
		settingsCallsCommand(),
	}
}

type mediaFlags struct{ audio, video, record string }

func (m *mediaFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.audio, "audio", "", "audio to send: tone, or an Ogg/Opus file")
	fs.StringVar(&m.video, "video", "", "video to send: pattern, or an IVF/VP8 file")
	fs.StringVar(&m.record, "record", "", "directory to record the received audio (Ogg/Opus) and video (IVF) into")
}

func (m *mediaFlags) abs() error {
	for _, p := range []*string{&m.audio, &m.video, &m.record} {
		if *p == "" || *p == "tone" || *p == "pattern" {
			continue
		}
		a, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = a
	}
	return nil
}

func callCommand() *command {
	var (
		m         mediaFlags
		dur       time.Duration
		relayOnly bool
	)
	return &command{
		name: "call", args: "NAME", summary: "call someone by handle (headless: send files or a tone and pattern, record what comes back)", read: true,
		flags: func(fs *flag.FlagSet) {
			m.register(fs)
			fs.DurationVar(&dur, "for", 0, "hang up this long after the call connects (default: until Ctrl-C or the other side hangs up)")
			fs.BoolVar(&relayOnly, "relay-only", false, "use the relay only, so the other side never learns your address")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if err := needArgs(args, 1, "NAME"); err != nil {
				return err
			}
			if err := m.abs(); err != nil {
				return err
			}
			c, err := e.api()
			if err != nil {
				return err
			}
			call, err := c.Dial(ctx, api.CallRequest{To: args[0], Audio: m.audio, Video: m.video, Record: m.record, RelayOnly: relayOnly})
			if err != nil {
				return err
			}
			final, err := followCall(ctx, e, c, call.ID, dur)
			if err != nil {
				return err
			}
			return printCallResult(e, final)
		},
	}
}

// followCall reports a call's progress on stderr until it ends, hanging up
// after dur once active (dur > 0) or when ctx ends (Ctrl-C).
func followCall(ctx context.Context, e *env, c *api.Client, id string, dur time.Duration) (api.Call, error) {
	last := ""
	var activeAt time.Time
	hungUp := false
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		bg, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cur, err := c.Call(bg, id)
		cancel()
		if err != nil {
			return api.Call{}, err
		}
		if cur.State != last {
			last = cur.State
			switch cur.State {
			case "active":
				activeAt = time.Now()
				fmt.Fprintf(e.stderr, "connected (%s)\n", cur.Path)
			case "ended":
				fmt.Fprintf(e.stderr, "ended: %s\n", cur.EndReason)
			default:
				fmt.Fprintf(e.stderr, "%s\n", cur.State)
			}
		}
		if cur.State == "ended" {
			return cur, nil
		}
		if !hungUp && (ctx.Err() != nil || (dur > 0 && !activeAt.IsZero() && time.Since(activeAt) >= dur)) {
			hungUp = true
			bg, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.CallAction(bg, id, "hangup", nil)
			cancel()
			if err != nil {
				return api.Call{}, err
			}
		}
		<-tick.C
	}
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
		RecordedAudio   string `json:"recorded_audio,omitempty"`
		RecordedVideo   string `json:"recorded_video,omitempty"`
	}{c.ID, c.Peer, c.State, c.EndReason, c.Path, c.SetupMS, c.PacketsSent, c.PacketsReceived, c.RecordedAudio, c.RecordedVideo},
		func(w io.Writer) {
			fmt.Fprintf(w, "call %s with %s: %s (%s), path %s, setup %d ms, packets sent %d, received %d\n",
				c.ID, c.Peer, c.State, c.EndReason, c.Path, c.SetupMS, c.PacketsSent, c.PacketsReceived)
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
	return e.print(calls, func(w io.Writer) {
		if len(calls) == 0 {
			fmt.Fprintln(w, "no calls yet")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WHEN\tDIR\tWITH\tSTATE\tREASON\tPATH\tDURATION")
		for _, c := range calls {
			who := c.PeerName
			if who == "" {
				who = c.Peer
			}
			reason := c.EndReason
			if c.Blocked {
				reason = "blocked by your call settings"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.0fs\n", c.Start.Local().Format("2006-01-02 15:04:05"), c.Direction, who, c.State, reason, c.Path, c.DurationS)
		}
		tw.Flush()
	})
}

// pickCall finds the call an action without an ID means: the ringing
// incoming call (answer, decline) or the live one (hangup).
func pickCall(ctx context.Context, c *api.Client, args []string, want func(api.Call) bool) (string, error) {
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
	return "", errors.New("no such call right now")
}

func atMostOneID(args []string) error {
	if len(args) > 1 {
		return usageError{msg: fmt.Sprintf("expected at most one call ID, got %d arguments", len(args))}
	}
	return nil
}

func answerCommand() *command {
	var m mediaFlags
	return &command{
		name: "answer", args: "[ID]", summary: "answer the ringing call",
		flags: m.register,
		run: func(ctx context.Context, e *env, args []string) error {
			if err := atMostOneID(args); err != nil {
				return err
			}
			if err := m.abs(); err != nil {
				return err
			}
			c, err := e.api()
			if err != nil {
				return err
			}
			id, err := pickCall(ctx, c, args, func(cl api.Call) bool { return cl.Direction == "in" && cl.State == "ringing" })
			if err != nil {
				return err
			}
			cl, err := c.CallAction(ctx, id, "answer", &api.AnswerRequest{Audio: m.audio, Video: m.video, Record: m.record})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "answered %s (%s)\n", cl.ID, cl.Peer)
			return nil
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
		id, err := pickCall(ctx, c, args, func(cl api.Call) bool {
			return action == "hangup" || cl.Direction == "in" && cl.State == "ringing"
		})
		if err != nil {
			return err
		}
		cl, err := c.CallAction(ctx, id, action, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s %s\n", map[string]string{"decline": "declined", "hangup": "hung up"}[action], cl.ID)
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
		flags: func(fs *flag.FlagSet) {
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
		for _, acct := range slices.Sorted(maps.Keys(s.Rules)) {
			fmt.Fprintf(w, "%-13s %s\n", s.Rules[acct], acct)
		}
	})
}
