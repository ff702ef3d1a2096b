// Package module is the Caddy side of caddy-realtime: the realtime app,
// which owns the hubs, the realtime_ws and realtime_broadcast handlers, the
// backplane modules, the admin API and the metrics. The engine it adapts
// lives in module/hub and knows nothing of Caddy.
package module

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the realtime app. It owns the hubs: it acquires them from the hub
// pool in Provision and releases them in Cleanup, so that a hub, its
// connections and its history carry on across reloads while no handler
// ever shares a hub by accident. Handlers look hubs up by name; a name the
// app does not declare is a load error, except "default".
type App struct {
	// Hubs maps a hub name to its settings.
	Hubs map[string]*HubConfig `json:"hubs,omitempty"`

	ctx    caddy.Context
	logger *zap.Logger
	held   *heldHubs // hubs this app acquired
}

// heldHubs are the hubs an app acquired, by name. Handlers add to them while
// the config provisions; the admin API and metrics read them meanwhile.
type heldHubs struct {
	mu       sync.Mutex
	byName   map[string]*pooledHub
	settings map[string]heldSettings // what Start applies to each hub
	claims   []*pendingClaim         // handlers' webhooks, claimed at Start
	started  bool                    // Start has claimed them
}

// pendingClaim is a handler's webhook, which its hub takes on when the
// config starts (claimWebhook).
type pendingClaim struct {
	ph       *pooledHub
	name     string
	t        *webhookTarget
	release  func() // set once claimed
	released bool   // the handler gave it up
}

// heldSettings are a hub's settings in one config, and the logger its
// messages go to while that config runs.
type heldSettings struct {
	s      hubSettings
	logger *zap.Logger
}

// HubConfig are the settings of one hub.
type HubConfig struct {
	// HistorySize is how many events are kept for resume. Default 1000.
	HistorySize *int `json:"history_size,omitempty"`
	// HistoryTTL is how long events and idempotency keys are kept. Default 1h.
	HistoryTTL caddy.Duration `json:"history_ttl,omitempty"`
	// BackplaneRaw makes the hub's log shared by several nodes: a module of
	// the realtime.backplanes namespace, such as {"backplane": "redis",
	// "url": "redis://..."}. Without it the log is in memory.
	BackplaneRaw json.RawMessage `json:"backplane,omitempty" caddy:"namespace=realtime.backplanes inline_key=backplane"`
	// MaxConnections bounds the hub's connections on this node, whatever
	// endpoint accepted them. Default 100000.
	MaxConnections int `json:"max_connections,omitempty"`
	// MaxConnectionsPerIP bounds one client address's connections to the
	// hub on this node; 0 is unlimited. Default 1000.
	MaxConnectionsPerIP *int `json:"max_connections_per_ip,omitempty"`
	// Private lists * globs of channels that need a token (on the Pusher
	// protocol, an auth signature) on every endpoint of the hub, beyond
	// private-* and each endpoint's own private patterns: a channel that
	// is private on one endpoint should be private on all of them.
	Private []string `json:"private,omitempty"`
	// Presence lists * globs of channels that are presence channels on
	// the module's own protocol, beyond presence-*, which always are.
	Presence []string `json:"presence,omitempty"`
	// PresenceLeaveDelay is how long a user stays a member after its last
	// connection is gone; 0 leaves at once. Default 3s.
	PresenceLeaveDelay *caddy.Duration `json:"presence_leave_delay,omitempty"`
	// PresenceMaxMembers is how many members a presence channel lists;
	// above it, counts only. Default 100.
	PresenceMaxMembers *int `json:"presence_max_members,omitempty"`
	// PresenceTTL is how soon the members of a node that died without
	// saying so are removed, with a backplane. Default 30s.
	PresenceTTL caddy.Duration `json:"presence_ttl,omitempty"`
	// Webhook posts what happens on the hub to the application.
	Webhook *WebhookConfig `json:"webhook,omitempty"`
}

// Defaults of a hub.
const (
	DefaultHistorySize         = 1000
	DefaultHistoryTTL          = time.Hour
	DefaultHub                 = "default"
	defaultMaxConnections      = 100000
	defaultMaxConnectionsPerIP = 1000
)

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "realtime",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision checks the hub settings and acquires every declared hub. It
// connects nothing: backplanes start in Start, so that `caddy validate`
// has no side effects.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	a.held = &heldHubs{byName: make(map[string]*pooledHub), settings: make(map[string]heldSettings)}
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	for _, name := range a.names() {
		if _, err := a.acquire(name); err != nil {
			return err
		}
	}
	return nil
}

