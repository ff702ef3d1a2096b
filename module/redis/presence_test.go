package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// presenceCfg is the presence settings of these tests: short leave delay
// and TTL, so that they run in seconds.
func presenceCfg(leave, ttl time.Duration) hub.PresenceConfig {
	return hub.PresenceConfig{LeaveDelay: leave, MaxMembers: 100, TTL: ttl}
}

const memberHooks = hub.WebhookMemberAdded | hub.WebhookMemberRemoved

// Two nodes on one Redis: a user is one member wherever its connections
// are; exactly one member_added when its first connection anywhere joins,
// one member_removed when its last is gone for the leave delay, on every
// node and in the webhook queue; a reload within the delay says nothing.
func TestPresenceAcrossNodes(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	cfg := presenceCfg(300*time.Millisecond, 5*time.Second)
	a := newPresenceNode(t, testAddr(), prefix, cfg, memberHooks)
	b := newPresenceNode(t, testAddr(), prefix, cfg, memberHooks)
	hooks := tapHooks(t, a.l.Webhooks(), "t")
	const ch = "presence-room"

	anaA, ana := a.join(t, "ana", ch)
	waitViews(t, ch, "ana", 5*time.Second, ana)
	_, bob := b.join(t, "bob", ch)
	waitViews(t, ch, "ana,bob", 5*time.Second, ana, bob)
	// Ana's second tab, on the other node: no news.
	anaB, ana2 := b.join(t, "ana", ch)
	waitViews(t, ch, "ana,bob", 5*time.Second, ana2)
	// Ana's first tab reloads on its node within the delay: no news.
	anaA.Finish()
	anaA, ana3 := a.join(t, "ana", ch)
	waitViews(t, ch, "ana,bob", 5*time.Second, ana3)
	time.Sleep(2 * cfg.LeaveDelay)
	// Ana's tab on B goes: she still has one on A.
	anaB.Finish()
	time.Sleep(2 * cfg.LeaveDelay)
	waitViews(t, ch, "ana,bob", 5*time.Second, ana3, bob)
	for i, c := range []*fakeConn{bob, ana3} {
		if v, _ := buildPView(c, ch); v.added["ana"]+v.removed["ana"] != 0 {
			t.Fatalf("client %d saw ana come or go: %+v", i, v)
		}
	}
	// Ana's last tab goes: one member_removed, everywhere.
	anaA.Finish()
	waitViews(t, ch, "bob", 5*time.Second, bob)
	if got := presenceOf(t, a, ch) + "|" + presenceOf(t, b, ch); got != "bob|bob" {
		t.Fatalf("queries: %s", got)
	}
	hooks.wait(t, "three member webhooks", 5*time.Second, func(h *hookTap) bool { return len(h.names(ch)) >= 3 })
	time.Sleep(200 * time.Millisecond)
	if got, want := hooks.names(ch), []string{"member_added:ana", "member_added:bob", "member_removed:ana"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("webhooks %v, want %v", got, want)
	}
	if v, _ := buildPView(bob, ch); v.added["ana"] != 0 || v.removed["ana"] != 1 {
		t.Fatalf("bob's view: %+v", v)
	}
}

