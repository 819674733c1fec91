package main

// Process tests: the real binary, driven through the CLI the way the
// README's walkthrough tells a new user. Every node listens on 127.0.0.1
// with port 0.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/media/mediatest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/callsign once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "callsign-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "callsign")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// daemon is a running `callsign up`.
type daemon struct {
	t    *testing.T
	cmd  *exec.Cmd
	dir  string
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// up starts `callsign up --data dir args...` and waits until its API
// answers.
func up(t *testing.T, dir string, env []string, args ...string) *daemon {
	t.Helper()
	d := startUp(t, dir, env, nil, args...)
	d.ready()
	return d
}

// startUp starts `callsign up --data dir args...` with stdin and returns
// at once.
func startUp(t *testing.T, dir string, env []string, stdin io.Reader, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"up", "--data", dir}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr, cmd.Stdin = logs, logs, stdin
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, cmd: cmd, dir: dir, logs: logs, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("logs of the node in %s:\n%s", dir, logs)
		}
	})
	return d
}

// ready waits until the node's API answers.
func (d *daemon) ready() {
	t := d.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, _, code := cli(t, "id", "--data", d.dir); code == 0 {
			return
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("callsign up exited early: %v\n%s", err, d.logs)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("node in %s not ready after 30s:\n%s", d.dir, d.logs)
		}
	}
}

// stop sends SIGINT and waits for a clean exit.
func (d *daemon) stop() error {
	if d.cmd.ProcessState != nil {
		return nil
	}
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		d.t.Errorf("node in %s did not stop within 20s after SIGINT:\n%s", d.dir, d.logs)
		return <-d.done
	}
}

// cli runs one CLI command and returns stdout, stderr and the exit code.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// mustJSON runs a --json command that must succeed and decodes its output.
func mustJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, errs, code := cli(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("callsign %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("callsign %s: bad JSON %v:\n%s", strings.Join(args, " "), err, out)
	}
}

// loopback are the walkthrough's flags, exactly as the README gives them.
var loopback = []string{"--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0"}

