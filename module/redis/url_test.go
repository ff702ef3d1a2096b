package redis

import (
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	c, err := ParseURL("redis://127.0.0.1:6379/0")
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Client; o.Addr != "127.0.0.1:6379" || o.DB != 0 || o.Password != "" || o.TLSConfig != nil || c.Prefix != "realtime:" {
		t.Fatalf("plain URL: %+v %q", o, c.Prefix)
	}
	c, err = ParseURL("rediss://user:s3cret@redis.example.com:6380/3?prefix=site1:&pool_size=7&dial_timeout=500ms")
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Client; o.Addr != "redis.example.com:6380" || o.Username != "user" || o.Password != "s3cret" || o.DB != 3 ||
		o.TLSConfig == nil || o.TLSConfig.ServerName != "redis.example.com" || c.Prefix != "site1:" || o.PoolSize != 7 || o.DialTimeout != 500*time.Millisecond {
		t.Fatalf("full URL: %+v %q", o, c.Prefix)
	}
	c, err = ParseURL("redis://:pw@host")
	if err != nil || c.Client.Password != "pw" || c.Client.Addr != "host:6379" {
		t.Fatalf("password only: %+v %v", c.Client, err)
	}
	c, err = ParseURL("unix:///run/redis/redis.sock?db=2&prefix=a/b.c-d_e:")
	if err != nil || c.Client.Network != "unix" || c.Client.Addr != "/run/redis/redis.sock" || c.Client.DB != 2 || c.Prefix != "a/b.c-d_e:" {
		t.Fatalf("unix socket: %+v %q %v", c.Client, c.Prefix, err)
	}
	for _, bad := range []string{
		"http://:hunter2@host/0",
		"redis://:hunter2@host/x",
		"redis://:hunter2@host/0?prefix=",
		"redis://:hunter2@host/0?prefix=a{b}",
		"redis://:hunter2@host/0?prefix=" + strings.Repeat("p", 65),
		"redis://:hunter2@host/0?nonsense=1",
		"redis://:hunter2@ho st:%zz",
	} {
		_, err := ParseURL(bad)
		if err == nil {
			t.Errorf("%s: accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", bad, err)
		}
	}
}