// Random churn over two nodes, from several goroutines at once: tabs of
// 20 users open and close on either node. Every view stays sensible (no
// double add, no removal of a non-member), and once it settles every
// open tab sees exactly the users with a tab open; each user's webhooks
// alternate added, removed, ..., ending as the user is, and an observer
// on each node saw exactly as many member events per user as the queue
// holds: one per transition, cluster-wide.
func TestPresenceChurn(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	cfg := presenceCfg(50*time.Millisecond, 5*time.Second)
	nodes := []*pnode{
		newPresenceNode(t, testAddr(), prefix, cfg, memberHooks),
		newPresenceNode(t, testAddr(), prefix, cfg, memberHooks),
	}
	hooks := tapHooks(t, nodes[0].l.Webhooks(), "t")
	const ch = "presence-churn"
	_, obsA := nodes[0].join(t, "obs-a", ch)
	_, obsB := nodes[1].join(t, "obs-b", ch)
	waitViews(t, ch, "obs-a,obs-b", 5*time.Second, obsA, obsB)

	type tab struct {
		s    *hub.Session
		c    *fakeConn
		user string
	}
	var mu sync.Mutex
	var open []*tab
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func(seed uint64) {
			defer func() { done <- struct{}{} }()
			r := rand.New(rand.NewPCG(seed, 7))
			for i := 0; i < 100; i++ {
				mu.Lock()
				if len(open) > 0 && r.IntN(2) == 0 {
					k := r.IntN(len(open))
					tb := open[k]
					open = append(open[:k], open[k+1:]...)
					mu.Unlock()
					tb.s.Finish()
				} else {
					mu.Unlock()
					user := fmt.Sprintf("u%d", r.IntN(20))
					s, c := nodes[r.IntN(2)].join(t, user, ch)
					mu.Lock()
					open = append(open, &tab{s, c, user})
					mu.Unlock()
				}
				time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
			}
		}(uint64(w))
	}
	for w := 0; w < 4; w++ {
		<-done
	}
	present := map[string]bool{"obs-a": true, "obs-b": true}
	conns := []*fakeConn{obsA, obsB}
	for _, tb := range open {
		present[tb.user] = true
		conns = append(conns, tb.c)
	}
	var want []string
	for u := range present {
		want = append(want, u)
	}
	sort.Strings(want)
	waitViews(t, ch, strings.Join(want, ","), 10*time.Second, conns...)
	for _, n := range nodes {
		if got := presenceOf(t, n, ch); got != strings.Join(want, ",") {
			t.Fatalf("query: %s, want %s", got, strings.Join(want, ","))
		}
	}
	hooks.wait(t, "the webhooks to end as the users are", 10*time.Second, func(h *hookTap) bool {
		for u, seq := range h.byUser(ch) {
			if strings.HasSuffix(seq, "+") != present[u] {
				return false
			}
		}
		return true
	})
	byUser := hooks.byUser(ch)
	transitions := 0
	for u, seq := range byUser {
		if strings.Contains(seq, "++") || strings.Contains(seq, "--") || !strings.HasPrefix(seq, "+") {
			t.Errorf("%s: webhooks %s", u, seq)
		}
		transitions += len(seq)
		if strings.HasPrefix(u, "obs-") {
			continue
		}
		for i, obs := range []*fakeConn{obsA, obsB} {
			v, _ := buildPView(obs, ch)
			if got := strings.Repeat("x", v.added[u]+v.removed[u]); len(got) != len(seq) {
				t.Errorf("observer %d saw %d+%d member events of %s, the queue has %s", i, v.added[u], v.removed[u], u, seq)
			}
		}
	}
	t.Logf("%d transitions, %d tabs open at the end", transitions, len(open))
}

