package module

import (
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// hubs holds every running hub, reference-counted by the realtime apps that
// hold it. It is package-level so that it outlives any one config: on a
// reload the new app acquires a hub before the old one releases it, so the
// hub, its connections and its history carry on.
var hubs = caddy.NewUsagePool()

// poolKey identifies a hub in the pool: its name and its backplane. A
// reload that changes the backplane makes a new hub, and the old one closes
// its clients with DisconnectBackplaneReplaced so that they resume on the
// new one.
type poolKey struct {
	name      string
	backplane string // the backplane's Identity; "" for the in-memory log
}

// pooledHub is a hub in the pool.
type pooledHub struct {
	*hub.Hub
	key      poolKey
	name     string
	backend  string // "memory", or the backplane module's name
	log      *followingLogger
	shutdown sync.Once

	latencyOnce sync.Once
	latency     prometheus.Observer // this hub's publish_duration_seconds

	webhooks webhooks // targets and senders (webhook.go)
}

// observePublish records how long a publish took to enter the log. The
// histogram's child is looked up once: WithLabelValues hashes the labels on
// every call.
func (ph *pooledHub) observePublish(d time.Duration) {
	ph.latencyOnce.Do(func() { ph.latency = metrics.publishLatency.WithLabelValues(ph.name) })
	ph.latency.Observe(d.Seconds())
}

// acquireHub returns the hub for s, making it if needed (fresh). It
// changes nothing of a hub that another config holds: the settings that
// change in place are applied by the app's Start (applySettings), once the
// config that declares them runs, so that a config that fails to load
// leaves the running one's settings alone. The caller must
// releaseHub(ph.key) in Cleanup. Nothing connects here: Start does.
func acquireHub(s hubSettings, logger *zap.Logger) (ph *pooledHub, fresh bool, err error) {
	key := poolKey{name: s.name}
	backend := "memory"
	if s.backplane != nil {
		key.backplane, backend = s.backplane.Identity(), s.backplaneName
	}
	v, loaded, err := hubs.LoadOrNew(key, func() (caddy.Destructor, error) {
		fl := newFollowingLogger(logger)
		log := hub.Log(hub.NewMemoryLog(s.historySize, s.historyTTL))
		if s.backplane != nil {
			l, err := s.backplane.NewLog(s.name, s.historySize, s.historyTTL, fl.zap().Named(backend))
			if err != nil {
				return nil, err
			}
			log = l
		}
		return &pooledHub{Hub: hub.New(s.name, log), key: key, name: s.name, backend: backend, log: fl}, nil
	})
	if err != nil {
		return nil, false, err
	}
	return v.(*pooledHub), !loaded, nil
}

// applySettings applies the settings that change in place (history,
// limits, presence, private patterns, the hub's webhook, the logger).
func (ph *pooledHub) applySettings(s hubSettings, logger *zap.Logger) {
	ph.SetRetention(s.historySize, s.historyTTL)
	ph.SetLimits(s.limits)
	ph.SetPresence(s.presence)
	ph.SetPrivate(s.private)
	ph.setWebhook(webhookHubTarget, s.webhook)
	ph.log.set(logger)
}

// releaseHub drops one reference to a hub; the last one stops it.
func releaseHub(key poolKey) {
	_, _ = hubs.Delete(key)
}

// shutdownWait bounds how long a stopping hub waits for its sessions after
// the close messages are spread, before it drops the rest.
const shutdownWait = time.Second

// Destruct implements caddy.Destructor: no app holds this hub any more.
// Its clients are told the hub was replaced if a hub of the same name with
// another backplane took its place, else that the server is going away.
func (ph *pooledHub) Destruct() error {
	ph.shutdown.Do(func() {
		d := hub.DisconnectShutdown
		if !caddy.Exiting() && ph.replaced() {
			d = hub.DisconnectBackplaneReplaced
		}
		n := ph.Sessions()
		ph.log.logger().Info("stopping hub", zap.Int("sessions", n), zap.String("disconnect", d.Name))
		ph.Close(d, hub.ShutdownSpread(n), shutdownWait)
		ph.stopWebhooks()
	})
	return nil
}

// replaced reports whether another hub of the same name is in the pool.
func (ph *pooledHub) replaced() bool {
	found := false
	hubs.Range(func(k, _ any) bool {
		key := k.(poolKey)
		if key != ph.key && key.name == ph.name {
			found = true
			return false
		}
		return true
	})
	return found
}

// health reports whether the hub's backplane is reachable.
func (ph *pooledHub) health() (bool, string) {
	if h, ok := ph.Log().(hub.Health); ok {
		return h.Healthy()
	}
	return true, ""
}

// String names the hub in errors.
func (ph *pooledHub) String() string { return fmt.Sprintf("hub %s (%s)", ph.name, ph.backend) }

var _ caddy.Destructor = (*pooledHub)(nil)