// TestWalkthrough is the README's three-node walkthrough.
func TestWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("process test: builds and runs the binary")
	}
	root := t.TempDir()
	hubDir, aliceDir, bobDir := filepath.Join(root, "hub"), filepath.Join(root, "alice"), filepath.Join(root, "bob")

	// 1. A community node.
	up(t, hubDir, nil, append([]string{"--public"}, loopback...)...)
	out, errs, code := cli(t, "id", "--data", hubDir, "--addr")
	if code != 0 {
		t.Fatalf("id --addr: %d %s", code, errs)
	}
	hub := strings.TrimSpace(out)
	if !strings.HasPrefix(hub, "/ip4/127.0.0.1/tcp/") || !strings.Contains(hub, "/p2p/") {
		t.Fatalf("hub address %q", hub)
	}

	// 2. Alice and Bob join through it.
	alice := up(t, aliceDir, nil, append(loopback, "--bootstrap", hub)...)
	up(t, bobDir, nil, append(loopback, "--bootstrap", hub)...)

	var aliceID api.ID
	mustJSON(t, &aliceID, "id", "--data", aliceDir)
	if !strings.HasPrefix(aliceID.Account, "csa1") || !strings.Contains(aliceID.Handle, "~") || aliceID.Peer == "" || aliceID.API == "" {
		t.Fatalf("id --json: %+v", aliceID)
	}
	for _, a := range aliceID.Addrs {
		if !strings.HasSuffix(a, "/p2p/"+aliceID.Peer) {
			t.Fatalf("address %q does not end in /p2p/<peer>", a)
		}
	}
	for _, dir := range []string{aliceDir, bobDir} {
		check.Until(t, 30*time.Second, "a peer and a routing table entry", func() bool {
			var st api.Status
			mustJSON(t, &st, "status", "--data", dir)
			return st.Peers >= 1 && st.RoutingTable >= 1
		})
	}
	var st api.Status
	mustJSON(t, &st, "status", "--data", aliceDir)
	if st.Public || st.Encryption != "keyfile" || st.UptimeS < 0 {
		t.Fatalf("status --json: %+v", st)
	}
	var hubSt api.Status
	mustJSON(t, &hubSt, "status", "--data", hubDir)
	if !hubSt.Public {
		t.Fatalf("hub status: %+v", hubSt)
	}

	// 3. Alice claims a handle; the command returns once a read confirms it.
	var claim api.Claim
	mustJSON(t, &claim, "handle", "claim", "Alice", "--data", aliceDir)
	if claim.Status != "claimed" || claim.Name != "alice" || claim.Owner != aliceID.Account {
		t.Fatalf("claim: %+v", claim)
	}

	// 4. Bob finds her by handle and pins her key.
	var who api.Whois
	mustJSON(t, &who, "whois", "@alice", "--data", bobDir)
	if who.Status != "ok" || who.Account != aliceID.Account || who.Name != "alice" || len(who.Devices) != 1 ||
		who.Devices[0].Peer != aliceID.Peer || !strings.HasPrefix(who.Handle, "alice~") || who.Pinned || who.KeyChanged {
		t.Fatalf("whois: %+v", who)
	}
	// Her self-certifying handle resolves to the same key.
	var whoSelf api.Whois
	mustJSON(t, &whoSelf, "whois", who.Handle, "--data", bobDir)
	if whoSelf.Status != "ok" || whoSelf.Account != aliceID.Account {
		t.Fatalf("whois %s: %+v", who.Handle, whoSelf)
	}
	if out, errs, code := cli(t, "contacts", "add", "alice", "--data", bobDir); code != 0 || !strings.Contains(out, "added alice") {
		t.Fatalf("contacts add: %d %s %s", code, out, errs)
	}
	var contacts []api.Contact
	mustJSON(t, &contacts, "contacts", "list", "--data", bobDir)
	if len(contacts) != 1 || contacts[0].Account != aliceID.Account || contacts[0].Petname != "alice" {
		t.Fatalf("contacts: %+v", contacts)
	}
	mustJSON(t, &who, "whois", "alice", "--data", bobDir)
	if !who.Pinned || who.KeyChanged {
		t.Fatalf("whois after pinning: %+v", who)
	}

	// 5. Nobody else can take the name, nor a lookalike of it.
	for _, name := range []string{"alice", "ALICE", "al.ice"} {
		out, errs, code = cli(t, "handle", "claim", name, "--data", bobDir, "--json")
		if code == 0 || !strings.Contains(errs, "taken") || !strings.Contains(errs, "hint:") {
			t.Fatalf("squat %q: exit %d\n%s%s", name, code, out, errs)
		}
		if err := json.Unmarshal([]byte(out), &claim); err != nil || claim.Status != "taken" || claim.Owner != aliceID.Account {
			t.Fatalf("squat %q JSON: %+v %v", name, claim, err)
		}
	}

	// Bad input: clear one-line errors with hints, and the node keeps running.
	for _, bad := range [][]string{
		{"handle", "claim", "a"},
		{"handle", "claim", "al ice"},
		{"handle", "claim", "alice~abcdefghij"},
		{"whois", strings.Repeat("x", 100)},
	} {
		_, errs, code := cli(t, append(bad, "--data", bobDir)...)
		if code != exitError || !strings.HasPrefix(errs, "callsign: invalid handle") || !strings.Contains(errs, "\nhint: ") {
			t.Fatalf("%v: exit %d, stderr %q", bad, code, errs)
		}
	}
	if _, errs, code := cli(t, "frobnicate"); code != exitUsage || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
	if _, errs, code := cli(t, "whois", "alice", "--data", filepath.Join(root, "nobody")); code != exitError ||
		!strings.Contains(errs, "no node is running") || !strings.Contains(errs, "hint: start one with: callsign up") {
		t.Fatalf("no node: %d %q", code, errs)
	}

	// 6. Bob writes to Alice by handle; his first message is a request.
	var bobClaim api.Claim
	mustJSON(t, &bobClaim, "handle", "claim", "bobby", "--data", bobDir)
	if bobClaim.Status != "claimed" {
		t.Fatalf("bob's claim: %+v", bobClaim)
	}
	var sent struct{ ID, State string }
	mustJSON(t, &sent, "send", "alice", "hi Alice, it's Bob", "--data", bobDir)
	if sent.ID == "" || sent.State != "queued" {
		t.Fatalf("send --json: %+v", sent)
	}
	var reqs []api.Conversation
	check.Until(t, 60*time.Second, "bob's message in alice's requests", func() bool {
		mustJSON(t, &reqs, "requests", "--data", aliceDir)
		return len(reqs) == 1
	})
	if reqs[0].PeerName != "bobby" || reqs[0].Unread != 1 {
		t.Fatalf("requests: %+v", reqs)
	}
	if out, errs, code := cli(t, "accept", "bobby", "--data", aliceDir); code != 0 || !strings.Contains(out, "accepted bobby") {
		t.Fatalf("accept: %d %s %s", code, out, errs)
	}
	if _, errs, code := cli(t, "send", "bobby", "hello Bob!", "--data", aliceDir); code != 0 {
		t.Fatalf("alice's reply: %s", errs)
	}
	var msgs []api.Message
	check.Until(t, 60*time.Second, "both messages in bob's conversation, delivered", func() bool {
		mustJSON(t, &msgs, "messages", "alice", "--data", bobDir)
		return len(msgs) == 2 && msgs[0].State == "delivered"
	})
	if msgs[0].Text != "hi Alice, it's Bob" || msgs[0].Direction != "out" || msgs[0].From == "" || msgs[0].To != aliceID.Account ||
		msgs[1].Text != "hello Bob!" || msgs[1].Direction != "in" || msgs[1].From != aliceID.Account || msgs[1].SentAt.IsZero() {
		t.Fatalf("bob's messages: %+v", msgs)
	}
	// Alice reads it: `messages` marks what it shows read, and the read
	// receipt reaches Bob.
	if out, errs, code := cli(t, "messages", "bobby", "--data", aliceDir); code != 0 || !strings.Contains(out, "<- bobby  hi Alice, it's Bob") {
		t.Fatalf("alice's messages: exit %d\n%s%s", code, out, errs)
	}
	check.Until(t, 60*time.Second, "bob's message read, at bob's node", func() bool {
		mustJSON(t, &msgs, "messages", "alice", "--data", bobDir)
		return len(msgs) == 2 && msgs[0].State == "read"
	})
	var safety api.Safety
	mustJSON(t, &safety, "verify", "alice", "--data", bobDir)
	var safetyA api.Safety
	mustJSON(t, &safetyA, "verify", "bobby", "--data", aliceDir)
	if safety.SafetyNumber == "" || safety.SafetyNumber != safetyA.SafetyNumber || safety.Verified {
		t.Fatalf("safety numbers: %+v %+v", safety, safetyA)
	}
	mustJSON(t, &safety, "verify", "alice", "--confirmed", "--data", bobDir)
	if !safety.Verified {
		t.Fatalf("verify --confirmed: %+v", safety)
	}

	// 7. Bob calls Alice by handle; her node answers on its own and records.
	voicemail := filepath.Join(root, "voicemail")
	if _, errs, code := cli(t, "settings", "calls", "autoanswer", "--record", voicemail, "--data", aliceDir); code != 0 {
		t.Fatalf("settings calls autoanswer: %s", errs)
	}
	var result struct {
		ID, Peer, State, Path string
		PeerName              string `json:"peer_name"`
		EndReason             string `json:"end_reason"`
		SetupMS               int64  `json:"setup_ms"`
		PacketsSent           uint64 `json:"packets_sent"`
		PacketsReceived       uint64 `json:"packets_received"`
	}
	// The progress the README shows goes to stderr; stdout holds the JSON
	// alone.
	out, errs, code = cli(t, "call", "alice", "--audio", "tone", "--video", "pattern", "--for", "3s", "--data", bobDir, "--json")
	if code != 0 || json.Unmarshal([]byte(out), &result) != nil {
		t.Fatalf("call --json: exit %d\n%s%s", code, out, errs)
	}
	if result.State != "ended" || result.EndReason != "hangup" || result.Path != "direct" || result.Peer != aliceID.Account ||
		result.PeerName != "alice" || result.SetupMS <= 0 || result.SetupMS > 5000 || result.PacketsSent < 100 || result.PacketsReceived < 100 {
		t.Fatalf("call --json: %+v", result)
	}
	if want := "calling alice\nringing\n"; !strings.HasPrefix(errs, want) ||
		!strings.Contains(errs, "\nconnected (direct)\n") || !strings.HasSuffix(errs, "\nended: hangup\n") {
		t.Fatalf("call progress on stderr:\n%s", errs)
	}
	// Bob's end returns as soon as his side hangs up; Alice's node closes
	// her recordings and then writes her call log, so the log entry says
	// when the files are complete.
	// (`calls` lists live calls too: a live one names its recordings, a
	// logged one doesn't.)
	var log []api.Call
	var logged api.Call
	check.Until(t, 30*time.Second, "the call in alice's call log", func() bool {
		mustJSON(t, &log, "calls", "--data", aliceDir)
		for _, c := range log {
			if c.ID == result.ID && c.RecordedAudio == "" {
				logged = c
				return true
			}
		}
		return false
	})
	if logged.Direction != "in" || logged.EndReason != "remote-hangup" || logged.State != "ended" {
		t.Fatalf("alice's call log: %+v", log)
	}
	audio, video := mediatest.Frames(t, filepath.Join(voicemail, result.ID+".ogg"), filepath.Join(voicemail, result.ID+".ivf"))
	// 3 s of 20 ms Opus frames is 150, of 15 fps video 45; allow for set-up
	// and teardown.
	if audio < 110 || audio > 220 || video < 30 || video > 80 {
		t.Fatalf("recorded %d audio and %d video frames of a 3 s call", audio, video)
	}

	// A second node on the same data directory refuses to start.
	cmd := exec.Command(binary(t), append([]string{"up", "--data", aliceDir}, loopback...)...)
	outb, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(outb), "already running") {
		t.Fatalf("second up: %v\n%s", err, outb)
	}

	// Ctrl-C stops a node cleanly, and a restart keeps identity and handle.
	if err := alice.stop(); err != nil {
		t.Fatalf("alice exit: %v\n%s", err, alice.logs)
	}
	up(t, aliceDir, nil, append(loopback, "--bootstrap", hub)...)
	var again api.ID
	mustJSON(t, &again, "id", "--data", aliceDir)
	if again.Account != aliceID.Account || again.Peer != aliceID.Peer {
		t.Fatalf("restart changed identity: %+v vs %+v", again, aliceID)
	}
	var handles []api.Handle
	mustJSON(t, &handles, "handle", "list", "--data", aliceDir)
	found := false
	for _, h := range handles {
		found = found || h.Name == "alice"
	}
	if !found {
		t.Fatalf("handles after restart: %+v", handles)
	}
}

