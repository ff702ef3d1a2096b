package module

import (
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
	realtimeredis "github.com/wprealtime/caddy-realtime/module/redis"
)

// init wires the Redis backplane into the pool: a hub with a `redis` URL
// gets a Redis log. URL parsing and its rules live in module/redis.
func init() {
	newRedisLog = func(s hubSettings, logger *zap.Logger) (hub.Log, error) {
		c, err := realtimeredis.ParseURL(s.redis)
		if err != nil {
			return nil, err
		}
		c.Hub = s.name
		c.Size = s.historySize
		c.TTL = s.historyTTL
		c.Logger = logger.Named("redis")
		return realtimeredis.New(c)
	}
}
