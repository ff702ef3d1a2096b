package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// presenceVerifier grants presence-* and room.* to users: the token
// "u:<id>" is user <id> with info {"name":"<id>"}; "anon" grants the same
// channels without a sub.
type presenceVerifier struct{}

func (presenceVerifier) Verify(tok string) (*Grant, error) {
	exp := time.Now().Add(time.Hour)
	channels := []string{"presence-*", "room.*"}
	switch {
	case tok == "anon":
		return &Grant{Channels: channels, Expires: exp}, nil
	case strings.HasPrefix(tok, "u:"):
		id := tok[2:]
		return &Grant{Subject: id, Channels: channels, Info: json.RawMessage(`{"name":"` + id + `"}`), Expires: exp}, nil
	}
	return nil, ErrTokenInvalid
}

// newPresenceHub is a hub whose members leave only when the test says so
// (expireLingers), unless cfg says otherwise.
func newPresenceHub(t testing.TB, cfg PresenceConfig) (*Hub, *Policy) {
	t.Helper()
	h, _ := newTestHub(t, 1000)
	h.SetPresence(cfg)
	p := testPolicy()
	p.Tokens = presenceVerifier{}
	return h, p
}

// longDelay keeps lingering members until expireLingers: the tests' clock.
var longDelay = PresenceConfig{LeaveDelay: time.Hour, MaxMembers: 100}

// expireLingers ends every leave delay under way now, as if it had passed.
func expireLingers(h *Hub) {
	h.mu.Lock()
	past := time.Now().Add(-time.Second)
	for i := range h.presence.lingers {
		h.presence.lingers[i].at = past
	}
	h.mu.Unlock()
	h.lingerExpired()
}

// join connects user to channel (no default channels).
func join(t testing.TB, h *Hub, p *Policy, user, channel string) (*Session, *fakeConn) {
	t.Helper()
	s, c := connect(t, h, p, ConnectOptions{Channels: []string{}})
	s.Subscribe([]string{channel}, SubscribeOptions{Token: "u:" + user})
	return s, c
}

// presenceMsgs returns the presence messages of channel received by c.
func presenceMsgs(c *fakeConn, channel string) []map[string]any {
	var out []map[string]any
	for _, m := range c.msgs() {
		switch m["type"] {
		case "realtime:presence", "realtime:member_added", "realtime:member_removed", "realtime:presence_count":
			if m["channel"] == channel {
				out = append(out, m)
			}
		}
	}
	return out
}

// view is a client's idea of a channel, built from its presence messages
// the way the JS client builds it: a snapshot resets it, member events
// apply on top. It fails on what a client could not make sense of: a
// member event before the snapshot, an added member already there, a
// removed member not there, a count that does not match the list.
type view struct {
	members   map[string]string // id -> info
	listed    bool              // the latest snapshot listed members
	count     int
	snapshots int
	added     map[string]int
	removed   map[string]int
	counts    int // presence_count messages
}

