package node_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// libp2p's and badger's process-wide workers, started once per process.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
	)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestAddressBook: a claim on one node resolves from every other; a
// squatter elsewhere gets "taken"; contacts pin keys.
func TestAddressBook(t *testing.T) {
	net := testnet.New(t, 8, testnet.Options{})
	ctx := ctxT(t, 2*time.Minute)
	owner := net.Nodes[3]
	cl, err := owner.Client.Claim(ctx, "@Carol")
	if err != nil {
		t.Fatal(err)
	}
	if cl.Status != "claimed" || cl.Name != "carol" || cl.Owner != owner.Account().String() {
		t.Fatalf("claim: %+v", cl)
	}
	for i, nd := range net.Nodes {
		w, err := nd.Client.Whois(ctx, "carol")
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if w.Status != "ok" || w.Account != owner.Account().String() || len(w.Devices) != 1 || !strings.HasPrefix(w.Handle, "carol~") {
			t.Fatalf("node %d whois: %+v", i, w)
		}
		// The self-certifying handle resolves to the same key everywhere.
		ws, err := nd.Client.Whois(ctx, w.Handle)
		if err != nil || ws.Status != "ok" || ws.Account != w.Account {
			t.Fatalf("node %d whois %s: %+v %v", i, w.Handle, ws, err)
		}
	}
	for _, name := range []string{"carol", "CAROL", "car.ol", "caro1"} {
		sq, err := net.Nodes[5].Client.Claim(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if sq.Status != "taken" || sq.Owner != owner.Account().String() {
			t.Fatalf("squat %q: %+v", name, sq)
		}
	}
	w, err := net.Nodes[5].Client.Whois(ctx, "carol")
	if err != nil || w.Account != owner.Account().String() {
		t.Fatalf("after squatting: %+v %v", w, err)
	}

	// Contacts: add pins the key, rm removes it, bad petnames are refused.
	c := net.Nodes[6].Client
	ct, err := c.AddContact(ctx, "carol", "Caro")
	if err != nil || ct.Account != owner.Account().String() || ct.Petname != "Caro" {
		t.Fatalf("add: %+v %v", ct, err)
	}
	if w, _ := c.Whois(ctx, "carol"); !w.Pinned || w.KeyChanged {
		t.Fatalf("pinned whois: %+v", w)
	}
	if _, err := c.AddContact(ctx, "nobody-here", ""); !api.IsCode(err, api.CodeNotFound) {
		t.Fatalf("add unknown: %v", err)
	}
	if _, err := c.AddContact(ctx, "carol", " bad"); !api.IsCode(err, api.CodeBadRequest) {
		t.Fatalf("bad petname: %v", err)
	}
	if err := c.RemoveContact(ctx, "Caro"); err != nil {
		t.Fatal(err)
	}
	if cs, _ := c.Contacts(ctx); len(cs) != 0 {
		t.Fatalf("contacts after rm: %+v", cs)
	}
	if err := c.RemoveContact(ctx, "Caro"); !api.IsCode(err, api.CodeNotFound) {
		t.Fatalf("rm twice: %v", err)
	}
	// Invalid names get a clear error.
	for _, bad := range []string{"", "ab", "a b", "x~y", strings.Repeat("z", 40)} {
		if _, err := c.Claim(ctx, bad); !api.IsCode(err, api.CodeInvalidName) {
			t.Errorf("claim %q: %v", bad, err)
		}
	}
}

// TestRestartKeepsIdentityAndHandles restarts a node on its data directory.
func TestRestartKeepsIdentityAndHandles(t *testing.T) {
	net := testnet.New(t, 4, testnet.Options{})
	ctx := ctxT(t, 2*time.Minute)
	nd := net.Nodes[2]
	if _, err := nd.Client.Claim(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	before, err := nd.Client.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nd = net.Restart(nd)
	after, err := nd.Client.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Account != before.Account || after.Peer != before.Peer || after.Handle != before.Handle {
		t.Fatalf("identity changed across restart:\n%+v\n%+v", before, after)
	}
	hs, err := nd.Client.Handles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
	}
	if len(hs) != 2 || hs[1].Name != "dave" || !hs[0].SelfCert {
		t.Fatalf("handles after restart: %v", names)
	}
	w, err := net.Nodes[1].Client.Whois(ctx, "dave")
	if err != nil || w.Status != "ok" || w.Account != before.Account {
		t.Fatalf("whois after restart: %+v %v", w, err)
	}
}

// TestKeyChangeWarning: a pinned contact's handle moves to another key (the
// holder stopped renewing it and someone else claimed it); whois and the
// contact list warn, and an event is raised.
func TestKeyChangeWarning(t *testing.T) {
	net := testnet.New(t, 5, testnet.Options{Network: node.Network{
		// The TTL must outlast a republish that waits out a dead peer's
		// 5 s request timeout on a loaded machine.
		RecordTTL: 10 * time.Second, Grace: 2 * time.Second, RepublishInterval: 2 * time.Second, CacheTTL: 500 * time.Millisecond,
		// Nobody keeps the first owner's records while it is away (with a
		// keeper the name lasts 90 days: TestKeepNinetyDays).
		NoKeep: true,
	}})
	ctx := ctxT(t, 2*time.Minute)
	first, second, watcher := net.Nodes[2], net.Nodes[3], net.Nodes[4]
	if cl, err := first.Client.Claim(ctx, "erin"); err != nil || cl.Status != "claimed" {
		t.Fatalf("claim: %+v %v", cl, err)
	}
	if _, err := watcher.Client.AddContact(ctx, "erin", ""); err != nil {
		t.Fatal(err)
	}
	events, err := watcher.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The first owner goes away; once its record has expired and the grace
	// period passed, the name is free.
	first.Client.Close()
	if err := first.Node.Close(); err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, 90*time.Second, func() error {
		cl, err := second.Client.Claim(ctx, "erin")
		if err != nil {
			return err
		}
		if cl.Status != "claimed" {
			return fmt.Errorf("still %s", cl.Status)
		}
		return nil
	})
	check.Eventually(t, 30*time.Second, func() error {
		w, err := watcher.Client.Whois(ctx, "erin")
		if err != nil {
			return err
		}
		if !w.KeyChanged || w.Pinned || w.Account != second.Account().String() || w.Warning == "" {
			return fmt.Errorf("whois: %+v", w)
		}
		return nil
	})
	cs, err := watcher.Client.Contacts(ctx)
	if err != nil || len(cs) != 1 || !cs[0].KeyChanged {
		t.Fatalf("contacts: %+v %v", cs, err)
	}
	select {
	case ev := <-events:
		if ev.Type != api.EventKeyChange || !strings.Contains(string(ev.Data), second.Account().String()) {
			t.Fatalf("event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no key-change event")
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := node.New(node.Config{}); err == nil {
		t.Fatal("no data dir accepted")
	}
	if _, err := node.New(node.Config{DataDir: t.TempDir(), Bootstrap: []string{"/ip4/127.0.0.1/tcp/1"}}); err == nil {
		t.Fatal("bootstrap without /p2p/ accepted")
	}
	for _, bad := range []node.Config{
		{DataDir: t.TempDir(), TURNPorts: "5000"},
		{DataDir: t.TempDir(), TURNPorts: "60000-50000"},
		{DataDir: t.TempDir(), TURNPorts: "80-90"},
		{DataDir: t.TempDir(), TURNRelayIP: "relay.example"},
		{DataDir: t.TempDir(), Listen: []string{"/ip4/127.0.0.1/tcp/notaport"}},
	} {
		if _, err := node.New(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	if _, err := node.New(node.Config{DataDir: t.TempDir(), TURNPorts: "49152-65535", TURNRelayIP: "203.0.113.7"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := node.Config{DataDir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, APIAddr: "127.0.0.1:0"}
	a, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _ := node.New(cfg)
	err = b.Start(ctxT(t, 30*time.Second))
	if !errors.Is(err, node.ErrAlreadyRunning) {
		t.Fatalf("second node on one data dir: %v", err)
	}
	var h interface{ Hint() string }
	if !errors.As(err, &h) || h.Hint() == "" {
		t.Fatalf("no hint: %v", err)
	}
	b.Close()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

// TestAddressBookLargeNetwork runs 25 real nodes (badger, DHT, API, msg)
// whose hosts talk over libp2p's mocknet with 10 ms one-way latency: a
// claim on one node resolves from every other, a squatter anywhere gets
// "taken", and a message crosses the simulated network.
func TestAddressBookLargeNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("25 nodes")
	}
	net := testnet.New(t, 25, testnet.Options{Mocknet: true, Latency: 10 * time.Millisecond})
	ctx := ctxT(t, 3*time.Minute)
	owner := net.Nodes[7]
	if cl, err := owner.Client.Claim(ctx, "frank"); err != nil || cl.Status != "claimed" {
		t.Fatalf("claim: %+v %v", cl, err)
	}
	for i, nd := range net.Nodes {
		w, err := nd.Client.Whois(ctx, "frank")
		if err != nil || w.Status != "ok" || w.Account != owner.Account().String() {
			t.Fatalf("node %d: %+v %v", i, w, err)
		}
	}
	for _, i := range []int{3, 19, 24} {
		sq, err := net.Nodes[i].Client.Claim(ctx, "FRANK")
		if err != nil || sq.Status != "taken" || sq.Owner != owner.Account().String() {
			t.Fatalf("squatter on node %d: %+v %v", i, sq, err)
		}
	}
	m, err := net.Nodes[20].Client.Send(ctx, "frank", "over the simulated network")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, net.Nodes[20].Client, "frank", m.ID, "delivered")
}
