// Package pusher_test drives realtime_pusher with clients nobody here
// wrote, installed from npm (package.json: pusher-js, laravel-echo, the
// pusher Node SDK, ws, playwright-core): each test starts the product's
// Caddy and runs one scenario script (*.mjs) against it in Node 20, or in
// headless Chromium. The scripts assert; this file runs Caddy, reloads,
// stops and restarts it when a script says it is ready.
package pusher_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	rthub "github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/redis"
	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// The app's credentials, as Laravel's .env would hold them.
const (
	appID           = "1"
	appKey          = "app-key-3f9c"
	appSecret       = "app-secret-b71e"
	broadcastSecret = "broadcast-secret-52aa"
	clientEventRate = 10
)

// settings are what the scripts read from PUSHER_TEST.
type settings struct {
	Ports           []int  `json:"ports"`
	Key             string `json:"key"`
	Secret          string `json:"secret"`
	AppID           string `json:"appId"`
	BroadcastSecret string `json:"broadcastSecret"`
	ClientEventRate int    `json:"clientEventRate"`
	AuthPort        int    `json:"authPort"`
	WebhookPort     int    `json:"webhookPort"`
	// ClusterPresence says whether the nodes share presence (a backplane
	// that keeps it), or each lists its own members.
	ClusterPresence bool `json:"clusterPresence"`
}

// node is one Caddy running realtime_pusher.
type node struct {
	*testenv.Caddy
	port        int
	admin       string
	cfg         string
	authPort    int
	webhookPort int // a scenario's webhook receiver
}

// caddyfile is a site with realtime_pusher, realtime_ws and
// realtime_broadcast on one hub, the app's auth endpoint behind
// /broadcasting/auth (a scenario's Node server) and the browser test's
// page and scripts under /pusher-test/.
func caddyfile(port int, admin, hubOptions string, authPort int, extra string) string {
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	realtime {
		hub default {
			%s
		}
	}
}