// names returns the declared hub names, sorted, so that errors are stable.
func (a *App) names() []string {
	names := make([]string, 0, len(a.Hubs))
	for name := range a.Hubs {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Validate checks the hub settings.
func (a *App) Validate() error {
	for name, hc := range a.Hubs {
		if name == "" {
			return errors.New("realtime: hub name must not be empty")
		}
		if hc == nil {
			continue
		}
		switch {
		case hc.HistorySize != nil && *hc.HistorySize < 0:
			return fmt.Errorf("realtime: hub %s: history_size must not be negative", name)
		case hc.HistoryTTL < 0:
			return fmt.Errorf("realtime: hub %s: history_ttl must not be negative", name)
		case hc.MaxConnections < 0:
			return fmt.Errorf("realtime: hub %s: max_connections must be positive", name)
		case hc.MaxConnectionsPerIP != nil && *hc.MaxConnectionsPerIP < 0:
			return fmt.Errorf("realtime: hub %s: max_connections_per_ip must be 0 (unlimited) or positive", name)
		case hc.PresenceLeaveDelay != nil && *hc.PresenceLeaveDelay < 0:
			return fmt.Errorf("realtime: hub %s: presence_leave_delay must not be negative", name)
		case hc.PresenceMaxMembers != nil && *hc.PresenceMaxMembers < 0:
			return fmt.Errorf("realtime: hub %s: presence_max_members must not be negative", name)
		case hc.PresenceTTL < 0:
			return fmt.Errorf("realtime: hub %s: presence_ttl must be positive", name)
		}
		for _, p := range hc.Presence {
			if p == "" || len(p) > 164 {
				return fmt.Errorf("realtime: hub %s: presence: invalid pattern %q", name, p)
			}
		}
		for _, p := range hc.Private {
			if p == "" || len(p) > 164 {
				return fmt.Errorf("realtime: hub %s: private: invalid pattern %q", name, p)
			}
		}
		if hc.Webhook != nil {
			if err := checkWebhookConfig(hc.Webhook); err != nil {
				return fmt.Errorf("realtime: hub %s: webhook: %v", name, err)
			}
		}
	}
	return nil
}

// Hub returns the hub named name for a handler. A hub the app does not
// declare is an error naming both, except "default", which gets the
// defaults.
func (a *App) Hub(name string) (*pooledHub, error) {
	a.held.mu.Lock()
	ph := a.held.byName[name]
	a.held.mu.Unlock()
	if ph != nil {
		return ph, nil
	}
	if name != DefaultHub {
		declared := a.names()
		if len(declared) == 0 {
			return nil, fmt.Errorf("hub %q is not declared: add `hub %s { ... }` to the realtime global option, or leave hub out to use %q", name, name, DefaultHub)
		}
		return nil, fmt.Errorf("hub %q is not declared in the realtime app (declared: %s); check its spelling", name, strings.Join(declared, ", "))
	}
	return a.acquire(name)
}

// acquire takes a hub from the pool, with this config's settings.
func (a *App) acquire(name string) (*pooledHub, error) {
	s, err := a.settings(name)
	if err != nil {
		return nil, fmt.Errorf("realtime: hub %s: %v", name, err)
	}
	logger := a.logger.With(zap.String("hub", name))
	ph, fresh, err := acquireHub(s, logger)
	if err != nil {
		return nil, fmt.Errorf("realtime: hub %s: %v", name, err)
	}
	if fresh {
		// No running config has it: its settings are this config's from
		// the start, so that a handler of another app that starts first
		// never serves it with defaults (no private patterns, say).
		ph.applySettings(s, logger)
	}
	a.held.mu.Lock()
	a.held.byName[name] = ph
	a.held.settings[name] = heldSettings{s: s, logger: logger}
	a.held.mu.Unlock()
	return ph, nil
}

// limits returns the connection limits this config gives hub name: the
// hub itself has the running config's until Start.
func (a *App) limits(name string) hub.Limits {
	a.held.mu.Lock()
	defer a.held.mu.Unlock()
	return a.held.settings[name].s.limits
}

// claimWebhook claims a webhook target of a handler of this config (its
// Provision) on ph when the config starts, so that a config that fails
// to load never posts to its targets, and returns the function that gives
// the claim up (the handler's Cleanup).
func (a *App) claimWebhook(ph *pooledHub, name string, t *webhookTarget) (release func()) {
	c := &pendingClaim{ph: ph, name: name, t: t}
	a.held.mu.Lock()
	a.held.claims = append(a.held.claims, c)
	if a.held.started {
		c.release = ph.claimWebhook(name, t)
	}
	a.held.mu.Unlock()
	return func() {
		a.held.mu.Lock()
		defer a.held.mu.Unlock()
		c.released = true
		if c.release != nil {
			c.release()
		}
	}
}

// claimWebhooks makes the handlers' webhook claims; releaseClaims gives
// them up (a config that failed to start).
func (a *App) claimWebhooks() {
	a.held.mu.Lock()
	defer a.held.mu.Unlock()
	a.held.started = true
	for _, c := range a.held.claims {
		if !c.released && c.release == nil {
			c.release = c.ph.claimWebhook(c.name, c.t)
		}
	}
}

func (a *App) releaseClaims() {
	a.held.mu.Lock()
	defer a.held.mu.Unlock()
	a.held.started = false
	for _, c := range a.held.claims {
		if c.release != nil {
			c.release()
			c.release = nil
		}
	}
}

// Start applies this config's settings to its hubs, starts their
// backplanes (a pooled hub that is already running carries on) and makes
// this app the one the admin API and metrics read. The settings wait for
// Start because a running hub is shared with the config before this one:
// a config that fails to load must not have changed it.
func (a *App) Start() error {
	previous.Store(current.Swap(a))
	a.claimWebhooks()
	for _, ph := range a.hubs() {
		a.applySettings(ph)
		if err := ph.Start(); err != nil {
			a.rollback()
			return fmt.Errorf("realtime: hub %s: %v", ph.name, err)
		}
		ph.startWebhooks()
	}
	return nil
}

// applySettings applies this config's settings to one of its hubs.
func (a *App) applySettings(ph *pooledHub) {
	a.held.mu.Lock()
	hs, ok := a.held.settings[ph.name]
	a.held.mu.Unlock()
	if ok {
		ph.applySettings(hs.s, hs.logger)
	}
}

// Stop implements caddy.App. Hubs stop when the last app holding them
// releases them (Cleanup), so that a reload keeps them. An app stopped
// while it is the running one, with the config before it still there, is
// a reload that failed after this app started: the config before it runs
// on.
func (a *App) Stop() error {
	a.rollback()
	return nil
}

// rollback gives the hubs back to the config that ran before this app
// started, if that one still runs, with its settings.
func (a *App) rollback() {
	prev := previous.Load()
	if !current.CompareAndSwap(a, prev) {
		return
	}
	previous.CompareAndSwap(prev, nil)
	a.releaseClaims()
	if prev == nil || prev.held == nil {
		return
	}
	for _, ph := range prev.hubs() {
		prev.applySettings(ph)
	}
}

// Cleanup releases the hubs this app acquired; a hub that no new config
// holds stops, and its clients are told to resume elsewhere.
func (a *App) Cleanup() error {
	if a.held == nil {
		return nil // Provision failed before it started
	}
	previous.CompareAndSwap(a, nil) // the config after this one runs
	a.held.mu.Lock()
	held := a.held.byName
	a.held.byName = nil
	a.held.mu.Unlock()
	for _, ph := range held {
		releaseHub(ph.key)
	}
	return nil
}

// hubs returns the hubs this app holds, sorted by name.
func (a *App) hubs() []*pooledHub {
	a.held.mu.Lock()
	defer a.held.mu.Unlock()
	out := make([]*pooledHub, 0, len(a.held.byName))
	for _, ph := range a.held.byName {
		out = append(out, ph)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// current is the running app: the admin API and the metrics resolve hubs
// through it, so that during a reload they report the new config's hubs,
// never a mix of two generations.
var current atomic.Pointer[App]

// previous is the app that ran before current, until it is cleaned up: a
// reload that fails after the new app started gives the hubs back to it.
var previous atomic.Pointer[App]

// runningHubs returns the running app's hubs.
func runningHubs() []*pooledHub {
	a := current.Load()
	if a == nil {
		return nil
	}
	return a.hubs()
}

// appFor returns the realtime app of a handler's config (an empty one when
// the config has no realtime global option).
func appFor(ctx caddy.Context) (*App, error) {
	v, err := ctx.App("realtime")
	if err != nil {
		return nil, err
	}
	return v.(*App), nil
}

var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
