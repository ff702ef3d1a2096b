package caddyfile_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// TestValidateTouchesNoBackplane: caddy validate (and caddy adapt
// --validate) provisions and cleans up a config without starting it, and
// must not write to Redis: a validated Redis hub used to create its meta key.
func TestValidateTouchesNoBackplane(t *testing.T) {
	srv := testenv.StartRedisServer(t, 0)
	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`{
	admin off
	realtime {
		hub shop {
			redis redis://`+srv.Addr()+`/0?prefix=validate:
		}
	}
}
:0 {
	realtime_ws /ws {
		hub shop
	}
}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatalf("validate: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // anything started would have written by now
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("validate wrote to Redis: %s", strings.Join(keys, ", "))
	}
}