func buildView(c *fakeConn, channel string) (view, error) {
	v := view{added: map[string]int{}, removed: map[string]int{}}
	for _, m := range presenceMsgs(c, channel) {
		switch m["type"] {
		case "realtime:presence":
			v.snapshots++
			v.count = int(m["count"].(float64))
			v.members, v.listed = nil, false
			if list, ok := m["members"].([]any); ok {
				v.members, v.listed = map[string]string{}, true
				for _, e := range list {
					mm := e.(map[string]any)
					info, _ := json.Marshal(mm["info"])
					v.members[mm["id"].(string)] = string(info)
				}
				if len(v.members) != v.count {
					return v, fmt.Errorf("snapshot lists %d members, count %d: %v", len(v.members), v.count, m)
				}
			}
		case "realtime:member_added", "realtime:member_removed":
			if v.snapshots == 0 {
				return v, fmt.Errorf("member event before the snapshot: %v", m)
			}
			if !v.listed {
				return v, fmt.Errorf("member event on a counts-only channel: %v", m)
			}
			mm := m["member"].(map[string]any)
			id := mm["id"].(string)
			info, _ := json.Marshal(mm["info"])
			if m["type"] == "realtime:member_added" {
				if _, ok := v.members[id]; ok {
					return v, fmt.Errorf("%s added twice: %v", id, m)
				}
				v.members[id] = string(info)
				v.added[id]++
			} else {
				if _, ok := v.members[id]; !ok {
					return v, fmt.Errorf("%s removed but not a member: %v", id, m)
				}
				delete(v.members, id)
				v.removed[id]++
			}
			v.count = int(m["count"].(float64))
			if v.count != len(v.members) {
				return v, fmt.Errorf("count %d with %d members listed: %v", v.count, len(v.members), m)
			}
		case "realtime:presence_count":
			if v.snapshots == 0 {
				return v, fmt.Errorf("count before the snapshot: %v", m)
			}
			v.counts++
			v.count = int(m["count"].(float64))
			v.members, v.listed = nil, false
		}
	}
	return v, nil
}

