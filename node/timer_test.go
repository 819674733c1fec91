package node_test

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

// TestDisappearingMessagesAPI is the test: with a timer set, a
// text and a file vanish from both data directories — the messages from
// both stores (read back through the API, which reads the store) and the
// file from both files directories — while the timer change stays.
func TestDisappearingMessagesAPI(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}})
	ctx := ctxT(t, 3*time.Minute)
	alice, bob := net.Nodes[1], net.Nodes[2]
	befriend(t, ctx, alice, bob)
	if _, err := alice.Client.SetTimer(ctx, "bob", 3); !api.IsCode(err, api.CodeBadRequest) {
		t.Errorf("a timer of 3 s: %v, want refused", err)
	}
	set, err := alice.Client.SetTimer(ctx, "bob", 5)
	if err != nil || set.TimerSet == nil || *set.TimerSet != 5 {
		t.Fatalf("set the timer: %+v %v", set, err)
	}
	check.Until(t, time.Minute, "the timer at Bob", func() bool {
		cs, err := bob.Client.Conversations(ctx)
		return err == nil && len(cs) == 1 && cs[0].Timer == 5
	})
	text, err := bob.Client.Send(ctx, "alice", "gone in five seconds")
	if err != nil || text.ExpiresAt == nil {
		t.Fatalf("a text under the timer: %+v %v", text, err)
	}
	file, err := bob.Client.SendFile(ctx, api.FileUpload{To: "alice", Name: "secret.txt", Type: "text/plain", Body: bytes.NewReader([]byte("burn after reading"))})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(c *api.Client, peer string) map[string]bool {
		p, err := c.Messages(ctx, peer, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, m := range p.Messages {
			out[m.ID] = true
		}
		return out
	}
	filesIn := func(nd *testnet.Node) int {
		fs, _ := filepath.Glob(filepath.Join(nd.Dir, "files", "*"))
		return len(fs)
	}
	check.Until(t, time.Minute, "both messages and the file at Alice", func() bool {
		got := ids(alice.Client, "bob")
		return got[text.ID] && got[file.ID] && filesIn(alice) == 1
	})
	check.Until(t, time.Minute, "both gone from both sides", func() bool {
		a, b := ids(alice.Client, "bob"), ids(bob.Client, "alice")
		return !a[text.ID] && !a[file.ID] && !b[text.ID] && !b[file.ID] && filesIn(alice) == 0 && filesIn(bob) == 0
	})
	if !ids(alice.Client, "bob")[set.ID] || !ids(bob.Client, "alice")[set.ID] {
		t.Errorf("the timer change itself disappeared")
	}
}
