package module

import (
	"github.com/caddyserver/caddy/v2"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestParseRedisURL(t *testing.T) {
	o, prefix, err := parseRedisURL("redis://127.0.0.1:6379/0")
	if err != nil || o.Addr != "127.0.0.1:6379" || o.DB != 0 || o.Password != "" || o.TLSConfig != nil || prefix != "realtime:" {
		t.Fatalf("plain URL: %+v %q %v", o, prefix, err)
	}
	o, prefix, err = parseRedisURL("rediss://user:s3cret@redis.example.com:6380/3?prefix=site1:&pool_size=7&dial_timeout=500ms")
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "redis.example.com:6380" || o.Username != "user" || o.Password != "s3cret" || o.DB != 3 ||
		o.TLSConfig == nil || o.TLSConfig.ServerName != "redis.example.com" || prefix != "site1:" || o.PoolSize != 7 || o.DialTimeout != 500*time.Millisecond {
		t.Fatalf("full URL: %+v %q", o, prefix)
	}
	o, _, err = parseRedisURL("redis://:pw@host")
	if err != nil || o.Password != "pw" || o.Addr != "host:6379" {
		t.Fatalf("password only: %+v %v", o, err)
	}
	for _, bad := range []string{
		"http://:hunter2@host/0",
		"redis://:hunter2@host/x",
		"redis://:hunter2@host/0?prefix=",
		"redis://:hunter2@host/0?prefix=a{b}",
		"redis://:hunter2@host/0?nonsense=1",
		"redis://:hunter2@ho st:%zz",
	} {
		_, _, err := parseRedisURL(bad)
		if err == nil {
			t.Errorf("%s: accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", bad, err)
		}
	}
}

func TestRedisBackplaneNewLogDoesNotConnect(t *testing.T) {
	// Provisioning with Redis down must not fail: the log is made, and the
	// reader connects when the hub starts.
	b := &RedisBackplane{URL: "redis://127.0.0.1:1/0"}
	if err := b.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	l, err := b.NewLog("x", 10, time.Minute, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
}
