// Package check is the tests' one way to wait for a condition: poll it,
// with a short and then growing interval, until it holds or a deadline
// passes, then fail the test saying what did not happen. Tests wait for
// what a user would see, never for a fixed time that a busy machine can
// outlast.
package check

import (
	"errors"
	"testing"
	"time"
)

// Eventually polls cond until it returns nil or timeout passes, then fails
// the test with cond's last error.
func Eventually(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(wait)
		wait = min(wait*2, 100*time.Millisecond)
	}
}

// Until is Eventually for a condition that holds or not: what says what
// the test waits for.
func Until(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	Eventually(tb, timeout, func() error {
		if cond() {
			return nil
		}
		return errors.New("waiting for " + what)
	})
}