func (v view) ids() string {
	ids := make([]string, 0, len(v.members))
	for id := range v.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// mustView builds c's view and fails the test if it makes no sense.
func mustView(t testing.TB, c *fakeConn, channel string) view {
	t.Helper()
	v, err := buildView(c, channel)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitView waits until c's view of channel lists exactly ids.
func waitView(t testing.TB, c *fakeConn, channel, ids string) view {
	t.Helper()
	var v view
	waitFor(t, fmt.Sprintf("a view of %s listing %q", channel, ids), func() bool {
		v = mustView(t, c, channel)
		return v.snapshots > 0 && v.listed && v.ids() == ids
	})
	return v
}

// storeIDs is who the store says is on channel.
func storeIDs(t testing.TB, h *Hub, channel string) string {
	t.Helper()
	st, err := h.Presence(context.Background(), channel)
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

// TestPresenceMembers: a joiner gets subscribed, then a snapshot listing
// itself with its info; others get exactly one member_added per user (two
// tabs are one member) and, after the leave delay, one member_removed with
// the info it joined with.
func TestPresenceMembers(t *testing.T) {
	h, p := newPresenceHub(t, longDelay)
	const ch = "presence-room"
	_, ca := join(t, h, p, "a", ch)
	waitView(t, ca, ch, "a")
	msgs := ca.msgs()
	if msgs[1]["type"] != "realtime:subscribed" || msgs[2]["type"] != "realtime:presence" {
		t.Fatalf("want welcome, subscribed, presence; got %v", msgs)
	}
	if mustView(t, ca, ch).members["a"] != `{"name":"a"}` {
		t.Fatalf("snapshot info: %v", msgs[2])
	}

	sb1, cb1 := join(t, h, p, "b", ch)
	waitView(t, cb1, ch, "a,b")
	waitView(t, ca, ch, "a,b")
	sb2, cb2 := join(t, h, p, "b", ch) // a second tab
	waitView(t, cb2, ch, "a,b")

	sb1.Finish()
	sb2.Unsubscribe([]string{ch})
	waitFor(t, "unsubscribed", func() bool { return lastMsg(cb2)["type"] == "realtime:unsubscribed" })
	// Until the delay is over, b is still a member: a third tab sees it.
	_, cb3 := join(t, h, p, "b", ch)
	waitView(t, cb3, ch, "a,b")
	if n := len(presenceMsgs(cb3, ch)); n != 1 {
		t.Fatalf("a rejoin within the delay: want the snapshot only, got %d messages", n)
	}
	h.mu.Lock()
	for s := range h.sessions {
		if sub := s.subs.get(ch); sub != nil && sub.user == "b" {
			h.mu.Unlock()
			s.Finish()
			h.mu.Lock()
		}
	}
	h.mu.Unlock()
	if got := storeIDs(t, h, ch); got != "a,b" {
		t.Fatalf("before the delay is over: store lists %q, want a,b", got)
	}
	expireLingers(h)
	v := waitView(t, ca, ch, "a")
	if v.added["b"] != 1 || v.removed["b"] != 1 {
		t.Fatalf("a saw b added %d and removed %d times, want 1 and 1", v.added["b"], v.removed["b"])
	}
	for _, m := range presenceMsgs(ca, ch) {
		if m["type"] == "realtime:member_removed" {
			if info := m["member"].(map[string]any)["info"].(map[string]any); info["name"] != "b" {
				t.Fatalf("member_removed without the member's info: %v", m)
			}
		}
	}
	if n := len(presenceMsgs(cb2, ch)); n != 1 {
		t.Fatalf("an unsubscribed session got presence messages: %v", presenceMsgs(cb2, ch))
	}
	if got := storeIDs(t, h, ch); got != "a" {
		t.Fatalf("store lists %q, want a", got)
	}
}

// TestPresenceReloadIsSilent: a tab that goes and comes back within the
// leave delay produces no message at all for the others.
func TestPresenceReloadIsSilent(t *testing.T) {
	h, p := newPresenceHub(t, longDelay)
	const ch = "presence-reload"
	_, ca := join(t, h, p, "a", ch)
	waitView(t, ca, ch, "a")
	for i := 0; i < 5; i++ {
		sb, cb := join(t, h, p, "b", ch)
		waitView(t, cb, ch, "a,b")
		sb.Finish()
	}
	// A third user's arrival is the barrier: anything about b came first.
	_, cc := join(t, h, p, "c", ch)
	waitView(t, cc, ch, "a,b,c")
	v := waitView(t, ca, ch, "a,b,c")
	if v.added["b"] != 1 || v.removed["b"] != 0 {
		t.Fatalf("b reloaded 5 times within the delay: a saw it added %d and removed %d times, want 1 and 0", v.added["b"], v.removed["b"])
	}
	expireLingers(h)
	v = waitView(t, ca, ch, "a,c")
	if v.removed["b"] != 1 {
		t.Fatalf("b removed %d times after the delay, want 1", v.removed["b"])
	}
}

// TestPresenceZeroDelay: with no leave delay a member leaves as soon as its
// last connection is gone.
func TestPresenceZeroDelay(t *testing.T) {
	h, p := newPresenceHub(t, PresenceConfig{MaxMembers: 100})
	const ch = "presence-now"
	_, ca := join(t, h, p, "a", ch)
	sb, _ := join(t, h, p, "b", ch)
	waitView(t, ca, ch, "a,b")
	sb.Finish()
	waitView(t, ca, ch, "a")
}

// TestPresenceAccess: presence channels are private whatever the endpoint
// says, need a token with a sub, and the hub's patterns make more of them.
func TestPresenceAccess(t *testing.T) {
	h, p := newPresenceHub(t, longDelay)
	h.SetPresence(PresenceConfig{Patterns: []string{"room.*"}, LeaveDelay: time.Hour, MaxMembers: 100})
	s, c := connect(t, h, p, ConnectOptions{Channels: []string{}})
	waitFor(t, "the welcome", func() bool { return len(c.msgs()) == 1 })
	expect := func(channel, code string, o SubscribeOptions) {
		t.Helper()
		before := len(c.msgs())
		s.Subscribe([]string{channel}, o)
		waitFor(t, "an answer", func() bool { return len(c.msgs()) > before })
		if m := c.msgs()[before]; m["code"] != code || m["channel"] != channel {
			t.Fatalf("subscribe %s: want error %s, got %v", channel, code, m)
		}
	}
	expect("presence-x", CodeForbidden, SubscribeOptions{})
	expect("room.1", CodeForbidden, SubscribeOptions{})
	expect("presence-x", CodeForbidden, SubscribeOptions{Token: "anon"})
	expect("room.1", CodeForbidden, SubscribeOptions{Token: "anon"})
	expect("presence-x", CodeTokenInvalid, SubscribeOptions{Token: "garbage"})
	if m := lastMsg(c); m["message"] == nil {
		t.Fatal("error without a message")
	}
	// The endpoint without tokens: no presence at all.
	noTokens := testPolicy()
	s2, c2 := connect(t, h, noTokens, ConnectOptions{Channels: []string{}})
	s2.Subscribe([]string{"presence-x"}, SubscribeOptions{Token: "u:1"})
	waitFor(t, "an answer", func() bool { return lastMsg(c2)["type"] == "realtime:error" })
	if m := lastMsg(c2); m["code"] != CodeForbidden {
		t.Fatalf("presence without token_secret: %v", m)
	}
	// With a token that has a sub, room.1 is a presence channel.
	s.Subscribe([]string{"room.1"}, SubscribeOptions{Token: "u:7"})
	waitView(t, c, "room.1", "7")
	if h.Stats().PresenceChannels.Load() != 1 || h.Stats().PresenceMembers.Load() != 1 {
		t.Fatalf("gauges: %d channels, %d members", h.Stats().PresenceChannels.Load(), h.Stats().PresenceMembers.Load())
	}
	if got := storeIDs(t, h, "presence-x"); got != "" {
		t.Fatalf("refused subscriptions made members: %q", got)
	}
}

// TestPresenceMemberOption: a protocol that authorises subscriptions itself
// names the member; a member without an id grants no presence channel.
func TestPresenceMemberOption(t *testing.T) {
	h, p := newPresenceHub(t, longDelay)
	s, c := connect(t, h, p, ConnectOptions{Channels: []string{}})
	s.Subscribe([]string{"presence-p"}, SubscribeOptions{Member: &Member{ID: "9", Info: json.RawMessage(`{"x":1}`)}})
	waitView(t, c, "presence-p", "9")
	s.Subscribe([]string{"presence-q"}, SubscribeOptions{Member: &Member{}})
	waitFor(t, "an answer", func() bool { return lastMsg(c)["channel"] == "presence-q" })
	if m := lastMsg(c); m["code"] != CodeForbidden {
		t.Fatalf("a member without id: %v", m)
	}
	s.Subscribe([]string{"private-z"}, SubscribeOptions{Member: &Member{}})
	waitFor(t, "an answer", func() bool { return lastMsg(c)["channel"] == "private-z" })
	if m := lastMsg(c); m["type"] != "realtime:subscribed" {
		t.Fatalf("an authorised private channel: %v", m)
	}
}

// TestPresenceMaxMembers: above the limit a snapshot has no members, and
// member events give way to counts, at most one a second; back under it,
// the receivers get the members again.
func TestPresenceMaxMembers(t *testing.T) {
	h, p := newPresenceHub(t, PresenceConfig{LeaveDelay: time.Hour, MaxMembers: 2})
	const ch = "presence-big"
	_, ca := join(t, h, p, "a", ch)
	join(t, h, p, "b", ch)
	waitView(t, ca, ch, "a,b")
	sc, _ := join(t, h, p, "c", ch)
	waitFor(t, "a count of 3", func() bool { v := mustView(t, ca, ch); return !v.listed && v.count == 3 })
	var late []*Session
	for _, u := range []string{"d", "e", "f"} {
		s, _ := join(t, h, p, u, ch)
		late = append(late, s)
	}
	waitFor(t, "a count of 6", func() bool { return mustView(t, ca, ch).count == 6 })
	v := mustView(t, ca, ch)
	if v.counts > 2 {
		// 3 then 6: the counts of d and e waited for the second and were
		// replaced by f's.
		t.Fatalf("%d presence_count messages for 4 joins within a second, want at most 2", v.counts)
	}
	for _, m := range presenceMsgs(ca, ch) {
		if m["type"] == "realtime:member_added" && m["member"].(map[string]any)["id"] != "b" {
			t.Fatalf("a member event above the limit: %v", m)
		}
	}
	_, cg := join(t, h, p, "g", ch)
	waitFor(t, "g's snapshot", func() bool { return mustView(t, cg, ch).snapshots == 1 })
	for _, m := range presenceMsgs(cg, ch) {
		if _, listed := m["members"]; m["type"] == "realtime:presence" && (listed && m["members"] != nil || m["count"].(float64) != 7) {
			t.Fatalf("snapshot above the limit: %v", m)
		}
	}
	for _, s := range append(late, sc) {
		s.Finish()
	}
	for s := range sessionsOf(h, "g") {
		s.Finish()
	}
	expireLingers(h)
	v = waitView(t, ca, ch, "a,b")
	if v.snapshots < 2 {
		t.Fatalf("back under the limit without a new snapshot: %d", v.snapshots)
	}
}

// sessionsOf returns the sessions of user.
func sessionsOf(h *Hub, user string) map[*Session]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[*Session]bool{}
	for s := range h.sessions {
		for _, sub := range s.subs {
			if sub.user == user {
				out[s] = true
			}
		}
	}
	return out
}

// TestPresenceConsistencyUnderChurn: users join and leave at random, from
// many goroutines, while observers come and go; every observer's view,
// built from its snapshot and the changes after it, makes sense at every
// step (no gap, no double apply) and ends equal to the store's truth.
func TestPresenceConsistencyUnderChurn(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		h, p := newPresenceHub(t, PresenceConfig{MaxMembers: 1000})
		churn(t, h, p)
	})
	t.Run("lagging reader", func(t *testing.T) {
		// Changes reach the hub late, after the joins that made them
		// returned and after snapshots that already have them, as from a
		// backplane's reader: the mirrors must still apply each exactly once.
		h := New("lag", &laggyLog{MemoryLog: NewMemoryLog(100, time.Hour)})
		if err := h.Start(); err != nil {
			t.Fatal(err)
		}
		h.SetPresence(PresenceConfig{MaxMembers: 1000})
		p := testPolicy()
		p.Tokens = presenceVerifier{}
		churn(t, h, p)
	})
}

