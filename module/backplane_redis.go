package module

import (
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
	realtimeredis "github.com/wprealtime/caddy-realtime/module/redis"
)

func init() {
	caddy.RegisterModule(RedisBackplane{})
}

// RedisBackplane is the realtime.backplanes.redis module: a hub's log in a
// Redis stream shared by every node that names the same Redis, key prefix
// and hub. In a Caddyfile, `redis <url>` in a hub's block is its shorthand.
type RedisBackplane struct {
	// URL is the Redis URL (see the README for its forms and options).
	// Placeholders such as {env.REALTIME_REDIS_URL} are expanded at
	// provisioning; the URL holds the password, so errors never show it.
	URL string `json:"url,omitempty"`

	url string // expanded
}

// CaddyModule returns the Caddy module information.
func (RedisBackplane) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "realtime.backplanes.redis",
		New: func() caddy.Module { return new(RedisBackplane) },
	}
}

// Provision expands the URL and checks it parses; it connects nothing.
func (r *RedisBackplane) Provision(caddy.Context) error {
	if r.URL == "" {
		return errors.New("redis: url is required")
	}
	r.url = caddy.NewReplacer().ReplaceAll(r.URL, "")
	if r.url == "" {
		// Never a silent in-memory hub where a backplane was asked for.
		return errors.New("redis: the URL is empty after placeholder expansion (is its environment variable set?)")
	}
	_, err := realtimeredis.ParseURL(r.url)
	return err
}

// Identity implements Backplane: the expanded URL, so that another Redis,
// database, prefix or password makes another hub.
func (r *RedisBackplane) Identity() string { return "redis\x00" + r.url }

// NewLog implements Backplane.
func (r *RedisBackplane) NewLog(hubName string, size int, ttl time.Duration, logger *zap.Logger) (hub.Log, error) {
	c, err := realtimeredis.ParseURL(r.url)
	if err != nil {
		return nil, err
	}
	c.Hub, c.Size, c.TTL, c.Logger = hubName, size, ttl, logger
	return realtimeredis.New(c)
}

var (
	_ caddy.Provisioner = (*RedisBackplane)(nil)
	_ Backplane         = (*RedisBackplane)(nil)
)