// A node cut off from Redis decides presence alone (a user joining there
// is seen by its clients at once); the other node takes it for dead after
// presence_ttl and removes, once, the members only it held; when the link
// is back it registers what it holds again: those members are added back,
// the newcomer too, and every view agrees again.
func TestPresenceDeadNodeAndOutage(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	cfg := presenceCfg(200*time.Millisecond, 1500*time.Millisecond)
	px := newProxy(t, testAddr())
	a := newPresenceNode(t, testAddr(), prefix, cfg, memberHooks)
	b := newPresenceNode(t, px.addr(), prefix, cfg, memberHooks)
	hooks := tapHooks(t, a.l.Webhooks(), "t")
	const ch = "presence-outage"
	_, a1 := a.join(t, "both", ch)
	_, a2 := a.join(t, "onlyA", ch)
	_, b1 := b.join(t, "both", ch)
	_, b2 := b.join(t, "onlyB", ch)
	waitViews(t, ch, "both,onlyA,onlyB", 5*time.Second, a1, a2, b1, b2)

	px.setCut(true)
	cutAt := time.Now()
	_, b3 := b.join(t, "late", ch)
	waitViews(t, ch, "both,late,onlyA,onlyB", 5*time.Second, b1, b2, b3)
	waitViews(t, ch, "both,onlyA", 2*cfg.TTL+5*time.Second, a1, a2)
	t.Logf("onlyB removed on A %v after the cut (presence_ttl %v, leave delay %v)", time.Since(cutAt).Round(10*time.Millisecond), cfg.TTL, cfg.LeaveDelay)
	if got := presenceOf(t, a, ch); got != "both,onlyA" {
		t.Fatalf("query on A: %s", got)
	}
	if _, err := b.h.Presence(context.Background(), ch); err == nil {
		t.Fatal("a query on the cut-off node answered as if it knew the whole hub")
	}

	px.setCut(false)
	waitViews(t, ch, "both,late,onlyA,onlyB", 10*time.Second, a1, a2, b1, b2, b3)
	if got := presenceOf(t, b, ch); got != "both,late,onlyA,onlyB" {
		t.Fatalf("query on B: %s", got)
	}
	want := map[string]string{"both": "+", "onlyA": "+", "onlyB": "+-+", "late": "+"}
	hooks.wait(t, "the webhooks", 5*time.Second, func(h *hookTap) bool { return reflect.DeepEqual(h.byUser(ch), want) })
	time.Sleep(300 * time.Millisecond)
	if got := hooks.byUser(ch); !reflect.DeepEqual(got, want) {
		t.Fatalf("webhooks %v, want %v", got, want)
	}
	for i, c := range []*fakeConn{a1, a2} {
		if v, _ := buildPView(c, ch); v.removed["onlyB"] != 1 || v.removed["both"] != 0 {
			t.Fatalf("A's client %d: %+v", i, v)
		}
	}
}

// Redis loses the hub's keys (a restart without persistence, FLUSHALL):
// the nodes find the presence epoch gone, register what they hold again,
// and their clients get new snapshots that list everybody.
func TestPresenceRedisLostData(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	cfg := presenceCfg(100*time.Millisecond, 3*time.Second)
	a := newPresenceNode(t, testAddr(), prefix, cfg, memberHooks)
	b := newPresenceNode(t, testAddr(), prefix, cfg, memberHooks)
	const ch = "presence-lost"
	_, c1 := a.join(t, "u1", ch)
	_, c2 := b.join(t, "u2", ch)
	_, c3 := b.join(t, "u1", ch)
	waitViews(t, ch, "u1,u2", 5*time.Second, c1, c2, c3)
	deleteKeys(testAddr(), prefix)
	// A join after the loss is decided in the new epoch.
	_, c4 := a.join(t, "u3", ch)
	waitViews(t, ch, "u1,u2,u3", 10*time.Second, c1, c2, c3, c4)
	for _, n := range []*pnode{a, b} {
		waitFor(t, "the query to list everybody", 5*time.Second, func() bool { return presenceOf(t, n, ch) == "u1,u2,u3" })
	}
	rc := goredis.NewClient(&goredis.Options{Addr: testAddr()})
	defer rc.Close()
	if n, err := rc.HGet(context.Background(), prefix+"{test}:pn:"+ch, "u1").Int(); err != nil || n != 2 {
		t.Fatalf("u1 is held by %d nodes (%v), want 2", n, err)
	}
}

// A node that stops gracefully says goodbye: its members leave after the
// leave delay, except those whose clients reconnected to another node
// meanwhile, which are never seen leaving.
func TestPresenceGoodbye(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	cfg := presenceCfg(time.Second, 30*time.Second)
	a := newPresenceNode(t, testAddr(), prefix, cfg, memberHooks)
	b := newPresenceNode(t, testAddr(), prefix, cfg, memberHooks)
	hooks := tapHooks(t, a.l.Webhooks(), "t")
	const ch = "presence-bye"
	_, obs := a.join(t, "obs", ch)
	_, c1 := b.join(t, "leaves", ch)
	_, c2 := b.join(t, "moves", ch)
	waitViews(t, ch, "leaves,moves,obs", 5*time.Second, obs, c1, c2)
	stopped := time.Now()
	b.close()
	_, moved := a.join(t, "moves", ch) // the client reconnects to A
	waitViews(t, ch, "moves,obs", 5*time.Second, obs, moved)
	t.Logf("the member of the stopped node left %v after it stopped (leave delay %v)", time.Since(stopped).Round(10*time.Millisecond), cfg.LeaveDelay)
	time.Sleep(cfg.LeaveDelay)
	v, _ := buildPView(obs, ch)
	if v.removed["moves"] != 0 || v.removed["leaves"] != 1 {
		t.Fatalf("observer: %+v", v)
	}
	if got := hooks.byUser(ch); got["moves"] != "+" || got["leaves"] != "+-" {
		t.Fatalf("webhooks %v", got)
	}
}

