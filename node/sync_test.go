package node_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

// TestSyncAccountState: what Alice changes on one of her devices shows on
// the other. A contact she adds on the laptop appears on her first device;
// she renames Bob on the first device while the laptop blocks Carol, and
// both end with both; she removes Carol on one, and Carol is gone on both;
// she verifies Bob on one and follows him on the other, and both show
// both; who may call her, changed on the laptop, holds on the first device (its
// auto-answer, a setting of that device alone, stays); and a call she makes
// from the first device is in the laptop's call log.
func TestSyncAccountState(t *testing.T) {
	net := testnet.New(t, 4, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second, CacheTTL: time.Second, ViewAge: time.Second}})
	alice, bob, carol := net.Nodes[1], net.Nodes[2], net.Nodes[3]
	ctx := ctxT(t, 4*time.Minute)
	if c, err := alice.Client.Claim(ctx, "alice"); err != nil || c.Status != "claimed" {
		t.Fatalf("claim: %+v %v", c, err)
	}
	bobID, err := bob.Client.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	carolID, err := carol.Client.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.AddContact(ctx, bobID.Account, "bob"); err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := alice.Client.ChangeCallSettings(ctx, api.CallSettingsChange{AutoAnswer: &yes}); err != nil {
		t.Fatal(err)
	}
	_, cfg, _, err := linkDevice(t, ctx, net, alice, "laptop", true, func(sas string) string { return sas })
	if err != nil {
		t.Fatal(err)
	}
	laptop := net.StartOn(cfg)
	check.Until(t, time.Minute, "the laptop's record published", laptop.Published)
	devs := map[string]*api.Client{"the first device": alice.Client, "the laptop": laptop.Client}

	// contacts says what each device holds, as "petname blocked=…".
	want := func(what string, contacts ...string) {
		t.Helper()
		for name, c := range devs {
			check.Eventually(t, time.Minute, func() error {
				cs, err := c.Contacts(ctx)
				if err != nil {
					return err
				}
				var got []string
				for _, c := range cs {
					got = append(got, fmt.Sprintf("%s %s blocked=%v", c.Petname, c.Account[:10], c.Blocked))
				}
				slices.Sort(got)
				if !slices.Equal(got, contacts) {
					return fmt.Errorf("%s: %s holds %q, want %q", what, name, got, contacts)
				}
				return nil
			})
		}
	}
	b, c := bobID.Account[:10], carolID.Account[:10]
	if _, err := laptop.Client.AddContact(ctx, carolID.Account, "carol"); err != nil {
		t.Fatal(err)
	}
	want("Carol added on the laptop", "bob "+b+" blocked=false", "carol "+c+" blocked=false")

	// At once, on two devices: a rename and a block.
	errs := make(chan error, 2)
	go func() { _, err := alice.Client.AddContact(ctx, bobID.Account, "bobby"); errs <- err }()
	go func() { _, err := laptop.Client.ContactAction(ctx, "carol", "block"); errs <- err }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	want("Bob renamed on one, Carol blocked on the other", "bobby "+b+" blocked=false", "carol "+c+" blocked=true")
	if err := alice.Client.RemoveContact(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	want("Carol removed on the first device", "bobby "+b+" blocked=false")

	// Verified on one, followed on the other.
	if _, err := alice.Client.Safety(ctx, "bobby", true); err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.Client.ContactAction(ctx, "bobby", "follow"); err != nil {
		t.Fatal(err)
	}
	for name, c := range devs {
		check.Eventually(t, time.Minute, func() error {
			cs, err := c.Contacts(ctx)
			if err == nil && (len(cs) != 1 || !cs[0].Verified || !cs[0].Following) {
				err = fmt.Errorf("%s: Bob is %+v, want verified and followed", name, cs)
			}
			return err
		})
	}

	// Call settings: who may ring is the account's, auto-answer the
	// device's own.
	policy := "everyone"
	if _, err := laptop.Client.ChangeCallSettings(ctx, api.CallSettingsChange{Policy: &policy}); err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, time.Minute, func() error {
		s, err := alice.Client.CallSettings(ctx)
		if err == nil && (s.Policy != policy || !s.AutoAnswer) {
			err = fmt.Errorf("the first device's call settings %+v, want policy %s and its auto-answer kept", s, policy)
		}
		return err
	})
	if s, err := laptop.Client.CallSettings(ctx); err != nil || s.AutoAnswer {
		t.Fatalf("the laptop's call settings %+v %v: auto-answer is not the account's", s, err)
	}

	// A call from the first device shows in the laptop's log.
	call, err := alice.Client.Dial(ctx, api.CallRequest{To: "bobby", Audio: "tone"})
	if err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, time.Minute, func() error {
		c, err := alice.Client.Call(ctx, call.ID)
		if err == nil && c.State != "ringing" && c.State != "calling" && c.State != "ended" {
			err = fmt.Errorf("call %s", c.State)
		}
		return err
	})
	if _, err := alice.Client.CallAction(ctx, call.ID, "hangup", nil); err != nil && !strings.Contains(err.Error(), "ended") {
		t.Fatal(err)
	}
	check.Eventually(t, time.Minute, func() error {
		calls, err := laptop.Client.Calls(ctx, 10)
		if err != nil {
			return err
		}
		for _, c := range calls {
			if c.ID == call.ID {
				if c.Direction != "out" || c.Peer != bobID.Account || c.State != "ended" {
					return fmt.Errorf("the laptop logs the call as %+v", c)
				}
				return nil
			}
		}
		return fmt.Errorf("the laptop's log has no call %s: %+v", call.ID, calls)
	})
}

