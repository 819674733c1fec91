package main

// Process tests for delivery guarantees: the real binary killed with
// SIGKILL mid-burst, restarted, and nothing lost, nothing shown twice, in
// order; and nothing readable in the data directories.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
)

const burst = 2000

// kill sends SIGKILL and waits for the process to go.
func (d *daemon) kill() {
	d.t.Helper()
	d.cmd.Process.Kill()
	err := <-d.done
	d.done <- err
}

// client returns an API client for the node in dir.
func client(t *testing.T, dir string) *api.Client {
	t.Helper()
	c, err := api.DialDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// inbox returns the texts of the incoming messages in c's conversation
// with peer, oldest first.
func inbox(t *testing.T, c *api.Client, peer string) []string {
	t.Helper()
	var out []string
	cursor := ""
	for {
		p, err := c.Messages(context.Background(), peer, cursor, 1000)
		if err != nil {
			t.Fatalf("messages: %v", err)
		}
		for _, m := range p.Messages {
			if m.Direction == "in" {
				out = append(out, m.Text)
			}
		}
		if p.Next == "" {
			return out
		}
		cursor = p.Next
	}
}

// checkExactlyOnceInOrder checks that got holds every text of want exactly
// once, that nothing else from the burst is there, and that the order is
// the sending order.
func checkExactlyOnceInOrder(t *testing.T, got []string, prefix string, want map[int]bool) {
	t.Helper()
	seen := map[string]bool{}
	last := -1
	for _, s := range got {
		if !strings.HasPrefix(s, prefix) {
			continue
		}
		if seen[s] {
			t.Fatalf("%q shown twice", s)
		}
		seen[s] = true
		var i int
		if _, err := fmt.Sscanf(strings.TrimPrefix(s, prefix), "%d", &i); err != nil {
			t.Fatalf("unexpected text %q", s)
		}
		if i <= last {
			t.Fatalf("out of order: %d after %d", i, last)
		}
		last = i
	}
	for i := range want {
		if !seen[fmt.Sprintf("%s%04d", prefix, i)] {
			t.Fatalf("message %d lost (%d of %d arrived)", i, len(seen), len(want))
		}
	}
}

// sendBurst sends n messages (prefix0000...) from c to peer, stopping at
// the first error, and returns the indexes whose Send returned success.
func sendBurst(c *api.Client, peer, prefix string, n int, sent chan<- int) map[int]bool {
	ok := map[int]bool{}
	for i := range n {
		if _, err := c.Send(context.Background(), peer, fmt.Sprintf("%s%04d", prefix, i)); err != nil {
			break
		}
		ok[i] = true
		if sent != nil {
			select {
			case sent <- i:
			default:
			}
		}
	}
	return ok
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("process test: builds and runs the binary")
	}
	root := t.TempDir()
	hubDir, aDir, bDir := filepath.Join(root, "hub"), filepath.Join(root, "a"), filepath.Join(root, "b")
	up(t, hubDir, nil, append([]string{"--public"}, loopback...)...)
	hubAddr, _, _ := cli(t, "id", "--data", hubDir, "--addr")
	join := append(append([]string{}, loopback...), "--bootstrap", strings.TrimSpace(hubAddr))
	a := up(t, aDir, nil, join...)
	b := up(t, bDir, nil, join...)
	var aID, bID api.ID
	mustJSON(t, &aID, "id", "--data", aDir)
	mustJSON(t, &bID, "id", "--data", bDir)
	ac, bc := client(t, aDir), client(t, bDir)

	// Each accepts the other, so nothing waits in requests.
	check.Until(t, 60*time.Second, "both identities published", func() bool {
		_, err1 := ac.AddContact(context.Background(), bID.Account, "b")
		_, err2 := bc.AddContact(context.Background(), aID.Account, "a")
		return err1 == nil && err2 == nil
	})

	// 1. SIGKILL the recipient in the middle of a burst.
	var sentA map[int]bool
	var wg sync.WaitGroup
	wg.Go(func() { sentA = sendBurst(ac, "b", "one-", burst, nil) })
	check.Until(t, 2*time.Minute, "a fifth of the burst at the recipient", func() bool { return len(inbox(t, bc, "a")) >= burst/5 })
	b.kill()
	wg.Wait()
	if len(sentA) != burst {
		t.Fatalf("the sender's node accepted %d of %d messages", len(sentA), burst)
	}
	b = up(t, bDir, nil, join...)
	bc = client(t, bDir)
	check.Until(t, 2*time.Minute, "the whole burst at the restarted recipient", func() bool { return len(inbox(t, bc, "a")) >= burst })
	checkExactlyOnceInOrder(t, inbox(t, bc, "a"), "one-", sentA)

	// 2. SIGKILL the sender in the middle of a burst: every message its API
	// accepted arrives once the restarted sender's outbox resumes.
	sent := make(chan int, 1)
	var sentB map[int]bool
	wg.Go(func() { sentB = sendBurst(ac, "b", "two-", burst, sent) })
	for i := range sent {
		if i >= burst/4 {
			break
		}
	}
	a.kill()
	wg.Wait()
	if len(sentB) == 0 || len(sentB) == burst {
		t.Fatalf("the kill did not land mid-burst: %d accepted", len(sentB))
	}
	up(t, aDir, nil, join...)
	ac = client(t, aDir)
	check.Until(t, 2*time.Minute, "every accepted message of the second burst", func() bool {
		n := 0
		for _, s := range inbox(t, bc, "a") {
			if strings.HasPrefix(s, "two-") {
				n++
			}
		}
		return n >= len(sentB)
	})
	checkExactlyOnceInOrder(t, inbox(t, bc, "a"), "two-", sentB)

	// 3. The recipient is away for a while: messages wait in the outbox and
	// arrive within one retry interval (30 s, plus jitter) of its return.
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	away := sendBurst(ac, "b", "three-", 20, nil)
	time.Sleep(3 * time.Second) // let the sender find the recipient gone and back off
	b = up(t, bDir, nil, join...)
	bc = client(t, bDir)
	back := time.Now()
	check.Until(t, 45*time.Second, "the messages sent while the recipient was away", func() bool {
		n := 0
		for _, s := range inbox(t, bc, "a") {
			if strings.HasPrefix(s, "three-") {
				n++
			}
		}
		return n == len(away)
	})
	t.Logf("delivered %v after the recipient came back", time.Since(back).Round(time.Millisecond))
	checkExactlyOnceInOrder(t, inbox(t, bc, "a"), "three-", away)

	// Nothing in either data directory is plaintext.
	for _, dir := range []string{aDir, bDir} {
		for _, needle := range []string{"one-0042", "two-0001", "three-0007"} {
			if f := grepDir(t, dir, needle); f != "" {
				t.Errorf("plaintext %q found in %s", needle, f)
			}
		}
	}
}

// grepDir returns the first file under dir that contains needle.
func grepDir(t *testing.T, dir, needle string) string {
	t.Helper()
	found := ""
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || found != "" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil && bytes.Contains(data, []byte(needle)) {
			found = p
		}
		return nil
	})
	return found
}
