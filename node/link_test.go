package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

// linkDevice links a new node, on a new data directory, to the account of
// e through e's API: the new device's person confirms the numbers it shows
// (answer), e's types what the new device showed. It returns what
// node.Link returned, the configuration to start the new node with and the
// link's last status on e.
func linkDevice(t *testing.T, ctx context.Context, net *testnet.Net, e *testnet.Node, name string, answer bool, typed func(sas string) string) (node.LinkedAccount, node.Config, api.LinkStatus, error) {
	t.Helper()
	offer, err := e.Client.StartLink(ctx, api.LinkRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(offer.Code, "callsign:link/") || time.Until(offer.Expires) < 5*time.Minute {
		t.Fatalf("link offer %+v: want a callsign:link/ code valid for minutes", offer)
	}
	cfg := net.NodeConfig()
	shown := make(chan string, 1)
	type result struct {
		la  node.LinkedAccount
		err error
	}
	done := make(chan result, 1)
	go func() {
		la, err := node.Link(ctx, cfg, node.LinkOptions{Code: offer.Code, Name: name, ConfirmSAS: func(ctx context.Context, sas string) (bool, error) {
			shown <- sas
			return answer, nil
		}})
		done <- result{la, err}
	}()
	var sas string
	select {
	case sas = <-shown:
	case r := <-done:
		return r.la, cfg, api.LinkStatus{}, r.err
	case <-ctx.Done():
		t.Fatal("the new device showed no numbers")
	}
	var st api.LinkStatus
	check.Eventually(t, 30*time.Second, func() error {
		st, err = e.Client.LinkStatus(ctx)
		if err == nil && st.State != api.LinkSAS && st.State != api.LinkFailed {
			err = fmt.Errorf("link state %s, want sas", st.State)
		}
		return err
	})
	var cerr error
	if st.State == api.LinkSAS {
		if st.SAS != sas {
			t.Fatalf("the two devices show %q and %q", st.SAS, sas)
		}
		_, cerr = e.Client.ConfirmLink(ctx, typed(sas))
	} else if answer {
		t.Fatalf("the link failed before the numbers were shown: %s", st.Reason)
	}
	r := <-done
	check.Eventually(t, 30*time.Second, func() error {
		st, err = e.Client.LinkStatus(ctx)
		if err == nil && st.State != api.LinkLinked && st.State != api.LinkFailed {
			err = fmt.Errorf("link state %s, want it over", st.State)
		}
		return err
	})
	if r.err == nil && cerr != nil {
		t.Fatalf("confirm: %v", cerr)
	}
	return r.la, cfg, st, r.err
}

// aliceWithBob is a network where Alice holds @alice and has Bob as a
// contact, with quick retries and a one-second cache of records.
func aliceWithBob(t *testing.T) (net *testnet.Net, alice, bob *testnet.Node, bobID api.ID) {
	t.Helper()
	net = testnet.New(t, 3, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second, CacheTTL: time.Second, ViewAge: time.Second}})
	alice, bob = net.Nodes[1], net.Nodes[2]
	ctx := ctxT(t, time.Minute)
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
	return net, alice, bob, bobID
}

