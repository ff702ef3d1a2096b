package module

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/rtproto"
	"github.com/wprealtime/caddy-realtime/module/internal/token"
)

func init() {
	caddy.RegisterModule(WSHandler{})
	nameTransport("websocket", rtproto.WebSocket{})
}

// WSHandler is the realtime_ws handler: it upgrades requests to WebSocket
// sessions of a hub, and serves Server-Sent Events streams of the same
// hub to requests that accept text/event-stream (sse.go). Its settings are the policy for the sessions it
// accepts; a reload changes them for new sessions while existing ones,
// which belong to the hub, carry on.
type WSHandler struct {
	// Hub names the hub. Default "default".
	Hub string `json:"hub,omitempty"`
	// DefaultChannels are joined when a client names none. Default ["default"].
	DefaultChannels []string `json:"default_channels,omitempty"`
	// Private lists channel patterns that need a token, beyond private-*.
	Private []string `json:"private,omitempty"`
	// TokenSecret is the HS256 key of subscriber tokens. Placeholders such
	// as {env.X} are expanded at provisioning. Without it there are no
	// private channels.
	TokenSecret string `json:"token_secret,omitempty"`
	// TokenCookie also reads the token from this cookie.
	TokenCookie string `json:"token_cookie,omitempty"`
	// AllowedOrigins replaces the default same-origin check.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// MaxConnections caps this handler's connections to the hub on this
	// node. Deprecated: set max_connections in the hub's settings, which
	// bound every endpoint of the hub. When either is set here, the two
	// replace the hub's limits for this handler's connections.
	MaxConnections int `json:"max_connections,omitempty"`
	// MaxConnectionsPerIP caps one address's connections through this
	// handler (0 is unlimited). Deprecated: set max_connections_per_ip in
	// the hub's settings.
	MaxConnectionsPerIP *int `json:"max_connections_per_ip,omitempty"`
	// MaxSubscriptions per connection. Default 100.
	MaxSubscriptions int `json:"max_subscriptions,omitempty"`
	// MaxMessageSize bounds client messages, in bytes. Default 4096.
	MaxMessageSize int64 `json:"max_message_size,omitempty"`
	// SendQueue is how many events may wait for a client before it falls
	// back to catching up from history. Default 1024.
	SendQueue int `json:"send_queue,omitempty"`
	// PingInterval between keep-alives. Default 25s.
	PingInterval caddy.Duration `json:"ping_interval,omitempty"`
	// WriteTimeout bounds each write to a client. Default 10s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`

	hub      *pooledHub
	policy   *hub.Policy
	origins  *originPolicy
	upgrader websocket.Upgrader
	logger   *zap.Logger
	stopping chan struct{} // closed when this handler's config stops (sse.go)
	stopOnce *sync.Once
}

// Defaults of realtime_ws.
const (
	defaultMaxSubscriptions = 100
	defaultMaxMessageSize   = 4096
	defaultSendQueue        = 1024
	defaultPingInterval     = 25 * time.Second
	defaultWriteTimeout     = 10 * time.Second
	// readBufferSize is small: client messages are short, and each
	// connection on a reader goroutine holds this buffer.
	readBufferSize = 512
)

// CaddyModule returns the Caddy module information.
func (WSHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.realtime_ws",
		New: func() caddy.Module { return new(WSHandler) },
	}
}

