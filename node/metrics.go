package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
	"github.com/callsign/callsign/turn"
)

// metrics is what the node tells an operator's Prometheus: the network it
// sees (peers, routing table), what it carried (messages, calls) and what
// waits (the outbox), and on a public node what it serves and refuses (DHT
// requests and records, relays, the resource manager). Counters of
// messages and calls are fed where the node turns messaging's and calls'
// events into API events, so a slow API subscriber can't make them miss
// one; the rest are read when scraped from the counters the packages that
// own them keep (p2p.HostStats, dht.DHT.Requests, turn.Server.Stats).
// Every name starts with callsign_; the Go runtime's and the process's own
// collectors come along.
type metrics struct {
	reg  *prometheus.Registry
	host p2p.HostStats // fed by the libp2p host (startHost)

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
	for _, d := range []string{"in", "out"} {
		for _, r := range callReasons {
			m.calls.WithLabelValues(d, string(r))
		}
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
			var q []msg.QueuedMessage
			if err := n.db.View(func(tx *store.Tx) (err error) { q, err = msg.In(tx).Queued(); return err }); err != nil {
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
	m.reg.MustRegister(m.served(n)...)
	return m
}

// served are the collectors of what a node serves others and refuses
// them, read from its parts' own counters when scraped.
func (m *metrics) served(n *Node) []prometheus.Collector {
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	relay := func() p2p.RelayStats { return m.host.Relay() }
	return []prometheus.Collector{
		&readCollector{
			desc: prometheus.NewDesc("callsign_dht_requests_total",
				"DHT requests from other nodes, by kad message type, served (answered) or refused.", []string{"kind", "result"}, nil),
			typ: prometheus.CounterValue,
			read: func(emit func(float64, ...string)) error {
				if n.dht == nil {
					return nil
				}
				for _, r := range n.dht.Requests() {
					emit(float64(r.Served), r.Kind, "served")
					emit(float64(r.Refused), r.Kind, "refused")
				}
				return nil
			},
		},
		&readCollector{
			desc: prometheus.NewDesc("callsign_dht_records",
				"DHT records this node stores for the network, by kind (identity, handle).", []string{"kind"}, nil),
			typ: prometheus.GaugeValue,
			read: func(emit func(float64, ...string)) error {
				if n.dht == nil {
					return nil
				}
				ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
				defer cancel()
				r, err := n.dht.Records(ctx)
				if err != nil {
					return err
				}
				emit(float64(r.Identities), "identity")
				emit(float64(r.Handles), "handle")
				return nil
			},
		},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "callsign_dht_kept_members", Help: "Members whose presigned records a public node keeps published."}, func() float64 {
			if n.dht == nil {
				return 0
			}
			return float64(n.dht.KeptMembers())
		}),
		&readCollector{
			desc: prometheus.NewDesc("callsign_rcmgr_refusals_total",
				"Connections, streams and memory the libp2p resource manager refused, by the kind of scope whose limit refused them.", []string{"resource", "scope"}, nil),
			typ: prometheus.CounterValue,
			read: func(emit func(float64, ...string)) error {
				for _, r := range m.host.Refusals() {
					emit(float64(r.Count), r.Resource, r.Scope)
				}
				return nil
			},
		},
		counter("callsign_relay_bytes_total", "Bytes a public node's circuit relay carried, both directions.", func() float64 { return float64(relay().Bytes) }),
		counter("callsign_relay_circuits_total", "Circuits a public node's circuit relay opened.", func() float64 { return float64(relay().CircuitsAll) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "callsign_relay_circuits", Help: "Circuits open through a public node's circuit relay."}, func() float64 { return float64(relay().Circuits) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "callsign_relay_reservations", Help: "Reservations held at a public node's circuit relay."}, func() float64 { return float64(relay().Reservations) }),
		&readCollector{
			desc: prometheus.NewDesc("callsign_turn_relayed_bytes_total",
				"Bytes a public node's TURN relay carried: to-peer (a caller's media sent on) and from-peer (received for a caller).", []string{"direction"}, nil),
			typ: prometheus.CounterValue,
			read: func(emit func(float64, ...string)) error {
				var st turn.Stats
				if svc := n.calls.Load(); svc != nil && svc.TURN() != nil {
					st = svc.TURN().Stats()
				}
				emit(float64(st.RelayedToPeers), "to-peer")
				emit(float64(st.RelayedFromPeers), "from-peer")
				return nil
			},
		},
	}
}

// readCollector is a labelled metric whose values read reads from the
// counters a part of the node keeps, when scraped. A failed read is
// reported to the scraper as the metric's error.
type readCollector struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	read func(emit func(v float64, labels ...string)) error
}

func (c *readCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *readCollector) Collect(ch chan<- prometheus.Metric) {
	err := c.read(func(v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.desc, c.typ, v, labels...)
	})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
	}
}

// Message counts a message stored (in) or queued (out), request whether
// it came from a stranger (backend.Metrics).
func (m *metrics) Message(direction string, request bool) {
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
func (m *metrics) call(c call.Info) {
	if c.State != call.StateEnded || (c.Direction != call.DirectionIn && c.Direction != call.DirectionOut) {
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
		m.calls.WithLabelValues(string(c.Direction), reasonLabel(string(c.Reason))).Inc()
	}
}

// callReasons are the reason label's values: few and known, so a peer
// can't grow the series with made-up reasons.
var callReasons = []call.Reason{call.ReasonHangup, call.ReasonRemoteHangup, call.ReasonDeclined, call.ReasonBusy,
	call.ReasonMissed, call.ReasonCancelled, call.ReasonUnavailable, call.ReasonFailed, call.ReasonICEFailed,
	call.ReasonTimeout, call.ReasonElsewhere, "none", "other"}

// reasonLabel is r as a reason label: itself when known, "none" when
// empty, "other" otherwise.
func reasonLabel(r string) string {
	switch {
	case r == "":
		return "none"
	case r != "none" && r != "other" && slices.Contains(callReasons, call.Reason(r)):
		return r
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
