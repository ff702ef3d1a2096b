package module

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddyserver/caddy/v2"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// metrics are created once per process and registered into each config's
// registry (Caddy makes a new registry per config load). Hub counters live
// in the engine as atomics; hubCollector reads them at scrape time, so the
// delivery hot path never touches Prometheus.
var metrics = struct {
	rejected        *prometheus.CounterVec
	publishLatency  *prometheus.HistogramVec
	webhookEvents   *prometheus.CounterVec
	webhookFailures *prometheus.CounterVec
	sseHeld         *prometheus.GaugeVec
	hubs            *hubCollector
}{
	rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "realtime",
		Name:      "publishes_rejected_total",
		Help:      "Publish requests refused, by hub and reason.",
	}, []string{"hub", "reason"}),
	publishLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy",
		Subsystem: "realtime",
		Name:      "publish_duration_seconds",
		Help:      "Time to accept a publish into the hub's log.",
		Buckets:   []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2},
	}, []string{"hub"}),
	webhookEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "realtime",
		Name:      "webhook_events_total",
		Help:      "Webhook events sent (the receiver answered 2xx), or dropped after an hour of failed attempts, by hub.",
	}, []string{"hub", "result"}),
	webhookFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "realtime",
		Name:      "webhook_failures_total",
		Help:      "Webhook POSTs that failed (no 2xx answer) and will be retried, by hub.",
	}, []string{"hub"}),
	sseHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy",
		Subsystem: "realtime",
		Name:      "sse_held_streams",
		Help:      "Server-Sent Events streams that net/http holds (HTTP/2, HTTP/3): a goroutine each, ended by a reload. HTTP/1.1 streams are taken over like WebSockets and not counted here.",
	}, []string{"hub"}),
	hubs: newHubCollector(),
}

// transports names the wire formats for metrics and the admin API, in the
// order they were named.
var transports []transportName

type transportName struct {
	name   string
	format hub.Format
}

// nameTransport names a codec's wire format; transports call it at
// package initialisation.
func nameTransport(name string, c hub.Codec) {
	transports = append(transports, transportName{name: name, format: c.Format()})
}

// connectionsByTransport returns a hub's open connections by transport.
func connectionsByTransport(s *hub.Stats) map[string]int64 {
	out := make(map[string]int64, len(transports))
	for _, t := range transports {
		out[t.name] = s.ConnectionsOf(t.format)
	}
	return out
}

// registerMetrics adds the collectors to the config's registry.
func registerMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{metrics.rejected, metrics.publishLatency, metrics.webhookEvents, metrics.webhookFailures, metrics.sseHeld, metrics.hubs} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// hubCollector exports every pooled hub's counters, labelled by hub only
// (never by channel or user: those are unbounded).
type hubCollector struct {
	connections, subscriptions, backplaneUp                  *prometheus.Desc
	published, deliveries, replayed, failed, slow, duplicate *prometheus.Desc
	lagged, disconnects, byTransport                         *prometheus.Desc
	presenceChannels, presenceMembers, webhookOverflow       *prometheus.Desc
}

func newHubCollector() *hubCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("caddy_realtime_"+name, help, []string{"hub"}, nil)
	}
	return &hubCollector{
		connections:      d("connections", "Open connections, every transport (WebSocket, Server-Sent Events, ...)."),
		subscriptions:    d("subscriptions", "Channel subscriptions of open connections."),
		backplaneUp:      d("backplane_up", "1 if the hub's log (memory or Redis) is reachable."),
		published:        d("events_published_total", "Events accepted into the log (one per channel)."),
		deliveries:       d("deliveries_total", "Live events queued to subscribers."),
		replayed:         d("replayed_events_total", "Events sent to resuming subscribers from history."),
		failed:           d("failed_recoveries_total", "Resumes answered recovered:false."),
		slow:             d("slow_consumer_disconnects_total", "Connections ended as slow consumers (1013): too far behind for history, or not reading."),
		duplicate:        d("duplicate_publishes_total", "Publications answered as duplicates of an earlier id."),
		lagged:           d("lagged_total", "Times a connection fell a send queue behind and caught up from history."),
		presenceChannels: d("presence_channels", "Presence channels with members held by this node."),
		presenceMembers:  d("presence_members", "Presence members held by this node (one per user and channel, however many tabs)."),
		webhookOverflow:  d("webhook_queue_overflow_total", "Webhook events the in-memory queue dropped unsent because it was full."),
		disconnects: prometheus.NewDesc("caddy_realtime_disconnects_total", "Connections that ended, by reason: the server's disconnects, and client for a client's own close.",
			[]string{"hub", "reason"}, nil),
		byTransport: prometheus.NewDesc("caddy_realtime_transport_connections", "Open connections by transport (websocket, sse, ...).",
			[]string{"hub", "transport"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connections, c.subscriptions, c.backplaneUp, c.published, c.deliveries, c.replayed, c.failed, c.slow, c.duplicate, c.lagged, c.disconnects, c.byTransport, c.presenceChannels, c.presenceMembers, c.webhookOverflow} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	for _, ph := range runningHubs() {
		s := ph.Stats().Snapshot()
		up, _ := ph.health()
		gauge := func(d *prometheus.Desc, v int64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), ph.name)
		}
		counter := func(d *prometheus.Desc, v int64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), ph.name)
		}
		gauge(c.connections, s.Connections)
		gauge(c.subscriptions, s.Subscriptions)
		gauge(c.backplaneUp, map[bool]int64{true: 1, false: 0}[up])
		counter(c.published, s.Published)
		counter(c.deliveries, s.Deliveries)
		counter(c.replayed, s.Replayed)
		counter(c.failed, s.FailedRecoveries)
		counter(c.slow, s.SlowDisconnects)
		counter(c.duplicate, s.Duplicates)
		counter(c.lagged, s.Lagged)
		gauge(c.presenceChannels, s.PresenceChannels)
		gauge(c.presenceMembers, s.PresenceMembers)
		counter(c.webhookOverflow, s.WebhooksDropped)
		for reason, n := range s.Disconnects {
			ch <- prometheus.MustNewConstMetric(c.disconnects, prometheus.CounterValue, float64(n), ph.name, reason)
		}
		for transport, n := range connectionsByTransport(ph.Stats()) {
			ch <- prometheus.MustNewConstMetric(c.byTransport, prometheus.GaugeValue, float64(n), ph.name, transport)
		}
	}
}
