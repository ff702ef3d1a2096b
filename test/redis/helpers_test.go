package redis_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/wprealtime/caddy-realtime/test/testenv"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	goredis "github.com/redis/go-redis/v9"
)

const secret = "two-node-test-secret"

func redisAddr() string {
	if a := os.Getenv("REALTIME_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// needRedis skips (or, with REALTIME_TEST_STRICT=1, fails) when the test
// Redis does not answer.
func needRedis(t *testing.T) {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: redisAddr(), DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := c.Ping(ctx).Err()
	testenv.Require(t, err == nil, "Redis at "+redisAddr(), fmt.Sprintf("%v; start one there, or set REALTIME_TEST_REDIS=host:port", err))
}

// caddyBinary builds the product once per test run.
func caddyBinary(t *testing.T) string { return testenv.Caddy(t) }

func freePort(t *testing.T) int {
	return testenv.FreePort(t)
}

func uniquePrefix(t *testing.T, addr string) string {
	prefix := fmt.Sprintf("rt-2node:%d:%d:", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 500 * time.Millisecond})
		defer c.Close()
		ctx := context.Background()
		for _, p := range []string{prefix, "moved-" + prefix} { // moved-: the reload test's
			keys, _ := c.Keys(ctx, p+"*").Result()
			if len(keys) > 0 {
				c.Del(ctx, keys...)
			}
		}
	})
	return prefix
}

// node is one Caddy process.
type node struct {
	t      *testing.T
	name   string
	port   int
	admin  string
	cmd    *exec.Cmd
	out    *bytes.Buffer
	mu     sync.Mutex
	cfg    string
	exited chan struct{}
}

func (n *node) base() string { return fmt.Sprintf("http://127.0.0.1:%d", n.port) }

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// startNode runs a Caddy with the realtime hub on Redis at redisURL. A node
// that does not come up (a port taken meanwhile by another process, say)
// is retried once on fresh ports.
func startNode(t *testing.T, name, redisURL string) *node {
	t.Helper()
	for attempt := 1; ; attempt++ {
		n, err := tryStartNode(t, name, redisURL)
		if err == nil {
			return n
		}
		if attempt == 2 {
			t.Fatal(err)
		}
		t.Logf("retrying: %v", err)
	}
}

func tryStartNode(t *testing.T, name, redisURL string) (*node, error) {
	t.Helper()
	bin := caddyBinary(t)
	n := &node{t: t, name: name, port: freePort(t), admin: fmt.Sprintf("127.0.0.1:%d", freePort(t)), out: &bytes.Buffer{}}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{
	admin %s
	persist_config off
	realtime {
		hub default {
			history_size 1000
			history_ttl 1h
			redis "%s"
		}
	}
}

http://127.0.0.1:%d {
	realtime_ws /realtime/ws {
		default_channels default
	}
	realtime_broadcast /realtime/broadcast {
		secret %s
	}
}
`, n.admin, redisURL, n.port, secret)
	n.cfg = cfg
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	n.cmd.Dir = dir
	n.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	n.cmd.Stdout = lockedBuffer{&n.mu, n.out}
	n.cmd.Stderr = lockedBuffer{&n.mu, n.out}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(exited) }()
	n.exited = exited
	poll := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second) // a loaded CI machine is slow
	for {
		resp, err := poll.Get("http://" + n.admin + "/realtime/hubs")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Cleanup(n.stop)
				return n, nil
			}
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("node %s exited at start (%v):\n%s", name, n.cmd.ProcessState, n.log())
		default:
		}
		if time.Now().After(deadline) {
			state, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
			n.stop()
			return nil, fmt.Errorf("node %s did not answer on %s within 60 s (last error %v); process: %s\noutput:\n%s",
				name, n.admin, err, firstLines(string(state), 3), n.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "; ")
}

func (n *node) log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.String()
}

// stop interrupts this node's process (by its PID) and waits for it.
func (n *node) stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
	if n.t.Failed() {
		n.t.Logf("node %s output:\n%s", n.name, n.log())
	}
	n.cmd = nil
}

// hubState is the default hub in GET /realtime/hubs.
func (n *node) hubState(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + n.admin + "/realtime/hubs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Hubs []map[string]any `json:"hubs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	for _, h := range out.Hubs {
		if h["name"] == "default" {
			return h
		}
	}
	t.Fatalf("no default hub in %v", out)
	return nil
}

type published struct {
	status   int
	cursor   string
	dup      bool
	duration time.Duration
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// publish posts one event to a node.
func (n *node) publish(t *testing.T, channel, typ, key, id string) published {
	body := map[string]any{"channel": channel, "type": typ, "payload": map[string]string{"k": key}}
	if id != "" {
		body["id"] = id
	}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, n.base()+"/realtime/broadcast", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+secret)
	start := time.Now()
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Errorf("publish to %s: %v", n.name, err)
		return published{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := published{status: resp.StatusCode, duration: time.Since(start)}
	var out struct {
		Events []struct {
			Cursor    string `json:"cursor"`
			Duplicate bool   `json:"duplicate"`
		} `json:"events"`
	}
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, &out); err != nil || len(out.Events) != 1 {
			t.Errorf("publish answer %s", raw)
			return p
		}
		p.cursor, p.dup = out.Events[0].Cursor, out.Events[0].Duplicate
	}
	return p
}

// client is a WebSocket client that records every frame.
type client struct {
	conn   *websocket.Conn
	mu     sync.Mutex
	msgs   []map[string]any
	closed error
	done   chan struct{}
}

func dial(t *testing.T, n *node, channels, since string) *client {
	t.Helper()
	q := url.Values{"channels": {channels}}
	if since != "" {
		q.Set("since", since)
	}
	u := fmt.Sprintf("ws://127.0.0.1:%d/realtime/ws?%s", n.port, q.Encode())
	conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", n.name, err, resp)
	}
	c := &client{conn: conn, done: make(chan struct{})}
	go c.read()
	t.Cleanup(func() { _ = conn.Close(); <-c.done })
	return c
}

func (c *client) read() {
	defer close(c.done)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.closed = err
			c.mu.Unlock()
			return
		}
		var m map[string]any
		if json.Unmarshal(data, &m) == nil {
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}
}

func (c *client) all() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.msgs...)
}

func (c *client) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// events returns the event frames' payload keys, in order.
func (c *client) events() []string {
	var out []string
	for _, m := range c.all() {
		if t, _ := m["type"].(string); strings.HasPrefix(t, "realtime:") {
			continue
		}
		p, _ := m["payload"].(map[string]any)
		k, _ := p["k"].(string)
		out = append(out, k)
	}
	return out
}

func (c *client) lastCursor() string {
	var cur string
	for _, m := range c.all() {
		if t, _ := m["type"].(string); !strings.HasPrefix(t, "realtime:") {
			cur, _ = m["cursor"].(string)
		}
	}
	return cur
}

func (c *client) find(typ string) map[string]any {
	for _, m := range c.all() {
		if m["type"] == typ {
			return m
		}
	}
	return nil
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reload loads a Caddyfile into a running node through its admin API.
func (n *node) reload(t *testing.T, cfg string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+n.admin+"/load", strings.NewReader(cfg))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("reload %s: %d %s", n.name, resp.StatusCode, b)
	}
}

// TestMain removes the built binary after the tests.
func TestMain(m *testing.M) { testenv.Main(m) }