// laggyLog is a log whose presence store delivers from a goroutine of its
// own, a little late.
type laggyLog struct {
	*MemoryLog
	once  sync.Once
	store *laggyStore
}

func (l *laggyLog) Presence() PresenceStore {
	l.once.Do(func() {
		q := NewMemoryWebhookQueue(0, nil)
		l.store = &laggyStore{MemoryPresence: NewMemoryPresence(q), q: q, ch: make(chan []PresenceChange, 1<<16)}
	})
	return l.store
}

func (l *laggyLog) Webhooks() WebhookQueue { l.Presence(); return l.store.q }

type laggyStore struct {
	*MemoryPresence
	q  *MemoryWebhookQueue
	ch chan []PresenceChange
}

// Join takes a while, as a round trip does: a second tab may come while
// the first one's join is under way.
func (s *laggyStore) Join(ctx context.Context, channel string, m Member, o JoinOptions) (PresenceResult, error) {
	time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
	return s.MemoryPresence.Join(ctx, channel, m, o)
}

func (s *laggyStore) Start(n PresenceNode) error {
	go func() {
		r := rand.New(rand.NewPCG(7, 7))
		for cs := range s.ch {
			time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
			n.Deliver(cs)
		}
	}()
	return s.MemoryPresence.Start(PresenceNode{Deliver: func(cs []PresenceChange) { s.ch <- cs }})
}

