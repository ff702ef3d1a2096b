package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// aclCommands are the commands the backplane needs (lua/check.lua), as an
// ACL rule.
const aclCommands = "+ping +hello +auth +eval +evalsha +xread +xadd +xrange +xrevrange +xlen +xtrim +xdel +exists +hset +hget +hmget +get +set +del +time +hsetnx +hincrby +hdel +hlen +hgetall +sadd +srem +sismember +scard +smembers +srandmember +zadd +zscore +zrangebyscore +zrem +pexpire +pttl +wait"

// setACLUser creates an ACL user on srv that may run rules on the keys of
// the hub "test" under prefix.
func setACLUser(t testing.TB, addr, user, password, prefix, rules string, tlsCA *testenv.TestCA) {
	t.Helper()
	o := &goredis.Options{Addr: addr}
	if tlsCA != nil {
		c, err := ParseURL(fmt.Sprintf("rediss://%s?tls_ca_file=%s&tls_cert_file=%s&tls_key_file=%s", addr, tlsCA.CAFile, tlsCA.ClientCertFile, tlsCA.ClientKey))
		if err != nil {
			t.Fatal(err)
		}
		o = c.Client
	}
	rc := goredis.NewClient(o)
	defer rc.Close()
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + password, "~" + prefix + "{test}:*"}
	for _, r := range strings.Fields(rules) {
		args = append(args, r)
	}
	if err := rc.Do(context.Background(), args...).Err(); err != nil {
		t.Fatal(err)
	}
}

// startLog parses url, makes the hub "test"'s log and starts it with a
// recorder; it returns Start's error (the log is closed when the test ends).
func startLog(t testing.TB, url string) (*Log, *recorder, error) {
	t.Helper()
	c, err := ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c.Hub, c.Size, c.TTL = "test", 1000, time.Hour
	c.Block, c.BackoffMin, c.BackoffMax = 500*time.Millisecond, 20*time.Millisecond, 200*time.Millisecond
	l, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	r := &recorder{}
	return l, r, l.Start(r.deliver)
}

// A configuration that Redis refuses fails Start with its cause, never the
// password; a Redis that does not answer does not.
func TestStartCheck(t *testing.T) {
	srv := startServer(t, 0)
	const prefix = "chk:"
	setACLUser(t, srv.Addr(), "rt", "rtpw-secret", prefix, aclCommands, nil)
	setACLUser(t, srv.Addr(), "noxadd", "rtpw-secret", prefix, strings.Replace(aclCommands, "+xadd ", "", 1), nil)
	setACLUser(t, srv.Addr(), "nowait", "rtpw-secret", prefix, strings.Replace(aclCommands, " +wait", "", 1), nil)
	setACLUser(t, srv.Addr(), "otherkeys", "rtpw-secret", "other:", aclCommands, nil)

	l, r, err := startLog(t, fmt.Sprintf("redis://rt:rtpw-secret@%s/0?prefix=%s", srv.Addr(), prefix))
	if err != nil {
		t.Fatalf("the allowed ACL user: %v", err)
	}
	appendOne(t, l, pub("c", "ok", "id-1"))
	waitFor(t, "delivery", 5*time.Second, func() bool { return r.count() == 1 })

	for _, c := range []struct{ name, url, want string }{
		{"wrong password", "redis://rt:wrong-secret@%s/0?prefix=" + prefix, "authentication failed"},
		{"unknown user", "redis://nobody:rtpw-secret@%s/0?prefix=" + prefix, "authentication failed"},
		{"ACL forbids XADD", "redis://noxadd:rtpw-secret@%s/0?prefix=" + prefix, "may not run XADD"},
		{"ACL forbids WAIT with min_replicas_acked", "redis://nowait:rtpw-secret@%s/0?min_replicas_acked=1&prefix=" + prefix, "may not run WAIT"},
		{"ACL forbids the hub's keys", "redis://otherkeys:rtpw-secret@%s/0?prefix=" + prefix, "may not"},
		{"cluster URL to a plain server", "redis-cluster://%s?prefix=" + prefix, "not a Redis Cluster node"},
		{"a database that does not exist", "redis://%s/99?prefix=" + prefix, "DB index"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := startLog(t, fmt.Sprintf(c.url, srv.Addr()))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Start: %v, want an error naming %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
	// nowait may publish when appends do not wait for replicas.
	if _, _, err := startLog(t, fmt.Sprintf("redis://nowait:rtpw-secret@%s/0?prefix=%s", srv.Addr(), prefix)); err != nil {
		t.Fatalf("WAIT is needed only with min_replicas_acked: %v", err)
	}

	t.Run("unreachable is not an error", func(t *testing.T) {
		for _, url := range []string{
			fmt.Sprintf("redis://rt:rtpw-secret@127.0.0.1:%d/0", testenv.FreePort(t)),
			fmt.Sprintf("redis-sentinel://127.0.0.1:%d?master_name=m", testenv.FreePort(t)),
			fmt.Sprintf("redis-cluster://127.0.0.1:%d", testenv.FreePort(t)),
			// A TLS client cannot tell a plaintext server that waits for
			// the rest of a command from a slow one.
			fmt.Sprintf("rediss://rt:rtpw-secret@%s/0?prefix=%s", srv.Addr(), prefix),
		} {
			l, _, err := startLog(t, url)
			if err != nil {
				t.Fatalf("%s: Start: %v", strings.SplitN(url, ":", 2)[0], err)
			}
			if up, _ := l.Healthy(); up {
				t.Fatal("healthy without Redis")
			}
			if _, err := l.Append(context.Background(), []*hub.Publication{pub("c", "x", "")}); err == nil {
				t.Fatal("append without Redis")
			}
		}
	})
}

// Sentinel: an unknown master name, and sentinel credentials that the
// sentinels refuse, fail Start; the data nodes' credentials are the URL's
// userinfo, not the sentinels'.
func TestStartCheckSentinel(t *testing.T) {
	primary := testenv.StartRedisServerWith(t, 0, "--requirepass", "data-secret")
	s := testenv.StartRedisSentinel(t, testenv.SentinelConfig{MasterName: "mymaster", Primary: primary.Addr(), Quorum: 1,
		Extra: []string{"sentinel auth-pass mymaster data-secret", "requirepass sentinel-secret"}})
	url := func(user, query string) string {
		return fmt.Sprintf("redis-sentinel://%s@%s?prefix=sen:&%s", user, s.Addr(), query)
	}
	l, r, err := startLog(t, url(":data-secret", "master_name=mymaster&sentinel_password=sentinel-secret"))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	appendOne(t, l, pub("c", "ok", ""))
	waitFor(t, "delivery", 5*time.Second, func() bool { return r.count() == 1 })
	for _, c := range []struct{ name, url, want string }{
		{"unknown master name", url(":data-secret", "master_name=nosuch&sentinel_password=sentinel-secret"), `no sentinel knows a master named "nosuch"`},
		{"wrong sentinel password", url(":data-secret", "master_name=mymaster&sentinel_password=wrong-secret"), "sentinel"},
		{"wrong data password", url(":wrong-secret", "master_name=mymaster&sentinel_password=sentinel-secret"), "authentication failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := startLog(t, c.url)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Start: %v, want an error naming %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("the error shows a password: %v", err)
			}
		})
	}
	t.Run("Sentinel URL to a data node", func(t *testing.T) {
		_, _, err := startLog(t, fmt.Sprintf("redis-sentinel://:data-secret@%s?master_name=mymaster", primary.Addr()))
		if err == nil || !strings.Contains(err.Error(), "is not a Sentinel") {
			t.Fatalf("Start: %v, want an error saying it is not a Sentinel", err)
		}
	})
	t.Run("plain URL to a sentinel", func(t *testing.T) {
		_, _, err := startLog(t, fmt.Sprintf("redis://:sentinel-secret@%s", s.Addr()))
		if err == nil || !strings.Contains(err.Error(), "redis-sentinel://") {
			t.Fatalf("Start: %v, want an error naming redis-sentinel://", err)
		}
	})
}

