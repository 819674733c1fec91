package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
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
	testnet.Eventually(t, 60*time.Second, func() error {
		m := scrape(t, bob, false)
		if in := m.value(t, "callsign_messages_total", "direction", "in"); in != 1 {
			return fmt.Errorf("bob's callsign_messages_total{direction=in} = %v", in)
		}
		if r := m.value(t, "callsign_message_requests_total"); r != 1 {
			return fmt.Errorf("bob's requests = %v", r)
		}
		return nil
	})
	// A call, given up before an answer: counted once, when it ends.
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
	testnet.Eventually(t, 30*time.Second, func() error {
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
