package node

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/store"
)

// metrics is what the node tells an operator's Prometheus: the network it
// sees (peers, routing table), what it carried (messages, calls) and what
// waits (the outbox). Counters are fed where the node turns messaging's
// and calls' events into API events, so a slow API subscriber can't make
// them miss one; gauges are read when scraped. Every name starts with
// callsign_; the Go runtime's and the process's own collectors come along.
type metrics struct {
	reg *prometheus.Registry

	messages *prometheus.CounterVec // direction: in, out
	requests prometheus.Counter
	states   *prometheus.CounterVec // state: sent, delivered, read, failed
	calls    *prometheus.CounterVec // direction, reason: each call once, when it ends

	mu    sync.Mutex
	ended map[string]struct{} // call ids counted, so a repeated "ended" counts once
}

// maxEndedIDs bounds the ids metrics remembers; forgetting the oldest
// only risks counting a call twice if its end were published again later.
const maxEndedIDs = 1024

func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callsign_messages_total", Help: "Messages sent (out, when queued) and received (in, when stored).",
		}, []string{"direction"}),
		requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callsign_message_requests_total", Help: "Messages from strangers, stored as requests.",
		}),
		states: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callsign_message_states_total", Help: "State changes of sent messages (sent, delivered, read, failed).",
		}, []string{"state"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callsign_calls_total", Help: "Calls ended, by direction and end reason.",
		}, []string{"direction", "reason"}),
		ended: map[string]struct{}{},
	}
	// Series that exist from the start, at zero, so dashboards and rates
	// need no special case for a quiet node.
	for _, d := range []string{"in", "out"} {
		m.messages.WithLabelValues(d)
	}
	for _, st := range []string{"sent", "delivered", "read", "failed"} {
		m.states.WithLabelValues(st)
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.messages, m.requests, m.states, m.calls,
		// Scraped only once the API (or --metrics) is up, after Start set
		// host, dht and db.
		gauge("callsign_peers", "Peers connected.", func() float64 {
			return float64(len(n.host.Network().Peers()))
		}),
		gauge("callsign_dht_routing_table_peers", "Peers in the DHT routing table.", func() float64 {
			return float64(n.dht.RoutingTableSize())
		}),
		gauge("callsign_outbox_messages", "Sent messages not yet acknowledged by their recipient.", func() float64 {
			var q []store.QueuedMessage
			if err := n.db.View(func(tx *store.Tx) (err error) { q, err = tx.Queued(); return err }); err != nil {
				return -1
			}
			return float64(len(q))
		}),
		gauge("callsign_calls_active", "Calls not yet ended.", func() float64 {
			if svc := n.calls.Load(); svc != nil {
				return float64(len(svc.Calls()))
			}
			return 0
		}),
		gauge("callsign_turn_allocations", "A public node's TURN allocations in use.", func() float64 {
			if svc := n.calls.Load(); svc != nil && svc.TURN() != nil {
				return float64(svc.TURN().Stats().Allocations)
			}
			return 0
		}),
		gauge("callsign_turn_connections", "A public node's open TURN-over-TCP and -TLS connections.", func() float64 {
			if svc := n.calls.Load(); svc != nil && svc.TURN() != nil {
				return float64(svc.TURN().Stats().TCPConns)
			}
			return 0
		}),
		gauge("callsign_mailbox_members", "Accounts registered with a public node's mailbox.", func() float64 {
			if srv := n.mbox().srv; srv != nil {
				return float64(srv.Stats().Members)
			}
			return 0
		}),
		gauge("callsign_mailbox_envelopes", "Envelopes waiting in a public node's mailbox, all members.", func() float64 {
			if srv := n.mbox().srv; srv != nil {
				return float64(srv.Stats().Waiting)
			}
			return 0
		}),
		gauge("callsign_mailbox_bytes", "Bytes of the envelopes waiting in a public node's mailbox.", func() float64 {
			if srv := n.mbox().srv; srv != nil {
				return float64(srv.Stats().Bytes)
			}
			return 0
		}),
		gauge("callsign_uptime_seconds", "Seconds since the node started.", func() float64 {
			return time.Since(n.started).Seconds()
		}),
	)
	return m
}

// message counts a message stored (in) or queued (out), request whether
// it came from a stranger.
func (m *metrics) message(direction string, request bool) {
	m.messages.WithLabelValues(direction).Inc()
	if request {
		m.requests.Inc()
	}
}

// state counts a sent message's state change.
func (m *metrics) state(s string) {
	switch s {
	case "sent", "delivered", "read", "failed":
		m.states.WithLabelValues(s).Inc()
	}
}

// call counts c once, when it has ended.
func (m *metrics) call(c api.Call) {
	if c.State != "ended" || (c.Direction != "in" && c.Direction != "out") {
		return
	}
	m.mu.Lock()
	_, seen := m.ended[c.ID]
	if !seen {
		if len(m.ended) >= maxEndedIDs {
			clear(m.ended)
		}
		m.ended[c.ID] = struct{}{}
	}
	m.mu.Unlock()
	if !seen {
		m.calls.WithLabelValues(c.Direction, reasonLabel(c.EndReason)).Inc()
	}
}

// reasonLabel keeps the reason label's values few and known: a peer
// can't grow the series with made-up reasons.
func reasonLabel(r string) string {
	switch media.Reason(r) {
	case media.ReasonHangup, media.ReasonRemoteHangup, media.ReasonDeclined, media.ReasonBusy, media.ReasonMissed,
		media.ReasonCancelled, media.ReasonUnavailable, media.ReasonFailed, media.ReasonICEFailed, media.ReasonTimeout:
		return r
	case "":
		return "none"
	}
	return "other"
}

// handler serves the metrics in Prometheus' text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// serveMetrics serves /metrics alone, without a token, on addr (up
// --metrics): for a Prometheus that can't hold the API's token. It stops
// with the node.
func (n *Node) serveMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return withHint(err, "pick another address with --metrics HOST:PORT")
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", n.metrics.handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 15 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 8 << 10}
	n.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Warn("metrics server stopped", "err", err)
		}
	})
	// Close cancels n.ctx, then waits for n.wg.
	n.wg.Go(func() {
		<-n.ctx.Done()
		srv.Close()
	})
	n.metricsAt = ln.Addr().String()
	n.log.Info("metrics", "addr", n.metricsAt)
	return nil
}

// MetricsAddr is the address of the --metrics listener; "" when there is
// none.
func (n *Node) MetricsAddr() string { return n.metricsAt }
