// Package redis_test runs two real Caddy processes, built from this
// repository, that share one Redis: cross-node delivery, resume on the other
// node, idempotency across nodes, and Redis killed and restarted empty while
// clients stay connected and both nodes keep publishing.
//
//	go test ./test/redis/            (skips without Redis at 127.0.0.1:6379)
//	REALTIME_TEST_STRICT=1 go test ./test/redis/   (fails instead)
package redis_test

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// TestTwoNodes shares one pair of nodes on the test Redis (own key prefix).
func TestTwoNodes(t *testing.T) {
	needRedis(t)
	url := fmt.Sprintf("redis://%s/0?prefix=%s", redisAddr(), uniquePrefix(t, redisAddr()))
	a := startNode(t, "A", url)
	b := startNode(t, "B", url)

	t.Run("cross-node delivery in one order", func(t *testing.T) {
		ca := dial(t, a, "x", "")
		cb := dial(t, b, "x", "")
		waitFor(t, "subscriptions", 5*time.Second, func() bool {
			return subscribed(ca) && subscribed(cb)
		})
		var want []string
		for i := 0; i < 10; i++ {
			n := a
			if i%2 == 1 {
				n = b
			}
			key := fmt.Sprintf("x%d", i)
			if p := n.publish(t, "x", "t", key, ""); p.status != 200 {
				t.Fatalf("publish %s: %d", key, p.status)
			}
			want = append(want, key)
		}
		waitFor(t, "events on both nodes", 5*time.Second, func() bool { return len(keys(ca)) == 10 && len(keys(cb)) == 10 })
		if !reflect.DeepEqual(keys(ca), want) || !reflect.DeepEqual(keys(cb), want) {
			t.Fatalf("A got %v, B got %v, want %v", keys(ca), keys(cb), want)
		}
	})

	t.Run("resume on the other node", func(t *testing.T) {
		ca := dial(t, a, "r", "")
		waitFor(t, "subscribed", 5*time.Second, func() bool { return subscribed(ca) })
		a.publish(t, "r", "t", "r0", "")
		b.publish(t, "r", "t", "r1", "")
		waitFor(t, "live events", 5*time.Second, func() bool { return len(keys(ca)) == 2 })
		since := lastCursor(ca)
		ca.Drop()
		var missed []string
		for i := 2; i < 7; i++ {
			n := a
			if i%2 == 1 {
				n = b
			}
			key := fmt.Sprintf("r%d", i)
			if p := n.publish(t, "r", "t", key, ""); p.status != 200 {
				t.Fatalf("publish %s: %d", key, p.status)
			}
			a.publish(t, "noise", "t", "noise", "")
			missed = append(missed, key)
		}
		cb := dial(t, b, "r", since)
		waitFor(t, "replay", 5*time.Second, func() bool { return len(keys(cb)) == 5 })
		if rec := recovered(cb); rec != "true" {
			t.Fatalf("subscribed frame: recovered %s, want true", rec)
		}
		a.publish(t, "r", "t", "live", "")
		waitFor(t, "live after replay", 5*time.Second, func() bool { return len(keys(cb)) == 6 })
		time.Sleep(100 * time.Millisecond)
		if got, want := keys(cb), append(missed, "live"); !reflect.DeepEqual(got, want) {
			t.Fatalf("resumed on B: %v, want %v", got, want)
		}
	})

	t.Run("idempotency across nodes", func(t *testing.T) {
		ca := dial(t, a, "i", "")
		cb := dial(t, b, "i", "")
		waitFor(t, "subscriptions", 5*time.Second, func() bool {
			return subscribed(ca) && subscribed(cb)
		})
		first := a.publish(t, "i", "t", "once", "key-1")
		second := b.publish(t, "i", "t", "twice", "key-1")
		third := a.publish(t, "i", "t", "thrice", "key-1")
		if first.status != 200 || first.dup || second.status != 200 || !second.dup || !third.dup {
			t.Fatalf("answers %+v %+v %+v", first, second, third)
		}
		if second.cursor != first.cursor || third.cursor != first.cursor {
			t.Fatalf("duplicate cursors %s %s, want %s", second.cursor, third.cursor, first.cursor)
		}
		b.publish(t, "i", "t", "after", "")
		waitFor(t, "events", 5*time.Second, func() bool { return len(keys(ca)) == 2 && len(keys(cb)) == 2 })
		time.Sleep(100 * time.Millisecond)
		for _, c := range []*rtclient.Client{ca, cb} {
			if got := keys(c); !reflect.DeepEqual(got, []string{"once", "after"}) {
				t.Fatalf("got %v", got)
			}
		}
	})

	t.Run("reload keeps the hub, a new Redis URL replaces it", func(t *testing.T) {
		c := dial(t, b, "rl", "")
		waitFor(t, "subscribed", 5*time.Second, func() bool { return subscribed(c) })
		b.Reload(b.cfg + "\n# same backplane\n")
		a.publish(t, "rl", "t", "kept", "")
		waitFor(t, "delivery after a reload", 5*time.Second, func() bool { return len(keys(c)) == 1 })
		if err := c.Err(); err != nil {
			t.Fatalf("a reload with the same Redis URL closed the client: %v", err)
		}
		since := lastCursor(c)
		b.Reload(strings.Replace(b.cfg, "?prefix=", "?prefix=moved-", 1))
		waitFor(t, "close after the backplane changed", 5*time.Second, func() bool { return c.Err() != nil })
		if e, _ := c.Ended(); e.Code != 1012 {
			t.Fatalf("closed with %v, want 1012", c.Err())
		}
		// The new hub is another stream: the cursor cannot be recovered there.
		r := dial(t, b, "rl", since)
		waitFor(t, "subscribed", 5*time.Second, func() bool { return subscribed(r) })
		if rec := recovered(r); rec != "false" {
			t.Fatalf("resumed on another stream with recovered=%v", rec)
		}
		b.Reload(b.cfg)
	})
}

