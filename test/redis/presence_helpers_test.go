package redis_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// Presence across two real nodes: helpers.

const (
	tokenSecret = "presence-token-secret-5a1f"
	hookSecret  = "presence-hook-secret-77c2"
)

// presenceNode runs a Caddy whose default hub keeps presence in Redis at
// redisURL, with a short TTL and leave delay, and posts its webhooks to
// hookURL.
func startPresenceNode(t *testing.T, name, redisURL, hookURL string, ttl, leave time.Duration) *node {
	t.Helper()
	for attempt := 1; ; attempt++ {
		n := &node{name: name, port: freePort(t)}
		admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		n.cfg = fmt.Sprintf(`{
	admin %s
	persist_config off
	realtime {
		hub default {
			redis "%s"
			presence_ttl %s
			presence_leave_delay %s
			webhook %s {
				secret %s
			}
		}
	}
}

http://127.0.0.1:%d {
	realtime_ws /realtime/ws {
		token_secret %s
	}
	realtime_broadcast /realtime/broadcast {
		secret %s
	}
}
`, admin, redisURL, ttl, leave, hookURL, hookSecret, n.port, tokenSecret, secret)
		c, err := testenv.TryStartCaddy(t, testenv.CaddyConfig{Caddyfile: n.cfg, Admin: admin, Site: fmt.Sprintf("127.0.0.1:%d", n.port)})
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

// tab is one browser tab of a user on a node: a WebSocket on a presence
// channel, and its view of the members, built from its frames.
type tab struct {
	user string
	node *node
	c    *rtclient.Client
	view *pview
}

// openTab connects user to channel on n with a token of its own.
func openTab(t *testing.T, n *node, user, channel string) *tab {
	t.Helper()
	tok := rtclient.UserToken(t, tokenSecret, user, map[string]string{"name": "User " + user}, []string{"presence-*"}, time.Now().Add(time.Hour))
	u := fmt.Sprintf("ws://127.0.0.1:%d/realtime/ws?channels=%s", n.port, url.QueryEscape(channel))
	c := rtclient.Dial(t, u, rtclient.Options{Header: http.Header{"Authorization": {"Bearer " + tok}}})
	return &tab{user: user, node: n, c: c, view: newPView(channel)}
}

// pview is a client's idea of a channel's members, built from its presence
// frames as the JS client builds it: a snapshot resets it, member events
// apply on top. It records what a client could not make sense of: a member
// event before the snapshot, an added member already there, a removed
// member not there, a count that does not match the list.
type pview struct {
	channel   string
	read      int // frames applied
	snapshots int
	members   map[string]bool
	added     map[string]int
	removed   map[string]int
	err       error
}

func newPView(channel string) *pview {
	return &pview{channel: channel, added: map[string]int{}, removed: map[string]int{}}
}

// presenceFrame is a presence frame of the module's protocol.
type presenceFrame struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
	Count   int    `json:"count"`
	Members *[]struct {
		ID string `json:"id"`
	} `json:"members"`
	Member struct {
		ID string `json:"id"`
	} `json:"member"`
}

// update applies the frames c got since the last update.
func (v *pview) update(c *rtclient.Client) {
	fs := c.Frames()
	for ; v.read < len(fs) && v.err == nil; v.read++ {
		var f presenceFrame
		if json.Unmarshal(fs[v.read].Raw, &f) != nil || f.Channel != v.channel {
			continue
		}
		switch f.Type {
		case "realtime:presence":
			v.snapshots++
			v.members = map[string]bool{}
			if f.Members != nil {
				for _, m := range *f.Members {
					v.members[m.ID] = true
				}
			}
			if f.Count != len(v.members) {
				v.err = fmt.Errorf("snapshot lists %d members, count %d", len(v.members), f.Count)
			}
		case "realtime:member_added", "realtime:member_removed":
			id := f.Member.ID
			switch {
			case v.snapshots == 0:
				v.err = fmt.Errorf("member event before the snapshot: %s", fs[v.read])
			case f.Type == "realtime:member_added" && v.members[id]:
				v.err = fmt.Errorf("%s added twice: %s", id, fs[v.read])
			case f.Type == "realtime:member_removed" && !v.members[id]:
				v.err = fmt.Errorf("%s removed but not a member: %s", id, fs[v.read])
			case f.Type == "realtime:member_added":
				v.members[id] = true
				v.added[id]++
			default:
				delete(v.members, id)
				v.removed[id]++
			}
			if v.err == nil && f.Count != len(v.members) {
				v.err = fmt.Errorf("count %d with %d members listed: %s", f.Count, len(v.members), fs[v.read])
			}
		}
	}
}

func (v *pview) ids() string { return joinSorted(v.members) }

func joinSorted(set map[string]bool) string {
	ids := make([]string, 0, len(set))
	for id, ok := range set {
		if ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// waitTabs waits until every tab's view lists exactly want; a view that
// makes no sense fails the test at once.
func waitTabs(t *testing.T, what, want string, timeout time.Duration, tabs []*tab) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		bad := ""
		var badTab *tab
		for _, tb := range tabs {
			tb.view.update(tb.c)
			if tb.view.err != nil {
				t.Fatalf("%s: tab of %s on %s: %v\n%s", what, tb.user, tb.node.name, tb.view.err, lastFrames(tb.c, 20))
			}
			if bad == "" && (tb.view.snapshots == 0 || tb.view.ids() != want) {
				bad = fmt.Sprintf("a tab of %s on %s sees %q", tb.user, tb.node.name, tb.view.ids())
				badTab = tb
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: waiting for every view to list %q: %s; its last frames:\n%s", what, want, bad, lastFrames(badTab.c, 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hookReceiver is the application's webhook receiver: it checks each
// POST's signature, answers 503 while down, and keeps every event it took,
// once per id (a resent event must be the same event).
type hookReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	down     bool
	events   []hookEvent // in arrival order, each id once
	byID     map[string]hookEvent
	posts    int
	resent   int // events received again (same id)
	badSigns int
	errs     []string
}

type hookEvent struct {
	Name    string `json:"name"`
	Channel string `json:"channel"`
	UserID  string `json:"user_id"`
	ID      string `json:"id"`
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{byID: map[string]hookEvent{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) url() string { return r.srv.URL + "/hook" }

func (r *hookReceiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts++
	if r.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if !validSignature(req.Header.Get("X-Realtime-Signature"), body) {
		r.badSigns++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var b struct {
		TimeMS int64       `json:"time_ms"`
		Events []hookEvent `json:"events"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.TimeMS == 0 {
		r.errs = append(r.errs, fmt.Sprintf("bad body %s", body))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, e := range b.Events {
		if old, ok := r.byID[e.ID]; ok {
			r.resent++
			if old != e {
				r.errs = append(r.errs, fmt.Sprintf("id %s names two events: %+v and %+v", e.ID, old, e))
			}
			continue
		}
		r.byID[e.ID] = e
		r.events = append(r.events, e)
	}
	w.WriteHeader(http.StatusNoContent)
}

// validSignature checks X-Realtime-Signature: t=<unix>,v1=<hex
// HMAC-SHA256(secret, "<t>.<body>")>.
func validSignature(h string, body []byte) bool {
	ts, sig, ok := strings.Cut(h, ",v1=")
	if !ok || !strings.HasPrefix(ts, "t=") {
		return false
	}
	m := hmac.New(sha256.New, []byte(hookSecret))
	m.Write([]byte(ts[2:] + "."))
	m.Write(body)
	return hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(sig))
}

// byUser lists each user's member events on channel in arrival order ("+"
// added, "-" removed), each id once.
func (r *hookReceiver) byUser(channel string) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for _, e := range r.events {
		if e.Channel != channel {
			continue
		}
		switch e.Name {
		case "member_added":
			out[e.UserID] += "+"
		case "member_removed":
			out[e.UserID] += "-"
		}
	}
	return out
}

// occupancy lists channel's occupied and vacated events ("o", "v").
func (r *hookReceiver) occupancy(channel string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := ""
	for _, e := range r.events {
		if e.Channel != channel {
			continue
		}
		switch e.Name {
		case "channel_occupied":
			out += "o"
		case "channel_vacated":
			out += "v"
		}
	}
	return out
}

// problems returns what the receiver found wrong.
func (r *hookReceiver) problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]string(nil), r.errs...)
	if r.badSigns > 0 {
		out = append(out, fmt.Sprintf("%d posts with a bad signature", r.badSigns))
	}
	return out
}

// sameHistories compares per-user event histories, reporting differences.
func sameHistories(got, want map[string]string) string {
	var diff []string
	for u, w := range want {
		if got[u] != w {
			diff = append(diff, fmt.Sprintf("%s: got %q, want %q", u, got[u], w))
		}
	}
	for u, g := range got {
		if _, ok := want[u]; !ok && g != "" {
			diff = append(diff, fmt.Sprintf("%s: got %q, want nothing", u, g))
		}
	}
	sort.Strings(diff)
	return strings.Join(diff, "; ")
}

// lastFrames lists the last n frames c got, for failure messages.
func lastFrames(c *rtclient.Client, n int) string {
	fs := c.Frames()
	fs = fs[max(len(fs)-n, 0):]
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("\t" + f.String() + "\n")
	}
	return b.String()
}