// TestLinkDevice: Alice links a laptop to her account from her first
// device, then a desktop from the laptop. Each time both show the same
// numbers; once she confirms them on both, the new device holds her
// account (@alice, her contact Bob, her conversation with him) under its
// own device key. All three
// list the three, and the account's record names them: Bob's message
// arrives once on each, and the laptop's reply reaches Bob once and shows
// on the first device and the desktop in the same conversation.
func TestLinkDevice(t *testing.T) {
	net, alice, bob, bobID := aliceWithBob(t)
	ctx := ctxT(t, 4*time.Minute)
	if _, err := bob.Client.AddContact(ctx, "@alice", "alice"); err != nil {
		t.Fatal(err)
	}

	// A conversation before the link: the new devices get it.
	if _, err := bob.Client.AddContact(ctx, "@alice", "alice"); err != nil {
		t.Fatal(err)
	}
	early, err := bob.Client.Send(ctx, "alice", "before the link")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, bob.Client, "alice", early.ID, "delivered")
	// Bob verified Alice: her new devices, certified by the key he
	// verified, change nothing of it.
	before, err := bob.Client.Safety(ctx, "alice", true)
	if err != nil || !before.Verified {
		t.Fatalf("Bob verifies Alice: %+v %v", before, err)
	}

	la, cfg, st, err := linkDevice(t, ctx, net, alice, "laptop", true, func(sas string) string { return sas })
	if err != nil {
		t.Fatal(err)
	}
	if la.Account != alice.Account() || la.Name != "laptop" {
		t.Fatalf("linked %+v, want Alice's account as laptop", la)
	}
	if st.State != api.LinkLinked || st.Device == nil || st.Device.Name != "laptop" || st.Device.ID != la.Device.String() {
		t.Fatalf("Alice's first device says %+v, want the laptop linked", st)
	}
	laptop := net.StartOn(cfg)
	id, err := laptop.Client.ID(ctx)
	if err != nil || id.Account != alice.Account().String() {
		t.Fatalf("the laptop's account: %+v %v, want %s", id, err, alice.Account())
	}
	if cs, err := laptop.Client.Contacts(ctx); err != nil || len(cs) != 1 || cs[0].Petname != "bob" {
		t.Fatalf("the laptop's contacts: %+v %v, want Bob", cs, err)
	}
	check.Until(t, time.Minute, "the laptop's record published", laptop.Published)

	// The laptop, not the first device, links the third: no device leads.
	_, cfg, st, err = linkDevice(t, ctx, net, laptop, "desktop", true, func(sas string) string { return sas })
	if err != nil || st.State != api.LinkLinked {
		t.Fatalf("linking the desktop from the laptop: %v, %+v", err, st)
	}
	desktop := net.StartOn(cfg)
	check.Until(t, time.Minute, "the desktop's record published", desktop.Published)
	devs := []*testnet.Node{alice, laptop, desktop}
	for _, d := range devs {
		check.Eventually(t, time.Minute, func() error {
			ds, err := d.Client.Devices(ctx)
			if err != nil {
				return err
			}
			var got []string
			for _, d := range ds {
				got = append(got, fmt.Sprintf("%s current=%v revoked=%v", d.Name, d.Current, d.Revoked))
			}
			if len(ds) != 3 || slices.ContainsFunc(ds, func(d api.OwnDevice) bool { return d.Revoked }) ||
				!slices.ContainsFunc(ds, func(d api.OwnDevice) bool { return d.Current }) {
				return fmt.Errorf("devices %v, want three, this one among them", got)
			}
			return nil
		})
	}
	// The record Bob reads names the three.
	check.Eventually(t, time.Minute, func() error {
		w, err := bob.Client.Whois(ctx, "@alice")
		if err == nil && len(w.Devices) != 3 {
			err = fmt.Errorf("@alice has %d devices", len(w.Devices))
		}
		return err
	})

	// Bob's message arrives once on each.
	m, err := bob.Client.Send(ctx, "@alice", "to all of you")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		check.Eventually(t, time.Minute, func() error {
			if got := texts(t, d.Client, bobID.Account); !slices.Equal(got, []string{"in:before the link", "in:to all of you"}) {
				return fmt.Errorf("conversation with Bob %q", got)
			}
			return nil
		})
	}
	waitState(t, bob.Client, "@alice", m.ID, "delivered")
	if after, err := bob.Client.Safety(ctx, "alice", false); err != nil || !after.Verified || after.KeyChanged || after.SafetyNumber != before.SafetyNumber {
		t.Fatalf("Bob's safety number with Alice after her new devices: %+v %v; before %+v", after, err, before)
	}
	// Alice replies from the laptop: the first device and the desktop
	// show the reply in the same conversation; Bob gets it once.
	if _, err := laptop.Client.Send(ctx, "bob", "from the laptop"); err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, time.Minute, func() error {
		if got := texts(t, bob.Client, alice.Account().String()); !slices.Equal(got, []string{"out:before the link", "out:to all of you", "in:from the laptop"}) {
			return fmt.Errorf("Bob's conversation %q", got)
		}
		for _, d := range []*testnet.Node{alice, desktop} {
			if got := texts(t, d.Client, bobID.Account); !slices.Equal(got, []string{"in:before the link", "in:to all of you", "out:from the laptop"}) {
				return fmt.Errorf("conversation on %s: %q", d.Dir, got)
			}
		}
		return nil
	})
}