http://127.0.0.1:%d {
	realtime_pusher {
		app_id %s
		key %s
		secret {env.PUSHER_APP_SECRET}
		client_events on
		client_event_rate %d
		activity_timeout 30s
		%s
	}
	realtime_ws /realtime/ws
	realtime_broadcast /realtime/broadcast {
		secret %s
	}
	handle /broadcasting/auth {
		reverse_proxy 127.0.0.1:%d
	}
	handle_path /pusher-test/* {
		root * %s
		file_server
	}
	respond "the site" 200
}
`, admin, hubOptions, port, appID, appKey, clientEventRate, extra, broadcastSecret, authPort, filepath.Join(testenv.RepoRoot(), "test/pusher"))
}

// startNode starts a Caddy with hubOptions in its hub's block.
func startNode(t *testing.T, hubOptions string) *node {
	t.Helper()
	return startNodeWith(t, hubOptions, nil)
}

// startNodeWith starts a Caddy with hubOptions in its hub's block and
// what extra returns in its realtime_pusher block.
func startNodeWith(t *testing.T, hubOptions string, extra func(n *node) string) *node {
	t.Helper()
	for attempt := 1; ; attempt++ {
		n := &node{port: testenv.FreePort(t), authPort: testenv.FreePort(t), webhookPort: testenv.FreePort(t)}
		n.admin = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		more := ""
		if extra != nil {
			more = extra(n)
		}
		n.cfg = caddyfile(n.port, n.admin, hubOptions, n.authPort, more)
		c, err := n.start(t)
		if err == nil {
			n.Caddy = c
			return n
		}
		if attempt == 2 {
			t.Fatal(err)
		}
		t.Logf("retrying on other ports: %v", err)
	}
}

func (n *node) start(t *testing.T) (*testenv.Caddy, error) {
	return testenv.TryStartCaddy(t, testenv.CaddyConfig{
		Caddyfile: n.cfg,
		Admin:     n.admin,
		Site:      fmt.Sprintf("127.0.0.1:%d", n.port),
		Env:       []string{"PUSHER_APP_SECRET=" + appSecret},
	})
}

func (n *node) settings(more ...*node) settings {
	s := settings{Ports: []int{n.port}, Key: appKey, Secret: appSecret, AppID: appID, BroadcastSecret: broadcastSecret, ClientEventRate: clientEventRate, AuthPort: n.authPort, WebhookPort: n.webhookPort}
	for _, m := range more {
		s.Ports = append(s.Ports, m.port)
	}
	return s
}

// needClients skips (or, with REALTIME_TEST_STRICT=1, fails) without Node
// and the npm packages.
func needClients(t *testing.T, browser bool) {
	t.Helper()
	if testing.Short() {
		t.Skip("npm client tests skipped in -short mode")
	}
	dir := filepath.Join(testenv.RepoRoot(), "test/pusher")
	var need testenv.Needs
	need.Check(testenv.NodeAtLeast(20, 19), "node 20.19+", testenv.NodeHint)
	for _, pkg := range []string{"pusher-js", "laravel-echo", "pusher", "ws"} {
		need.Check(testenv.Exists(filepath.Join(dir, "node_modules", pkg)), pkg, "(cd test/pusher && npm ci)")
	}
	if browser {
		need.Check(testenv.Exists("/usr/bin/chromium"), "/usr/bin/chromium", "apt-get install chromium")
		need.Check(testenv.Exists(filepath.Join(dir, "node_modules/playwright-core")), "playwright-core", "(cd test/pusher && npm ci)")
	}
	need.Require(t)
}

// scenario is a running script. Lines it prints starting with "@@ " are
// for the harness (await); the rest is its log.
type scenario struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	mu    sync.Mutex
	out   strings.Builder
	done  chan error
}

func startScenario(t *testing.T, script string, s settings) *scenario {
	t.Helper()
	env, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script)
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "test/pusher")
	cmd.Env = append(os.Environ(), "PUSHER_TEST="+string(env))
	sc := &scenario{t: t, cmd: cmd, lines: make(chan string, 16), done: make(chan error, 1)}
	if sc.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{sc}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc2 := bufio.NewScanner(stdout)
		for sc2.Scan() {
			line := sc2.Text()
			sc.write(line + "\n")
			if cmdLine, ok := strings.CutPrefix(line, "@@ "); ok {
				sc.lines <- cmdLine
			}
		}
		sc.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return sc
}

type lockedWriter struct{ sc *scenario }

func (w *lockedWriter) Write(p []byte) (int, error) { w.sc.write(string(p)); return len(p), nil }

func (sc *scenario) write(s string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.out.WriteString(s)
}

func (sc *scenario) output() string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.out.String()
}

// await waits for the script to print "@@ line".
func (sc *scenario) await(line string) {
	sc.t.Helper()
	select {
	case got := <-sc.lines:
		if got != line {
			sc.t.Fatalf("script said %q, want %q\n%s", got, line, testenv.Indent(sc.output()))
		}
	case err := <-sc.done:
		sc.t.Fatalf("script ended (%v) before %q:\n%s", err, line, testenv.Indent(sc.output()))
	case <-time.After(90 * time.Second):
		sc.t.Fatalf("script did not say %q:\n%s", line, testenv.Indent(sc.output()))
	}
}

// tell writes a command line to the script.
func (sc *scenario) tell(line string) {
	sc.t.Helper()
	if _, err := io.WriteString(sc.stdin, line+"\n"); err != nil {
		sc.t.Fatal(err)
	}
}

// wait waits for the script to end and fails the test unless it passed.
func (sc *scenario) wait() {
	sc.t.Helper()
	select {
	case err := <-sc.done:
		sc.t.Logf("%s:\n%s", filepath.Base(sc.cmd.Args[1]), testenv.Indent(sc.output()))
		if err != nil {
			sc.t.Fatalf("%s failed: %v", filepath.Base(sc.cmd.Args[1]), err)
		}
	case <-time.After(3 * time.Minute):
		sc.t.Fatalf("script did not finish:\n%s", testenv.Indent(sc.output()))
	}
}

func run(t *testing.T, script string, s settings) {
	t.Helper()
	startScenario(t, script, s).wait()
}

// TestPusherJSAndSDK: pusher-js in Node and the pusher Node SDK: public and
// private channels, socket_id exclusion, batch triggers, client events,
// wrong auth refused, channel queries, the HTTP API's refusals (wrong
// signature, stale timestamp, over-size data, too many channels, reserved
// names) publishing nothing, and an unknown key refused for good (4001).
func TestPusherJSAndSDK(t *testing.T) {
	needClients(t, false)
	n := startNode(t, "")
	run(t, "basic.mjs", n.settings())
}

// TestLaravelEcho: Laravel Echo's pusher broadcaster: listen with the App
// namespace, private channels, whisper, toOthers() and .error().
func TestLaravelEcho(t *testing.T) {
	needClients(t, false)
	n := startNode(t, "")
	run(t, "echo.mjs", n.settings())
}

// TestCrossProtocol: realtime_broadcast -> pusher-js and Pusher trigger ->
// realtime_ws, payloads equal.
func TestCrossProtocol(t *testing.T) {
	needClients(t, false)
	n := startNode(t, "")
	run(t, "crossproto.mjs", n.settings())
}

// TestClientEventFlood: one connection flooding client events is cut to
// its rate with 4301 frames and never closed; nobody else notices.
func TestClientEventFlood(t *testing.T) {
	needClients(t, false)
	n := startNode(t, "")
	run(t, "flood.mjs", n.settings())
}

// TestReloadKeepsPusherClients: caddy reload (with a changed
// realtime_pusher block) with pusher-js clients connected drops none.
func TestReloadKeepsPusherClients(t *testing.T) {
	needClients(t, false)
	n := startNode(t, "")
	sc := startScenario(t, "reload.mjs", n.settings())
	sc.await("ready")
	n.Reload(caddyfile(n.port, n.admin, "", n.authPort, "max_subscriptions 50"))
	sc.tell("reloaded")
	sc.wait()
}

// TestStopAndRestart: caddy stop closes Pusher connections with 4200, and
// pusher-js reconnects on its own to the Caddy started again.
func TestStopAndRestart(t *testing.T) {
	needClients(t, false)
	n := startNode(t, "")
	sc := startScenario(t, "stop.mjs", n.settings())
	sc.await("ready")
	n.Stop()
	if !n.Wait(10 * time.Second) {
		t.Fatal("caddy did not exit after caddy stop")
	}
	sc.tell("stopped")
	sc.await("closed")
	c, err := n.start(t)
	if err != nil {
		t.Fatal(err)
	}
	n.Caddy = c
	sc.tell("restarted")
	sc.wait()
}

// TestTwoNodesOnRedis: two Caddy nodes on one Redis: a trigger on one
// reaches pusher-js clients on the other, socket_id exclusion and client
// events cross nodes.
func TestTwoNodesOnRedis(t *testing.T) {
	needClients(t, false)
	hub := redisHub(t)
	a, b := startNode(t, hub), startNode(t, hub)
	run(t, "redis.mjs", a.settings(b))
}

// TestPresenceTwoNodesOnRedis: one user on each of two nodes sharing a
// Redis, then the same user on both, with pusher-js and the webhook of
// both nodes. With a backplane that keeps presence, each sees the other,
// the same user is one member, both nodes' APIs list both, and the cluster
// sends each member event once; with one that does not, each node lists
// its own members (the scenario checks that instead, and says so).
func TestPresenceTwoNodesOnRedis(t *testing.T) {
	needClients(t, false)
	hubOptions := redisHub(t) + "\n\t\t\tpresence_leave_delay 500ms"
	hookPort := testenv.FreePort(t)
	hook := func(*node) string {
		return fmt.Sprintf("webhook http://127.0.0.1:%d/hook {\n\t\t\tevents member_added member_removed\n\t\t}", hookPort)
	}
	a, b := startNodeWith(t, hubOptions, hook), startNodeWith(t, hubOptions, hook)
	s := a.settings(b)
	s.WebhookPort = hookPort
	var l any = (*redis.Log)(nil)
	_, s.ClusterPresence = l.(rthub.PresenceLog)
	if !s.ClusterPresence {
		t.Log("the Redis backplane keeps no presence: checking that each node lists its own members")
	}
	run(t, "presence_redis.mjs", s)
}

// redisHub returns the hub options of a hub on the test's Redis, under a
// key prefix of its own that the test removes; it skips the test without
// a Redis.
func redisHub(t *testing.T) string {
	t.Helper()
	addr := "127.0.0.1:6379"
	if a := os.Getenv("REALTIME_TEST_REDIS"); a != "" {
		addr = a
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err := rdb.Ping(ctx).Err()
	cancel()
	testenv.Require(t, err == nil, fmt.Sprintf("Redis at %s (%v)", addr, err), `apt-get install redis-server && redis-server --daemonize yes --save "" (or set REALTIME_TEST_REDIS=host:port)`)
	prefix := fmt.Sprintf("rt-pusher:%d:%d:", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	return fmt.Sprintf(`redis "redis://%s/0?prefix=%s"`, addr, prefix)
}

// presenceHub are the hub options of the presence scenarios: a short leave
// delay, so that leaves show quickly, and a small member limit.
const presenceHub = "presence_leave_delay 500ms\n\t\t\tpresence_max_members 3"

// TestPresence: Laravel Echo's join().here/joining/leaving and pusher-js's
// members with two users (one with two tabs), numeric and string ids,
// client events with user_id, a join over the member limit refused, and
// the HTTP API's user_count and users.
func TestPresence(t *testing.T) {
	needClients(t, false)
	n := startNode(t, presenceHub)
	run(t, "presence.mjs", n.settings())
}

// TestWebhook: realtime_pusher's webhook, every POST verified with the
// pusher SDK's webhook().isValid() by a real receiver: occupied, vacated,
// member and client events, each once, the first POST refused and sent
// again.
func TestWebhook(t *testing.T) {
	needClients(t, false)
	n := startNodeWith(t, presenceHub, func(n *node) string {
		return fmt.Sprintf(`webhook http://127.0.0.1:%d/hook {
			events channel_occupied channel_vacated member_added member_removed client_event
		}`, n.webhookPort)
	})
	run(t, "webhook.mjs", n.settings())
}

// TestBrowser: pusher-js and Laravel Echo in headless Chromium, on a page
// Caddy serves, with the app's auth endpoint behind Caddy.
func TestBrowser(t *testing.T) {
	needClients(t, true)
	n := startNode(t, "")
	run(t, "browser.mjs", n.settings())
}

// TestMain removes the built binary after the tests.
func TestMain(m *testing.M) { testenv.Main(m) }