// TestPassphrase checks the store's encryption modes through the binary: a
// wrong passphrase fails clearly and changes nothing on disk.
func TestPassphrase(t *testing.T) {
	if testing.Short() {
		t.Skip("process test: builds and runs the binary")
	}
	dir := filepath.Join(t.TempDir(), "node")
	d := up(t, dir, []string{"CALLSIGN_PASSPHRASE=correct horse battery staple"}, loopback...)
	var st api.Status
	mustJSON(t, &st, "status", "--data", dir)
	if st.Encryption != "passphrase" {
		t.Fatalf("encryption %q, want passphrase", st.Encryption)
	}
	if _, err := os.Stat(filepath.Join(dir, "store.key")); !os.IsNotExist(err) {
		t.Fatalf("a passphrase node wrote a key file: %v", err)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	// --data before the command works as well as after it.
	cmd := exec.Command(binary(t), append([]string{"--data", dir, "up"}, loopback...)...)
	cmd.Env = append(os.Environ(), "CALLSIGN_PASSPHRASE=wrong")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "wrong passphrase") || !strings.Contains(string(out), "hint:") {
		t.Fatalf("wrong passphrase: %v\n%s", err, out)
	}
	if after := snapshot(t, dir); after != before {
		t.Fatalf("a wrong passphrase changed the data directory:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshot describes every file under dir but the lock file by name, size
// and content.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Name() == "lock" {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		data, _ := io.ReadAll(bufio.NewReader(f))
		fmt.Fprintf(&b, "%s:%d:%x;", strings.TrimPrefix(p, dir), len(data), hashBytes(data))
		return nil
	})
	return b.String()
}

func hashBytes(b []byte) uint64 {
	var h uint64 = 14695981039346656037
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}
