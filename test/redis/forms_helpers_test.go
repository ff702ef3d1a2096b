package redis_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// formNode is a Caddy process whose hubs share Redis through one URL (any
// deployment form): hub H has its WebSocket route at /ws/H and its publish
// route at /pub/H.
type formNode struct {
	*testenv.Caddy
	name string
	port int
}

// formCaddyfile is the config of a formNode.
func formCaddyfile(admin string, port int, redisURL string, hubs []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tpersist_config off\n\trealtime {\n", admin)
	for _, h := range hubs {
		fmt.Fprintf(&b, "\t\thub %s {\n\t\t\thistory_size 10000\n\t\t\thistory_ttl 1h\n\t\t\tredis \"%s\"\n\t\t}\n", h, redisURL)
	}
	fmt.Fprintf(&b, "\t}\n}\n\nhttp://127.0.0.1:%d {\n", port)
	for _, h := range hubs {
		fmt.Fprintf(&b, "\trealtime_ws /ws/%s {\n\t\thub %s\n\t}\n", h, h)
		fmt.Fprintf(&b, "\trealtime_broadcast /pub/%s {\n\t\thub %s\n\t\tsecret %s\n\t}\n", h, h, secret)
	}
	b.WriteString("}\n")
	return b.String()
}

// startFormNode runs a Caddy with hubs on Redis at redisURL (retried once
// on fresh ports).
func startFormNode(t *testing.T, name, redisURL string, hubs ...string) *formNode {
	t.Helper()
	for attempt := 1; ; attempt++ {
		n := &formNode{name: name, port: freePort(t)}
		admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		c, err := testenv.TryStartCaddy(t, testenv.CaddyConfig{
			Caddyfile: formCaddyfile(admin, n.port, redisURL, hubs),
			Admin:     admin,
			Site:      fmt.Sprintf("127.0.0.1:%d", n.port),
		})
		if err == nil {
			n.Caddy = c
			return n
		}
		if attempt == 2 {
			t.Fatalf("node %s: %v", name, err)
		}
		t.Logf("retrying: %v", err)
	}
}

// tryStartFormNode runs `caddy run` for a node that must not start, and
// returns its error (with the end of its output).
func tryStartFormNode(t *testing.T, redisURL string, hubs ...string) error {
	t.Helper()
	port := freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c, err := testenv.TryStartCaddy(t, testenv.CaddyConfig{
		Caddyfile: formCaddyfile(admin, port, redisURL, hubs),
		Admin:     admin,
		Site:      fmt.Sprintf("127.0.0.1:%d", port),
	})
	if err == nil {
		c.Kill()
		return nil
	}
	return err
}

// pubAnswer is what a publish was answered.
type pubAnswer struct {
	status     int
	retryAfter string
	cursor     string
	duplicate  bool
	took       time.Duration
	err        error
}

// publish posts one event with an id to hub h of node n; it never fails
// the test (it runs in publisher goroutines).
func (n *formNode) publish(h, channel, id string) pubAnswer {
	b, _ := json.Marshal(map[string]any{"channel": channel, "type": "t", "id": id, "payload": map[string]string{"k": id}})
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/pub/%s", n.port, h), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+secret)
	start := time.Now()
	resp, err := httpClient.Do(req)
	a := pubAnswer{took: time.Since(start), err: err}
	if err != nil {
		return a
	}
	defer resp.Body.Close()
	a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	var out struct {
		Events []struct {
			Cursor    string `json:"cursor"`
			Duplicate bool   `json:"duplicate"`
		} `json:"events"`
	}
	if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&out) == nil && len(out.Events) == 1 {
		a.cursor, a.duplicate = out.Events[0].Cursor, out.Events[0].Duplicate
	}
	return a
}

// publishLog is what a set of publishers got: ids answered 200 (first or
// duplicate), 503 answers, and anything else.
type publishLog struct {
	mu        sync.Mutex
	accepted  map[string]bool
	refused   int           // 503 answers
	slowest   time.Duration // the slowest 503
	badRetry  []string      // 503 answers without Retry-After: 1
	other     []string      // other statuses and transport errors
	gaveUp    []string      // ids never accepted
	duplicate int           // retries answered duplicate
}

