package redis_test

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// What a publisher sees when Redis stalls for longer than the 2 s append
// bound: every publish made during the stall is answered 503 within about
// 2 s, none of them is delivered later (although their scripts reached
// Redis and ran when it woke), and retrying each with its id publishes it,
// once. Redis is frozen between publishes, with none in flight: an append
// whose script ran just before a stall but whose answer came back more than
// 500 ms late is the window this cannot close (see the README).
func TestStalledRedisPublishAnswered503IsNeverDelivered(t *testing.T) {
	srv := testenv.StartRedisServer(t, 0)
	n := startNode(t, "A", fmt.Sprintf("redis://%s/0?prefix=stall:", srv.Addr()))
	var clients []*rtclient.Client
	for i := 0; i < 2; i++ {
		c := dial(t, n, "s", "")
		c.WaitSubscribed("s")
		clients = append(clients, c)
	}
	var accepted []string
	publish := func(key string) {
		if p := n.publish(t, "s", "t", key, key); p.status != 200 || p.dup {
			t.Fatalf("publish %s: status %d, duplicate %v", key, p.status, p.dup)
		}
		accepted = append(accepted, key)
	}
	for i := 0; i < 5; i++ {
		publish(fmt.Sprintf("before-%d", i))
	}
	waitFor(t, "the first events", 5*time.Second, func() bool { return len(keys(clients[0])) == 5 })

	const stall = 4 * time.Second
	thaw := srv.Freeze()
	thawAt := time.Now().Add(stall)
	var (
		mu      sync.Mutex
		refused []string
		during  []string // answered 200 during the stall (none expected)
		slow    []string
		wg      sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; time.Now().Add(time.Second).Before(thawAt); seq++ {
				key := fmt.Sprintf("stall-%d-%d", w, seq)
				p := n.publish(t, "s", "t", key, key)
				mu.Lock()
				switch p.status {
				case 503:
					refused = append(refused, key)
				case 200:
					during = append(during, key)
				default:
					t.Errorf("publish %s during the stall: status %d", key, p.status)
				}
				if p.duration > 2500*time.Millisecond {
					slow = append(slow, fmt.Sprintf("%s answered after %v", key, p.duration))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	time.Sleep(time.Until(thawAt))
	thaw()
	waitFor(t, "the node to reach Redis again", 10*time.Second, func() bool { return n.hubState(t)["backplane_up"] == true })
	for i := 0; i < 5; i++ {
		publish(fmt.Sprintf("after-%d", i))
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("during a %v stall: %d publishes answered 503, %d answered 200", stall, len(refused), len(during))
	if len(refused) == 0 {
		t.Fatal("no publish was refused during the stall: the test proves nothing")
	}
	if len(slow) > 0 {
		t.Errorf("503 answers later than 2 s: %v", slow)
	}
	accepted = append(accepted, during...)

	// Every script that waited in Redis's socket buffers has run by now;
	// give the node time to read what they appended, if anything.
	waitFor(t, "the events accepted after the stall", 10*time.Second, func() bool { return len(keys(clients[0])) >= len(accepted) })
	time.Sleep(time.Second)
	isRefused := map[string]bool{}
	for _, k := range refused {
		isRefused[k] = true
	}
	for i, c := range clients {
		var late []string
		for _, k := range keys(c) {
			if isRefused[k] {
				late = append(late, k)
			}
		}
		sort.Strings(late)
		if len(late) > 0 {
			t.Errorf("client %d got %d events whose publish was answered 503: %v", i, len(late), late)
		}
		if got := len(keys(c)); got != len(accepted) {
			t.Errorf("client %d: %d events, %d accepted", i, got, len(accepted))
		}
	}

	// Retried with their ids, the refused publishes are published now, each
	// once: none had been published.
	for _, k := range refused {
		p := n.publish(t, "s", "t", k, k)
		if p.status != 200 || p.dup {
			t.Errorf("retry of %s: status %d, duplicate %v; want 200 and a first publish", k, p.status, p.dup)
		}
	}
	total := len(accepted) + len(refused)
	waitFor(t, "the retried events", 10*time.Second, func() bool { return len(keys(clients[0])) >= total })
	for i, c := range clients {
		seen := map[string]int{}
		for _, k := range keys(c) {
			seen[k]++
		}
		for k, times := range seen {
			if times != 1 {
				t.Errorf("client %d got %s %d times", i, k, times)
			}
		}
		if len(seen) != total {
			t.Errorf("client %d: %d distinct events, want %d", i, len(seen), total)
		}
	}
}