func churn(t *testing.T, h *Hub, p *Policy) {
	h.SetWebhooks(WebhookMemberAdded | WebhookMemberRemoved)
	// Several channels, each emptied and filled again now and then, so that
	// mirrors are made, dropped and made again while changes fly.
	channels := []string{"presence-c0", "presence-c1", "presence-c2"}
	type watcher struct {
		c        *fakeConn
		user, ch string
		stays    bool
	}
	var watchers []watcher
	var wmu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			var mine []*Session
			for i := 0; i < 300; i++ {
				switch {
				case len(mine) > 3 || len(mine) > 0 && r.IntN(2) == 0:
					k := r.IntN(len(mine))
					mine[k].Finish()
					mine = append(mine[:k], mine[k+1:]...)
				default:
					user, ch := fmt.Sprintf("u%d", g*3+r.IntN(3)), channels[r.IntN(len(channels))]
					s, c := join(t, h, p, user, ch)
					mine = append(mine, s)
					wmu.Lock()
					watchers = append(watchers, watcher{c: c, user: user, ch: ch})
					wmu.Unlock()
				}
				if i%60 == 0 {
					// An observer joins in the middle of it all and stays.
					user, ch := fmt.Sprintf("o%d.%d", g, i), channels[r.IntN(len(channels))]
					_, c := join(t, h, p, user, ch)
					wmu.Lock()
					watchers = append(watchers, watcher{c: c, user: user, ch: ch, stays: true})
					wmu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	live := map[string]map[string]bool{}
	h.mu.Lock()
	for s := range h.sessions {
		for _, sub := range s.subs {
			if live[sub.channel] == nil {
				live[sub.channel] = map[string]bool{}
			}
			live[sub.channel][sub.user] = true
		}
	}
	h.mu.Unlock()
	want := map[string]string{}
	members := 0
	for _, ch := range channels {
		ids := make([]string, 0, len(live[ch]))
		for id := range live[ch] {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		want[ch] = strings.Join(ids, ",")
		members += len(ids)
		waitFor(t, "the store to settle", func() bool { return storeIDs(t, h, ch) == want[ch] })
	}
	checked := 0
	for _, w := range watchers {
		if w.stays {
			waitView(t, w.c, w.ch, want[w.ch])
			checked++
		}
		v, err := buildView(w.c, w.ch)
		if err != nil {
			t.Fatal(err)
		}
		// Its own snapshot lists the joiner itself: the first message.
		if msgs := presenceMsgs(w.c, w.ch); len(msgs) > 0 {
			first := msgs[0]
			found := false
			for _, m := range first["members"].([]any) {
				found = found || m.(map[string]any)["id"] == w.user
			}
			if first["type"] != "realtime:presence" || !found {
				t.Fatalf("%s's first presence message does not list it: %v", w.user, first)
			}
		} else if w.stays {
			t.Fatalf("observer %s got no snapshot", w.user)
		}
		_ = v
	}
	// Exactly one added and one removed per transition: the store's
	// webhooks tell each user's whole story, which must alternate and end
	// as a member exactly for the users still connected.
	evs, err := h.Webhooks().Read(context.Background(), "t", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	member := map[string]bool{}
	for _, e := range evs {
		k := e.Channel + "/" + e.UserID
		added := e.Name == "member_added"
		if member[k] == added {
			t.Fatalf("%s for %s, who is already in that state", e.Name, k)
		}
		member[k] = added
	}
	for k, m := range member {
		ch, id, _ := strings.Cut(k, "/")
		if m != live[ch][id] {
			t.Fatalf("webhooks end with %s a member: %v, but connected: %v", k, m, live[ch][id])
		}
	}
	t.Logf("%d watchers, %d observers checked, %d transitions, %d members at the end", len(watchers), checked, len(evs), members)
}

// TestPresenceWebhooks: the store queues one member_added and one
// member_removed per transition, channel_occupied and channel_vacated for
// any channel, the leaving ones only after the leave delay, each with a
// unique id.
func TestPresenceWebhooks(t *testing.T) {
	h, p := newPresenceHub(t, longDelay)
	h.SetWebhooks(AllWebhooks &^ WebhookClientEvent)
	q := h.Webhooks()
	_, _ = join(t, h, p, "a", "presence-w")
	sb1, _ := join(t, h, p, "b", "presence-w")
	sb2, _ := join(t, h, p, "b", "presence-w")
	sp, _ := connect(t, h, p, ConnectOptions{Channels: []string{"public"}})
	sb1.Finish()
	sb2.Finish()
	sp.Finish()
	names := func() []string {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		evs, _ := q.Read(ctx, "t", 100)
		var out []string
		ids := map[string]bool{}
		for _, e := range evs {
			if ids[e.ID] {
				t.Fatalf("id %s twice", e.ID)
			}
			ids[e.ID] = true
			out = append(out, e.Name+":"+e.Channel+":"+e.UserID)
		}
		return out
	}
	want := []string{"channel_occupied:presence-w:", "member_added:presence-w:a", "member_added:presence-w:b", "channel_occupied:public:"}
	if got := names(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("before the delay: got %v, want %v", got, want)
	}
	expireLingers(h)
	want = append(want, "member_removed:presence-w:b", "channel_vacated:public:")
	waitFor(t, "the leaving events", func() bool { return len(names()) == len(want) })
	got := names()
	sort.Strings(got[4:])
	sort.Strings(want[4:])
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after the delay: got %v, want %v", got, want)
	}
	evs, _ := q.Read(context.Background(), "t", 100)
	if err := q.Ack(context.Background(), "t", evs[len(evs)-1].Pos); err != nil {
		t.Fatal(err)
	}
	if n := h.Webhooks().(*MemoryWebhookQueue).Len(); n != 0 {
		t.Fatalf("%d events kept after the only target acknowledged them all", n)
	}
	// Webhooks off: nothing is queued.
	h.SetWebhooks(0)
	join(t, h, p, "c", "presence-w")
	if n := h.Webhooks().(*MemoryWebhookQueue).Len(); n != 0 {
		t.Fatalf("%d events queued with webhooks off", n)
	}
}

// TestNormalizeInfo: info is a JSON object of at most 1 KiB, compacted.
func TestNormalizeInfo(t *testing.T) {
	ok := map[string]string{
		``:                     ``,
		`null`:                 ``,
		` { "name" : "Ana" } `: `{"name":"Ana"}`,
		`{"a":"` + strings.Repeat("x", MaxInfoSize-8) + `"}`: `{"a":"` + strings.Repeat("x", MaxInfoSize-8) + `"}`,
	}
	for in, want := range ok {
		got, err := NormalizeInfo(json.RawMessage(in))
		if err != nil || string(got) != want {
			t.Errorf("NormalizeInfo(%.40q) = %.40q, %v; want %.40q", in, got, err, want)
		}
	}
	for _, in := range []string{`"ana"`, `[1]`, `42`, `{"a":`, `{"a":"` + strings.Repeat("x", MaxInfoSize-7) + `"}`} {
		if _, err := NormalizeInfo(json.RawMessage(in)); err == nil {
			t.Errorf("NormalizeInfo(%.40q): want an error", in)
		}
	}
}

// TestMemoryPresenceLimit: a store join with a limit refuses a new member
// of a full channel, never one that is a member already.
func TestMemoryPresenceLimit(t *testing.T) {
	st := NewMemoryPresence(nil)
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if r, _ := st.Join(ctx, "presence-l", Member{ID: id}, JoinOptions{Limit: 2}); !r.Changed {
			t.Fatalf("join %s: %+v", id, r)
		}
	}
	if r, _ := st.Join(ctx, "presence-l", Member{ID: "c"}, JoinOptions{Limit: 2}); !r.Refused || r.Count != 2 {
		t.Fatalf("third member over a limit of 2: %+v", r)
	}
	if r, _ := st.Join(ctx, "presence-l", Member{ID: "a"}, JoinOptions{Limit: 2}); r.Refused || r.Changed {
		t.Fatalf("a member again: %+v", r)
	}
}