// JoinOptions.Limit (the Pusher protocol's member limit) is decided with
// the join: of twenty users joining at once through two nodes, exactly
// the limit become members, the others are refused, and a user already
// a member is never refused.
func TestPresenceLimitAcrossNodes(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	cfg := presenceCfg(0, 5*time.Second)
	nodes := []*pnode{
		newPresenceNode(t, testAddr(), prefix, cfg, 0),
		newPresenceNode(t, testAddr(), prefix, cfg, 0),
	}
	const ch, limit = "presence-full", 5
	ctx := context.Background()
	results := make(chan hub.PresenceResult, 20)
	for i := 0; i < 20; i++ {
		go func() {
			r, err := nodes[i%2].l.Presence().Join(ctx, ch, hub.Member{ID: fmt.Sprint("u", i)}, hub.JoinOptions{Limit: limit})
			if err != nil {
				t.Error(err)
			}
			results <- r
		}()
	}
	added, refused := 0, 0
	for i := 0; i < 20; i++ {
		r := <-results
		switch {
		case r.Changed:
			added++
		case r.Refused:
			refused++
		}
	}
	if added != limit || refused != 20-limit {
		t.Fatalf("%d added, %d refused; want %d and %d", added, refused, limit, 20-limit)
	}
	st, err := nodes[0].l.Presence().Snapshot(ctx, ch, -1)
	if err != nil || st.Count != limit || len(st.Members) != limit {
		t.Fatalf("snapshot %+v (%v)", st, err)
	}
	r, err := nodes[1].l.Presence().Join(ctx, ch, st.Members[0], hub.JoinOptions{Limit: limit})
	if err != nil || r.Refused || r.Changed {
		t.Fatalf("a member joining on another node: %+v (%v)", r, err)
	}
}

// Presence on a Redis Cluster: every script of a hub touches one slot, so
// two nodes of a hub agree on its members and its webhooks as on one
// server.
func TestPresenceCluster(t *testing.T) {
	cl := testenv.StartRedisCluster(t, 3)
	const prefix = "rtp:"
	node := func() *pnode {
		c, err := ParseURL(fmt.Sprintf("redis-cluster://%s?addr=%s&prefix=%s", cl.Addrs()[0], cl.Addrs()[1], prefix))
		if err != nil {
			t.Fatal(err)
		}
		c.Hub, c.Size, c.TTL = "test", 1000, time.Hour
		c.Block, c.BackoffMin, c.BackoffMax = 500*time.Millisecond, 20*time.Millisecond, 200*time.Millisecond
		l, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		h := hub.New("test", l)
		h.SetPresence(presenceCfg(100*time.Millisecond, 3*time.Second))
		h.SetWebhooks(memberHooks | hub.WebhookChannelOccupied | hub.WebhookChannelVacated)
		if err := h.Start(); err != nil {
			t.Fatal(err)
		}
		n := &pnode{h: h, l: l, p: &hub.Policy{SendQueue: 1024}}
		t.Cleanup(n.close)
		return n
	}
	a, b := node(), node()
	hooks := tapHooks(t, b.l.Webhooks(), "t")
	const ch = "presence-cluster"
	_, c1 := a.join(t, "u1", ch)
	s2, c2 := b.join(t, "u2", ch)
	_, c3 := b.join(t, "u1", ch)
	waitViews(t, ch, "u1,u2", 5*time.Second, c1, c2, c3)
	s2.Finish()
	waitViews(t, ch, "u1", 5*time.Second, c1, c3)
	if got := presenceOf(t, a, ch); got != "u1" {
		t.Fatalf("query: %s", got)
	}
	want := []string{"channel_occupied", "member_added:u1", "member_added:u2", "member_removed:u2"}
	hooks.wait(t, "the webhooks", 5*time.Second, func(h *hookTap) bool { return len(h.names(ch)) >= len(want) })
	if got := hooks.names(ch); !reflect.DeepEqual(got, want) {
		t.Fatalf("webhooks %v, want %v", got, want)
	}
}

