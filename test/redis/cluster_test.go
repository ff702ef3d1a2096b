package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// TestCluster runs two Caddy nodes on a 3-primary Redis Cluster
// (redis-cluster://) with two hubs whose keys live on different nodes:
// cross-node delivery, resume on the other node and idempotency as on one
// server, then a resharding of one hub's slot while both nodes publish to
// it, which loses nothing and delivers nothing twice.
func TestCluster(t *testing.T) {
	cl := testenv.StartRedisCluster(t, 3)
	const prefix = "cl:"
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: cl.Addrs()})
	defer cc.Close()
	ctx := context.Background()
	owner := func(h string) (int, string) {
		key := prefix + "{" + h + "}:stream"
		slot, err := cc.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := cc.ClusterSlots(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range nodes {
			if int64(r.Start) <= slot && slot <= int64(r.End) {
				return int(slot), r.Nodes[0].Addr
			}
		}
		t.Fatalf("no node serves slot %d", slot)
		return 0, ""
	}
	var hubs []string
	owners := map[string]string{}
	for i := 0; len(hubs) < 2 && i < 50; i++ {
		h := fmt.Sprintf("h%d", i)
		_, o := owner(h)
		if len(hubs) == 1 && owners[hubs[0]] == o {
			continue
		}
		hubs = append(hubs, h)
		owners[h] = o
	}
	if len(hubs) != 2 {
		t.Fatal("no two hubs on different nodes")
	}
	addrs := cl.Addrs()
	url := fmt.Sprintf("redis-cluster://%s?addr=%s&addr=%s&prefix=%s", addrs[0], addrs[1], addrs[2], prefix)
	a := startFormNode(t, "A", url, hubs...)
	b := startFormNode(t, "B", url, hubs...)

	t.Run("two hubs, cross-node delivery, resume, idempotency", func(t *testing.T) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		defer func() { close(stop); wg.Wait() }()
		for _, h := range hubs {
			sa, sb := subscribe(t, a, h, "x", stop, &wg), subscribe(t, b, h, "x", stop, &wg)
			first := a.publish(h, "x", h+"-once")
			again := b.publish(h, "x", h+"-once")
			if first.status != 200 || first.duplicate || again.status != 200 || !again.duplicate || again.cursor != first.cursor {
				t.Fatalf("hub %s: idempotency across nodes: %+v %+v", h, first, again)
			}
			if p := b.publish(h, "x", h+"-two"); p.status != 200 {
				t.Fatalf("hub %s: publish %d", h, p.status)
			}
			want := map[string]bool{h + "-once": true, h + "-two": true}
			waitFor(t, "delivery on both nodes", 5*time.Second, func() bool { return sa.has(want) && sb.has(want) })
			for _, s := range []*subscriber{sa, sb} {
				if r := s.tally(want); r.lost+r.twice+r.unknown != 0 || len(s.order) != 2 {
					t.Fatalf("hub %s: got %v", h, s.order)
				}
			}
			// Resume on the other node from the first event's cursor.
			c := dialWS(t, b, h, "x", first.cursor)
			waitFor(t, "replay", 5*time.Second, func() bool { return len(c.Events()) == 1 })
			if ev := c.Events()[0]; ev.ID != h+"-two" || recovered(c) != "true" {
				t.Fatalf("hub %s: resumed with %s, recovered=%s", h, ev.ID, recovered(c))
			}
		}
		for _, h := range hubs {
			line, err := testenv.RedisCommand(owners[h], "EXISTS", prefix+"{"+h+"}:stream")
			if err != nil || line != ":1" {
				t.Fatalf("hub %s: its stream is not on %s: %q %v", h, owners[h], line, err)
			}
		}
	})

	t.Run("a plain URL to a cluster node fails caddy run", func(t *testing.T) {
		err := tryStartFormNode(t, fmt.Sprintf("redis://%s/0?prefix=%s", addrs[0], prefix), hubs...)
		if err == nil || !strings.Contains(err.Error(), "use a redis-cluster://") {
			t.Fatalf("caddy run: want an error naming redis-cluster://, got %v", err)
		}
	})

	t.Run("resharding a hub's slot while publishing", func(t *testing.T) {
		h := hubs[0]
		slot, src := owner(h)
		var dst string
		for _, n := range addrs {
			if n != src && n != owners[hubs[1]] {
				dst = n
			}
		}
		stopSubs := make(chan struct{})
		var subsWG sync.WaitGroup
		subs := []*subscriber{subscribe(t, a, h, "r", stopSubs, &subsWG), subscribe(t, b, h, "r", stopSubs, &subsWG)}
		pl := &publishLog{accepted: map[string]bool{}}
		stopPubs := make(chan struct{})
		var pubsWG sync.WaitGroup
		for _, n := range []*formNode{a, b} {
			pubsWG.Add(1)
			go func() {
				defer pubsWG.Done()
				pl.publishUntil(n, h, "r", n.name, stopPubs)
			}()
		}
		defer func() {
			select {
			case <-stopPubs:
			default:
				close(stopPubs)
			}
			pubsWG.Wait()
			select {
			case <-stopSubs:
			default:
				close(stopSubs)
			}
			subsWG.Wait()
		}()
		waitFor(t, "publishing before the resharding", 10*time.Second, func() bool { return pl.count() >= 100 })
		moved := migrateSlot(t, slot, src, dst, addrs)
		before := pl.count()
		waitFor(t, "publishing after the resharding", 10*time.Second, func() bool { return pl.count() >= before+50 })
		close(stopPubs)
		pubsWG.Wait()
		if _, o := owner(h); o != dst {
			t.Fatalf("the slot is on %s, want %s", o, dst)
		}
		if p := a.publish(h, "r", "end"); p.status != 200 {
			t.Fatalf("the last publish: %d", p.status)
		}
		pl.accepted["end"] = true
		waitFor(t, "the last event on every subscriber", 10*time.Second, func() bool {
			return subs[0].has(map[string]bool{"end": true}) && subs[1].has(map[string]bool{"end": true})
		})
		close(stopSubs)
		subsWG.Wait()
		pl.mu.Lock()
		defer pl.mu.Unlock()
		t.Logf("slot %d moved from %s to %s (%d keys) while publishing: %d accepted, %d answered 503 and retried (%d retries answered duplicate), slowest 503 %v",
			slot, src, dst, moved, len(pl.accepted), pl.refused, pl.duplicate, pl.slowest.Round(time.Millisecond))
		for _, l := range [][]string{pl.badRetry, pl.other, pl.gaveUp} {
			if len(l) > 0 {
				t.Errorf("publish answers: %v", l[:min(len(l), 5)])
			}
		}
		if pl.slowest > 2500*time.Millisecond {
			t.Errorf("a 503 took %v", pl.slowest)
		}
		for i, s := range subs {
			r := s.tally(pl.accepted)
			t.Logf("subscriber on node %s: %d events, %d lost, %d twice, %d recovered:false", "AB"[i:i+1], len(s.order), r.lost, r.twice, s.notRecov)
			if r.lost != 0 || r.twice != 0 || r.unknown != 0 {
				t.Errorf("subscriber %d: %d lost, %d twice, %d never accepted", i, r.lost, r.twice, r.unknown)
			}
		}
	})
}

