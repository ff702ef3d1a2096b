package redis

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ParseURL reads the Redis URL of a hub and returns a Config with its
// connection (Client, and Sentinel or Cluster), Prefix and durability
// options set (the caller adds the hub's name, limits and logger). The
// scheme picks the deployment form:
//
//	redis://[[user]:password@]host[:port][/db][?option=value...]      one server
//	rediss://...                                                      the same over TLS
//	unix:///path/to/redis.sock?db=<n>&...                             one server, local socket
//	redis-sentinel://[[user]:password@]host[:port][/db]?master_name=NAME[&addr=host:port]...
//	rediss-sentinel://...                                             TLS to sentinels and data nodes
//	redis-cluster://[[user]:password@]host[:port][?addr=host:port]...  seed nodes; no /db
//	rediss-cluster://...
//
// The userinfo is always the data nodes' ACL user and password. For
// Sentinel, the authority and each addr= name a sentinel (port 26379 by
// default), and sentinel_username= and sentinel_password= are the
// sentinels' own credentials (go-redis's ParseFailoverURL would give the
// userinfo to the sentinels instead). For a cluster, the authority and each
// addr= are seed nodes.
//
// Options every form takes: prefix (put before every key, default
// "realtime:", so that several sites can share one Redis: give each its
// own), min_replicas_acked and min_replicas_timeout (see Config), and
// go-redis's connection options (pool_size, dial_timeout, read_timeout,
// ...); the timeouts default to 1 s (dial) and 2 s (read, write) in New so
// that a publish fails within its 2 s when Redis does not answer. The TLS
// forms take tls_ca_file, tls_cert_file and tls_key_file (a client
// certificate) and tls_server_name; the server's certificate is always
// verified (there is no skip_verify).
//
// Errors never contain the URL: it may hold a password.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, errors.New("redis: the URL does not parse")
	}
	// form is "" (one server), "sentinel" or "cluster"; secure is TLS.
	var form string
	var secure bool
	base, kind, _ := strings.Cut(u.Scheme, "-")
	switch {
	case u.Scheme == "unix" || u.Scheme == "redis" || u.Scheme == "rediss":
		secure = u.Scheme == "rediss"
	case (base == "redis" || base == "rediss") && (kind == "sentinel" || kind == "cluster"):
		form, secure = kind, base == "rediss"
	default:
		return Config{}, fmt.Errorf("redis: unknown URL scheme %q (want redis, rediss, unix, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster)", u.Scheme)
	}
	q := u.Query()
	if q.Has("skip_verify") {
		return Config{}, errors.New("redis: skip_verify is not supported: give the server's CA with tls_ca_file")
	}
	c := Config{Prefix: DefaultPrefix}
	if q.Has("prefix") {
		c.Prefix = take(q, "prefix")
		if err := checkPrefix(c.Prefix); err != nil {
			return Config{}, err
		}
	}
	if err := parseDurability(q, &c); err != nil {
		return Config{}, err
	}
	tlsOpts := map[string]string{}
	for _, k := range []string{"tls_ca_file", "tls_cert_file", "tls_key_file", "tls_server_name"} {
		if q.Has(k) {
			tlsOpts[k] = take(q, k)
		}
	}
	if len(tlsOpts) > 0 && !secure {
		return Config{}, fmt.Errorf("redis: TLS options need a TLS scheme (rediss, rediss-sentinel, rediss-cluster), not %s", u.Scheme)
	}
	var seeds []string
	if form != "" {
		if u.Host == "" {
			return Config{}, fmt.Errorf("redis: a %s URL needs a host", u.Scheme)
		}
		port := "6379"
		if form == "sentinel" {
			port = "26379"
		}
		for _, a := range append([]string{u.Host}, q["addr"]...) {
			hp, err := hostPort(a, port)
			if err != nil {
				return Config{}, err
			}
			seeds = append(seeds, hp)
		}
		q.Del("addr")
	} else if q.Has("addr") {
		return Config{}, errors.New("redis: addr= is for redis-sentinel:// and redis-cluster:// URLs")
	}
	switch form {
	case "sentinel":
		s := &Sentinel{MasterName: take(q, "master_name"), Addrs: seeds,
			Username: take(q, "sentinel_username"), Password: take(q, "sentinel_password")}
		if s.MasterName == "" {
			return Config{}, errors.New("redis: a Sentinel URL needs master_name=")
		}
		c.Sentinel = s
	case "cluster":
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" || q.Has("db") {
			return Config{}, errors.New("redis: a cluster has only database 0: a redis-cluster:// URL takes no /db")
		}
		u.Path = ""
		c.Cluster = &Cluster{Addrs: seeds}
	}
	for _, k := range []string{"master_name", "sentinel_username", "sentinel_password"} {
		if q.Has(k) {
			return Config{}, fmt.Errorf("redis: %s= is for redis-sentinel:// URLs", k)
		}
	}
	// go-redis reads the rest (credentials, DB, timeouts, pool), as for a
	// plain redis:// URL: TLS is configured below, the way this package
	// wants it.
	scheme := u.Scheme
	if scheme != "unix" {
		scheme = "redis"
	}
	host := u.Host
	if form != "" {
		host = "localhost" // the addresses are the seeds
	}
	plain := url.URL{Scheme: scheme, User: u.User, Host: host, Path: u.Path, RawQuery: q.Encode()}
	opts, err := goredis.ParseURL(plain.String())
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return Config{}, errors.New("redis: the URL does not parse")
		}
		return Config{}, err // go-redis names the field, never the password
	}
	if form != "" {
		opts.Addr = ""
	}
	if secure {
		serverName := tlsOpts["tls_server_name"]
		if serverName == "" && form == "" {
			serverName = u.Hostname()
		}
		// Without a name, each node's certificate is checked against the
		// host it is reached at (crypto/tls takes it from the address),
		// which is what Sentinel and Cluster announce.
		if opts.TLSConfig, err = tlsConfig(tlsOpts, serverName); err != nil {
			return Config{}, err
		}
	}
	c.Client = opts
	return c, nil
}

