package main

// A fake node behind the real API server, for tests of the CLI's commands
// through run: the CLI finds it from --data as it finds a real node.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
)

// fakeNode implements api.Backend with canned answers. Methods a test
// does not need are left to the embedded nil interface (they panic).
type fakeNode struct {
	api.Backend

	mu        sync.Mutex
	version   string
	contacts  []api.Contact
	contactsN int                      // GET /contacts served
	messages  map[string][]api.Message // by the name asked for
	marked    []markRead
	calls     map[string]api.Call
	callInfoN int // GET /calls/{id} served
	dialed    []api.CallRequest
	answered  []api.AnswerRequest
	actions   []string // "hangup c1"
	sent      []string // the texts sent
	file      []byte   // the last file sent
	fileName  string
	fileAsked int // File calls
	log       []api.Call
	onDial    func(req api.CallRequest) // runs in the API request
	onAction  func(id, action string)   // after an action is recorded
	subs      map[int]chan api.Event
	nextSub   int
	subscribe chan struct{} // a token per subscription
}

type markRead struct {
	name string
	ids  []string
}

func newFakeNode() *fakeNode {
	return &fakeNode{
		version: "9.9.9-test", messages: map[string][]api.Message{}, calls: map[string]api.Call{},
		subs: map[int]chan api.Event{}, subscribe: make(chan struct{}, 16),
	}
}

// start serves f's API on 127.0.0.1 and returns a data directory that
// points at it.
func (f *fakeNode) start(t *testing.T) string {
	t.Helper()
	tok := api.NewToken()
	srv, err := api.NewServer(api.ServerConfig{Addr: "127.0.0.1:0", Token: tok, Backend: f})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	if err := api.WriteEndpoint(dir, srv.Addr(), tok); err != nil {
		t.Fatal(err)
	}
	holdLock(t, dir)
	return dir
}

// holdLock holds dir's lock file as a running node does, until the test
// ends: the CLI sends nothing to an address no node's lock vouches for.
func holdLock(t *testing.T, dir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, api.LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

func (f *fakeNode) Status(context.Context) (api.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return api.Status{Version: f.version, Encryption: "keyfile"}, nil
}

func (f *fakeNode) Contacts(context.Context) ([]api.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.contactsN++
	return slices.Clone(f.contacts), nil
}

func (f *fakeNode) Whois(_ context.Context, name string) (api.Whois, error) {
	return api.Whois{Query: name, Status: "not_found"}, nil
}

func (f *fakeNode) Messages(_ context.Context, name string, _ api.PageRequest) (api.MessagePage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ms, ok := f.messages[name]
	if !ok {
		return api.MessagePage{}, api.Errorf(api.CodeNotFound, "", "no conversation with %q", name)
	}
	return api.MessagePage{Messages: slices.Clone(ms)}, nil
}

func (f *fakeNode) Send(_ context.Context, to, text string) (api.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, text)
	return api.Message{ID: "m2", To: to, Text: text, State: "queued", Direction: "out"}, nil
}

// SendFile keeps the file it is sent as the attachment of message "f1",
// which File serves after answering unavailable once (still fetching).
func (f *fakeNode) SendFile(_ context.Context, up api.FileUpload) (api.Message, error) {
	b, err := io.ReadAll(up.Body)
	if err != nil {
		return api.Message{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, fmt.Sprintf("%s %s %d %s", up.Name, up.Type, len(b), up.Caption))
	f.file, f.fileName = b, up.Name
	return api.Message{ID: "f1", To: up.To, Text: up.Caption, State: "queued", Direction: "out",
		File: &api.FileInfo{Name: up.Name, Type: up.Type, Size: int64(len(b)), State: api.FileReady}}, nil
}

func (f *fakeNode) File(_ context.Context, peer, id string) (api.FileInfo, func(io.Writer) error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != "f1" || f.file == nil {
		return api.FileInfo{}, nil, api.Errorf(api.CodeNotFound, "", "no message %s", id)
	}
	if f.fileAsked++; f.fileAsked == 1 {
		return api.FileInfo{}, nil, api.Errorf(api.CodeUnavailable, "", "fetching it")
	}
	b := f.file
	return api.FileInfo{Name: f.fileName, Type: "text/plain", Size: int64(len(b))}, func(w io.Writer) error { _, err := w.Write(b); return err }, nil
}

// fakeLastAt is the time of the fake's conversation: the same in every
// answer, so that two commands' output can be compared.
var fakeLastAt = time.Now()

func (f *fakeNode) Conversations(context.Context) ([]api.Conversation, error) {
	return []api.Conversation{{Peer: "csa1bob", PeerName: "bob", LastAt: fakeLastAt}}, nil
}

func (f *fakeNode) MarkRead(_ context.Context, name string, ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.marked = append(f.marked, markRead{name, ids})
	return nil
}

func (f *fakeNode) markedCalls() []markRead {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.marked)
}

