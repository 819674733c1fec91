package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
)

// TestMetrics: an operator's Prometheus reads the node's metrics from the
// API with the token, or from the --metrics address without one, and the
// counters move when a message is sent and a call is made.
func TestMetrics(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{Configure: func(c *node.Config) { c.MetricsAddr = "127.0.0.1:0" }})
	ctx := ctxT(t, 2*time.Minute)
	alice, bob := net.Nodes[1], net.Nodes[2]

	before := scrape(t, alice, true)
	if before.value(t, "callsign_peers") < 1 || before.value(t, "callsign_uptime_seconds") <= 0 {
		t.Fatalf("a connected node reports no peers or no uptime:\n%s", before.text)
	}
	if _, ok := before.families["go_goroutines"]; !ok {
		t.Errorf("no Go runtime metrics")
	}

	// A community node reports its relay and its mailbox.
	hub := scrape(t, net.Nodes[0], true)
	for _, name := range []string{"callsign_turn_allocations", "callsign_mailbox_members", "callsign_mailbox_envelopes"} {
		if _, ok := hub.families[name]; !ok {
			t.Errorf("the hub reports no %s", name)
		}
	}

	// A message: out on Alice's side, in (a request) on Bob's.
	if _, err := alice.Client.Send(ctx, bob.Account().String(), "metrics, please"); err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, 60*time.Second, func() error {
		m := scrape(t, bob, false)
		if in := m.value(t, "callsign_messages_total", "direction", "in"); in != 1 {
			return fmt.Errorf("bob's callsign_messages_total{direction=in} = %v", in)
		}
		if r := m.value(t, "callsign_message_requests_total"); r != 1 {
			return fmt.Errorf("bob's requests = %v", r)
		}
		return nil
	})
	// A call, given up before an answer: counted once, when it ends. (Bob
	// takes calls from everyone: a stranger's invite is refused before it
	// rings otherwise.)
	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{Policy: strp(node.CallsEveryone)}); err != nil {
		t.Fatal(err)
	}
	c, err := alice.Client.Dial(ctx, api.CallRequest{To: bob.Account().String(), Audio: "tone"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.CallAction(ctx, c.ID, "hangup", nil); err != nil {
		t.Fatal(err)
	}
	waitCall(t, alice.Client, c.ID, "ended")
	after := scrape(t, alice, true)
	if out := after.value(t, "callsign_messages_total", "direction", "out"); out != 1 {
		t.Errorf("alice's callsign_messages_total{direction=out} = %v, want 1", out)
	}
	check.Eventually(t, 30*time.Second, func() error {
		m := scrape(t, alice, true)
		if n := m.value(t, "callsign_calls_total", "direction", "out", "reason", "cancelled"); n != 1 {
			return fmt.Errorf("alice's callsign_calls_total{direction=out,reason=cancelled} = %v\n%s", n, m.grep("callsign_calls"))
		}
		if n := m.value(t, "callsign_calls_active"); n != 0 {
			return fmt.Errorf("calls active %v after the call ended", n)
		}
		return nil
	})
}

// TestMetricsCommunityNode: a community node's operator sees what it
// serves move when it happens: the records it stores after a member
// publishes, the DHT requests it answers when another member looks a name
// up, the streams its resource manager refuses to a greedy peer, and the
// bytes its circuit relay and its TURN relay carry.
func TestMetricsCommunityNode(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{})
	ctx := ctxT(t, 3*time.Minute)
	hub, alice, bob := net.Nodes[0], net.Nodes[1], net.Nodes[2]
	// Every name the operator's docs and dashboard use is one the hub
	// reports.
	before := scrape(t, hub, true)
	for _, doc := range []string{"../docs/METRICS.md", "../docs/grafana-callsign.json"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		names := regexp.MustCompile(`\b(?:callsign|go|process)_[a-z_]*[a-z]\b`).FindAllString(string(b), -1)
		if len(names) < 20 {
			t.Fatalf("%s names %d metrics", doc, len(names))
		}
		for _, name := range names {
			if _, ok := before.families[name]; !ok {
				t.Errorf("%s names %s, which the hub does not report", doc, name)
			}
		}
	}

	// Alice claims a name: the hub stores it. Bob looks it up: the hub
	// answers his GET_VALUE.
	if cl, err := alice.Client.Claim(ctx, "metrics"); err != nil || cl.Status != "claimed" {
		t.Fatalf("claim: %+v %v", cl, err)
	}
	check.Eventually(t, 30*time.Second, func() error {
		m := scrape(t, hub, true)
		if h := m.value(t, "callsign_dht_records", "kind", "handle"); h < 1 {
			return fmt.Errorf("the hub holds %v handle records after a claim\n%s", h, m.grep("callsign_dht"))
		}
		if id := m.value(t, "callsign_dht_records", "kind", "identity"); id < 3 {
			return fmt.Errorf("the hub holds %v identity records of 3 nodes\n%s", id, m.grep("callsign_dht"))
		}
		return nil
	})
	gets := func() float64 {
		return scrape(t, hub, true).value(t, "callsign_dht_requests_total", "kind", "get_value", "result", "served")
	}
	served := gets()
	if w, err := bob.Client.Whois(ctx, "metrics"); err != nil || w.Status != "ok" {
		t.Fatalf("whois: %+v %v", w, err)
	}
	if after := gets(); after <= served {
		t.Errorf("the hub's get_value requests served stayed at %v while bob resolved a name", after)
	}

	// A peer opening more streams of the DHT's protocol than its share:
	// the hub's resource manager refuses 8 of 40.
	hubInfo := peer.AddrInfo{ID: hub.Host().ID(), Addrs: hub.Host().Addrs()}
	greedy := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	if err := greedy.Connect(ctx, hubInfo); err != nil {
		t.Fatal(err)
	}
	for range 40 {
		s, err := greedy.NewStream(ctx, hubInfo.ID, "/callsign/kad/1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset()
		_, _ = s.Write([]byte{1}) // a length prefix: the hub waits for the message
	}
	check.Eventually(t, 30*time.Second, func() error {
		m := scrape(t, hub, true)
		if n := m.value(t, "callsign_rcmgr_refusals_total", "resource", "stream", "scope", "protocol-peer"); n < 8 {
			return fmt.Errorf("the hub counted %v refused streams of 40 from one peer\n%s", n, m.grep("callsign_rcmgr"))
		}
		return nil
	})

	// Two hosts that reach each other only through the hub's circuit
	// relay exchange 4 KiB each way.
	noListen := func(c *p2p.HostConfig) { c.Listen = []string{} }
	a, b := p2ptest.NewHost(t, noListen), p2ptest.NewHost(t, noListen)
	p2ptest.ServeEcho(b)
	if err := b.Connect(ctx, hubInfo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, b, hubInfo); err != nil {
		t.Fatalf("reserve a slot at the hub's relay: %v", err)
	}
	circuit := ma.StringCast(hubInfo.Addrs[0].String() + "/p2p/" + hubInfo.ID.String() + "/p2p-circuit")
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatalf("connect through the hub's relay: %v", err)
	}
	payload := make([]byte, 4096)
	if err := p2ptest.EchoRoundTrip(network.WithAllowLimitedConn(ctx, "test"), a, b.ID(), payload, make([]byte, len(payload))); err != nil {
		t.Fatalf("echo through the hub's relay: %v", err)
	}
	// The relay counts a chunk after passing it on: the echo may be back
	// before the count.
	check.Eventually(t, 30*time.Second, func() error {
		m := scrape(t, hub, true)
		if n := m.value(t, "callsign_relay_bytes_total"); n < float64(2*len(payload)) {
			return fmt.Errorf("the hub's relay counted %v bytes of a %d-byte echo\n%s", n, len(payload), m.grep("callsign_relay"))
		}
		if n := m.value(t, "callsign_relay_circuits_total"); n < 1 {
			return fmt.Errorf("the hub's relay counted %v circuits", n)
		}
		return nil
	})

	// A call that may use the relay only: the hub's TURN relay carries its
	// media both ways.
	if _, err := bob.Client.ChangeCallSettings(ctx, api.CallSettingsChange{Policy: strp(node.CallsEveryone), AutoAnswer: boolp(true)}); err != nil {
		t.Fatal(err)
	}
	c, err := alice.Client.Dial(ctx, api.CallRequest{To: bob.Account().String(), Audio: "tone", RelayOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	waitCall(t, alice.Client, c.ID, "active")
	check.Eventually(t, 30*time.Second, func() error {
		m := scrape(t, hub, true)
		for _, dir := range []string{"to-peer", "from-peer"} {
			if n := m.value(t, "callsign_turn_relayed_bytes_total", "direction", dir); n < 1000 {
				return fmt.Errorf("the hub's TURN relay counted %v bytes %s during a relayed call\n%s", n, dir, m.grep("callsign_turn"))
			}
		}
		return nil
	})
	if _, err := alice.Client.CallAction(ctx, c.ID, "hangup", nil); err != nil {
		t.Fatal(err)
	}
	waitCall(t, alice.Client, c.ID, "ended")
}

// TestMetricsNeedTheToken: the API's /metrics is refused without the
// token; the --metrics listener is off unless asked for.
func TestMetricsNeedTheToken(t *testing.T) {
	n := testnet.New(t, 2, testnet.Options{}).Nodes[1]
	resp, err := http.Get("http://" + readFile(t, n.Dir, api.AddrFile) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d, want 401", resp.StatusCode)
	}
	if a := n.MetricsAddr(); a != "" {
		t.Errorf("a metrics listener at %s nobody asked for", a)
	}
}

type scraped struct {
	text     string
	families map[string]*dto.MetricFamily
}

// scrape reads n's metrics, from the API with its token or from the
// --metrics listener, and parses them as Prometheus would.
func scrape(t *testing.T, n *testnet.Node, viaAPI bool) scraped {
	t.Helper()
	url := "http://" + n.MetricsAddr() + "/metrics"
	if viaAPI {
		url = "http://" + readFile(t, n.Dir, api.AddrFile) + "/metrics"
	}
	req, _ := http.NewRequestWithContext(context.Background(), "GET", url, nil)
	if viaAPI {
		req.Header.Set("Authorization", "Bearer "+readFile(t, n.Dir, api.TokenFile))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %s: %d %s %q", url, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("metrics not in Prometheus' text format: %v\n%s", err, body)
	}
	for name := range fams {
		if !strings.HasPrefix(name, "callsign_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %s: names start with callsign_", name)
		}
	}
	return scraped{text: string(body), families: fams}
}

// value is the value of the metric name with the given label pairs, 0
// when there is none.
func (s scraped) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	f, ok := s.families[name]
	if !ok {
		return 0
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	return 0
}

func (s scraped) grep(prefix string) string {
	var out []string
	for _, l := range strings.Split(s.text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
