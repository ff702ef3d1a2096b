package module

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/pusher"
)

func init() {
	caddy.RegisterModule(PusherHandler{})
	nameTransport("pusher", pusher.Codec{})
}

// PusherHandler is the realtime_pusher handler: the Pusher Channels
// protocol (version 7) on a hub, so that pusher-js, Laravel Echo and the
// Pusher server SDKs work against Caddy unchanged. It serves the WebSocket
// endpoint /app/<key> and the signed HTTP API under /apps/<app_id>/, and
// passes every other request on to the next handler, so it can sit in a
// site block without a matcher. Its events and those of realtime_ws and
// realtime_broadcast on the same hub cross both ways.
type PusherHandler struct {
	// Hub names the hub. Default "default".
	Hub string `json:"hub,omitempty"`
	// AppID is the Pusher app id, the <id> of /apps/<id>/ in the HTTP API.
	// Required; placeholders are expanded at provisioning.
	AppID string `json:"app_id,omitempty"`
	// Key is the app key, public: clients connect to /app/<key>, and it
	// prefixes auth signatures. Required; placeholders are expanded.
	Key string `json:"key,omitempty"`
	// Secret signs channel auth and HTTP API requests. Required;
	// placeholders such as {env.PUSHER_APP_SECRET} are expanded.
	Secret string `json:"secret,omitempty"`
	// AllowedOrigins replaces the default same-origin check of browser
	// connections. Clients that send no Origin (pusher-js in Node, server
	// SDKs) are always let in.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// ActivityTimeout is announced to clients, which ping after this long
	// without a frame from the server. The server pings a little sooner,
	// so that a client that only receives still answers. Default 120s.
	ActivityTimeout caddy.Duration `json:"activity_timeout,omitempty"`
	// ClientEvents lets clients send client-* events on private and
	// presence channels. Default off.
	ClientEvents bool `json:"client_events,omitempty"`
	// ClientEventRate bounds each connection's client events per second;
	// the excess is dropped with a pusher:error 4301. Default 10.
	ClientEventRate int `json:"client_event_rate,omitempty"`
	// Private lists channel patterns that need an auth signature beyond
	// private-* and presence-*: give it the private patterns of the hub's
	// realtime_ws routes, so a Pusher client cannot read those channels
	// without a signature.
	Private []string `json:"private,omitempty"`
	// MaxSubscriptions per connection. Default 100.
	MaxSubscriptions int `json:"max_subscriptions,omitempty"`
	// MaxMessageSize bounds client messages, in bytes. Default 16KiB (a
	// client event carries up to 10KiB of data).
	MaxMessageSize int64 `json:"max_message_size,omitempty"`
	// SendQueue is how many events may wait for a client before it falls
	// back to catching up from history. Default 1024.
	SendQueue int `json:"send_queue,omitempty"`
	// WriteTimeout bounds each write to a client. Default 10s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`
	// Webhook posts what happens on the hub to the application in
	// Pusher's webhook format, signed the Pusher way with the app's key
	// and secret, so that Pusher's server SDKs verify it.
	Webhook *PusherWebhook `json:"webhook,omitempty"`

	appID, key     string
	releaseWebhook func()
	hub            *pooledHub
	endpoint       *pusher.Endpoint
	codec          pusher.Codec
	api            pusher.APICredentials
	origins        *originPolicy
	serverPing     time.Duration
	upgrader       websocket.Upgrader
	logger         *zap.Logger
}

// PusherWebhook is realtime_pusher's webhook: a URL and the events it
// wants. It is signed with X-Pusher-Key and X-Pusher-Signature (hex
// HMAC-SHA256 of the body under the app secret).
type PusherWebhook struct {
	// URL receives the POSTs (http or https). Placeholders are expanded at
	// provisioning.
	URL string `json:"url"`
	// Events are the events to send. Default: channel_occupied,
	// channel_vacated, member_added, member_removed; client_event too when
	// listed.
	Events []string `json:"events,omitempty"`
}