// TestRedisKilledAndRestarted kills a redis-server of its own (SIGKILL, by
// PID) under two nodes with connected clients while both nodes keep
// publishing, and restarts it empty on the same port. Publishes answered
// 200 reach every client exactly once, in one order; publishes answered 503
// (within 2 s) reach nobody; clients stay connected; the nodes report the
// backplane down, then up; a cursor of the lost data resumes with
// recovered:false.
func TestRedisKilledAndRestarted(t *testing.T) {
	needRedis(t)
	srv := testenv.StartRedisServer(t, 0)
	url := fmt.Sprintf("redis://%s/0?prefix=fault:", srv.Addr())
	nodes := []*node{startNode(t, "A", url), startNode(t, "B", url)}
	var clients []*rtclient.Client
	for _, n := range nodes {
		for i := 0; i < 2; i++ {
			clients = append(clients, dial(t, n, "f", ""))
		}
	}
	waitFor(t, "subscriptions", 5*time.Second, func() bool {
		for _, c := range clients {
			if !subscribed(c) {
				return false
			}
		}
		return true
	})

	// One publisher per node, each publishing every 10 ms until told.
	var mu sync.Mutex
	accepted := map[string]string{} // key -> cursor
	refused := map[string]bool{}
	var order [2][]string // accepted keys per publisher, in publish order
	var slow []string
	pause := make(chan chan struct{})
	resume := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func(i int, n *node) {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				case ack := <-pause:
					close(ack)
					<-resume
				default:
				}
				key := fmt.Sprintf("%s-%04d", n.name, seq)
				p := n.publish(t, "f", "t", key, "")
				mu.Lock()
				switch p.status {
				case 200:
					accepted[key] = p.cursor
					order[i] = append(order[i], key)
				case 503:
					refused[key] = true
					if p.duration > 2500*time.Millisecond {
						slow = append(slow, fmt.Sprintf("%s took %v", key, p.duration))
					}
				default:
					t.Errorf("publish %s: status %d", key, p.status)
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}(i, n)
	}
	pauseAll := func() {
		for range nodes {
			ack := make(chan struct{})
			pause <- ack
			<-ack
		}
	}
	resumeAll := func() {
		for range nodes {
			resume <- struct{}{}
		}
	}
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted), len(refused)
	}
	everyClientHasAll := func() bool {
		n, _ := count()
		for _, c := range clients {
			if len(keys(c)) < n {
				return false
			}
		}
		return true
	}

	time.Sleep(700 * time.Millisecond)
	// Redis is killed between publishes, once the nodes have read what it
	// accepted: an entry accepted in the very moment a Redis without
	// persistence dies can be lost to a node that had not read it yet.
	pauseAll()
	waitFor(t, "delivery before the kill", 5*time.Second, everyClientHasAll)
	mu.Lock()
	var oldCursor string
	for _, c := range accepted {
		oldCursor = c
		break
	}
	mu.Unlock()
	srv.Kill()
	resumeAll()
	waitFor(t, "refused publishes while Redis is down", 10*time.Second, func() bool { _, r := count(); return r >= 10 })
	for _, n := range nodes {
		if up := n.hubState(t)["backplane_up"]; up != false {
			t.Errorf("node %s reports backplane_up=%v while Redis is down", n.name, up)
		}
	}
	srv.Start() // empty: the old data is lost
	before, _ := count()
	waitFor(t, "publishes accepted again", 15*time.Second, func() bool { n, _ := count(); return n >= before+40 })
	close(stop)
	wg.Wait()
	waitFor(t, "every accepted event on every client", 10*time.Second, everyClientHasAll)
	time.Sleep(300 * time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	if len(slow) > 0 {
		t.Errorf("503 answers slower than 2 s: %v", slow)
	}
	first := keys(clients[0])
	for i, c := range clients {
		got := keys(c)
		if !reflect.DeepEqual(got, first) {
			t.Errorf("client %d order differs from client 0:\n%v\n%v", i, got, first)
		}
		seen := map[string]bool{}
		for _, k := range got {
			switch {
			case seen[k]:
				t.Errorf("client %d: %s delivered twice", i, k)
			case refused[k]:
				t.Errorf("client %d: %s was answered 503 but delivered", i, k)
			case accepted[k] == "":
				t.Errorf("client %d: unknown event %s", i, k)
			}
			seen[k] = true
		}
		if len(seen) != len(accepted) {
			t.Errorf("client %d has %d events, %d were accepted", i, len(seen), len(accepted))
		}
		// Each publisher's events in its own order.
		for p := range order {
			var mine []string
			for _, k := range got {
				if k[0] == "AB"[p] {
					mine = append(mine, k)
				}
			}
			if !reflect.DeepEqual(mine, order[p]) {
				t.Errorf("client %d: publisher %d's events out of order", i, p)
			}
		}
		if err := c.Err(); err != nil {
			t.Errorf("client %d disconnected: %v", i, err)
		}
	}
	for _, n := range nodes {
		if up := n.hubState(t)["backplane_up"]; up != true {
			t.Errorf("node %s reports backplane_up=%v after Redis came back", n.name, up)
		}
	}
	t.Logf("%d publishes accepted, %d refused while Redis was down", len(accepted), len(refused))

	// A cursor of the lost data resumes with recovered:false.
	c := dial(t, nodes[1], "f", oldCursor)
	waitFor(t, "subscribed", 5*time.Second, func() bool { return subscribed(c) })
	if rec := recovered(c); rec != "false" {
		t.Errorf("a cursor of the lost epoch resumed with recovered=%v", rec)
	}
}
