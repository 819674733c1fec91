package backend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/contacts"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/store"
)

// CallEvent tells the API's subscribers about an event of the call
// service: an incoming call, or a call's new state.
func (s *Service) CallEvent(ev call.Event) {
	typ := api.EventCallState
	if ev.Kind == call.EventIncoming {
		typ = api.EventIncomingCall
	}
	s.events.publish(api.NewEvent(typ, s.infoToAPI(ev.Call, ev.Stats)))
}

// recentCalls keeps ended calls of this run for a while, so a client that
// polls a call sees its final figures.
type recentCalls struct {
	mu    sync.Mutex
	calls map[string]*call.Call
	order []string
}

func (r *recentCalls) add(c *call.Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]*call.Call{}
	}
	if _, ok := r.calls[c.ID()]; ok {
		return
	}
	r.calls[c.ID()] = c
	r.order = append(r.order, c.ID())
	if len(r.order) > 64 {
		delete(r.calls, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *recentCalls) get(id string) *call.Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

// errNoCalls answers a call request on a node without calls.
func errNoCalls() error {
	return api.Errorf(api.CodeUnavailable, "", "calls are not available on this node")
}

func (s *Service) callService() (Calls, error) {
	if s.calls == nil {
		return nil, errNoCalls()
	}
	return s.calls, nil
}

// source builds the media to send from the CLI's words: "tone",
// "pattern", a file (looped) or a FIFO (a live stream, played once). The
// returned release closes what was opened; call it when the call that
// plays the source has ended, or at once when it never started.
func source(audio, video string) (media.Source, func(), error) {
	var srcs []media.Source
	var opened []media.Input
	release := func() {
		for _, in := range opened {
			_ = in.Close()
		}
	}
	for _, spec := range []struct {
		v, synth string
		kind     media.Kind
	}{{audio, "tone", media.KindAudio}, {video, "pattern", media.KindVideo}} {
		switch spec.v {
		case "":
		case spec.synth:
			if spec.synth == "tone" {
				srcs = append(srcs, media.Tone())
			} else {
				srcs = append(srcs, media.Pattern())
			}
		default:
			in, err := media.OpenSource(spec.v)
			if err != nil {
				release()
				return nil, nil, api.Errorf(api.CodeBadRequest, "use an Ogg/Opus file or stream (one packet per page), an IVF/VP8 file or stream, or tone/pattern",
					"cannot use %s as %s: %v", spec.v, spec.kind, err)
			}
			opened = append(opened, in)
			if in.Kind() != spec.kind {
				release()
				return nil, nil, api.Errorf(api.CodeBadRequest, "pass Ogg/Opus as audio and IVF/VP8 as video",
					"%s is %s, not %s", spec.v, in.Kind(), spec.kind)
			}
			srcs = append(srcs, in)
		}
	}
	if len(srcs) == 0 {
		return nil, release, nil
	}
	return media.Sources(srcs...), release, nil
}

func checkRecordDir(dir string) error {
	if dir == "" {
		return nil
	}
	if !filepath.IsAbs(dir) {
		return api.Errorf(api.CodeBadRequest, "pass an absolute path (the CLI does this for you)", "record directory %q is not absolute", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return api.Errorf(api.CodeBadRequest, "", "cannot create record directory: %v", err)
	}
	return nil
}

// Dial implements api.Backend.
func (s *Service) Dial(ctx context.Context, req api.CallRequest) (_ api.Call, err error) {
	defer mapError(&err)
	svc, err := s.callService()
	if err != nil {
		return api.Call{}, err
	}
	if req.Browser && (req.Audio != "" || req.Video != "" || req.Record != "") {
		return api.Call{}, api.Errorf(api.CodeBadRequest, "", "a browser call takes its media from the tab: no audio, video or record")
	}
	if err := checkRecordDir(req.Record); err != nil {
		return api.Call{}, err
	}
	t, err := s.target(ctx, req.To, true)
	if err != nil {
		return api.Call{}, err
	}
	src, release, err := source(req.Audio, req.Video)
	if err != nil {
		return api.Call{}, err
	}
	opts := call.DialOptions{Source: src, RecordDir: req.Record, RelayOnly: req.RelayOnly}
	var bridge *media.Bridge
	if req.Browser {
		if bridge, err = s.newBridge(); err != nil {
			return api.Call{}, err
		}
		opts.Source, opts.Sink = bridge, bridge
	}
	c, err := svc.Dial(ctx, t.id, opts)
	s.settle(c, err, release, bridge)
	if err != nil {
		if errors.Is(err, call.ErrInCall) {
			return api.Call{}, explain(err, "", "already in a call")
		}
		if errors.Is(err, call.ErrSelf) {
			return api.Call{}, explain(err, "", "that is your own account")
		}
		return api.Call{}, err
	}
	s.recent.add(c)
	return s.callToAPI(c), nil
}

// settle ties the media a call was placed or answered with to the call's
// life: the source is released and the tab's bridge (nil: none) closed when
// the call ends, or at once when it did not start (err); a bridge that ends
// first ends the call.
func (s *Service) settle(c *call.Call, err error, release func(), bridge *media.Bridge) {
	if err != nil {
		release()
		if bridge != nil {
			_ = bridge.Close()
		}
		return
	}
	s.media.release(c, release)
	if bridge != nil {
		s.media.watch(c, bridge, s.endBridged)
	}
}

func (s *Service) callToAPI(c *call.Call) api.Call {
	info, st := c.Info(), c.Stats()
	out := s.infoToAPI(info, st)
	out.RecordedAudio, out.RecordedVideo = c.Recordings()
	return out
}

// infoToAPI is a call as the API shows it, live or just ended.
func (s *Service) infoToAPI(info call.Info, st call.Stats) api.Call {
	out := api.Call{
		ID: info.ID, Peer: info.Peer.String(), Direction: string(info.Direction), State: string(info.State),
		EndReason: string(info.Reason), Path: string(st.Path), SetupMS: st.Setup.Milliseconds(),
		PacketsSent: st.PacketsSent, PacketsReceived: st.PacketsReceived, BytesSent: st.BytesSent, BytesReceived: st.BytesReceived,
		Loss: st.Loss, RTTMS: st.RTT.Milliseconds(), Start: info.Start.UTC(), DurationS: info.Duration().Seconds(),
		RelayOnly: info.RelayOnly, Browser: s.media.get(info.ID) != nil,
	}
	out.PeerName = s.contacts.Petname(out.Peer)
	return out
}

func storeCallToAPI(c store.Call) api.Call {
	return api.Call{ID: c.ID, Peer: c.Peer, Direction: c.Direction, State: "ended", EndReason: c.EndReason, Path: c.Path,
		PacketsSent: c.PacketsSent, PacketsReceived: c.PacketsReceived, BytesSent: c.BytesSent, BytesReceived: c.BytesReceived,
		Loss: c.Loss, RTTMS: c.RTT.Milliseconds(), Start: c.Start.UTC(), DurationS: c.Duration.Seconds(), Blocked: c.Blocked}
}

// findCall finds a live or recent call of this run.
func (s *Service) findCall(id string) (*call.Call, error) {
	svc, err := s.callService()
	if err != nil {
		return nil, err
	}
	for _, c := range svc.Calls() {
		if c.ID() == id {
			s.recent.add(c)
			return c, nil
		}
	}
	if c := s.recent.get(id); c != nil {
		return c, nil
	}
	return nil, explain(call.ErrUnknownCall, "", "no call %q", id)
}

// CallInfo implements api.Backend.
func (s *Service) CallInfo(ctx context.Context, id string) (_ api.Call, err error) {
	defer mapError(&err)
	c, err := s.findCall(id)
	if err == nil {
		return s.callToAPI(c), nil
	}
	log, lerr := s.callLog(store.MaxCalls)
	if lerr != nil {
		return api.Call{}, lerr
	}
	for _, l := range log {
		if l.ID == id {
			return l, nil
		}
	}
	return api.Call{}, err
}

// CallLog implements api.Backend: live calls, then the log, newest first.
func (s *Service) CallLog(ctx context.Context, limit int) (_ []api.Call, err error) {
	defer mapError(&err)
	return s.callLog(limit)
}

func (s *Service) callLog(limit int) ([]api.Call, error) {
	out := []api.Call{}
	if s.calls != nil {
		for _, c := range s.calls.Calls() {
			out = append(out, s.callToAPI(c))
		}
	}
	var logged []store.Call
	if err := s.db.View(func(tx *store.Tx) error {
		var err error
		logged, err = tx.Calls(limit)
		return err
	}); err != nil {
		return nil, err
	}
	names := s.contacts.Petnames()
	for _, c := range logged {
		a := storeCallToAPI(c)
		a.PeerName = names[a.Peer]
		out = append(out, a)
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// CallAction implements api.Backend: answer, decline or hang up.
func (s *Service) CallAction(ctx context.Context, id, action string, req api.AnswerRequest) (_ api.Call, err error) {
	defer mapError(&err)
	svc, err := s.callService()
	if err != nil {
		return api.Call{}, err
	}
	c, err := s.findCall(id)
	if err != nil {
		return api.Call{}, err
	}
	switch action {
	case "answer":
		if err := s.answer(svc, c, req); err != nil {
			return api.Call{}, err
		}
	case "decline":
		if err := svc.Decline(id); errors.Is(err, call.ErrNotRinging) {
			return api.Call{}, explain(err, "hang up instead: callsign hangup", "call %s is not ringing here", id)
		} else if err != nil {
			return api.Call{}, err
		}
	case "hangup":
		if err := svc.Hangup(id); err != nil && !errors.Is(err, call.ErrUnknownCall) {
			return api.Call{}, err
		}
	default:
		return api.Call{}, api.Errorf(api.CodeNotFound, "", "no call action %q (answer, decline, hangup)", action)
	}
	return s.callToAPI(c), nil
}

// answer answers the ringing call c with the media req names: files or
// synthetic clips, a new browser bridge, or the tab that got ready while
// it rang.
func (s *Service) answer(svc Calls, c *call.Call, req api.AnswerRequest) error {
	id := c.ID()
	if req.Tab != "" {
		req.Browser = true
	}
	if req.Browser && (req.Audio != "" || req.Video != "" || req.Record != "") {
		return api.Errorf(api.CodeBadRequest, "", "a browser answer takes its media from the tab: no audio, video or record")
	}
	if err := checkRecordDir(req.Record); err != nil {
		return err
	}
	src, release, err := source(req.Audio, req.Video)
	if err != nil {
		return err
	}
	opts := call.AnswerOptions{Source: src, RecordDir: req.Record}
	var bridge *media.Bridge
	switch {
	case req.Tab != "":
		if bridge = s.media.takeRinging(id, req.Tab); bridge == nil {
			release()
			return api.Errorf(api.CodeConflict, "answer again without the tab's connection",
				"the tab's connection for call %s is gone: the call was answered elsewhere, ended, or the tab closed it", id)
		}
		opts.Source, opts.Sink = bridge, bridge
	case req.Browser:
		if bridge, err = s.newBridge(); err != nil {
			release()
			return err
		}
		opts.Source, opts.Sink = bridge, bridge
	}
	err = svc.Answer(id, opts)
	s.settle(c, err, release, bridge)
	if errors.Is(err, call.ErrNotRinging) {
		return explain(err, "", "call %s is not ringing here: it was answered elsewhere or has ended", id)
	}
	return err
}

// CallSettings implements api.Backend.
func (s *Service) CallSettings(ctx context.Context) (_ api.CallSettings, err error) {
	defer mapError(&err)
	if s.settings == nil {
		return api.CallSettings{}, errNoCalls()
	}
	return s.settings.Get(), nil
}

// ChangeCallSettings implements api.Backend.
func (s *Service) ChangeCallSettings(ctx context.Context, ch api.CallSettingsChange) (_ api.CallSettings, err error) {
	defer mapError(&err)
	if s.settings == nil {
		return api.CallSettings{}, errNoCalls()
	}
	var ruleAccount string
	if ch.RuleName != "" {
		t, err := s.target(ctx, ch.RuleName, true)
		if err != nil {
			return api.CallSettings{}, err
		}
		ruleAccount = t.id.String()
		if ch.Rule != "allow" && ch.Rule != "deny" && ch.Rule != "default" {
			return api.CallSettings{}, api.Errorf(api.CodeBadRequest, "", "rule must be allow, deny or default")
		}
	}
	if ch.Policy != nil && !contacts.ValidCallPolicy(*ch.Policy) {
		return api.CallSettings{}, api.Errorf(api.CodeBadRequest, "everyone, contacts, following, verified or nobody", "unknown call policy %q", *ch.Policy)
	}
	if ch.RecordDir != nil {
		if err := checkRecordDir(*ch.RecordDir); err != nil {
			return api.CallSettings{}, err
		}
	}
	return s.settings.Update(func(st *api.CallSettings) {
		rules := map[string]string{}
		for k, v := range st.Rules {
			rules[k] = v
		}
		st.Rules = rules
		if ch.Policy != nil {
			st.Policy = *ch.Policy
		}
		if ch.AlwaysRelay != nil {
			st.AlwaysRelay = *ch.AlwaysRelay
		}
		if ch.AutoAnswer != nil {
			st.AutoAnswer = *ch.AutoAnswer
		}
		if ch.RecordDir != nil {
			st.RecordDir = *ch.RecordDir
		}
		if ruleAccount != "" {
			if ch.Rule == "default" {
				delete(st.Rules, ruleAccount)
			} else {
				st.Rules[ruleAccount] = ch.Rule
			}
		}
	})
}