// TLS with a local CA and a client certificate, and an ACL user that may
// touch only the hub's keys: works; a CA that did not sign the server's
// certificate, a wrong server name or a missing client certificate fail
// Start with the cause.
func TestStartCheckTLS(t *testing.T) {
	ca := testenv.NewTestCA(t, "realtime test CA")
	other := testenv.NewTestCA(t, "another CA")
	port := testenv.FreePort(t)
	srv := testenv.StartRedisServerWith(t, port, "--port", "0", "--tls-port", fmt.Sprint(port),
		"--tls-cert-file", ca.ServerCertFile, "--tls-key-file", ca.ServerKey, "--tls-ca-cert-file", ca.CAFile, "--tls-auth-clients", "yes")
	const prefix = "tls:"
	setACLUser(t, srv.Addr(), "rt", "rtpw-secret", prefix, aclCommands, ca)
	q := func(ca *testenv.TestCA, client bool) string {
		s := "tls_ca_file=" + ca.CAFile
		if client {
			s += "&tls_cert_file=" + ca.ClientCertFile + "&tls_key_file=" + ca.ClientKey
		}
		return s
	}
	l, r, err := startLog(t, fmt.Sprintf("rediss://rt:rtpw-secret@%s/0?prefix=%s&%s", srv.Addr(), prefix, q(ca, true)))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	appendOne(t, l, pub("c", "ok", "tls-1"))
	waitFor(t, "delivery", 5*time.Second, func() bool { return r.count() == 1 })
	for _, c := range []struct{ name, url, want string }{
		{"a CA that did not sign it", fmt.Sprintf("rediss://rt:rtpw-secret@%s/0?prefix=%s&%s", srv.Addr(), prefix, q(other, false)), "does not verify"},
		{"another server name", fmt.Sprintf("rediss://rt:rtpw-secret@%s/0?prefix=%s&%s&tls_server_name=redis.example.com", srv.Addr(), prefix, q(ca, true)), "does not verify"},
		{"no client certificate", fmt.Sprintf("rediss://rt:rtpw-secret@%s/0?prefix=%s&%s", srv.Addr(), prefix, q(ca, false)), "TLS handshake"},
		{"a client certificate of another CA", fmt.Sprintf("rediss://rt:rtpw-secret@%s/0?prefix=%s&tls_ca_file=%s&tls_cert_file=%s&tls_key_file=%s",
			srv.Addr(), prefix, ca.CAFile, other.ClientCertFile, other.ClientKey), "TLS handshake"},
		{"wrong password", fmt.Sprintf("rediss://rt:wrong-secret@%s/0?prefix=%s&%s", srv.Addr(), prefix, q(ca, true)), "authentication failed"},
		{"plain URL to a TLS server", fmt.Sprintf("redis://rt:rtpw-secret@%s/0?prefix=%s", srv.Addr(), prefix), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := startLog(t, c.url)
			if c.want == "" {
				// A plaintext client cannot tell a TLS server from a
				// broken network path: not a start error.
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Start: %v, want an error naming %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}
