package module

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(BroadcastHandler{})
}

// BroadcastHandler is the realtime_broadcast handler: the authenticated
// publish endpoint that WordPress (cron, hooks, scripts) posts events to.
type BroadcastHandler struct {
	// Hub names the hub. Default "default".
	Hub string `json:"hub,omitempty"`
	// Secrets authenticate publishers (bearer or HMAC signature). More than
	// one allows key rotation. Placeholders are expanded at provisioning.
	// Required.
	Secrets []string `json:"secrets,omitempty"`
	// MaxBody bounds the request body, in bytes. Default 65536.
	MaxBody int64 `json:"max_body,omitempty"`
	// MaxBatch bounds the events of one request. Default 100.
	MaxBatch int `json:"max_batch,omitempty"`
	// SignatureTolerance is how far a signature's timestamp may be from
	// now (replay protection). Default 5m.
	SignatureTolerance caddy.Duration `json:"signature_tolerance,omitempty"`

	hub    *pooledHub
	creds  *credentials
	logger *zap.Logger
}

// Defaults of realtime_broadcast.
const (
	defaultMaxBody            = 64 << 10
	defaultMaxBatch           = 100
	defaultSignatureTolerance = 5 * time.Minute
)

// CaddyModule returns the Caddy module information.
func (BroadcastHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.realtime_broadcast",
		New: func() caddy.Module { return new(BroadcastHandler) },
	}
}

// Provision expands the secrets and looks up the hub.
func (b *BroadcastHandler) Provision(ctx caddy.Context) error {
	b.logger = ctx.Logger()
	if b.Hub == "" {
		b.Hub = DefaultHub
	}
	if b.MaxBody == 0 {
		b.MaxBody = defaultMaxBody
	}
	if b.MaxBatch == 0 {
		b.MaxBatch = defaultMaxBatch
	}
	if b.SignatureTolerance == 0 {
		b.SignatureTolerance = caddy.Duration(defaultSignatureTolerance)
	}
	if err := b.Validate(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	creds := &credentials{tolerance: time.Duration(b.SignatureTolerance), now: time.Now}
	for i, s := range b.Secrets {
		v := repl.ReplaceAll(s, "")
		if v == "" {
			return fmt.Errorf("realtime_broadcast: secret #%d is empty after placeholder expansion (is its environment variable set?)", i+1)
		}
		creds.secrets = append(creds.secrets, []byte(v))
	}
	b.creds = creds
	app, err := appFor(ctx)
	if err != nil {
		return fmt.Errorf("realtime_broadcast: %v", err)
	}
	if b.hub, err = app.Hub(b.Hub); err != nil {
		return fmt.Errorf("realtime_broadcast: %v", err)
	}
	return nil
}

// Validate checks the settings.
func (b *BroadcastHandler) Validate() error {
	switch {
	case len(b.Secrets) == 0:
		return errors.New("realtime_broadcast: secret is required")
	case b.MaxBody < 0:
		return errors.New("realtime_broadcast: max_body must be positive")
	case b.MaxBatch < 0:
		return errors.New("realtime_broadcast: max_batch must be positive")
	case b.SignatureTolerance < 0:
		return errors.New("realtime_broadcast: signature_tolerance must be positive")
	}
	return nil
}

// ServeHTTP checks, in order, method, credentials, content type, size,
// JSON and schema, then publishes. Every answer is JSON. A request that
// does not get 200 published nothing.
func (b *BroadcastHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method == http.MethodGet && r.URL.Query().Has("presence") {
		return b.presenceQuery(w, r)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return writeRejection(w, b.Hub, reject(http.StatusMethodNotAllowed, "method_not_allowed", "use POST (or GET ?presence=<channel> to ask who is on a presence channel)"))
	}
	body, rj := b.creds.check(w, r, b.MaxBody)
	if rj != nil {
		if rj.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="realtime_broadcast"`)
		}
		return writeRejection(w, b.Hub, rj)
	}
	if err := b.hub.Start(); err != nil {
		w.Header().Set("Retry-After", "1")
		return writeRejection(w, b.Hub, reject(http.StatusServiceUnavailable, "unavailable", err.Error()))
	}
	// A signed request's body was read with its credentials.
	return publishBody(w, r, b.hub, body, publishLimits{maxBody: b.MaxBody, maxBatch: b.MaxBatch})
}

// presenceQuery answers GET ?presence=<channel>, with the credentials of
// a publish; a signature signs "<t>.<raw query>".
func (b *BroadcastHandler) presenceQuery(w http.ResponseWriter, r *http.Request) error {
	if rj := b.creds.checkQuery(r); rj != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="realtime_broadcast"`)
		return writeJSONError(w, rj.status, rj.code, rj.msg)
	}
	return servePresence(r.Context(), w, b.hub, r.URL.Query().Get("presence"))
}

func errField(err error) zap.Field { return zap.String("error", err.Error()) }

var (
	_ caddy.Provisioner           = (*BroadcastHandler)(nil)
	_ caddy.Validator             = (*BroadcastHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*BroadcastHandler)(nil)
)
