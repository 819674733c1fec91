package node_test

import (
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/testnet"
)

// TestStrangerCallRefusedBeforeDecrypting: under the default call policy
// (contacts), a stranger's invite is refused on the signal lane before
// anything of it is decrypted: the stranger hears only "unavailable", and
// the callee keeps nothing of it (no call log entry, no request). A
// stranger the policy lets in still rings.
func TestStrangerCallRefusedBeforeDecrypting(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{})
	ctx := ctxT(t, 3*time.Minute)
	bob, carol := net.Nodes[1], net.Nodes[2]
	c, err := carol.Client.Dial(ctx, api.CallRequest{To: bob.Account().String(), Audio: "tone"})
	if err != nil {
		t.Fatal(err)
	}
	if end := waitCall(t, carol.Client, c.ID, "ended"); end.EndReason != "unavailable" {
		t.Fatalf("stranger's call ended %q, want unavailable", end.EndReason)
	}
	if log, err := bob.Client.Calls(ctx, 10); err != nil || len(log) != 0 {
		t.Fatalf("bob's call log after a refused stranger: %+v %v", log, err)
	}
	if convs, err := bob.Client.Conversations(ctx); err != nil || len(convs) != 0 {
		t.Fatalf("bob's conversations after a refused stranger: %+v %v", convs, err)
	}

	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{Policy: strp("everyone")}); err != nil {
		t.Fatal(err)
	}
	c, err = carol.Client.Dial(ctx, api.CallRequest{To: bob.Account().String(), Audio: "tone"})
	if err != nil {
		t.Fatal(err)
	}
	waitCall(t, carol.Client, c.ID, "ringing")
	if _, err := carol.Client.CallAction(ctx, c.ID, "hangup", nil); err != nil {
		t.Fatal(err)
	}
	waitCall(t, carol.Client, c.ID, "ended")
}
