package module

import (
	"errors"
	"net/url"

	goredis "github.com/redis/go-redis/v9"

	realtimeredis "github.com/wprealtime/caddy-realtime/module/redis"
)

// parseRedisURL reads the `redis` option of a hub:
//
//	redis://[[user]:password@]host[:port][/db][?prefix=<p>&<option>=<v>...]
//	rediss://...   the same over TLS (the host name is verified)
//	unix:///path/to/redis.sock?db=<n>&prefix=<p>   (JSON config only)
//
// prefix is put before every key (default "realtime:"), so several sites can
// share one Redis and DB: give each its own. Other query options are
// go-redis's (pool_size, dial_timeout, read_timeout, skip_verify, ...); the
// timeouts default to 1 s (dial) and 2 s (read, write) so that a publish
// fails within its 2 s when Redis does not answer.
//
// Errors never contain the URL: it may hold a password.
func parseRedisURL(raw string) (*goredis.Options, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", errors.New("redis: the URL does not parse")
	}
	q := u.Query()
	prefix := realtimeredis.DefaultPrefix
	if q.Has("prefix") {
		prefix = q.Get("prefix")
		q.Del("prefix")
		if err := checkPrefix(prefix); err != nil {
			return nil, "", err
		}
	}
	u.RawQuery = q.Encode()
	opts, err := goredis.ParseURL(u.String())
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, "", errors.New("redis: the URL does not parse")
		}
		return nil, "", err // go-redis names the field, never the password
	}
	return opts, prefix, nil
}

// checkPrefix allows 1..64 characters of A-Z a-z 0-9 : _ . - /, so that a
// prefix can neither break the key layout (braces) nor hide in logs.
func checkPrefix(p string) error {
	if p == "" || len(p) > 64 {
		return errors.New("redis: prefix must be 1 to 64 characters")
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '.' || c == '-' || c == '/') {
			return errors.New("redis: prefix may only contain A-Z a-z 0-9 : _ . - /")
		}
	}
	return nil
}