// Defaults of realtime_pusher.
const (
	defaultActivityTimeout       = 120 * time.Second
	defaultClientEventRate       = 10
	defaultPusherMaxMessageSize  = 16 << 10
	defaultPusherMaxSubscription = 100
)

// CaddyModule returns the Caddy module information.
func (PusherHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.realtime_pusher",
		New: func() caddy.Module { return new(PusherHandler) },
	}
}

// Provision sets defaults, expands the credentials and looks up the hub.
func (h *PusherHandler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.setDefaults()
	if err := h.Validate(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	var secret string
	for _, c := range []struct {
		name string
		raw  string
		dst  *string
	}{{"app_id", h.AppID, &h.appID}, {"key", h.Key, &h.key}, {"secret", h.Secret, &secret}} {
		*c.dst = repl.ReplaceAll(c.raw, "")
		if *c.dst == "" {
			return fmt.Errorf("realtime_pusher: %s is empty after placeholder expansion (is its environment variable set?)", c.name)
		}
	}
	if strings.ContainsAny(h.appID, "/?#") || strings.ContainsAny(h.key, "/?#") {
		return errors.New("realtime_pusher: app_id and key must not contain '/', '?' or '#'")
	}
	activity := time.Duration(h.ActivityTimeout)
	// The server pings a tenth sooner than the client would, so that a
	// client's own timer is always reset by the server's ping first: one
	// ping and one pong per period, not two of each.
	h.serverPing = activity - activity/10
	policy := &hub.Policy{
		Private:          append([]string{"presence-*"}, h.Private...),
		Tokens:           pusher.Authorizer{Key: h.key, Secret: []byte(secret)},
		MaxSubscriptions: h.MaxSubscriptions,
		SendQueue:        h.SendQueue,
		PingInterval:     h.serverPing,
	}
	h.endpoint = &pusher.Endpoint{Policy: policy, ClientEvents: h.ClientEvents, ClientEventRate: h.ClientEventRate}
	h.codec = pusher.Codec{ActivityTimeout: activity}
	h.api = pusher.APICredentials{Key: h.key, Secret: []byte(secret)}
	origins, err := newOriginPolicy(h.AllowedOrigins)
	if err != nil {
		return fmt.Errorf("realtime_pusher: allowed_origins: %v", err)
	}
	h.origins = origins
	h.upgrader = websocket.Upgrader{
		ReadBufferSize:  readBufferSize,
		WriteBufferPool: &writeBufferPool,
		// Origins are checked after upgrading, so that pusher-js gets the
		// Pusher close code for them (4009) rather than retrying forever.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	app, err := appFor(ctx)
	if err != nil {
		return fmt.Errorf("realtime_pusher: %v", err)
	}
	if h.hub, err = app.Hub(h.Hub); err != nil {
		return fmt.Errorf("realtime_pusher: %v", err)
	}
	if h.Webhook != nil {
		t, err := newWebhookTarget(&WebhookConfig{URL: h.Webhook.URL, Secret: h.Secret, Events: h.Webhook.Events}, h.key)
		if err != nil {
			return fmt.Errorf("realtime_pusher: webhook: %v", err)
		}
		h.releaseWebhook = app.claimWebhook(h.hub, pusherWebhookName(h.appID, h.key, t.url), t)
	}
	return nil
}

// pusherWebhookName names a realtime_pusher webhook among the hub's
// targets: the same on every node with the same config (a shared queue
// hands each target's events to one node at a time), and without the URL
// itself, which may carry a token and appears in logs.
func pusherWebhookName(appID, key, url string) string {
	sum := sha256.Sum256([]byte(key + "\n" + url))
	return "pusher:" + appID + ":" + hex.EncodeToString(sum[:8])
}

// Cleanup gives up the handler's webhook: the hub keeps posting to it
// while a newer config's handler claims it too.
func (h *PusherHandler) Cleanup() error {
	if h.releaseWebhook != nil {
		h.releaseWebhook()
	}
	return nil
}

func (h *PusherHandler) setDefaults() {
	if h.Hub == "" {
		h.Hub = DefaultHub
	}
	if h.ActivityTimeout == 0 {
		h.ActivityTimeout = caddy.Duration(defaultActivityTimeout)
	}
	if h.ClientEventRate == 0 {
		h.ClientEventRate = defaultClientEventRate
	}
	if h.MaxSubscriptions == 0 {
		h.MaxSubscriptions = defaultPusherMaxSubscription
	}
	if h.MaxMessageSize == 0 {
		h.MaxMessageSize = defaultPusherMaxMessageSize
	}
	if h.SendQueue == 0 {
		h.SendQueue = defaultSendQueue
	}
	if h.WriteTimeout == 0 {
		h.WriteTimeout = caddy.Duration(defaultWriteTimeout)
	}
}

// Validate checks the settings (after defaults).
func (h *PusherHandler) Validate() error {
	switch {
	case h.AppID == "":
		return errors.New("realtime_pusher: app_id is required")
	case h.Key == "":
		return errors.New("realtime_pusher: key is required")
	case h.Secret == "":
		return errors.New("realtime_pusher: secret is required")
	case h.ActivityTimeout < caddy.Duration(time.Second):
		return errors.New("realtime_pusher: activity_timeout must be at least 1s")
	case h.ClientEventRate < 0:
		return errors.New("realtime_pusher: client_event_rate must be positive")
	case h.MaxSubscriptions < 0:
		return errors.New("realtime_pusher: max_subscriptions must be positive")
	case h.MaxMessageSize < 0:
		return errors.New("realtime_pusher: max_message_size must be positive")
	case h.SendQueue < 0:
		return errors.New("realtime_pusher: send_queue must be positive")
	case h.WriteTimeout < 0:
		return errors.New("realtime_pusher: write_timeout must be positive")
	}
	for _, p := range h.Private {
		if p == "" || len(p) > 164 {
			return fmt.Errorf("realtime_pusher: private: invalid pattern %q", p)
		}
	}
	if h.Webhook != nil {
		if h.Webhook.URL == "" {
			return errors.New("realtime_pusher: webhook: url is required")
		}
		if _, err := webhookEvents(h.Webhook.Events); err != nil {
			return fmt.Errorf("realtime_pusher: webhook: %v", err)
		}
	}
	return nil
}

// ServeHTTP serves the WebSocket endpoint (any path ending in /app/<key>,
// so that pusher-js's wsPath prefixes work) and the HTTP API (/apps/<app_id>/
// and what follows, under any prefix), and passes everything else on.
func (h *PusherHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	path := r.URL.Path
	if key, ok := socketRoute(path); ok && (key == h.key || websocket.IsWebSocketUpgrade(r)) {
		return h.serveWebSocket(w, r, key)
	}
	if i := strings.Index(path, "/apps/"); i >= 0 {
		id, rest, _ := strings.Cut(path[i+len("/apps/"):], "/")
		switch {
		case id == h.appID:
			return h.serveAPI(w, r, path[:i], rest)
		case r.URL.Query().Has("auth_signature"):
			// A signed request for another app: say so, rather than let
			// the site's own 404 page answer an SDK.
			return writePusherError(w, http.StatusNotFound, fmt.Sprintf("The app %s could not be found.", truncate(id, 64)))
		}
	}
	return next.ServeHTTP(w, r)
}

// socketRoute returns the key of a path ending in /app/<key>.
func socketRoute(path string) (string, bool) {
	i := strings.LastIndex(path, "/app/")
	if i < 0 {
		return "", false
	}
	key := path[i+len("/app/"):]
	return key, key != "" && !strings.Contains(key, "/")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

var (
	_ caddy.Provisioner           = (*PusherHandler)(nil)
	_ caddy.CleanerUpper          = (*PusherHandler)(nil)
	_ caddy.Validator             = (*PusherHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*PusherHandler)(nil)
)
