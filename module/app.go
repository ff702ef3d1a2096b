// Package module holds the Caddy side of caddy-realtime: the realtime app
// (hub settings), the realtime_ws and realtime_broadcast handlers, the hub
// pool that keeps hubs alive across reloads, the admin API and metrics. The
// engine it adapts lives in module/hub and knows nothing of Caddy.
package module

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the realtime app: per-hub settings shared by every handler that
// names a hub. It holds no state of its own; hubs live in the hub pool so
// that they, and their connections, survive config reloads.
type App struct {
	// Hubs maps a hub name to its settings. A hub named by a handler but
	// absent here gets the defaults.
	Hubs map[string]*HubConfig `json:"hubs,omitempty"`
}

// HubConfig are the settings of one hub.
type HubConfig struct {
	// HistorySize is how many events are kept for resume. Default 1000.
	HistorySize *int `json:"history_size,omitempty"`
	// HistoryTTL is how long events and idempotency keys are kept. Default 1h.
	HistoryTTL caddy.Duration `json:"history_ttl,omitempty"`
	// Redis makes a Redis stream the hub's log, shared by several nodes.
	Redis string `json:"redis,omitempty"`
}

// Defaults of a hub.
const (
	DefaultHistorySize = 1000
	DefaultHistoryTTL  = time.Hour
	DefaultHub         = "default"
)

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "realtime",
		New: func() caddy.Module { return new(App) },
	}
}

// Validate checks the hub settings.
func (a *App) Validate() error {
	for name, hc := range a.Hubs {
		if name == "" {
			return fmt.Errorf("realtime: hub name must not be empty")
		}
		if hc == nil {
			continue
		}
		if hc.HistorySize != nil && *hc.HistorySize < 0 {
			return fmt.Errorf("realtime: hub %s: history_size must not be negative", name)
		}
		if hc.HistoryTTL < 0 {
			return fmt.Errorf("realtime: hub %s: history_ttl must not be negative", name)
		}
	}
	return nil
}

// Start implements caddy.App. Hubs start when a handler first names them.
func (a *App) Start() error { return nil }

// Stop implements caddy.App. Hubs stop when no handler names them any more.
func (a *App) Stop() error { return nil }

// settings returns the effective settings of a hub.
func (a *App) settings(name string) hubSettings {
	s := hubSettings{name: name, historySize: DefaultHistorySize, historyTTL: DefaultHistoryTTL}
	if a == nil {
		return s
	}
	hc := a.Hubs[name]
	if hc == nil {
		return s
	}
	if hc.HistorySize != nil {
		s.historySize = *hc.HistorySize
	}
	if hc.HistoryTTL > 0 {
		s.historyTTL = time.Duration(hc.HistoryTTL)
	}
	s.redis = hc.Redis
	return s
}

// hubSettings is a hub's configuration after defaults and placeholders.
type hubSettings struct {
	name        string
	historySize int
	historyTTL  time.Duration
	redis       string
}

// hubFor finds the app in ctx (if configured) and returns the hub named
// name from the pool, creating it on first use.
func hubFor(ctx caddy.Context, name string) (*pooledHub, error) {
	var app *App
	if a, err := ctx.AppIfConfigured("realtime"); err == nil {
		app = a.(*App)
	}
	s := app.settings(name)
	if raw := s.redis; raw != "" {
		s.redis = caddy.NewReplacer().ReplaceAll(raw, "")
		if s.redis == "" {
			// Never a silent in-memory hub where a backplane was asked for.
			return nil, fmt.Errorf("hub %s: redis %q is empty after placeholder expansion (is its environment variable set?)", name, raw)
		}
	}
	return acquireHub(ctx, s)
}

var (
	_ caddy.App       = (*App)(nil)
	_ caddy.Validator = (*App)(nil)
)
