package module

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// hubs holds every running hub, reference-counted by the handlers that name
// it. It is package-level so that it outlives any one config: on a reload
// the new handlers acquire a hub before the old ones release it, so the hub,
// its connections and its history carry on.
//
// A hub's key is its name and its backplane: a reload that changes the
// backplane makes a new hub, and the old one closes its clients with 1012 so
// that they resume on the new one.
var hubs = caddy.NewUsagePool()

// pooledHub is a hub in the pool.
type pooledHub struct {
	*hub.Hub
	key      string
	name     string
	backend  string // "memory" or "redis"
	logger   *zap.Logger
	shutdown sync.Once

	latencyOnce sync.Once
	latency     prometheus.Observer // this hub's publish_duration_seconds
}

// observePublish records how long a publish took to enter the log. The
// histogram's child is looked up once: WithLabelValues hashes the labels on
// every call.
func (ph *pooledHub) observePublish(d time.Duration) {
	ph.latencyOnce.Do(func() { ph.latency = metrics.publishLatency.WithLabelValues(ph.name) })
	ph.latency.Observe(d.Seconds())
}

func hubKey(s hubSettings) string {
	if s.redis == "" {
		return s.name + "\x00memory"
	}
	return s.name + "\x00redis\x00" + s.redis
}

// acquireHub returns the hub for s, creating it if needed, and applies the
// history limits in place. The caller must releaseHub(key) in Cleanup.
func acquireHub(ctx caddy.Context, s hubSettings) (*pooledHub, error) {
	key := hubKey(s)
	logger := ctx.Logger().Named("realtime").With(zap.String("hub", s.name))
	v, _, err := hubs.LoadOrNew(key, func() (caddy.Destructor, error) {
		log, backend, err := newLog(s, logger)
		if err != nil {
			return nil, err
		}
		h, err := hub.New(s.name, log, logger)
		if err != nil {
			_ = log.Close()
			return nil, err
		}
		return &pooledHub{Hub: h, key: key, name: s.name, backend: backend, logger: logger}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("hub %s: %v", s.name, err)
	}
	ph := v.(*pooledHub)
	ph.SetRetention(s.historySize, s.historyTTL)
	return ph, nil
}

// releaseHub drops one reference to a hub; the last one stops it.
func releaseHub(key string) {
	if key == "" {
		return
	}
	_, _ = hubs.Delete(key)
}

// newLog makes the backplane of a hub.
func newLog(s hubSettings, logger *zap.Logger) (hub.Log, string, error) {
	if s.redis == "" {
		return hub.NewMemoryLog(s.historySize, s.historyTTL), "memory", nil
	}
	if newRedisLog == nil {
		return nil, "", fmt.Errorf("redis backplane is not available in this build")
	}
	l, err := newRedisLog(s, logger)
	return l, "redis", err
}

// newRedisLog is set by redis.go; kept as a variable so the pool reads the
// same whatever the backplane.
var newRedisLog func(s hubSettings, logger *zap.Logger) (hub.Log, error)

// shutdownWait bounds how long a stopping hub waits for its sessions after
// the close frames are spread, before it drops the rest.
const shutdownWait = time.Second

// Destruct implements caddy.Destructor: no handler names this hub any more.
// Its clients get 1012 if a hub of the same name with another backplane
// replaced it, else 1001.
func (ph *pooledHub) Destruct() error {
	ph.shutdown.Do(func() {
		code, reason := hub.CloseGoingAway, "server going away"
		if !caddy.Exiting() && ph.replaced() {
			code, reason = hub.CloseServiceRestart, "hub restarted with a new backplane; resume with your last cursor"
		}
		n := ph.Sessions()
		ph.logger.Info("stopping hub", zap.Int("sessions", n), zap.Int("close_code", code))
		ph.Close(code, reason, hub.ShutdownSpread(n), shutdownWait)
	})
	return nil
}

// replaced reports whether another hub of the same name is in the pool.
func (ph *pooledHub) replaced() bool {
	found := false
	hubs.Range(func(k, _ any) bool {
		key := k.(string)
		if key != ph.key && strings.HasPrefix(key, ph.name+"\x00") {
			found = true
			return false
		}
		return true
	})
	return found
}

// pooledHubs returns the hubs in the pool, for the admin API and metrics.
func pooledHubs() []*pooledHub {
	var out []*pooledHub
	hubs.Range(func(_, v any) bool {
		out = append(out, v.(*pooledHub))
		return true
	})
	return out
}

var _ caddy.Destructor = (*pooledHub)(nil)

// health reports whether the hub's backplane is reachable.
func (ph *pooledHub) health() (bool, string) {
	if h, ok := ph.Log().(hub.Health); ok {
		return h.Healthy()
	}
	return true, ""
}
