package redis

import (
	"errors"
	"net/url"

	goredis "github.com/redis/go-redis/v9"
)

// ParseURL reads the Redis URL of a hub and returns a Config with its
// Client and Prefix set (the caller adds the hub's name, limits and
// logger):
//
//	redis://[[user]:password@]host[:port][/db][?prefix=<p>&<option>=<v>...]
//	rediss://...   the same over TLS (the host name is verified)
//	unix:///path/to/redis.sock?db=<n>&prefix=<p>
//
// prefix is put before every key (default "realtime:"), so several sites can
// share one Redis and DB: give each its own. Other query options are
// go-redis's (pool_size, dial_timeout, read_timeout, skip_verify, ...); the
// timeouts default to 1 s (dial) and 2 s (read, write) in New so that a
// publish fails within its 2 s when Redis does not answer.
//
// Errors never contain the URL: it may hold a password.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, errors.New("redis: the URL does not parse")
	}
	q := u.Query()
	prefix := DefaultPrefix
	if q.Has("prefix") {
		prefix = q.Get("prefix")
		q.Del("prefix")
		if err := checkPrefix(prefix); err != nil {
			return Config{}, err
		}
	}
	u.RawQuery = q.Encode()
	opts, err := goredis.ParseURL(u.String())
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return Config{}, errors.New("redis: the URL does not parse")
		}
		return Config{}, err // go-redis names the field, never the password
	}
	return Config{Client: opts, Prefix: prefix}, nil
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
