// Package benchproc runs the measured side of a benchmark (a relay, a
// DHT server) in a child process of the test binary, with one P and
// pinned to one CPU, so that its CPU time and memory are its own and a
// figure "per core" means one core. The load generator stays in the
// benchmark's process. Production code never imports it.
//
// The child is a test function of the same binary that returns at once
// unless its environment variable is set (IsChild); it starts what is
// measured, then calls Serve, which prints "ready <fields>" and answers
// each "stats" line on stdin with the process's CPU time, RSS, Go heap and
// the counters the child adds, until stdin ends.
package benchproc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/cputime"
)

// Child is a running child process.
type Child struct {
	// Ready holds the fields the child printed after "ready".
	Ready []string
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	once  sync.Once
}

// Stats is what the child reported.
type Stats struct {
	CPU       time.Duration // user + system CPU time since the child started
	RSS, Heap int64         // resident set and Go heap in use (after a GC), bytes
	Counters  []uint64      // the child's own counters, in the order it gave them
}

// IsChild reports whether this process is the child named by env.
func IsChild(env string) bool { return os.Getenv(env) == "1" }

// Start runs the test function test of this binary as a child with env=1
// and GOMAXPROCS=1, under "taskset -c 0" when taskset exists, and waits
// for its ready line. The child is stopped when tb ends.
func Start(tb testing.TB, test, env string) *Child {
	tb.Helper()
	args := []string{"-test.run", "^" + test + "$", "-test.v=false"}
	name := os.Args[0]
	if p, err := exec.LookPath("taskset"); err == nil {
		name, args = p, append([]string{"-c", "0", os.Args[0]}, args...)
	} else {
		tb.Log("taskset not found: the child runs with GOMAXPROCS=1 but unpinned")
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env+"=1", "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &Child{cmd: cmd, in: in, out: bufio.NewReader(out)}
	tb.Cleanup(c.Close)
	for {
		line, err := c.out.ReadString('\n')
		if err != nil {
			c.Close()
			tb.Fatalf("%s: %v", test, err)
		}
		if f := strings.Fields(line); len(f) > 0 && f[0] == "ready" {
			c.Ready = f[1:]
			return c
		}
	}
}

// Stats asks the child for its figures.
func (c *Child) Stats(tb testing.TB) Stats {
	tb.Helper()
	if _, err := io.WriteString(c.in, "stats\n"); err != nil {
		tb.Fatal(err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		tb.Fatalf("child: %v", err)
	}
	f := strings.Fields(line)
	if len(f) < 4 || f[0] != "stats" {
		tb.Fatalf("child said %q", line)
	}
	var s Stats
	n := make([]uint64, len(f)-1)
	for i := range n {
		if n[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			tb.Fatalf("child said %q: %v", line, err)
		}
	}
	s.CPU, s.RSS, s.Heap, s.Counters = time.Duration(n[0]), int64(n[1]), int64(n[2]), n[3:]
	return s
}

// Close ends the child's stdin and waits for it to exit. It is idempotent.
func (c *Child) Close() {
	c.once.Do(func() {
		_ = c.in.Close()
		_ = c.cmd.Wait()
	})
}

// Serve is the child's side: it prints the ready line with fields, then
// answers "stats" lines until stdin ends. counters, if not nil, adds the
// child's own counters to each answer.
func Serve(fields []string, counters func() []uint64) {
	fmt.Printf("ready %s\n", strings.Join(fields, " "))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() != "stats" {
			continue
		}
		cpu := cputime.Process()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		var b strings.Builder
		fmt.Fprintf(&b, "stats %d %d %d", int64(cpu), RSS(), ms.HeapInuse)
		if counters != nil {
			for _, v := range counters() {
				fmt.Fprintf(&b, " %d", v)
			}
		}
		fmt.Println(b.String())
	}
}

// RSS is the process's resident set size in bytes, from /proc (0 where
// there is none).
func RSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// LoadAvg is the machine's 1, 5 and 15 minute load averages, or "?".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
