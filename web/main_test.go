package web_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/callsign/callsign/internal/browser"
)

// TestMain closes the shared browser after the tests, then checks that no
// goroutine outlived them.
func TestMain(m *testing.M) {
	code := m.Run()
	browser.Close()
	if code == 0 {
		if err := goleak.Find(
			// libp2p's and badger's process-wide workers, started once per process.
			goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
			goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
			goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
			goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