// parseDurability reads min_replicas_acked and min_replicas_timeout.
func parseDurability(q url.Values, c *Config) error {
	if q.Has("min_replicas_acked") {
		n, err := strconv.Atoi(take(q, "min_replicas_acked"))
		if err != nil || n < 0 || n > 100 {
			return errors.New("redis: min_replicas_acked must be a number of replicas from 0 to 100")
		}
		c.MinReplicasAcked = n
	}
	if q.Has("min_replicas_timeout") {
		d, err := time.ParseDuration(take(q, "min_replicas_timeout"))
		if err != nil || d < time.Millisecond || d > 1500*time.Millisecond {
			return errors.New("redis: min_replicas_timeout must be a duration from 1ms to 1.5s (a publish is answered within 2 s)")
		}
		c.MinReplicasTimeout = d
	}
	return nil
}

// tlsConfig builds the client TLS configuration: the system's roots or
// the CA file, an optional client certificate, verification always on.
func tlsConfig(o map[string]string, serverName string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if f := o["tls_ca_file"]; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("redis: tls_ca_file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis: tls_ca_file %s holds no PEM certificate", f)
		}
		tc.RootCAs = pool
	}
	cert, key := o["tls_cert_file"], o["tls_key_file"]
	if (cert == "") != (key == "") {
		return nil, errors.New("redis: a client certificate needs both tls_cert_file and tls_key_file")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("redis: client certificate: %v", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// hostPort checks a seed address and adds the default port if it has none.
func hostPort(a, port string) (string, error) {
	if a == "" {
		return "", errors.New("redis: an empty address")
	}
	if strings.ContainsAny(a, "/@?# ") {
		return "", fmt.Errorf("redis: bad address %q", a)
	}
	if h, p, err := net.SplitHostPort(a); err == nil {
		if h == "" || p == "" {
			return "", fmt.Errorf("redis: bad address %q", a)
		}
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return "", fmt.Errorf("redis: bad port in %q", a)
		}
		return a, nil
	}
	return net.JoinHostPort(strings.Trim(a, "[]"), port), nil
}

// take returns a query option and removes it, so that go-redis does not
// see it.
func take(q url.Values, k string) string {
	v := q.Get(k)
	q.Del(k)
	return v
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