// Provision sets defaults, expands the token secret and looks up the hub.
func (h *WSHandler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.watchStopping(ctx)
	h.setDefaults()
	if err := h.Validate(); err != nil {
		return err
	}
	if h.MaxConnections > 0 || h.MaxConnectionsPerIP != nil {
		h.logger.Warn("realtime_ws: max_connections and max_connections_per_ip are deprecated here; set them in the hub's settings (realtime { hub NAME { max_connections N } }), which bound every endpoint of the hub",
			zap.String("hub", h.Hub))
	}
	p := &hub.Policy{
		DefaultChannels:  h.DefaultChannels,
		Private:          h.Private,
		MaxSubscriptions: h.MaxSubscriptions,
		SendQueue:        h.SendQueue,
		PingInterval:     time.Duration(h.PingInterval),
	}
	if h.TokenSecret != "" {
		secret := caddy.NewReplacer().ReplaceAll(h.TokenSecret, "")
		if secret == "" {
			return errors.New("realtime_ws: token_secret is empty after placeholder expansion (is its environment variable set?)")
		}
		p.Tokens = token.NewVerifier(secret)
	}
	origins, err := newOriginPolicy(h.AllowedOrigins)
	if err != nil {
		return fmt.Errorf("realtime_ws: allowed_origins: %v", err)
	}
	h.policy, h.origins = p, origins
	h.upgrader = websocket.Upgrader{
		ReadBufferSize: readBufferSize,
		// A pool, so that gorilla never holds a write buffer per
		// connection; the hub writes pre-framed bytes itself.
		WriteBufferPool: &writeBufferPool,
		// Origins are checked before upgrading, with a JSON answer.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	app, err := appFor(ctx)
	if err != nil {
		return fmt.Errorf("realtime_ws: %v", err)
	}
	if h.hub, err = app.Hub(h.Hub); err != nil {
		return fmt.Errorf("realtime_ws: %v", err)
	}
	if h.MaxConnections > 0 || h.MaxConnectionsPerIP != nil {
		lim := app.limits(h.Hub)
		if h.MaxConnections > 0 {
			lim.MaxConnections = h.MaxConnections
		}
		if h.MaxConnectionsPerIP != nil {
			lim.MaxConnectionsPerIP = *h.MaxConnectionsPerIP
		}
		p.Limits = &lim
	}
	return nil
}

func (h *WSHandler) setDefaults() {
	if h.Hub == "" {
		h.Hub = DefaultHub
	}
	if len(h.DefaultChannels) == 0 {
		h.DefaultChannels = []string{hub.DefaultChannel}
	}
	if h.MaxSubscriptions == 0 {
		h.MaxSubscriptions = defaultMaxSubscriptions
	}
	if h.MaxMessageSize == 0 {
		h.MaxMessageSize = defaultMaxMessageSize
	}
	if h.SendQueue == 0 {
		h.SendQueue = defaultSendQueue
	}
	if h.PingInterval == 0 {
		h.PingInterval = caddy.Duration(defaultPingInterval)
	}
	if h.WriteTimeout == 0 {
		h.WriteTimeout = caddy.Duration(defaultWriteTimeout)
	}
}

// Validate checks the settings (after defaults).
func (h *WSHandler) Validate() error {
	switch {
	case h.MaxConnections < 0:
		return errors.New("realtime_ws: max_connections must be positive")
	case h.MaxConnectionsPerIP != nil && *h.MaxConnectionsPerIP < 0:
		return errors.New("realtime_ws: max_connections_per_ip must be 0 (unlimited) or positive")
	case h.MaxSubscriptions < 0:
		return errors.New("realtime_ws: max_subscriptions must be positive")
	case h.MaxMessageSize < 0:
		return errors.New("realtime_ws: max_message_size must be positive")
	case h.SendQueue < 0:
		return errors.New("realtime_ws: send_queue must be positive")
	case h.PingInterval < 0:
		return errors.New("realtime_ws: ping_interval must be positive")
	case h.WriteTimeout < 0:
		return errors.New("realtime_ws: write_timeout must be positive")
	}
	for _, c := range h.DefaultChannels {
		if !hub.ValidChannel(c) {
			return fmt.Errorf("realtime_ws: default_channels: invalid channel name %q", c)
		}
	}
	for _, p := range h.Private {
		if p == "" || len(p) > 164 {
			return fmt.Errorf("realtime_ws: private: invalid pattern %q", p)
		}
	}
	return nil
}

// ServeHTTP upgrades the request and hands the connection to the hub. It
// returns as soon as the session is started: the session's reader waits in
// the epoll set (or runs on a goroutine of its own), so the connection does
// not keep this request's stack and buffers alive.
func (h *WSHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if !websocket.IsWebSocketUpgrade(r) {
		if wantsEventStream(r) || isPreflight(r) {
			return h.serveSSE(w, r)
		}
		w.Header().Set("Upgrade", "websocket")
		return writeJSONError(w, http.StatusUpgradeRequired, "upgrade_required", "this endpoint only speaks WebSocket")
	}
	if !h.origins.allowed(r) {
		return writeJSONError(w, http.StatusForbidden, "origin_not_allowed", "origin not allowed")
	}
	opts, rj := h.connectOptions(r)
	if rj != nil {
		return writeJSONError(w, rj.status, rj.code, rj.msg)
	}
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	s, err := h.hub.Admit(h.policy, rtproto.WebSocket{}, ip)
	if err != nil {
		return refuseConnection(w, err)
	}
	if err := h.hub.Start(); err != nil {
		s.Cancel()
		return refuseConnection(w, err)
	}
	conn, err := h.upgrader.Upgrade(hijacker{w}, r, nil)
	if err != nil {
		// gorilla has answered the client already.
		s.Cancel()
		h.logger.Debug("websocket upgrade failed", zap.Error(err))
		return nil
	}
	t := newTransport(conn.NetConn().(*lockedConn), time.Duration(h.WriteTimeout))
	// On Linux, TCP and TLS connections wait for reads in an epoll set,
	// with no goroutine while idle; anything else gets a reader goroutine.
	pc := newPolledConn(s, t, rtproto.Handle, h.MaxMessageSize, time.Duration(h.PingInterval))
	s.Start(platformTransport(t), opts)
	if pc != nil {
		pc.register()
		return nil
	}
	go readWebSocket(s, conn, t, rtproto.Handle, h.MaxMessageSize, time.Duration(h.PingInterval))
	return nil
}

// connectOptions reads the channels, cursor and token of a connect. More
// channels than a connection may hold is refused before upgrading, rather
// than answered with one error message each.
func (h *WSHandler) connectOptions(r *http.Request) (hub.ConnectOptions, *rejection) {
	q := r.URL.Query()
	opts := hub.ConnectOptions{Since: q.Get("since"), Token: bearerOrCookie(r, h.TokenCookie)}
	if v := q.Get("channels"); v != "" {
		opts.Channels = strings.Split(v, ",")
	}
	if n := len(opts.Channels); h.MaxSubscriptions > 0 && n > h.MaxSubscriptions {
		return opts, reject(http.StatusBadRequest, hub.CodeTooManySubscriptions,
			fmt.Sprintf("%d channels named, at most %d per connection", n, h.MaxSubscriptions))
	}
	return opts, nil
}

// refuseConnection answers a handshake the hub refused (limits, shutdown)
// and closes the connection, so that a flood of refused handshakes cannot
// hold descriptors for the server's idle timeout.
func refuseConnection(w http.ResponseWriter, err error) error {
	w.Header().Set("Retry-After", "10")
	w.Header().Set("Connection", "close")
	if errors.Is(err, hub.ErrTooManyConnectionsPerIP) {
		return writeJSONError(w, http.StatusTooManyRequests, "too_many_connections", err.Error())
	}
	return writeJSONError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
}

// bearerOrCookie reads a subscriber token from the Authorization header or
// the named cookie; never from the query string, which ends up in logs.
func bearerOrCookie(r *http.Request, cookie string) string {
	if v := r.Header.Get("Authorization"); v != "" {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	if cookie != "" {
		if c, err := r.Cookie(cookie); err == nil {
			return c.Value
		}
	}
	return ""
}

var (
	_ caddy.Provisioner           = (*WSHandler)(nil)
	_ caddy.Validator             = (*WSHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*WSHandler)(nil)
)
