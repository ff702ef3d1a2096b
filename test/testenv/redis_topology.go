package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The deployment forms of Redis that hosts run, started on loopback by a
// test from Debian's redis-server, redis-sentinel and redis-cli: a primary
// with replicas watched by sentinels, and a Redis Cluster. Every process
// is the test's own and is stopped by its PID when the test ends.

// RedisSentinel is a redis-sentinel process.
type RedisSentinel struct {
	*Process
	Port int
}

// Addr is the sentinel's host:port.
func (s *RedisSentinel) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// SentinelConfig says what StartRedisSentinel watches.
type SentinelConfig struct {
	// MasterName, Primary (host:port) and Quorum are `sentinel monitor`'s.
	MasterName string
	Primary    string
	Quorum     int
	// DownAfter is how long the primary must not answer before it is
	// deemed down (default 1 s); FailoverTimeout is sentinel's (default 5 s).
	DownAfter, FailoverTimeout time.Duration
	// Extra lines for the configuration file (auth of the data nodes, ...).
	Extra []string
}

// StartRedisSentinel starts a redis-sentinel on a spare loopback port
// watching c.Primary, and waits until it answers. It skips the test (or
// fails it, when Strict) if redis-sentinel is missing.
func StartRedisSentinel(t testing.TB, c SentinelConfig) *RedisSentinel {
	t.Helper()
	bin, err := exec.LookPath("redis-sentinel")
	Require(t, err == nil, "redis-sentinel", "apt-get install redis-sentinel")
	if c.DownAfter == 0 {
		c.DownAfter = time.Second
	}
	if c.FailoverTimeout == 0 {
		c.FailoverTimeout = 5 * time.Second
	}
	host, port, err := net.SplitHostPort(c.Primary)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &RedisSentinel{Port: FreePort(t)}
	lines := []string{
		fmt.Sprintf("port %d", s.Port),
		"bind 127.0.0.1",
		"dir " + dir,
		fmt.Sprintf("sentinel monitor %s %s %s %d", c.MasterName, host, port, c.Quorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", c.MasterName, c.DownAfter.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s %d", c.MasterName, c.FailoverTimeout.Milliseconds()),
		fmt.Sprintf("sentinel parallel-syncs %s 1", c.MasterName),
	}
	lines = append(lines, c.Extra...)
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Process = Start(t, "redis-sentinel", filepath.Join(dir, "sentinel.log"), dir, nil, bin, conf)
	WaitRedisCommand(t, s.Addr(), 5*time.Second, "", "PING") // any answer: it may want a password
	return s
}

// RedisCommand sends one command (inline, no TLS, no auth) to addr and
// returns the first line of the reply.
func RedisCommand(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// WaitRedisCommand polls addr with a command until its reply's first line
// starts with want, for at most timeout.
func WaitRedisCommand(t testing.TB, addr string, timeout time.Duration, want string, args ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		line, err := RedisCommand(addr, args...)
		if err == nil && line != "" && strings.HasPrefix(line, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s answered %q (%v), want %q", addr, strings.Join(args, " "), line, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RedisCluster is a Redis Cluster of primaries without replicas.
type RedisCluster struct {
	Nodes []*RedisServer
}

// Addrs are the nodes' host:port addresses.
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// StartRedisCluster starts n cluster-enabled redis-servers on spare
// loopback ports (each with its bus port), joins them with
// `redis-cli --cluster create` and waits until every node reports the
// cluster ok.
func StartRedisCluster(t testing.TB, n int) *RedisCluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	Require(t, err == nil, "redis-cli", "apt-get install redis-tools")
	c := &RedisCluster{}
	for range n {
		c.Nodes = append(c.Nodes, StartRedisServerWith(t, 0, "--cluster-enabled", "yes",
			"--cluster-port", fmt.Sprint(FreePort(t)), "--cluster-node-timeout", "2000"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, node := range c.Nodes {
		c.waitOK(t, node)
	}
	return c
}

// waitOK waits until node reports cluster_state:ok and knows every node.
func (c *RedisCluster) waitOK(t testing.TB, node *RedisServer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, _ := RedisBulk(node.Addr(), "CLUSTER", "INFO")
		if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(c.Nodes))) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster node %s not ok:\n%s", node.Addr(), info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RedisBulk sends one command to addr and returns its bulk-string reply.
func RedisBulk(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "$") {
		return strings.TrimRight(line, "\r\n"), nil
	}
	var size int
	if _, err := fmt.Sscanf(line, "$%d", &size); err != nil || size < 0 {
		return "", err
	}
	buf := make([]byte, size+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return string(buf[:size]), nil
}
