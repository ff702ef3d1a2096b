package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/rtproto"
)

// pnode is one node of a hub with presence, in this process: a hub over
// its own Redis log.
type pnode struct {
	h *hub.Hub
	l *Log
	p *hub.Policy
}

// newPresenceNode starts a node of hub "test" on addr under prefix.
func newPresenceNode(t testing.TB, addr, prefix string, cfg hub.PresenceConfig, hooks hub.WebhookSet, tweak ...func(*Config)) *pnode {
	t.Helper()
	l := newTestLog(t, addr, prefix, 1000, time.Hour, tweak...)
	h := hub.New("test", l)
	h.SetPresence(cfg)
	h.SetWebhooks(hooks)
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	n := &pnode{h: h, l: l, p: &hub.Policy{SendQueue: 4096}}
	t.Cleanup(n.close)
	return n
}

func (n *pnode) close() { n.h.Close(hub.DisconnectShutdown, 0, time.Second) }

// join connects user to channel on n, as the protocols that authorise
// each subscription themselves do (the member given, no token).
func (n *pnode) join(t testing.TB, user, channel string) (*hub.Session, *fakeConn) {
	t.Helper()
	c := &fakeConn{}
	s, err := n.h.Connect(c, n.p, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	s.Subscribe([]string{channel}, hub.SubscribeOptions{Member: &hub.Member{ID: user, Info: json.RawMessage(`{"name":"` + user + `"}`)}})
	return s, c
}

// presenceOf is who the store says is on channel, sorted.
func presenceOf(t testing.TB, n *pnode, channel string) string {
	t.Helper()
	st, err := n.h.Presence(context.Background(), channel)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(st.Members))
	for i, m := range st.Members {
		ids[i] = m.ID
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// pview is a client's idea of a channel, built from its presence messages
// as the JS client builds it: a snapshot resets it, member events apply on
// top. It fails on what a client could not make sense of: a member event
// before the snapshot, an added member already there, a removed member not
// there, a count that does not match the list.
type pview struct {
	members   map[string]bool
	snapshots int
	added     map[string]int
	removed   map[string]int
}

func buildPView(c *fakeConn, channel string) (pview, error) {
	v := pview{added: map[string]int{}, removed: map[string]int{}}
	for _, m := range c.all() {
		if m["channel"] != channel {
			continue
		}
		switch m["type"] {
		case "realtime:presence":
			v.snapshots++
			v.members = map[string]bool{}
			list, _ := m["members"].([]any)
			for _, e := range list {
				v.members[e.(map[string]any)["id"].(string)] = true
			}
			if n := int(m["count"].(float64)); n != len(v.members) {
				return v, fmt.Errorf("snapshot lists %d members, count %d: %v", len(v.members), n, m)
			}
		case "realtime:member_added", "realtime:member_removed":
			if v.snapshots == 0 {
				return v, fmt.Errorf("member event before the snapshot: %v", m)
			}
			id := m["member"].(map[string]any)["id"].(string)
			if m["type"] == "realtime:member_added" {
				if v.members[id] {
					return v, fmt.Errorf("%s added twice: %v", id, m)
				}
				v.members[id] = true
				v.added[id]++
			} else {
				if !v.members[id] {
					return v, fmt.Errorf("%s removed but not a member: %v", id, m)
				}
				delete(v.members, id)
				v.removed[id]++
			}
			if n := int(m["count"].(float64)); n != len(v.members) {
				return v, fmt.Errorf("count %d with %d members listed: %v", n, len(v.members), m)
			}
		}
	}
	return v, nil
}

func (v pview) ids() string {
	ids := make([]string, 0, len(v.members))
	for id := range v.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// waitViews waits until every conn's view of channel lists exactly ids,
// failing at once on a view that makes no sense.
func waitViews(t testing.TB, channel, ids string, timeout time.Duration, conns ...*fakeConn) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		bad := ""
		for i, c := range conns {
			v, err := buildPView(c, channel)
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			if v.snapshots == 0 || v.ids() != ids {
				bad = fmt.Sprintf("client %d sees %q", i, v.ids())
				break
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for every view of %s to list %q: %s", channel, ids, bad)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hookTap reads a webhook target's events from a queue and acknowledges
// them, as a sender that always succeeds.
type hookTap struct {
	mu     sync.Mutex
	events []hub.WebhookEvent
	cancel context.CancelFunc
	done   chan struct{}
}

func tapHooks(t testing.TB, q hub.WebhookQueue, target string) *hookTap {
	return tapHooksEvery(t, q, target, 0)
}

// tapHooksEvery is tapHooks reading at most every window, as a sender
// that batches does.
func tapHooksEvery(t testing.TB, q hub.WebhookQueue, target string, window time.Duration) *hookTap {
	ctx, cancel := context.WithCancel(context.Background())
	h := &hookTap{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		full := false
		for ctx.Err() == nil {
			if !full {
				time.Sleep(window)
			}
			evs, err := q.Read(ctx, target, 100)
			full = len(evs) == 100
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			h.mu.Lock()
			h.events = append(h.events, evs...)
			h.mu.Unlock()
			_ = q.Ack(ctx, target, evs[len(evs)-1].Pos)
		}
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *hookTap) stop() {
	h.cancel()
	<-h.done
}

// byUser lists each user's member events on channel, in queue order
// ("+" added, "-" removed), counting each event id once.
func (h *hookTap) byUser(channel string) map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	out := map[string]string{}
	for _, e := range h.events {
		if e.Channel != channel || seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		switch e.Name {
		case "member_added":
			out[e.UserID] += "+"
		case "member_removed":
			out[e.UserID] += "-"
		}
	}
	return out
}

// names lists the names of the events on channel, in queue order.
func (h *hookTap) names(channel string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		if e.Channel == channel {
			s := e.Name
			if e.UserID != "" {
				s += ":" + e.UserID
			}
			out = append(out, s)
		}
	}
	return out
}

// waitHooks waits until cond holds for the tap.
func (h *hookTap) wait(t testing.TB, what string, timeout time.Duration, cond func(*hookTap) bool) {
	t.Helper()
	waitFor(t, what, timeout, func() bool { return cond(h) })
}
