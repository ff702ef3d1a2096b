package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// clusterLog makes and starts the log of hub name on the cluster, with a
// recorder.
func clusterLog(t *testing.T, cl *testenv.RedisCluster, prefix, name string) (*Log, *recorder) {
	t.Helper()
	addrs := cl.Addrs()
	c, err := ParseURL(fmt.Sprintf("redis-cluster://%s?addr=%s&prefix=%s", addrs[0], addrs[1], prefix))
	if err != nil {
		t.Fatal(err)
	}
	c.Hub, c.Size, c.TTL = name, 10000, time.Hour
	c.Block, c.BackoffMin, c.BackoffMax = 500*time.Millisecond, 20*time.Millisecond, 200*time.Millisecond
	l, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	r := &recorder{}
	if err := l.Start(r.deliver); err != nil {
		t.Fatal(err)
	}
	return l, r
}

// slotOwner returns the slot of key and the node that serves it.
func slotOwner(t *testing.T, cl *testenv.RedisCluster, key string) (int, *testenv.RedisServer) {
	t.Helper()
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: cl.Addrs()})
	defer cc.Close()
	ctx := context.Background()
	slot, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	m, err := cc.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range cl.Nodes {
		if n.Addr() == m.Options().Addr {
			return int(slot), n
		}
	}
	t.Fatalf("no node serves %s", key)
	return 0, nil
}

// nodeID is a cluster node's id.
func nodeID(t *testing.T, n *testenv.RedisServer) string {
	t.Helper()
	id, err := testenv.RedisBulk(n.Addr(), "CLUSTER", "MYID")
	if err != nil || len(id) != 40 {
		t.Fatalf("CLUSTER MYID: %q %v", id, err)
	}
	return id
}

