// Package process_test runs the built caddy binary (with the caddy-realtime
// modules) as a real process and drives it over loopback with WebSocket
// clients: reloads, removal of a hub's handlers, caddy stop and SIGTERM,
// slow consumers and resume.
//
// The binary is built once per test run by TestMain, with
// `go build -o <tmp>/caddy ./xcaddy-build/caddy` from the repository root.
package process_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/wprealtime/caddy-realtime/test/testenv"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// caddyBin is the binary built by TestMain.
var caddyBin string

// TestMain builds the product once for every test of the package.
func TestMain(m *testing.M) {
	start := time.Now()
	bin, err := testenv.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = bin
	fmt.Fprintf(os.Stderr, "built %s in %v\n", caddyBin, time.Since(start).Round(time.Millisecond))
	testenv.Main(m)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	return testenv.FreePort(t)
}

// caddyfile renders a config: admin on its own loopback port, the realtime
// global option with hubs (the inside of its block), one HTTP site bound to
// loopback whose body is site.
func caddyfile(admin, port int, hubs, site string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	auto_https off
	realtime {
%s
	}
}

http://:%d {
	bind 127.0.0.1
%s
}
`, admin, hubs, port, site)
}

// proc is a running caddy process started by a test.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string
	port    int
	admin   int
	logPath string
	env     []string

	done     chan struct{} // closed when the process has exited
	waitErr  error
	exitedAt time.Time
	http     *http.Client
}

// startCaddy writes cfg to a fresh directory and runs `caddy run` on it,
// waiting until the site answers on port. The process is killed (by PID)
// in t.Cleanup if it is still running.
func startCaddy(t *testing.T, cfg string, port, admin int) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{
		t:       t,
		dir:     dir,
		port:    port,
		admin:   admin,
		logPath: filepath.Join(dir, "caddy.log"),
		done:    make(chan struct{}),
		http: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 4},
		},
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CADDY_REALTIME_PROCESS_TEST_") {
			env = append(env, kv)
		}
	}
	p.env = append(env,
		"HOME="+dir,
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
	)
	cfgPath := p.writeConfig("Caddyfile", cfg)
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = p.env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start caddy: %v", err)
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		p.exitedAt = time.Now()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill() // this process only, by PID
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("caddy pid %d did not die after SIGKILL", p.cmd.Process.Pid)
			}
		}
		p.http.CloseIdleConnections()
		if t.Failed() {
			t.Logf("caddy log (pid %d), last lines:\n%s", p.cmd.Process.Pid, p.logTail(60))
		}
	})
	p.waitReady()
	return p
}

func (p *proc) writeConfig(name, cfg string) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// waitReady polls until the admin endpoint and the site both answer.
func (p *proc) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-p.done:
			p.t.Fatalf("caddy exited during startup (%v):\n%s", p.waitErr, p.logTail(40))
		default:
		}
		if p.ready() {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("caddy not ready after 15s:\n%s", p.logTail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) ready() bool {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(p.adminURL("/realtime/hubs"))
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.port), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *proc) adminURL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", p.admin, path)
}

func (p *proc) siteURL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", p.port, path)
}

func (p *proc) wsURL(path, query string) string {
	u := fmt.Sprintf("ws://127.0.0.1:%d%s", p.port, path)
	if query != "" {
		u += "?" + query
	}
	return u
}

// cli runs a caddy subcommand against this process's admin endpoint.
func (p *proc) cli(args ...string) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, args...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	return string(out), time.Since(start), err
}

// reload runs `caddy reload` with cfg and fails the test if it fails.
func (p *proc) reload(cfg string) time.Duration {
	p.t.Helper()
	path := p.writeConfig(fmt.Sprintf("Caddyfile.reload.%d", time.Now().UnixNano()), cfg)
	out, took, err := p.cli("reload", "--config", path, "--adapter", "caddyfile",
		"--address", fmt.Sprintf("127.0.0.1:%d", p.admin))
	if err != nil {
		p.t.Fatalf("caddy reload: %v\n%s\n%s", err, out, p.logTail(30))
	}
	return took
}

// exited waits up to timeout for the process to exit.
func (p *proc) exited(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// exitCode is the process's exit code once it has exited (-1 if killed).
func (p *proc) exitCode() int {
	if p.cmd.ProcessState == nil {
		return -2
	}
	return p.cmd.ProcessState.ExitCode()
}

// hubStats is one hub in GET /realtime/hubs.
type hubStats struct {
	Name            string `json:"name"`
	Backplane       string `json:"backplane"`
	Cursor          string `json:"cursor"`
	Channels        int    `json:"channels"`
	Connections     int64  `json:"connections"`
	Subscriptions   int64  `json:"subscriptions"`
	Published       int64  `json:"events_published"`
	Deliveries      int64  `json:"deliveries"`
	Replayed        int64  `json:"replayed"`
	FailedRecovery  int64  `json:"failed_recoveries"`
	SlowDisconnects int64  `json:"slow_consumer_disconnects"`
}

// hubs returns GET /realtime/hubs by hub name.
func (p *proc) hubs() (map[string]hubStats, error) {
	resp, err := p.http.Get(p.adminURL("/realtime/hubs"))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET /realtime/hubs: %s: %s", resp.Status, b)
	}
	var body struct {
		Hubs []hubStats `json:"hubs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := make(map[string]hubStats, len(body.Hubs))
	for _, h := range body.Hubs {
		out[h.Name] = h
	}
	return out, nil
}

