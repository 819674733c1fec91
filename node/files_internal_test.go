package node

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/files"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/node/backend"
)

// TestFetchPaced: a file whose sender can't be reached is tried again when
// the person asks for it, but a client asking in a loop (a script, a page
// polling) makes the node try at most once every fetchGap, not once per
// ask: each try dials the sender's devices and the mailboxes, which would
// rate-limit this node.
func TestFetchPaced(t *testing.T) {
	defer func(r time.Duration) { fetchRetry = r }(fetchRetry)
	fetchRetry = time.Hour // only the asks wake a download
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{ctx: ctx, cancel: cancel, log: slog.New(slog.DiscardHandler)}
	st, err := files.OpenStore(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var tries atomic.Int32
	a := &attachments{n: n, store: st, slots: make(chan struct{}, maxDownloads),
		active: map[files.Hash]*download{}, failed: map[files.Hash]time.Time{},
		try: func(context.Context, identity.AccountID, files.Ref, func(int64, int64)) error {
			tries.Add(1)
			return errors.New("the sender is offline")
		}}
	defer func() { cancel(); n.wg.Wait() }()

	ref := files.Ref{Hash: files.Hash{1}, Size: 1000, Name: "dawn.txt"}
	m := backend.FileAt{Peer: "alice", ID: "m1", Owner: "alice"}
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		a.fetch(m, ref) // what the API does each time the file is asked for
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	if got, most := tries.Load(), int32(elapsed/fetchGap)+1; got > most {
		t.Fatalf("%d tries in %v of asking, want at most %d", got, elapsed, most)
	}
	// And the asks did make it try again (a busy machine may be late).
	check.Until(t, 10*time.Second, "a second try", func() bool { return tries.Load() >= 2 })
}