// TestCluster runs the backplane on a 3-primary Redis Cluster: two hubs
// whose keys live on different nodes, delivery from one node to another,
// resume and idempotency as on one server, a plain redis:// URL refused,
// and a resharding of a hub's slot while it is published to, which loses
// nothing and delivers nothing twice.
func TestCluster(t *testing.T) {
	cl := testenv.StartRedisCluster(t, 3)
	const prefix = "rtc:"
	// Two hubs on different nodes.
	names := []string{}
	owners := map[string]*testenv.RedisServer{}
	for i := 0; len(names) < 2 && i < 50; i++ {
		name := fmt.Sprintf("hub%d", i)
		_, owner := slotOwner(t, cl, prefix+"{"+name+"}:stream")
		if len(names) == 1 && owners[names[0]] == owner {
			continue
		}
		names = append(names, name)
		owners[name] = owner
	}
	if len(names) != 2 {
		t.Fatal("no two hubs on different nodes")
	}
	type pair struct {
		a, b   *Log
		ra, rb *recorder
	}
	hubs := map[string]*pair{}
	for _, name := range names {
		p := &pair{}
		p.a, p.ra = clusterLog(t, cl, prefix, name)
		p.b, p.rb = clusterLog(t, cl, prefix, name)
		hubs[name] = p
	}

	t.Run("keys of a hub on its node", func(t *testing.T) {
		for _, name := range names {
			appendOne(t, hubs[name].a, pub("c", "k-"+name, "id-"+name))
			for _, n := range cl.Nodes {
				line, err := testenv.RedisCommand(n.Addr(), "EXISTS", prefix+"{"+name+"}:stream", prefix+"{"+name+"}:meta", prefix+"{"+name+"}:id:id-"+name)
				want := "-MOVED" // not its slot
				if n == owners[name] {
					want = ":3"
				}
				if err != nil || !strings.HasPrefix(line, want) {
					t.Fatalf("hub %s: node %s has %s of its keys, want %s (%v)", name, n.Addr(), line, want, err)
				}
			}
		}
	})

	t.Run("cross-node delivery, idempotency and resume", func(t *testing.T) {
		for _, name := range names {
			p := hubs[name]
			base := p.rb.count()
			first := appendOne(t, p.a, pub("x", "one", "dup-"+name))
			second := appendOne(t, p.b, pub("x", "again", "dup-"+name))
			if first.Duplicate || !second.Duplicate || second.Cursors[0] != first.Cursors[0] {
				t.Fatalf("hub %s: idempotency across nodes: %+v %+v", name, first, second)
			}
			appendOne(t, p.b, pub("x", "two", ""))
			waitFor(t, "delivery on the other node", 5*time.Second, func() bool { return p.ra.count() >= base+2 && p.rb.count() == base+2 })
			head, _ := p.b.Head(context.Background())
			evs, _, ok, err := p.b.Range(context.Background(), first.Cursors[0], head, 10, nil)
			if err != nil || !ok || len(evs) != 1 || evs[0].Type != "two" {
				t.Fatalf("hub %s: resume: %v %v %v", name, types(evs), ok, err)
			}
		}
	})

	t.Run("a plain URL to a cluster node", func(t *testing.T) {
		_, _, err := startLog(t, fmt.Sprintf("redis://%s/0?prefix=%s", cl.Nodes[0].Addr(), prefix))
		if err == nil || !strings.Contains(err.Error(), "redis-cluster://") {
			t.Fatalf("Start: %v, want an error naming redis-cluster://", err)
		}
	})

	t.Run("resharding while publishing", func(t *testing.T) {
		name := names[0]
		p := hubs[name]
		slot, src := slotOwner(t, cl, prefix+"{"+name+"}:stream")
		var dst *testenv.RedisServer
		for _, n := range cl.Nodes {
			if n != src && n != owners[names[1]] {
				dst = n
			}
		}
		// Idempotency keys give the migration something to move.
		for i := 0; i < 100; i++ {
			appendOne(t, p.a, pub("r", "warm", fmt.Sprintf("warm-%d", i)))
		}
		stop := make(chan struct{})
		var mu sync.Mutex
		var acked []string
		retries := 0
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("r-%04d", i)
				for attempt := 0; attempt < 100; attempt++ { // bounded
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					_, err := p.a.Append(ctx, []*hub.Publication{pub("r", id, id)})
					cancel()
					if err == nil {
						mu.Lock()
						acked = append(acked, id)
						mu.Unlock()
						break
					}
					mu.Lock()
					retries++
					mu.Unlock()
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		time.Sleep(200 * time.Millisecond)
		migrateSlot(t, slot, src, dst, cl.Nodes)
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		if _, owner := slotOwner(t, cl, prefix+"{"+name+"}:stream"); owner != dst {
			t.Fatalf("the slot is on %s, want %s", owner.Addr(), dst.Addr())
		}
		appendOne(t, p.b, pub("r", "after", "after"))
		mu.Lock()
		want := append(append([]string(nil), acked...), "after")
		mu.Unlock()
		delivered := func(r *recorder) bool {
			_, evs := r.snapshot()
			return len(evs) > 0 && evs[len(evs)-1].Type == "after"
		}
		waitFor(t, "every acknowledged event on both nodes", 10*time.Second, func() bool { return delivered(p.ra) && delivered(p.rb) })
		for node, r := range map[string]*recorder{"A": p.ra, "B": p.rb} {
			_, evs := r.snapshot()
			var got []string
			seen := map[string]int{}
			for _, e := range evs {
				if e.Channel == "r" && e.Type != "warm" {
					got = append(got, e.Type)
					seen[e.Type]++
				}
			}
			lost, twice := 0, 0
			for _, id := range want {
				if seen[id] == 0 {
					lost++
				}
			}
			for _, n := range seen {
				if n > 1 {
					twice++
				}
			}
			if lost != 0 || twice != 0 || len(got) != len(want) {
				t.Errorf("node %s: %d of %d acknowledged events lost, %d twice, %d delivered", node, lost, len(want), twice, len(got))
			}
		}
		t.Logf("resharding slot %d from %s to %s: %d appends acknowledged, %d attempts answered with an error and retried", slot, src.Addr(), dst.Addr(), len(acked), retries)
		if len(acked) < 20 {
			t.Errorf("only %d appends during the resharding", len(acked))
		}
	})
}

// migrateSlot moves a slot from src to dst as redis-cli --cluster reshard
// does: IMPORTING and MIGRATING, then its keys one at a time (slowly, so
// that appends meet the migration), then the new owner on every node.
func migrateSlot(t *testing.T, slot int, src, dst *testenv.RedisServer, nodes []*testenv.RedisServer) {
	t.Helper()
	ctx := context.Background()
	srcID, dstID := nodeID(t, src), nodeID(t, dst)
	sc := goredis.NewClient(&goredis.Options{Addr: src.Addr()})
	defer sc.Close()
	dc := goredis.NewClient(&goredis.Options{Addr: dst.Addr()})
	defer dc.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(dc.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	must(sc.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	moved := 0
	for round := 0; round < 10000; round++ { // bounded
		keys, err := sc.ClusterGetKeysInSlot(ctx, slot, 1).Result()
		must(err)
		if len(keys) == 0 {
			break
		}
		err = sc.Migrate(ctx, "127.0.0.1", fmt.Sprint(dst.Port), keys[0], 0, 5*time.Second).Err()
		if err != nil && !errors.Is(err, goredis.Nil) && !strings.Contains(err.Error(), "NOKEY") {
			must(err)
		}
		moved++
		time.Sleep(2 * time.Millisecond)
	}
	for _, n := range []*testenv.RedisServer{dst, src} {
		line, err := testenv.RedisCommand(n.Addr(), "CLUSTER", "SETSLOT", fmt.Sprint(slot), "NODE", dstID)
		if err != nil || line != "+OK" {
			t.Fatalf("SETSLOT NODE on %s: %q %v", n.Addr(), line, err)
		}
	}
	for _, n := range nodes {
		_, _ = testenv.RedisCommand(n.Addr(), "CLUSTER", "SETSLOT", fmt.Sprint(slot), "NODE", dstID)
	}
	t.Logf("migrated %d keys of slot %d", moved, slot)
}
