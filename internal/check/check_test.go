package check

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records a failure instead of ending the
// test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(r)
}

func run(f func(tb testing.TB)) (failed string) {
	r := &recorder{}
	defer func() {
		if p := recover(); p != nil && p != any(r) {
			panic(p)
		}
		failed = r.failed
	}()
	f(r)
	return ""
}

func TestEventually(t *testing.T) {
	n := 0
	if got := run(func(tb testing.TB) {
		Eventually(tb, 10*time.Second, func() error {
			if n++; n < 3 {
				return errors.New("not yet")
			}
			return nil
		})
	}); got != "" || n != 3 {
		t.Errorf("a condition that holds on the third poll: failure %q after %d polls", got, n)
	}
	start := time.Now()
	got := run(func(tb testing.TB) {
		Eventually(tb, 50*time.Millisecond, func() error { return errors.New("the peer never answered") })
	})
	if !strings.Contains(got, "the peer never answered") || time.Since(start) < 50*time.Millisecond {
		t.Errorf("a condition that never holds: failure %q after %v", got, time.Since(start))
	}
	got = run(func(tb testing.TB) { Until(tb, 20*time.Millisecond, "the call to ring", func() bool { return false }) })
	if !strings.Contains(got, "waiting for the call to ring") {
		t.Errorf("Until's failure %q does not say what it waited for", got)
	}
}