// A failover that promoted a replica without the last presence change (as
// if u2's join never happened): the nodes, which saw it, find Redis behind
// their mark, declare a new epoch, and register what they hold again, so
// that u2 is a member again and every view agrees.
func TestPresenceLossDeclared(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	cfg := presenceCfg(100*time.Millisecond, 5*time.Second)
	a := newPresenceNode(t, testAddr(), prefix, cfg, 0)
	b := newPresenceNode(t, testAddr(), prefix, cfg, 0)
	const ch = "presence-loss"
	_, c1 := a.join(t, "u1", ch)
	waitViews(t, ch, "u1", 5*time.Second, c1)
	_, c2 := b.join(t, "u2", ch)
	waitViews(t, ch, "u1,u2", 5*time.Second, c1, c2)
	waitFor(t, "both readers to have read the join", 5*time.Second, func() bool {
		ma, mb := a.l.pres.known.Load(), b.l.pres.known.Load()
		return ma != nil && mb != nil && ma.n == 2 && mb.n == 2
	})
	ctx := context.Background()
	rc := goredis.NewClient(&goredis.Options{Addr: testAddr()})
	defer rc.Close()
	base := prefix + "{test}:"
	entries, err := rc.XRange(ctx, base+"ps", "-", "+").Result()
	if err != nil || len(entries) != 2 {
		t.Fatalf("change stream: %v %v", entries, err)
	}
	// Roll Redis back to before u2's join, consistently.
	pipe := rc.TxPipeline()
	pipe.HDel(ctx, base+"pm:"+ch, "u2")
	pipe.HDel(ctx, base+"pn:"+ch, "u2")
	pipe.SRem(ctx, base+"nu:"+b.l.Node(), ch+"\nu2")
	pipe.XDel(ctx, base+"ps", entries[1].ID)
	pipe.HSet(ctx, base+"pmeta", "n", 1, "last", entries[0].ID)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	_, c3 := a.join(t, "u3", ch) // a change after the loss, numbered 2 again
	waitViews(t, ch, "u1,u2,u3", 10*time.Second, c1, c2, c3)
	waitFor(t, "u2 registered again", 5*time.Second, func() bool {
		n, _ := rc.HGet(ctx, base+"pn:"+ch, "u2").Int()
		return n == 1
	})
	if got := presenceOf(t, b, ch); got != "u1,u2,u3" {
		t.Fatalf("query: %s", got)
	}
	if lost, _ := rc.HGet(ctx, base+"pmeta", "lost").Result(); lost == "" {
		t.Fatal("no loss declared")
	}
}

// A join or leave waits for a registration under way no longer than its
// own deadline: a Redis that keeps the registration waiting must not hold
// a session's subscribe (or the hub's leave timer) with it.
func TestPresenceCallHonoursDeadlineDuringRegistration(t *testing.T) {
	needRedis(t)
	addr := testAddr()
	n := newPresenceNode(t, addr, uniquePrefix(t, addr), hub.DefaultPresenceConfig(), 0)
	p := n.l.pres
	p.calls.Lock() // a registration that does not finish
	defer p.calls.Unlock()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := p.Join(ctx, "presence-c", hub.Member{ID: "u"}, hub.JoinOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a join went through while a registration held the node's calls")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a join waited for a registration beyond its deadline")
	}
}