// migrateSlot moves a slot from the node at src to the node at dst as
// redis-cli --cluster reshard does (IMPORTING, MIGRATING, the keys one by
// one, then the owner on every node) and returns how many keys it moved.
func migrateSlot(t *testing.T, slot int, src, dst string, all []string) int {
	t.Helper()
	ctx := context.Background()
	sc := goredis.NewClient(&goredis.Options{Addr: src})
	defer sc.Close()
	dc := goredis.NewClient(&goredis.Options{Addr: dst})
	defer dc.Close()
	srcID, err := sc.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	dstID, err := dc.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(dst, ":")
	moved := 0
	for range 100000 { // bounded
		keys, err := sc.ClusterGetKeysInSlot(ctx, slot, 1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		if err := sc.Migrate(ctx, host, port, keys[0], 0, 5*time.Second).Err(); err != nil && !strings.Contains(err.Error(), "NOKEY") {
			t.Fatal(err)
		}
		moved++
		time.Sleep(2 * time.Millisecond) // slowly: publishes meet the migration
	}
	for _, n := range append([]string{dst, src}, all...) {
		if line, err := testenv.RedisCommand(n, "CLUSTER", "SETSLOT", fmt.Sprint(slot), "NODE", dstID); err != nil || line != "+OK" {
			t.Fatalf("SETSLOT NODE on %s: %q %v", n, line, err)
		}
	}
	return moved
}
