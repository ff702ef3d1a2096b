package redis_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Presence with two real Caddy nodes and a real Redis: 200 tabs of 100
// users (50 with a tab on each node, 50 with two tabs on one node) come
// and go in random order; after each step every open tab's view of the
// members equals the truth, and each user's transitions are announced
// exactly once, cluster-wide: in the webhooks and in the member frames of
// two observers. A tab reload within the leave delay announces nothing.
// Then one node is SIGKILLed: the members only it held are removed, once,
// within presence_ttl plus the leave delay.
func TestPresenceTwoNodes(t *testing.T) {
	needRedis(t)
	const (
		ttl   = 3 * time.Second
		leave = time.Second
		ch    = "presence-room"
		users = 100
		steps = 40
	)
	hooks := newHookReceiver(t)
	redisURL := fmt.Sprintf("redis://%s/0?prefix=%s", redisAddr(), uniquePrefix(t, redisAddr()))
	nodes := []*node{
		startPresenceNode(t, "A", redisURL, hooks.url(), ttl, leave),
		startPresenceNode(t, "B", redisURL, hooks.url(), ttl, leave),
	}
	// home[u][i] is the node of user u's tab i.
	home := make([][2]*node, users)
	for u := range home {
		first := nodes[u%2]
		second := nodes[(u+1)%2] // users 0..49: a tab on each node
		if u >= users/2 {
			second = first
		}
		home[u] = [2]*node{first, second}
	}
	name := func(u int) string { return "u" + strconv.Itoa(u) }
	open := make([][2]*tab, users)
	expected := map[string]string{} // each user's transitions: "+" added, "-" removed
	present := func(u int) bool { return open[u][0] != nil || open[u][1] != nil }
	truth := func() (string, []*tab) {
		set := map[string]bool{}
		var tabs []*tab
		for u := range open {
			for _, tb := range open[u] {
				if tb != nil {
					set[name(u)] = true
					tabs = append(tabs, tb)
				}
			}
		}
		return joinSorted(set), tabs
	}

	// Two observers, users 0 (node A) and 1 (node B), whose first tabs stay.
	open[0][0] = openTab(t, home[0][0], name(0), ch)
	open[1][0] = openTab(t, home[1][0], name(1), ch)
	expected[name(0)], expected[name(1)] = "+", "+"
	observers := []*tab{open[0][0], open[1][0]}
	want, tabs := truth()
	waitTabs(t, "observers", want, 10*time.Second, tabs)
	// seen counts the member events an observer got of each user.
	type seen map[string]int
	count := func(obs *tab) seen {
		obs.view.update(obs.c)
		out := seen{}
		for u := range expected {
			out[u] = obs.view.added[u] + obs.view.removed[u]
		}
		return out
	}
	// checkObserver checks that obs got one member event per transition
	// since base (its counts when the transitions were since).
	checkObserver := func(what string, obs *tab, base seen, since map[string]string) {
		t.Helper()
		now := count(obs)
		for u, seq := range expected {
			if got, want := now[u]-base[u], len(seq)-len(since[u]); got != want && u != obs.user {
				t.Fatalf("%s: observer %s saw %d member events of %s, want %d (%s after %s)", what, obs.user, got, u, want, seq, since[u])
			}
		}
	}
	copyOf := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	before := copyOf(expected)
	bases := []seen{count(observers[0]), count(observers[1])}

	r := rand.New(rand.NewPCG(12, 34))
	started := time.Now()
	for step := 1; step <= steps; step++ {
		// Each step touches a user at most once, so that its transitions
		// are known: a tab of each of up to 12 users opens or closes.
		var closing []*tab
		for _, u := range r.Perm(users)[:1+r.IntN(12)] {
			i := r.IntN(2)
			if u < 2 {
				i = 1 // the observers' first tabs stay
			}
			was := present(u)
			if tb := open[u][i]; tb != nil {
				closing = append(closing, tb)
				open[u][i] = nil
			} else {
				open[u][i] = openTab(t, home[u][i], name(u), ch)
			}
			switch is := present(u); {
			case !was && is:
				expected[name(u)] += "+"
			case was && !is:
				expected[name(u)] += "-"
			}
		}
		var wg sync.WaitGroup
		for _, tb := range closing {
			wg.Add(1)
			go func() { defer wg.Done(); tb.c.Close() }()
		}
		wg.Wait()
		want, tabs := truth()
		waitTabs(t, fmt.Sprintf("step %d", step), want, 20*time.Second, tabs)
	}
	_, tabs = truth()
	t.Logf("%d steps in %v; %d tabs open", steps, time.Since(started).Round(time.Millisecond), len(tabs))
	checkHooks := func(what string) {
		t.Helper()
		// A killed sender's lease (15 s) runs out before the other node
		// sends.
		deadline := time.Now().Add(30 * time.Second)
		for sameHistories(hooks.byUser(ch), expected) != "" && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if d := sameHistories(hooks.byUser(ch), expected); d != "" {
			t.Fatalf("%s: webhooks differ from the transitions: %s", what, d)
		}
		if p := hooks.problems(); len(p) > 0 {
			t.Fatalf("%s: receiver: %v", what, p)
		}
	}
	checkHooks("churn")
	for i, obs := range observers {
		checkObserver("churn", obs, bases[i], before)
	}

	// Tabs opened in the subtests are the whole test's: they stay open
	// after a subtest ends.
	top := t
	t.Run("a reload within the leave delay says nothing", func(t *testing.T) {
		// A user with one tab reloads it on the same node, another moves
		// to the other node.
		var moved []int
		for u := users / 2; u < users && len(moved) < 2; u++ {
			if open[u][0] == nil {
				if !present(u) {
					expected[name(u)] += "+"
				}
				open[u][0] = openTab(top, home[u][0], name(u), ch)
			}
			if open[u][1] != nil {
				open[u][1].c.Close()
				open[u][1] = nil
			}
			moved = append(moved, u)
		}
		want, tabs := truth()
		waitTabs(t, "before the reloads", want, 10*time.Second, tabs)
		checkHooks("before the reloads")
		mark := copyOf(expected)
		marks := []seen{count(observers[0]), count(observers[1])}
		for k, u := range moved {
			target := home[u][0]
			if k == 1 {
				target = nodes[0]
				if home[u][0] == nodes[0] {
					target = nodes[1]
				}
			}
			open[u][0].c.Close()
			open[u][0] = openTab(top, target, name(u), ch)
		}
		time.Sleep(2*leave + time.Second)
		want, tabs = truth()
		waitTabs(t, "after the reloads", want, 10*time.Second, tabs)
		for i, obs := range observers {
			checkObserver("after the reloads", obs, marks[i], mark)
		}
		if d := sameHistories(hooks.byUser(ch), mark); d != "" {
			t.Fatalf("webhooks on a reload: %s", d)
		}
	})

	t.Run("SIGKILL of a node", func(t *testing.T) {
		dead := nodes[1]
		since := copyOf(expected)
		base := count(observers[0])
		var survivors []*tab
		for u := range open {
			was := present(u)
			for i, tb := range open[u] {
				if tb == nil {
					continue
				}
				if tb.node == dead {
					open[u][i] = nil
				} else {
					survivors = append(survivors, tb)
				}
			}
			if was && !present(u) {
				expected[name(u)] += "-"
			}
		}
		killed := time.Now()
		if err := dead.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		want, _ := truth()
		waitTabs(t, "after the kill", want, 2*(ttl+leave)+20*time.Second, survivors)
		t.Logf("the killed node's members were removed %v after the kill (presence_ttl %v + leave delay %v = %v)",
			time.Since(killed).Round(10*time.Millisecond), ttl, leave, ttl+leave)
		checkHooks("after the kill")
		checkObserver("after the kill", observers[0], base, since)
	})
}

