package redis_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// TestTLSAndACL runs two Caddy nodes on a Redis that speaks only TLS,
// signed by a CA made for the test, that asks for client certificates, as
// an ACL user that may touch only the hub's keys (rediss:// with
// tls_ca_file, tls_cert_file, tls_key_file): delivery works across the
// nodes. A wrong password, a CA that did not sign the server's certificate
// or a missing client certificate make `caddy run` fail with the cause,
// never the password.
func TestTLSAndACL(t *testing.T) {
	ca := testenv.NewTestCA(t, "realtime test CA")
	other := testenv.NewTestCA(t, "another CA")
	port := freePort(t)
	srv := testenv.StartRedisServerWith(t, port, "--port", "0", "--tls-port", fmt.Sprint(port),
		"--tls-cert-file", ca.ServerCertFile, "--tls-key-file", ca.ServerKey, "--tls-ca-cert-file", ca.CAFile, "--tls-auth-clients", "yes")
	const prefix = "tls:"
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), TLSConfig: clientTLS(t, ca)})
	defer admin.Close()
	// The ACL the README gives: the hub's keys, the commands the backplane
	// needs, nothing else.
	err := admin.Do(context.Background(), "ACL", "SETUSER", "realtime", "on", ">tls-user-secret", "resetkeys", "~"+prefix+"{live}:*",
		"resetchannels", "-@all", "+ping", "+hello", "+auth", "+eval", "+evalsha", "+xread", "+xadd", "+xrange", "+xrevrange", "+xlen", "+xtrim", "+xdel",
		"+exists", "+hset", "+hget", "+hmget", "+get", "+set", "+del", "+time",
		"+hsetnx", "+hincrby", "+hdel", "+hlen", "+hgetall", "+sadd", "+srem", "+sismember", "+scard", "+smembers", "+srandmember",
		"+zadd", "+zscore", "+zrangebyscore", "+zrem", "+pexpire", "+pttl").Err()
	if err != nil {
		t.Fatal(err)
	}
	tlsQuery := func(ca *testenv.TestCA, client bool) string {
		q := "tls_ca_file=" + ca.CAFile
		if client {
			q += "&tls_cert_file=" + ca.ClientCertFile + "&tls_key_file=" + ca.ClientKey
		}
		return q
	}
	good := fmt.Sprintf("rediss://realtime:tls-user-secret@%s/0?prefix=%s&%s", srv.Addr(), prefix, tlsQuery(ca, true))
	a, b := startFormNode(t, "A", good, "live"), startFormNode(t, "B", good, "live")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	sub := subscribe(t, b, "live", "x", stop, &wg)
	for i := range 5 {
		if p := a.publish("live", "x", fmt.Sprintf("tls-%d", i)); p.status != 200 {
			t.Fatalf("publish over TLS: %d", p.status)
		}
	}
	want := map[string]bool{"tls-0": true, "tls-1": true, "tls-2": true, "tls-3": true, "tls-4": true}
	waitFor(t, "delivery over TLS", 5*time.Second, func() bool { return sub.has(want) })
	close(stop)
	wg.Wait()
	keys, err := admin.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix+"{live}:") {
			t.Errorf("a key outside the hub's: %s", k)
		}
	}

	for _, c := range []struct{ name, url, want string }{
		{"wrong password", fmt.Sprintf("rediss://realtime:wrong-secret@%s/0?prefix=%s&%s", srv.Addr(), prefix, tlsQuery(ca, true)), "authentication failed"},
		{"a CA that did not sign the server's certificate", fmt.Sprintf("rediss://realtime:tls-user-secret@%s/0?prefix=%s&%s", srv.Addr(), prefix, tlsQuery(other, false)), "certificate does not verify"},
		{"no client certificate", fmt.Sprintf("rediss://realtime:tls-user-secret@%s/0?prefix=%s&%s", srv.Addr(), prefix, tlsQuery(ca, false)), "refused the TLS handshake"},
		{"the ACL forbids the hub's keys", fmt.Sprintf("rediss://realtime:tls-user-secret@%s/0?prefix=other:&%s", srv.Addr(), tlsQuery(ca, true)), "ACL user may not"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := tryStartFormNode(t, c.url, "live")
			if err == nil {
				t.Fatal("caddy run started")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("caddy run: want an error naming %q, got:\n%v", c.want, err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("caddy run shows the password:\n%v", err)
			}
		})
	}
}

// clientTLS is the TLS configuration of a client of the test's CA, with
// its client certificate.
func clientTLS(t *testing.T, ca *testenv.TestCA) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(ca.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(ca.ClientCertFile, ca.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}
