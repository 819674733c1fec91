package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashDirEnv names the data directory the child of TestKillNineKeepsCommits writes to.
const crashDirEnv = "CALLSIGN_STORE_CRASH_DIR"

// TestKillNineKeepsCommits backs the Durability section of the package doc:
// with SyncWrites off, every Update that returned survives kill -9 of the
// process. A child process commits messages one Update at a time and
// reports each after Update returns; the parent kills it with SIGKILL
// mid-stream, reopens the store and finds every reported message.
func TestKillNineKeepsCommits(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillNineKeepsCommits$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	committed := -1
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(30 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
			committed, _ = strconv.Atoi(n)
			if committed >= 300 {
				break
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if committed < 300 {
		t.Fatalf("child reported only %d commits before the deadline", committed)
	}
	db := openT(t, dir, nil)
	for i := 0; i <= committed; i++ {
		m, err := db.Message("peer", fmt.Sprint("m", i))
		if err != nil || len(m.Body) != 1024 || m.Body[0] != byte(i) {
			t.Fatalf("message %d of %d reported committed is gone after kill -9: %v", i, committed, err)
		}
	}
	t.Logf("%d commits reported before SIGKILL, all present after reopening", committed+1)
}

// crashChild commits messages until it is killed, printing each index
// after its Update returned.
func crashChild(dir string) {
	db, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	body := make([]byte, 1024)
	for i := 0; ; i++ {
		body[0] = byte(i)
		now := time.Now()
		err := db.Update(func(tx *Tx) error {
			return tx.PutMessage(Message{ID: fmt.Sprint("m", i), Peer: "peer", Direction: DirOut, Body: body, SentAt: now, At: now})
		})
		if err != nil {
			fmt.Println("update:", err)
			os.Exit(1)
		}
		fmt.Printf("committed %d\n", i)
	}
}
