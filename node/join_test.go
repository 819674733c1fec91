package node_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/node"
)

// TestJoinThroughBootstrapFile: a node given no address but a bootstrap
// file with a community's invite joins that community's DHT; a node alone
// says so in its status; a bad file fails the start with its name and
// line. (The process test TestJoinWithInvite looks a name up after
// joining with --join.)
func TestJoinThroughBootstrapFile(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t, 90*time.Second)
	dir := t.TempDir()
	hub := startNode(t, ctx, node.Config{DataDir: filepath.Join(dir, "hub"), Public: true})
	st, err := hub.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Invite == nil || !st.Invite.Own || !strings.HasPrefix(st.Invite.Invite, "callsign:join/") {
		t.Fatalf("a public node's invite: %+v", st.Invite)
	}
	if st.Peers != 0 || !strings.Contains(st.Hint, "callsign invite") {
		t.Fatalf("a public node alone: peers %d, hint %q", st.Peers, st.Hint)
	}
	hubInvite := st.Invite.Invite

	// Alone, with no network known, a node says what to do.
	lone := startNode(t, ctx, node.Config{DataDir: filepath.Join(dir, "lone")})
	st, err = lone.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Peers != 0 || !strings.Contains(st.Hint, "knows no network") || !strings.Contains(st.Hint, "callsign up --join INVITE") || st.Invite != nil {
		t.Fatalf("a node alone: %+v", st)
	}

	file := filepath.Join(dir, "bootstrap.txt")
	writeFile(t, file, "# the Harbour community\n\n"+hubInvite+"  # hub\n")
	member := startNode(t, ctx, node.Config{DataDir: filepath.Join(dir, "member"), BootstrapFiles: []string{file, filepath.Join(dir, "missing.txt")}})
	check.Eventually(t, 30*time.Second, func() error {
		st, err := member.Status(ctx)
		if err == nil && (st.Peers == 0 || st.RoutingTable == 0 || st.Hint != "") {
			err = fmt.Errorf("the member is not in the hub's network: %+v", st)
		}
		return err
	})
	// A member passes on the invite it came with.
	st, err = member.Status(ctx)
	if err != nil || st.Invite == nil || st.Invite.Own || st.Invite.Invite != hubInvite {
		t.Fatalf("member's invite: %+v %v", st.Invite, err)
	}

	// A bad line fails the start and names the file and the line.
	bad := filepath.Join(dir, "bad.txt")
	writeFile(t, bad, "# ok\n"+hubInvite+"\n/ip4/1.2.3.4/tcp/1\n")
	n, err := node.New(testConfig(node.Config{DataDir: filepath.Join(dir, "bad"), BootstrapFiles: []string{bad}}))
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(ctx)
	n.Close()
	if err == nil || !strings.Contains(err.Error(), "bad.txt, line 3") {
		t.Fatalf("bad bootstrap file: %v", err)
	}
	// A garbage invite is refused by New.
	if _, err := node.New(node.Config{DataDir: filepath.Join(dir, "x"), Join: "callsign:join/nonsense"}); err == nil || !strings.Contains(err.Error(), "invalid invite") {
		t.Fatalf("garbage invite: %v", err)
	}
}

// TestMDNS: two nodes on one machine, neither given an address, find each
// other on the local network, and the private one looks names up through
// the public one's DHT.
func TestMDNS(t *testing.T) {
	t.Parallel()
	if err := multicastWorks(); err != nil {
		t.Skipf("SKIP: multicast does not loop back on this machine, so mDNS can't be tested here: %v", err)
	}
	ctx := ctxT(t, 90*time.Second)
	dir := t.TempDir()
	// A service name of this test's own, so that test networks running at
	// the same time on this machine don't meet.
	service := fmt.Sprintf("_cs-test-%d-%d._udp", os.Getpid(), time.Now().UnixNano()%1e6)
	hub := startNode(t, ctx, node.Config{DataDir: filepath.Join(dir, "hub"), Public: true, MDNS: true, MDNSService: service})
	lan := startNode(t, ctx, node.Config{DataDir: filepath.Join(dir, "lan"), MDNS: true, MDNSService: service})
	check.Eventually(t, 30*time.Second, func() error {
		st, err := lan.Status(ctx)
		if err == nil && (!st.MDNS || st.Peers == 0 || st.RoutingTable == 0) {
			err = fmt.Errorf("the hub is not found on the local network: %+v", st)
		}
		return err
	})
	hubID, err := hub.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, 30*time.Second, func() error { return resolves(ctx, lan, hubID) })
}

// testConfig fills in what every node of these tests shares: loopback,
// a free API port, the cheap proof of work, and DHT server mode so that
// routing tables fill on loopback (as in internal/testnet).
func testConfig(cfg node.Config) node.Config {
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.DHTServer = true
	cfg.APIAddr = "127.0.0.1:0"
	cfg.Network.PoW = identity.TestPoW
	return cfg
}

// startNode starts a node of testConfig(cfg), closed when the test ends.
func startNode(t *testing.T, ctx context.Context, cfg node.Config) *node.Node {
	t.Helper()
	n, err := node.New(testConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// resolves checks that n finds id's self-certifying handle.
func resolves(ctx context.Context, n *node.Node, id api.ID) error {
	who, err := n.Backend().Whois(ctx, id.Handle)
	if err == nil && (who.Status != "ok" || who.Account != id.Account) {
		err = fmt.Errorf("whois %s: %+v", id.Handle, who)
	}
	return err
}

// multicastWorks sends one datagram to a multicast group and reads it back,
// as mDNS needs.
func multicastWorks() error {
	group := &net.UDPAddr{IP: net.IPv4(239, 255, 77, 77), Port: 0}
	l, err := net.ListenMulticastUDP("udp4", nil, group)
	if err != nil {
		return err
	}
	defer l.Close()
	group.Port = l.LocalAddr().(*net.UDPAddr).Port
	c, err := net.DialUDP("udp4", nil, group)
	if err != nil {
		return err
	}
	defer c.Close()
	want := fmt.Sprintf("callsign-probe-%d", time.Now().UnixNano())
	buf := make([]byte, 64)
	deadline := time.Now().Add(3 * time.Second)
	l.SetReadDeadline(deadline)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte(want)); err != nil {
			return err
		}
		n, _, err := l.ReadFromUDP(buf)
		if err == nil && string(buf[:n]) == want {
			return nil
		}
		if err != nil {
			return fmt.Errorf("no datagram came back: %w", err)
		}
	}
	return fmt.Errorf("no datagram came back within 3s")
}

func writeFile(t *testing.T, name, s string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