// TestJoinFromWebApp: a node set up and never used joins Alice's account
// from its web app (POST /api/v1/devices/join): it shows the numbers, the
// person confirms them on both devices, and the node starts again, on the
// same API address, as a device of Alice's account under the device key
// the link certified, with her contacts; both list two devices, and a
// contact Alice adds afterwards reaches it. A bad code, a second join and
// numbers the person says differ are refused, with nothing kept.
func TestJoinFromWebApp(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second, CacheTTL: time.Second, ViewAge: time.Second}})
	alice, bob := net.Nodes[1], net.Nodes[2]
	ctx := ctxT(t, 4*time.Minute)
	if c, err := alice.Client.Claim(ctx, "alice"); err != nil || c.Status != "claimed" {
		t.Fatalf("claim: %+v %v", c, err)
	}
	bobID, err := bob.Client.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.AddContact(ctx, bobID.Account, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.JoinAccount(ctx, api.JoinRequest{Code: "callsign:link/garbage"}); err == nil {
		t.Fatal("a bad code was taken")
	}

	run := net.Run(t)
	first := run.Next(t)
	c, err := api.DialDataDir(run.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before, err := c.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	join := func(answer bool) api.LinkStatus {
		t.Helper()
		offer, err := alice.Client.StartLink(ctx, api.LinkRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := c.JoinAccount(ctx, api.JoinRequest{Code: offer.Code, Name: "browser"}); err != nil || st.State != api.LinkConnecting {
			t.Fatalf("join: %+v %v", st, err)
		}
		if _, err := c.JoinAccount(ctx, api.JoinRequest{Code: offer.Code}); err == nil {
			t.Fatal("a second join while one is under way was taken")
		}
		var mine api.LinkStatus
		check.Eventually(t, time.Minute, func() error {
			mine, err = c.JoinStatus(ctx)
			if err == nil && mine.State != api.LinkSAS {
				err = fmt.Errorf("joining node: %+v", mine)
			}
			return err
		})
		check.Eventually(t, time.Minute, func() error {
			theirs, err := alice.Client.LinkStatus(ctx)
			if err == nil && (theirs.State != api.LinkSAS || theirs.SAS != mine.SAS) {
				err = fmt.Errorf("Alice's device: %+v, the joining node shows %q", theirs, mine.SAS)
			}
			return err
		})
		if answer {
			if _, err := alice.Client.ConfirmLink(ctx, mine.SAS); err != nil {
				t.Fatal(err)
			}
		}
		st, err := c.ConfirmJoin(ctx, answer)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := join(false); st.State != api.LinkFailed {
		t.Fatalf("numbers the person says differ: %+v, want failed", st)
	}
	if id, err := c.ID(ctx); err != nil || id.Account != before.Account {
		t.Fatalf("after a declined link: %+v %v, want the node's own account", id, err)
	}
	alice.Client.CancelLink(ctx)
	join(true)
	second := run.Next(t)
	if second.Account() != alice.Account() || second.APIAddr() != first.APIAddr() {
		t.Fatalf("after the link: account %s at %s; want %s at %s", second.Account(), second.APIAddr(), alice.Account(), first.APIAddr())
	}
	id, err := c.ID(ctx)
	if err != nil || id.Account != alice.Account().String() || id.Peer != before.Peer {
		t.Fatalf("the same client after the link: %+v %v; want %s on the device key %s", id, err, alice.Account(), before.Peer)
	}
	if cs, err := c.Contacts(ctx); err != nil || len(cs) != 1 || cs[0].Petname != "bob" {
		t.Fatalf("contacts after the link: %+v %v", cs, err)
	}
	check.Until(t, time.Minute, "the joined device's record published", second.Published)
	for _, d := range []*api.Client{alice.Client, c} {
		check.Eventually(t, time.Minute, func() error {
			ds, err := d.Devices(ctx)
			if err == nil && (len(ds) != 2 || !slices.ContainsFunc(ds, func(d api.OwnDevice) bool { return d.Name == "browser" })) {
				err = fmt.Errorf("devices %+v, want two, one of them the browser", ds)
			}
			return err
		})
	}
	carol := net.Nodes[0]
	carolID, err := carol.Client.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.AddContact(ctx, carolID.Account, "carol"); err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, time.Minute, func() error {
		cs, err := c.Contacts(ctx)
		if err == nil && len(cs) != 2 {
			err = fmt.Errorf("the joined device's contacts %+v, want Bob and Carol", cs)
		}
		return err
	})
}
