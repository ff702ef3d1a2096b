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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// TestMain builds the product once for every test of the package.
func TestMain(m *testing.M) {
	start := time.Now()
	bin, err := testenv.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "built %s in %v\n", bin, time.Since(start).Round(time.Millisecond))
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

// proc is a running caddy process started by a test, with the site's
// port and a client for its publish and admin endpoints.
type proc struct {
	*testenv.Caddy
	t    *testing.T
	port int
	http *http.Client
}

// startCaddy runs `caddy run` on cfg, whose site listens on port and admin
// endpoint on admin, and waits until both answer. The process is stopped
// (by PID) when the test ends.
func startCaddy(t *testing.T, cfg string, port, admin int) *proc {
	t.Helper()
	c := testenv.StartCaddy(t, testenv.CaddyConfig{
		Caddyfile: cfg,
		Admin:     fmt.Sprintf("127.0.0.1:%d", admin),
		Site:      fmt.Sprintf("127.0.0.1:%d", port),
	})
	p := &proc{
		Caddy: c,
		t:     t,
		port:  port,
		http: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 4},
		},
	}
	t.Cleanup(p.http.CloseIdleConnections)
	return p
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
	Lagged          int64  `json:"lagged"`
}

// hubs returns GET /realtime/hubs by hub name.
func (p *proc) hubs() (map[string]hubStats, error) {
	resp, err := p.http.Get(p.AdminURL("/realtime/hubs"))
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
	Channel  string   `json:"channel,omitempty"`
	Channels []string `json:"channels,omitempty"`
	Type     string   `json:"type"`
	Payload  any      `json:"payload,omitempty"`
	ID       string   `json:"id,omitempty"`
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

// tickN is payload.n of a tick event, -1 for any other message.
func tickN(f rtclient.Frame) int {
	var tk tick
	if f.Type != "tick" || f.DecodePayload(&tk) != nil {
		return -1
	}
	return tk.N
}

// seqOf returns the n of each tick event of frames.
func seqOf(fs []rtclient.Frame) []int {
	var out []int
	for _, f := range fs {
		if f.IsEvent() {
			out = append(out, tickN(f))
		}
	}
	return out
}

// checkSeq reports whether got is exactly from..to.
func checkSeq(got []int, from, to int) error {
	want := to - from + 1
	if want < 0 {
		want = 0
	}
	if len(got) != want {
		return fmt.Errorf("got %d events, want %d (%d..%d): %s", len(got), want, from, to, abbrev(got))
	}
	for i, n := range got {
		if n != from+i {
			return fmt.Errorf("event #%d is n=%d, want %d: %s", i, n, from+i, abbrev(got))
		}
	}
	return nil
}

func abbrev(ns []int) string {
	if len(ns) <= 24 {
		return fmt.Sprint(ns)
	}
	return fmt.Sprintf("%v ... %v", ns[:12], ns[len(ns)-12:])
}

// ended is how c's connection ended (code, text, when); ok is false while
// it is open.
func ended(c *rtclient.Client) (code int, text string, at time.Time, ok bool) {
	e, ok := c.Ended()
	return e.Code, e.Text, e.At, ok
}
