package module

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

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

func TestRedisBackplaneRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "redis://:hunter2@[::1", "redis://:hunter2@h/0?prefix={x}"} {
		err := (&RedisBackplane{URL: u}).Provision(caddy.Context{})
		if err == nil {
			t.Errorf("%q: provisioned", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error shows the password: %v", u, err)
		}
	}
}