// publishUntil publishes ids "<prefix>-NNNN" to hub h of n every 10 ms
// until stop is closed; an id answered 503 is retried (the same id) every
// 100 ms, at most 150 times.
func (pl *publishLog) publishUntil(n *formNode, h, channel, prefix string, stop <-chan struct{}) {
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("%s-%05d", prefix, seq)
		accepted := false
		for attempt := 0; attempt < 150 && !accepted; attempt++ {
			a := n.publish(h, channel, id)
			pl.mu.Lock()
			switch {
			case a.err != nil:
				pl.other = append(pl.other, fmt.Sprintf("%s: %v", id, a.err))
			case a.status == http.StatusOK:
				accepted = true
				pl.accepted[id] = true
				if a.duplicate {
					pl.duplicate++
				}
			case a.status == http.StatusServiceUnavailable:
				pl.refused++
				pl.slowest = max(pl.slowest, a.took)
				if a.retryAfter != "1" {
					pl.badRetry = append(pl.badRetry, fmt.Sprintf("%s: Retry-After %q", id, a.retryAfter))
				}
			default:
				pl.other = append(pl.other, fmt.Sprintf("%s: status %d", id, a.status))
			}
			pl.mu.Unlock()
			if !accepted {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if !accepted {
			pl.mu.Lock()
			pl.gaveUp = append(pl.gaveUp, id)
			pl.mu.Unlock()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// count is how many ids were accepted.
func (pl *publishLog) count() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return len(pl.accepted)
}

// subscriber is a client of one channel that resumes from its last cursor
// whenever its connection ends, as the JS client does, and remembers every
// event id it got, across connections, and every recovered:false.
type subscriber struct {
	url string // without since

	mu        sync.Mutex
	seen      map[string]int
	order     []string
	cursor    string
	notRecov  int // resumptions answered recovered:false
	reconnect int
	cur       *rtclient.Client
	taken     int // frames of cur already looked at
}

// subscribe connects a subscriber to channel of hub h on node n and keeps
// it connected (polling every 20 ms) until stop is closed.
func subscribe(t *testing.T, n *formNode, h, channel string, stop <-chan struct{}, wg *sync.WaitGroup) *subscriber {
	t.Helper()
	s := &subscriber{url: fmt.Sprintf("ws://127.0.0.1:%d/ws/%s?%s", n.port, h, url.Values{"channels": {channel}}.Encode()), seen: map[string]int{}}
	s.cur = rtclient.Dial(t, s.url, rtclient.Options{})
	waitFor(t, "subscribed", 5*time.Second, func() bool { _, ok := s.cur.Find("realtime:subscribed"); return ok })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			s.poll(t)
			select {
			case <-stop:
				s.poll(t)
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return s
}

// poll takes the new frames of the current connection and, if it ended,
// connects again from the last cursor.
func (s *subscriber) poll(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	frames := s.cur.Frames()
	for _, f := range frames[s.taken:] {
		switch {
		case f.IsEvent():
			s.seen[f.ID]++
			s.order = append(s.order, f.ID)
			s.cursor = f.Cursor
		case f.Type == "realtime:subscribed" && f.Recovered != nil && !*f.Recovered:
			s.notRecov++
		}
	}
	s.taken = len(frames)
	if s.cur.Err() == nil {
		return
	}
	u := s.url
	if s.cursor != "" {
		u += "&since=" + url.QueryEscape(s.cursor)
	}
	c, _, err := rtclient.TryDial(t, u, rtclient.Options{})
	if err != nil {
		return // the next poll tries again
	}
	s.cur, s.taken = c, 0
	s.reconnect++
}

// tally compares what a subscriber got with what was accepted.
type tally struct {
	lost, lostNotRecovered, twice, unknown int
}

func (s *subscriber) tally(accepted map[string]bool, prefixes ...string) tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r tally
	for id := range accepted {
		if s.seen[id] == 0 {
			r.lost++
		}
	}
	if s.notRecov == 0 {
		r.lostNotRecovered = r.lost
	}
	for id, k := range s.seen {
		if k > 1 {
			r.twice++
		}
		if !accepted[id] {
			r.unknown++ // answered 503 only, yet delivered: the caller decides
		}
	}
	return r
}

// has reports whether the subscriber got every id.
func (s *subscriber) has(ids map[string]bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range ids {
		if s.seen[id] == 0 {
			return false
		}
	}
	return true
}

// dialWS connects a client to channels of hub h on node n, resuming from
// since unless "".
func dialWS(t *testing.T, n *formNode, h, channels, since string) *rtclient.Client {
	t.Helper()
	q := url.Values{"channels": {channels}}
	if since != "" {
		q.Set("since", since)
	}
	return rtclient.Dial(t, fmt.Sprintf("ws://127.0.0.1:%d/ws/%s?%s", n.port, h, q.Encode()), rtclient.Options{})
}
