package redis_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
	"github.com/wprealtime/caddy-realtime/test/testenv"
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
	testenv.Require(t, err == nil, fmt.Sprintf("Redis at %s (%v)", redisAddr(), err),
		`apt-get install redis-server && redis-server --daemonize yes --save "" (or set REALTIME_TEST_REDIS=host:port)`)
}

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

// node is one Caddy process of the pair.
type node struct {
	*testenv.Caddy
	name string
	port int
	cfg  string
}

func (n *node) base() string { return fmt.Sprintf("http://127.0.0.1:%d", n.port) }

// startNode runs a Caddy with the realtime hub on Redis at redisURL;
// wsOptions are added to its realtime_ws block, one a line. A node that
// does not come up (a port taken meanwhile by another process, say) is
// retried once on fresh ports.
func startNode(t *testing.T, name, redisURL string, wsOptions ...string) *node {
	t.Helper()
	for attempt := 1; ; attempt++ {
		n, err := tryStartNode(t, name, redisURL, wsOptions)
		if err == nil {
			return n
		}
		if attempt == 2 {
			t.Fatal(err)
		}
		t.Logf("retrying: %v", err)
	}
}

func tryStartNode(t *testing.T, name, redisURL string, wsOptions []string) (*node, error) {
	t.Helper()
	n := &node{name: name, port: freePort(t)}
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	n.cfg = fmt.Sprintf(`{
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
		default_channels default%s
	}
	realtime_broadcast /realtime/broadcast {
		secret %s
	}
}
`, admin, redisURL, n.port, optionLines(wsOptions), secret)
	c, err := testenv.TryStartCaddy(t, testenv.CaddyConfig{
		Caddyfile: n.cfg,
		Admin:     admin,
		Site:      fmt.Sprintf("127.0.0.1:%d", n.port),
	})
	if err != nil {
		return nil, fmt.Errorf("node %s: %v", name, err)
	}
	n.Caddy = c
	return n, nil
}

// optionLines renders options as lines of a block two tabs deep.
func optionLines(options []string) string {
	var b strings.Builder
	for _, o := range options {
		b.WriteString("\n\t\t" + o)
	}
	return b.String()
}

// hubState is the default hub in GET /realtime/hubs.
func (n *node) hubState(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get(n.AdminURL("/realtime/hubs"))
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

// dial connects a client to a node's channels (comma-separated), resuming
// from since unless "".
func dial(t *testing.T, n *node, channels, since string) *rtclient.Client {
	t.Helper()
	q := url.Values{"channels": {channels}}
	if since != "" {
		q.Set("since", since)
	}
	return rtclient.Dial(t, fmt.Sprintf("ws://127.0.0.1:%d/realtime/ws?%s", n.port, q.Encode()), rtclient.Options{})
}

// keys returns the events' payload keys, in order.
func keys(c *rtclient.Client) []string {
	var out []string
	for _, f := range c.Events() {
		var p struct {
			K string `json:"k"`
		}
		_ = f.DecodePayload(&p)
		out = append(out, p.K)
	}
	return out
}

// lastCursor is the cursor of the last event c got.
func lastCursor(c *rtclient.Client) string {
	var cur string
	for _, f := range c.Events() {
		cur = f.Cursor
	}
	return cur
}

// subscribed reports whether c got a realtime:subscribed.
func subscribed(c *rtclient.Client) bool {
	_, ok := c.Find("realtime:subscribed")
	return ok
}

// recovered is the recovered field of c's first realtime:subscribed
// ("absent" when it has none).
func recovered(c *rtclient.Client) string {
	f, _ := c.Find("realtime:subscribed")
	if f.Recovered == nil {
		return "absent"
	}
	return fmt.Sprint(*f.Recovered)
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

// TestMain removes the built binary after the tests.
func TestMain(m *testing.M) { testenv.Main(m) }
