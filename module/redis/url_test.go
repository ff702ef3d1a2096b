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

func TestParseURLForms(t *testing.T) {
	c, err := ParseURL("redis-sentinel://app:s3cret@10.0.0.1/2?master_name=mymaster&addr=10.0.0.2:26380&addr=sentinel3&sentinel_username=sen&sentinel_password=senpw&prefix=p:&pool_size=3")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sentinel
	if s == nil || c.Cluster != nil || s.MasterName != "mymaster" || s.Username != "sen" || s.Password != "senpw" ||
		strings.Join(s.Addrs, ",") != "10.0.0.1:26379,10.0.0.2:26380,sentinel3:26379" {
		t.Fatalf("sentinel: %+v", s)
	}
	if o := c.Client; o.Username != "app" || o.Password != "s3cret" || o.DB != 2 || o.PoolSize != 3 || o.TLSConfig != nil || c.Prefix != "p:" {
		t.Fatalf("sentinel data-node options: %+v %q", o, c.Prefix)
	}
	c, err = ParseURL("rediss-cluster://:pw@node1:7000?addr=node2:7001&read_timeout=1s&min_replicas_acked=1&min_replicas_timeout=200ms")
	if err != nil {
		t.Fatal(err)
	}
	if cl := c.Cluster; cl == nil || c.Sentinel != nil || strings.Join(cl.Addrs, ",") != "node1:7000,node2:7001" {
		t.Fatalf("cluster: %+v", c.Cluster)
	}
	if o := c.Client; o.Password != "pw" || o.ReadTimeout != time.Second || o.TLSConfig == nil || o.TLSConfig.ServerName != "" ||
		o.TLSConfig.InsecureSkipVerify || c.MinReplicasAcked != 1 || c.MinReplicasTimeout != 200*time.Millisecond {
		t.Fatalf("cluster options: %+v %+v", o, c)
	}
	c, err = ParseURL("redis-cluster://127.0.0.1")
	if err != nil || c.Cluster.Addrs[0] != "127.0.0.1:6379" {
		t.Fatalf("cluster default port: %+v %v", c.Cluster, err)
	}
	c, err = ParseURL("rediss://:pw@10.1.1.1:6380?tls_server_name=redis.internal")
	if err != nil || c.Client.TLSConfig.ServerName != "redis.internal" {
		t.Fatalf("tls_server_name: %+v %v", c.Client.TLSConfig, err)
	}
	for _, bad := range []string{
		"redis-sentinel://:hunter2@host",                                   // no master_name
		"redis-cluster://:hunter2@host/1",                                  // a cluster has no /db
		"redis-cluster://:hunter2@host?db=1",                               // nor db=
		"redis://:hunter2@host?addr=other:1",                               // addr= is for the multi-node forms
		"redis://:hunter2@host?master_name=x",                              // master_name= is for Sentinel
		"redis://:hunter2@host?tls_ca_file=/etc/ca.pem",                    // TLS options need a TLS scheme
		"rediss://:hunter2@host?skip_verify=true",                          // no skip-verify
		"rediss://:hunter2@host?tls_ca_file=/nonexistent/ca.pem",           // unreadable CA
		"rediss://:hunter2@host?tls_cert_file=/nonexistent/c.pem",          // a certificate without its key
		"redis-sentinel://:hunter2@host?master_name=m&addr=bad:port",       // bad seed
		"redis-cluster://:hunter2@",                                        // no host
		"redis-cluster://:hunter2@host?min_replicas_acked=-1",              // bad count
		"redis-cluster://:hunter2@host?min_replicas_timeout=5s",            // beyond the publish's 2 s
		"redis-sentinel://:hunter2@host?master_name=m&pool_size=x",         // go-redis's own options are checked
		"redis-galaxy://:hunter2@host",                                     // unknown form
		"redis-sentinel://:hunter2@host?master_name=m&nonsense=1",          // unknown option
		"rediss-cluster://:hunter2@host?tls_ca_file=" + t.TempDir(),        // a directory
		"redis-sentinel://:hunter2@host?master_name=m&addr=a/b:1",          // bad seed
		"redis-cluster://:hunter2@host?sentinel_password=hunter2",          // sentinel options on a cluster
		"redis-sentinel://:hunter2@host?master_name=m&addr=host:99999",     // port out of range
		"rediss-sentinel://:hunter2@host?master_name=m&tls_key_file=k.pem", // a key without its certificate
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
