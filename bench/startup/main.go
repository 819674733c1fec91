// Command startup measures how fast `callsign up` answers on its local API
// and how much memory an idle node holds, against baselines measured in the
// same run on the same machine:
//
//   - start-up: `callsign up` (keyfile store, loopback) until GET /api/v1/id
//     answers, beside the time to exec `callsign help` (process start and
//     exit, no node);
//   - idle RSS: VmRSS of a node that has joined a two-node network and sat
//     idle, beside VmRSS of `sleep` (the floor of any process).
//
// Usage:
//
//	go build -o /tmp/callsign ./cmd/callsign
//	go run ./bench/startup -bin /tmp/callsign -n 20
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callsign/callsign/api"
)

func main() {
	bin := flag.String("bin", "callsign", "the callsign binary")
	n := flag.Int("n", 10, "start-ups to time")
	idle := flag.Duration("idle", 10*time.Second, "how long a node idles before its RSS is read")
	flag.Parse()

	root, err := os.MkdirTemp("", "callsign-startup-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)

	var ups, execs []time.Duration
	for i := range *n {
		dir := filepath.Join(root, fmt.Sprintf("n%d", i))
		if i == 0 { // first run creates the identity; time warm starts too
			d, stop := up(*bin, dir)
			stop()
			fmt.Printf("first run (creates identity): %v\n", d.Round(time.Millisecond))
		}
		d, stop := up(*bin, dir)
		stop()
		ups = append(ups, d)
		t0 := time.Now()
		if err := exec.Command(*bin, "help").Run(); err != nil {
			log.Fatal(err)
		}
		execs = append(execs, time.Since(t0))
	}
	fmt.Printf("up → API ready     p50 %v  max %v  (n=%d)\n", pct(ups, 50), pct(ups, 100), len(ups))
	fmt.Printf("baseline exec help p50 %v  max %v\n", pct(execs, 50), pct(execs, 100))

	// Idle RSS: a public node and a member that joined through it.
	hub := filepath.Join(root, "hub")
	hubCmd := start(*bin, hub, "--public")
	defer hubCmd.Process.Kill()
	waitAPI(hub)
	c, err := api.DialDataDir(hub)
	if err != nil {
		log.Fatal(err)
	}
	id, err := c.ID(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	member := filepath.Join(root, "member")
	cmd := start(*bin, member, "--bootstrap", id.Addrs[0])
	defer cmd.Process.Kill()
	waitAPI(member)
	time.Sleep(*idle)
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		log.Fatal(err)
	}
	defer sleep.Process.Kill()
	time.Sleep(200 * time.Millisecond)
	fmt.Printf("idle member node RSS %d KiB after %v (baseline: sleep %d KiB)\n", rss(cmd.Process.Pid), *idle, rss(sleep.Process.Pid))
	fmt.Printf("idle public node RSS %d KiB (DHT server, relay, TURN)\n", rss(hubCmd.Process.Pid))
}

func start(bin, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, append([]string{"up", "--data", dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", "--log-level", "error"}, args...)...)
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	return cmd
}

func waitAPI(dir string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := api.DialDataDir(dir); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = c.ID(ctx)
			cancel()
			c.Close()
			if err == nil {
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	log.Fatalf("node in %s never answered", dir)
}

// up starts a node and returns the time until its API answered.
func up(bin, dir string, args ...string) (time.Duration, func()) {
	os.Remove(filepath.Join(dir, api.AddrFile))
	t0 := time.Now()
	cmd := start(bin, dir, args...)
	waitAPI(dir)
	d := time.Since(t0)
	return d, func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
}

func rss(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return -1
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s) - 1) * p / 100
	return s[i].Round(100 * time.Microsecond)
}