// Webhooks through a receiver that is down for 60 s: the events of both
// nodes wait in Redis; the node that was sending them is SIGKILLed
// meanwhile, and the other takes over; once the receiver is up it gets
// every event at least once, none lost, each id one event.
func TestPresenceWebhooksSurviveReceiverAndSender(t *testing.T) {
	needRedis(t)
	const (
		ttl   = 3 * time.Second
		leave = 500 * time.Millisecond
		down  = 60 * time.Second
	)
	hooks := newHookReceiver(t)
	prefix := uniquePrefix(t, redisAddr())
	redisURL := fmt.Sprintf("redis://%s/0?prefix=%s", redisAddr(), prefix)
	nodes := []*node{
		startPresenceNode(t, "A", redisURL, hooks.url(), ttl, leave),
		startPresenceNode(t, "B", redisURL, hooks.url(), ttl, leave),
	}
	rc := goredis.NewClient(&goredis.Options{Addr: redisAddr()})
	defer rc.Close()
	ctx := context.Background()

	hooks.setDown(true)
	downAt := time.Now()
	expected := map[string]string{}
	type member struct {
		tab  *tab
		name string
	}
	var live []member
	r := rand.New(rand.NewPCG(5, 6))
	churn := func(round int, on []*node) {
		for i := 0; i < 10; i++ {
			u := fmt.Sprintf("r%d-%d", round, i)
			live = append(live, member{openTab(t, on[i%len(on)], u, "presence-hooks"), u})
			expected[u] = "+"
		}
		for k := 0; k < 4 && len(live) > 0; k++ {
			j := r.IntN(len(live))
			live[j].tab.c.Close()
			expected[live[j].name] += "-"
			live = append(live[:j], live[j+1:]...)
		}
	}
	churn(0, nodes)
	// The node holding the target's lease is the one sending; its name
	// in Redis is host/pid/random.
	leaseHolder := func() *node {
		holder, err := rc.Get(ctx, prefix+"{default}:whlease:hub").Result()
		if err != nil {
			return nil
		}
		parts := strings.Split(holder, "/")
		if len(parts) < 3 {
			return nil
		}
		pid, _ := strconv.Atoi(parts[len(parts)-2])
		for _, n := range nodes {
			if n.Cmd.Process.Pid == pid {
				return n
			}
		}
		return nil
	}
	var sender *node
	waitFor(t, "a sending node", 20*time.Second, func() bool { sender = leaseHolder(); return sender != nil })
	churn(1, nodes)
	survivor := nodes[0]
	if sender == nodes[0] {
		survivor = nodes[1]
	}
	waitFor(t, "retries", 20*time.Second, func() bool {
		hooks.mu.Lock()
		defer hooks.mu.Unlock()
		return hooks.posts >= 2
	})
	// The sender dies with events unsent; its members are reaped.
	if err := sender.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var kept []member
	for _, m := range live {
		if m.tab.node == sender {
			expected[m.name] += "-"
		} else {
			kept = append(kept, m)
		}
	}
	live = kept
	churn(2, []*node{survivor})
	time.Sleep(time.Until(downAt.Add(down)))
	hooks.setDown(false)
	upAt := time.Now()
	deadline := time.Now().Add(90 * time.Second)
	for sameHistories(hooks.byUser("presence-hooks"), expected) != "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if d := sameHistories(hooks.byUser("presence-hooks"), expected); d != "" {
		t.Fatalf("webhooks differ from the transitions: %s", d)
	}
	if p := hooks.problems(); len(p) > 0 {
		t.Fatalf("receiver: %v", p)
	}
	if occ := hooks.occupancy("presence-hooks"); occ != "o" {
		t.Fatalf("occupancy events %q, want one channel_occupied", occ)
	}
	if h := leaseHolder(); h != survivor {
		t.Fatalf("the lease is held by %v, not by the surviving node", h)
	}
	hooks.mu.Lock()
	n, resent, posts := len(hooks.events), hooks.resent, hooks.posts
	hooks.mu.Unlock()
	t.Logf("%d events delivered %v after the receiver came back (%d posts refused while down, %d events sent again)",
		n, time.Since(upAt).Round(10*time.Millisecond), posts, resent)
}