// A link the person declines, on either device, or a code used twice
// leaves the new directory without an account, and the first device
// unchanged; a directory whose account is in use is refused before
// anything is dialled.
func TestLinkRefused(t *testing.T) {
	net := testnet.New(t, 2, testnet.Options{})
	alice := net.Nodes[1]
	ctx := ctxT(t, 2*time.Minute)
	count := func() int {
		ds, err := alice.Client.Devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(ds)
	}

	// Alice types other digits than the laptop shows.
	_, _, st, err := linkDevice(t, ctx, net, alice, "laptop", true, otherDigits)
	if !errors.Is(err, devices.ErrLinkDeclined) || st.State != api.LinkFailed {
		t.Fatalf("other digits typed: %v, state %+v; want the link declined", err, st)
	}
	// The laptop's person says the numbers differ.
	_, _, st, err = linkDevice(t, ctx, net, alice, "laptop", false, func(sas string) string { return sas })
	if !errors.Is(err, devices.ErrLinkDeclined) || st.State != api.LinkFailed {
		t.Fatalf("declined on the laptop: %v, state %+v", err, st)
	}
	if n := count(); n != 1 {
		t.Fatalf("Alice lists %d devices after two declined links, want 1", n)
	}
	if _, err := alice.Client.ConfirmLink(ctx, "123 456"); err == nil {
		t.Fatal("a confirm with no link waiting succeeded")
	}

	// A code used once is spent.
	offer, err := alice.Client.StartLink(ctx, api.LinkRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.StartLink(ctx, api.LinkRequest{}); err == nil {
		t.Fatal("a second link while one waits was offered")
	}
	if _, err := alice.Client.CancelLink(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = node.Link(ctx, net.NodeConfig(), node.LinkOptions{Code: offer.Code, ConfirmSAS: func(context.Context, string) (bool, error) { return true, nil }})
	if !errors.Is(err, devices.ErrLinkSpent) {
		t.Fatalf("a canceled code: %v, want %v", err, devices.ErrLinkSpent)
	}

	// Bob's directory holds his account, in use.
	bob := net.Add(false)
	check.Eventually(t, time.Minute, func() error {
		_, err := bob.Client.Claim(ctx, "bob")
		return err
	})
	bob.Client.Close()
	if err := bob.Node.Close(); err != nil {
		t.Fatal(err)
	}
	offer, err = alice.Client.StartLink(ctx, api.LinkRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := net.NodeConfig()
	cfg.DataDir = bob.Dir
	if _, err := node.Link(ctx, cfg, node.LinkOptions{Code: offer.Code, ConfirmSAS: func(context.Context, string) (bool, error) { return true, nil }}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("linking a directory with an account in use: %v", err)
	}
	if st, err := alice.Client.LinkStatus(ctx); err != nil || st.State != api.LinkWaiting {
		t.Fatalf("the code after a refused directory: %+v %v, want it still waiting", st, err)
	}
}

// otherDigits is sas with its first digit changed.
func otherDigits(sas string) string {
	return string('0'+(sas[0]-'0'+1)%10) + sas[1:]
}

// TestRevokeDevice: Alice has three devices; from the first she revokes
// the third. The record Bob reads names two, the third is told at once
// and sends nothing more (it says why), Bob's next message reaches the
// first two only, and the devices list shows the third as revoked. The
// first device can't revoke itself, and an id prefix that names no
// device is refused.
func TestRevokeDevice(t *testing.T) {
	net, alice, bob, bobID := aliceWithBob(t)
	ctx := ctxT(t, 4*time.Minute)
	devs := []*testnet.Node{alice}
	for _, name := range []string{"laptop", "old-phone"} {
		la, cfg, _, err := linkDevice(t, ctx, net, alice, name, true, func(sas string) string { return sas })
		if err != nil || la.Name != name {
			t.Fatalf("link %s: %+v %v", name, la, err)
		}
		d := net.StartOn(cfg)
		check.Until(t, time.Minute, name+"'s record published", d.Published)
		devs = append(devs, d)
	}
	phone := devs[2]
	phoneID, err := phone.Client.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, d := range phoneID {
		if d.Current {
			id = d.ID
		}
	}
	check.Eventually(t, time.Minute, func() error {
		w, err := bob.Client.Whois(ctx, "@alice")
		if err == nil && len(w.Devices) != 3 {
			err = fmt.Errorf("@alice has %d devices", len(w.Devices))
		}
		return err
	})

	if _, err := alice.Client.RevokeDevice(ctx, "zz"); err == nil {
		t.Error("a two-character id was taken")
	}
	if _, err := alice.Client.RevokeDevice(ctx, "7777777"); err == nil {
		t.Error("an id of no device was revoked")
	}
	self, _ := alice.Client.Devices(ctx)
	for _, d := range self {
		if d.Current {
			if _, err := alice.Client.RevokeDevice(ctx, d.ID); err == nil {
				t.Error("the first device revoked itself")
			}
		}
	}
	d, err := alice.Client.RevokeDevice(ctx, id[:6])
	if err != nil || d.ID != id || !d.Revoked || d.Name != "old-phone" {
		t.Fatalf("revoke %s: %+v %v", id[:6], d, err)
	}

	// The phone is told, and says so.
	check.Eventually(t, time.Minute, func() error {
		st, err := phone.Client.Status(ctx)
		if err == nil && !st.DeviceRevoked {
			err = errors.New("the phone does not know it was revoked")
		}
		return err
	})
	if _, err := phone.Client.Send(ctx, "bob", "from a revoked phone"); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("a send from the revoked phone: %v", err)
	}
	check.Eventually(t, time.Minute, func() error {
		w, err := bob.Client.Whois(ctx, "@alice")
		if err == nil && len(w.Devices) != 2 {
			err = fmt.Errorf("@alice has %d devices", len(w.Devices))
		}
		return err
	})
	ds, err := alice.Client.Devices(ctx)
	if err != nil || !slices.ContainsFunc(ds, func(d api.OwnDevice) bool { return d.ID == id && d.Revoked && d.Name == "old-phone" }) {
		t.Fatalf("Alice's devices after the revocation: %+v %v", ds, err)
	}

	// Bob's next message reaches the first two devices only.
	if _, err := bob.Client.Send(ctx, "@alice", "after the phone went"); err != nil {
		t.Fatal(err)
	}
	for _, d := range devs[:2] {
		check.Eventually(t, time.Minute, func() error {
			if got := texts(t, d.Client, bobID.Account); !slices.Equal(got, []string{"in:after the phone went"}) {
				return fmt.Errorf("conversation with Bob %q", got)
			}
			return nil
		})
	}
	time.Sleep(2 * time.Second) // what would have reached the phone by now
	if got := texts(t, phone.Client, bobID.Account); len(got) != 0 {
		t.Fatalf("the revoked phone got %q", got)
	}
}

// TestCallRingsEverywhere: Bob calls Alice, who has three devices: all
// three ring; the third answers and the call connects with it; the other
// two stop ringing, "answered elsewhere". A second call declined on one
// device stops the others too.
func TestCallRingsEverywhere(t *testing.T) {
	net, alice, bob, _ := aliceWithBob(t)
	ctx := ctxT(t, 4*time.Minute)
	if _, err := bob.Client.AddContact(ctx, "@alice", "alice"); err != nil {
		t.Fatal(err)
	}
	devs := []*testnet.Node{alice}
	for _, name := range []string{"laptop", "desktop"} {
		_, cfg, _, err := linkDevice(t, ctx, net, alice, name, true, func(sas string) string { return sas })
		if err != nil {
			t.Fatalf("link %s: %v", name, err)
		}
		d := net.StartOn(cfg)
		check.Until(t, time.Minute, name+"'s record published", d.Published)
		devs = append(devs, d)
	}
	check.Eventually(t, time.Minute, func() error {
		w, err := bob.Client.Whois(ctx, "@alice")
		if err == nil && len(w.Devices) != 3 {
			err = fmt.Errorf("@alice has %d devices", len(w.Devices))
		}
		return err
	})

	ringing := func(c *api.Client) (string, error) {
		calls, err := c.Calls(ctx, 5)
		if err != nil {
			return "", err
		}
		for _, cl := range calls {
			if cl.Direction == "in" && cl.State == "ringing" {
				return cl.ID, nil
			}
		}
		return "", fmt.Errorf("no call rings: %+v", calls)
	}
	c, err := bob.Client.Dial(ctx, api.CallRequest{To: "alice", Audio: "tone"})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range devs {
		check.Eventually(t, time.Minute, func() error {
			id, err := ringing(d.Client)
			if err == nil && id != c.ID {
				err = fmt.Errorf("device %d rings call %s, want %s", i+1, id, c.ID)
			}
			return err
		})
	}
	if _, err := devs[2].Client.CallAction(ctx, c.ID, "answer", &api.AnswerRequest{Audio: "tone"}); err != nil {
		t.Fatal(err)
	}
	waitCall(t, bob.Client, c.ID, "active")
	waitCall(t, devs[2].Client, c.ID, "active")
	for _, d := range devs[:2] {
		if end := waitCall(t, d.Client, c.ID, "ended"); end.EndReason != "answered-elsewhere" {
			t.Fatalf("a device that rang: %+v, want ended, answered elsewhere", end)
		}
	}
	if _, err := bob.Client.CallAction(ctx, c.ID, "hangup", nil); err != nil {
		t.Fatal(err)
	}
	if end := waitCall(t, devs[2].Client, c.ID, "ended"); end.EndReason != "remote-hangup" {
		t.Fatalf("the device that answered: %+v", end)
	}

	// Declined on the laptop: Bob hears "declined", the others stop.
	c2, err := bob.Client.Dial(ctx, api.CallRequest{To: "alice", Audio: "tone"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		check.Eventually(t, time.Minute, func() error {
			id, err := ringing(d.Client)
			if err == nil && id != c2.ID {
				err = fmt.Errorf("rings %s, want %s", id, c2.ID)
			}
			return err
		})
	}
	if _, err := devs[1].Client.CallAction(ctx, c2.ID, "decline", nil); err != nil {
		t.Fatal(err)
	}
	if end := waitCall(t, bob.Client, c2.ID, "ended"); end.EndReason != "declined" {
		t.Fatalf("Bob's second call: %+v, want declined", end)
	}
	for _, d := range []*testnet.Node{devs[0], devs[2]} {
		if end := waitCall(t, d.Client, c2.ID, "ended"); end.EndReason != "declined" {
			t.Fatalf("a device that rang: %+v, want ended, declined", end)
		}
	}
}

// TestLinkIntoUnusedNode: a node that was set up (`callsign up`, the
// welcome screen) and never used, stopped, links as a new device of
// Alice's account: the account it made for itself gives way.
func TestLinkIntoUnusedNode(t *testing.T) {
	net, alice, _, _ := aliceWithBob(t)
	ctx := ctxT(t, 2*time.Minute)
	fresh := net.Add(false)
	check.Until(t, time.Minute, "the new node's own record published", fresh.Published)
	own := fresh.Account()
	fresh.Client.Close()
	if err := fresh.Node.Close(); err != nil {
		t.Fatal(err)
	}
	offer, err := alice.Client.StartLink(ctx, api.LinkRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := net.NodeConfig()
	cfg.DataDir = fresh.Dir
	la, err := node.Link(ctx, cfg, node.LinkOptions{Code: offer.Code, Name: "desk", ConfirmSAS: func(ctx context.Context, sas string) (bool, error) {
		// The person types these digits on Alice's first device.
		for {
			st, err := alice.Client.LinkStatus(ctx)
			if err != nil {
				return false, err
			}
			if st.State == api.LinkSAS {
				_, err := alice.Client.ConfirmLink(ctx, sas)
				return err == nil, err
			}
			time.Sleep(10 * time.Millisecond)
		}
	}})
	if err != nil || la.Account != alice.Account() {
		t.Fatalf("link into the unused node's directory: %+v %v", la, err)
	}
	nd := net.StartOn(cfg)
	if id, err := nd.Client.ID(ctx); err != nil || id.Account != alice.Account().String() || id.Account == own.String() {
		t.Fatalf("the node after the link: %+v %v; want Alice's account, not its own %s", id, err, own)
	}
}