func (f *fakeNode) Dial(_ context.Context, req api.CallRequest) (api.Call, error) {
	f.mu.Lock()
	f.dialed = append(f.dialed, req)
	c := api.Call{ID: "c1", Peer: "csa1bob", Direction: "out", State: "calling"}
	f.calls[c.ID] = c
	hook := f.onDial
	f.mu.Unlock()
	if hook != nil {
		hook(req)
	}
	return c, nil
}

func (f *fakeNode) CallInfo(_ context.Context, id string) (api.Call, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callInfoN++
	c, ok := f.calls[id]
	if !ok {
		return api.Call{}, api.Errorf(api.CodeNotFound, "", "no call %q", id)
	}
	return c, nil
}

func (f *fakeNode) CallLog(context.Context, int) ([]api.Call, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log), nil
}

func (f *fakeNode) CallAction(_ context.Context, id, action string, req api.AnswerRequest) (api.Call, error) {
	f.mu.Lock()
	c, ok := f.calls[id]
	if !ok {
		f.mu.Unlock()
		return api.Call{}, api.Errorf(api.CodeNotFound, "", "no call %q", id)
	}
	f.actions = append(f.actions, action+" "+id)
	if action == "answer" {
		f.answered = append(f.answered, req)
	}
	hook := f.onAction
	f.mu.Unlock()
	if hook != nil {
		hook(id, action)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[c.ID], nil
}

// setCall changes a call as the node would, and publishes its state
// event when publish is set.
func (f *fakeNode) setCall(c api.Call, publish bool) {
	f.mu.Lock()
	f.calls[c.ID] = c
	f.mu.Unlock()
	if publish {
		ev := c
		ev.Path, ev.PeerName, ev.SetupMS, ev.PacketsSent, ev.PacketsReceived = "", "", 0, 0, 0 // as the node's events carry them
		f.publish(api.NewEvent(api.EventCallState, ev))
	}
}

func (f *fakeNode) actionsDone() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.actions)
}

func (f *fakeNode) Subscribe(ctx context.Context) (<-chan api.Event, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan api.Event, 64)
	n := f.nextSub
	f.nextSub++
	f.subs[n] = ch
	f.subscribe <- struct{}{}
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[n]; ok {
			delete(f.subs, n)
			close(ch)
		}
	}
}

// waitSubscribed waits for the next subscription to the event stream.
func (f *fakeNode) waitSubscribed(t *testing.T) {
	t.Helper()
	select {
	case <-f.subscribe:
	case <-time.After(10 * time.Second):
		t.Fatal("the CLI did not subscribe to the event stream within 10s")
	}
}

// publish sends ev to every subscriber.
func (f *fakeNode) publish(ev api.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.subs {
		ch <- ev
	}
}

// dropStreams ends every event stream, as a node restart would.
func (f *fakeNode) dropStreams() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for n, ch := range f.subs {
		delete(f.subs, n)
		close(ch)
	}
}

// runCLI runs the CLI in process and returns stdout, stderr and the exit
// code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// background is a CLI command running in process until stopped.
type background struct {
	out, err *syncBuffer
	cancel   context.CancelFunc
	done     chan int
}

// startCLI runs the CLI in the background with stdin as its standard
// input (nil: none).
func startCLI(t *testing.T, stdin io.Reader, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{out: &syncBuffer{}, err: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	go func() { b.done <- runStdin(ctx, stdin, args, b.out, b.err) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-b.done:
		case <-time.After(20 * time.Second):
			t.Errorf("callsign %s did not stop within 20s of its context ending", strings.Join(args, " "))
		}
	})
	return b
}

// stop interrupts the command (Ctrl-C) and returns its exit code.
func (b *background) stop(t *testing.T) int {
	t.Helper()
	b.cancel()
	return b.wait(t)
}

// wait waits for the command to exit and returns its exit code.
func (b *background) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-b.done:
		b.done <- code
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("the command did not exit within 20s\nstdout:\n%s\nstderr:\n%s", b.out, b.err)
		return -1
	}
}

// waitOutput polls until the output buf holds want.
func waitOutput(t *testing.T, buf *syncBuffer, want string) {
	t.Helper()
	poll(t, 10*time.Second, fmt.Sprintf("%q in the output", want), func() bool { return strings.Contains(buf.String(), want) })
}

// poll waits until cond holds, checking every 10ms, for at most timeout.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}