func (p *proc) hub(name string) hubStats {
	p.t.Helper()
	hs, err := p.hubs()
	if err != nil {
		p.t.Fatal(err)
	}
	h, ok := hs[name]
	if !ok {
		p.t.Fatalf("hub %q not in /realtime/hubs (have %v)", name, hs)
	}
	return h
}

// waitConnections polls /realtime/hubs until hub has n connections and
// (if subs >= 0) subs subscriptions.
func (p *proc) waitConnections(hub string, n, subs int64, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last hubStats
	for {
		hs, err := p.hubs()
		if err == nil {
			last = hs[hub]
			if last.Connections == n && (subs < 0 || last.Subscriptions == subs) {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("hub %s: want %d connections / %d subscriptions within %v, have %d / %d (err %v)",
				hub, n, subs, timeout, last.Connections, last.Subscriptions, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// pubEvent is one event of a publish body.
type pubEvent struct {
	Channel string `json:"channel,omitempty"`
	Type    string `json:"type"`
	Payload any    `json:"payload,omitempty"`
	ID      string `json:"id,omitempty"`
}

type tick struct {
	N   int    `json:"n"`
	Pad string `json:"pad,omitempty"`
}

// ticks makes events n = from..to on channel.
func ticks(channel string, from, to int, pad string) []pubEvent {
	var out []pubEvent
	for n := from; n <= to; n++ {
		out = append(out, pubEvent{Channel: channel, Type: "tick", Payload: tick{N: n, Pad: pad}})
	}
	return out
}

type publishAnswer struct {
	Status string `json:"status"`
	Events []struct {
		Channel   string `json:"channel"`
		Cursor    string `json:"cursor"`
		Duplicate bool   `json:"duplicate"`
	} `json:"events"`
}

// tryPublish posts events to the realtime_broadcast route at path with a
// bearer secret and returns the cursors (one per event and channel).
func (p *proc) tryPublish(path, secret string, evs []pubEvent) ([]string, error) {
	var body []byte
	var err error
	if len(evs) == 1 {
		body, err = json.Marshal(evs[0])
	} else {
		body, err = json.Marshal(evs)
	}
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, p.siteURL(path), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{code: resp.StatusCode, body: string(b)}
	}
	var a publishAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("publish answer %q: %v", b, err)
	}
	var cursors []string
	for _, e := range a.Events {
		if e.Duplicate {
			return nil, fmt.Errorf("unexpected duplicate in %s", b)
		}
		cursors = append(cursors, e.Cursor)
	}
	return cursors, nil
}

type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("publish: HTTP %d: %s", e.code, e.body) }

func (p *proc) publish(path, secret string, evs []pubEvent) []string {
	p.t.Helper()
	cursors, err := p.tryPublish(path, secret, evs)
	if err != nil {
		p.t.Fatal(err)
	}
	if len(cursors) != len(evs) {
		p.t.Fatalf("publish: %d cursors for %d events", len(cursors), len(evs))
	}
	return cursors
}

// publishRetry publishes one event with an idempotency id, retrying
// transport errors (a reload may close the publisher's keep-alive
// connection); the id makes the retry safe. It returns the cursor.
func (p *proc) publishRetry(path, secret string, ev pubEvent) (string, int, error) {
	var lastErr error
	for attempt := 1; attempt <= 10; attempt++ {
		cursors, err := p.tryPublish(path, secret, []pubEvent{ev})
		if err == nil {
			return cursors[0], attempt, nil
		}
		var se *statusError
		if errors.As(err, &se) {
			return "", attempt, err
		}
		lastErr = err
		time.Sleep(20 * time.Millisecond)
	}
	return "", 10, lastErr
}
