package module

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// Backplane is a module of the realtime.backplanes namespace: it makes the
// log of a hub that several nodes share. Without one a hub's log is in
// memory. The Redis backplane (realtime.backplanes.redis) is one; others
// (NATS, PostgreSQL) would be modules of the same namespace, chosen with
// {"backplane": "<name>", ...} in a hub's JSON settings.
type Backplane interface {
	// Identity names what the backplane connects to, so that two configs
	// naming the same target share one hub across a reload and a changed
	// target replaces it. It must not hold secrets in a form that ends
	// up in logs.
	Identity() string
	// NewLog makes a hub's log. It must not connect: the hub starts the
	// log (hub.Log.Start) when the config starts, so that validating a
	// config touches nothing.
	NewLog(hubName string, historySize int, historyTTL time.Duration, logger *zap.Logger) (hub.Log, error)
}

// hubSettings is a hub's configuration after defaults and placeholders.
type hubSettings struct {
	name          string
	historySize   int
	historyTTL    time.Duration
	limits        hub.Limits
	backplane     Backplane // nil: in memory
	backplaneName string
	presence      hub.PresenceConfig
	private       []string       // the hub's private patterns
	webhook       *webhookTarget // nil: none
}

// settings returns the effective settings of a hub, loading its backplane
// module if it has one.
func (a *App) settings(name string) (hubSettings, error) {
	s := hubSettings{
		name:        name,
		historySize: DefaultHistorySize,
		historyTTL:  DefaultHistoryTTL,
		limits:      hub.Limits{MaxConnections: defaultMaxConnections, MaxConnectionsPerIP: defaultMaxConnectionsPerIP},
		presence:    hub.DefaultPresenceConfig(),
	}
	hc := a.Hubs[name]
	if hc == nil {
		return s, nil
	}
	if hc.HistorySize != nil {
		s.historySize = *hc.HistorySize
	}
	if hc.HistoryTTL > 0 {
		s.historyTTL = time.Duration(hc.HistoryTTL)
	}
	if hc.MaxConnections > 0 {
		s.limits.MaxConnections = hc.MaxConnections
	}
	if hc.MaxConnectionsPerIP != nil {
		s.limits.MaxConnectionsPerIP = *hc.MaxConnectionsPerIP
	}
	s.presence.Patterns = hc.Presence
	s.private = hc.Private
	if hc.PresenceLeaveDelay != nil {
		s.presence.LeaveDelay = time.Duration(*hc.PresenceLeaveDelay)
	}
	if hc.PresenceMaxMembers != nil {
		s.presence.MaxMembers = *hc.PresenceMaxMembers
	}
	if hc.PresenceTTL > 0 {
		s.presence.TTL = time.Duration(hc.PresenceTTL)
	}
	if hc.Webhook != nil {
		t, err := newWebhookTarget(hc.Webhook, "")
		if err != nil {
			return s, fmt.Errorf("webhook: %v", err)
		}
		s.webhook = t
	}
	if hc.BackplaneRaw != nil {
		v, err := a.ctx.LoadModule(hc, "BackplaneRaw")
		if err != nil {
			return s, err
		}
		s.backplane = v.(Backplane)
		s.backplaneName = v.(caddy.Module).CaddyModule().ID.Name()
	}
	return s, nil
}
