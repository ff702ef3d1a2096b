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

// TestSentinelFailover runs two Caddy nodes on a primary, a replica and
// three sentinels (redis-sentinel://), kills the primary (SIGKILL, by its
// PID) while both nodes publish, and waits for the sentinels to promote
// the replica. Every event answered 200 reaches every subscriber on both
// nodes exactly once, or the subscriber was told recovered:false; publishes
// during the failover are answered 503 with Retry-After: 1 within 2 s and
// succeed when retried with their id.
func TestSentinelFailover(t *testing.T) {
	primary := testenv.StartRedisServerWith(t, 0, "--repl-diskless-sync-delay", "0")
	replica := testenv.StartRedisServerWith(t, 0, "--replicaof", "127.0.0.1", fmt.Sprint(primary.Port))
	waitFor(t, "replication", 10*time.Second, func() bool {
		info, _ := testenv.RedisBulk(replica.Addr(), "INFO", "replication")
		return strings.Contains(info, "master_link_status:up")
	})
	var sentinels []*testenv.RedisSentinel
	for range 3 {
		sentinels = append(sentinels, testenv.StartRedisSentinel(t, testenv.SentinelConfig{
			MasterName: "mymaster", Primary: primary.Addr(), Quorum: 2, DownAfter: time.Second, FailoverTimeout: 5 * time.Second}))
	}
	ctx := context.Background()
	masterOf := func() string {
		sc := goredis.NewSentinelClient(&goredis.Options{Addr: sentinels[0].Addr(), MaxRetries: -1})
		defer sc.Close()
		a, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
		if err != nil || len(a) != 2 {
			return ""
		}
		return a[0] + ":" + a[1]
	}
	// Every sentinel knows the replica and the two other sentinels, so
	// that they can agree on a failover.
	waitFor(t, "sentinels that know each other and the replica", 30*time.Second, func() bool {
		for _, s := range sentinels {
			sc := goredis.NewSentinelClient(&goredis.Options{Addr: s.Addr(), MaxRetries: -1})
			reps, err1 := sc.Replicas(ctx, "mymaster").Result()
			sens, err2 := sc.Sentinels(ctx, "mymaster").Result()
			sc.Close()
			if err1 != nil || err2 != nil || len(reps) != 1 || len(sens) != 2 {
				return false
			}
		}
		return true
	})

	url := fmt.Sprintf("redis-sentinel://%s?addr=%s&addr=%s&master_name=mymaster&prefix=failover:",
		sentinels[0].Addr(), sentinels[1].Addr(), sentinels[2].Addr())
	nodes := []*formNode{startFormNode(t, "A", url, "live"), startFormNode(t, "B", url, "live")}

	stopSubs := make(chan struct{})
	var subsWG sync.WaitGroup
	var subs []*subscriber
	for _, n := range nodes {
		for range 2 {
			subs = append(subs, subscribe(t, n, "live", "f", stopSubs, &subsWG))
		}
	}
	pl := &publishLog{accepted: map[string]bool{}}
	stopPubs := make(chan struct{})
	var pubsWG sync.WaitGroup
	for _, n := range nodes {
		pubsWG.Add(1)
		go func() {
			defer pubsWG.Done()
			pl.publishUntil(n, "live", "f", n.name, stopPubs)
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

	waitFor(t, "publishing before the kill", 10*time.Second, func() bool { return pl.count() >= 50 })
	old := primary.Addr()
	killedAt := time.Now()
	primary.Kill() // SIGKILL to its own PID, mid-stream
	waitFor(t, "the promotion of the replica", 30*time.Second, func() bool { return masterOf() == replica.Addr() })
	promoted := time.Since(killedAt)
	before := pl.count()
	waitFor(t, "publishes accepted on the new primary", 30*time.Second, func() bool { return pl.count() >= before+50 })
	close(stopPubs)
	pubsWG.Wait()

	// A last event after everything: once a subscriber has it, it has all
	// it will get.
	if a := nodes[0].publish("live", "f", "end"); a.status != 200 {
		t.Fatalf("the last publish: %d %v", a.status, a.err)
	}
	pl.accepted["end"] = true
	waitFor(t, "the last event on every subscriber", 20*time.Second, func() bool {
		for _, s := range subs {
			if !s.has(map[string]bool{"end": true}) {
				return false
			}
		}
		return true
	})
	close(stopSubs)
	subsWG.Wait()

	pl.mu.Lock()
	defer pl.mu.Unlock()
	t.Logf("primary %s killed; replica %s promoted after %v; %d publishes accepted (%d retries answered duplicate), %d answered 503 and retried, slowest 503 %v",
		old, replica.Addr(), promoted.Round(time.Millisecond), len(pl.accepted), pl.duplicate, pl.refused, pl.slowest.Round(time.Millisecond))
	if pl.refused == 0 {
		t.Error("no publish was answered 503 during the failover")
	}
	if pl.slowest > 2500*time.Millisecond {
		t.Errorf("a 503 took %v", pl.slowest)
	}
	for _, l := range [][]string{pl.badRetry, pl.other, pl.gaveUp} {
		if len(l) > 0 {
			t.Errorf("publish answers: %v", l[:min(len(l), 5)])
		}
	}
	for i, s := range subs {
		r := s.tally(pl.accepted)
		t.Logf("subscriber %d (node %s): %d events, %d lost (%d without recovered:false), %d twice, %d reconnections, %d recovered:false",
			i, nodes[i/2].name, len(s.order), r.lost, r.lostNotRecovered, r.twice, s.reconnect, s.notRecov)
		if r.lostNotRecovered != 0 || r.twice != 0 || r.unknown != 0 {
			t.Errorf("subscriber %d: %d lost without recovered:false, %d delivered twice, %d never accepted", i, r.lostNotRecovered, r.twice, r.unknown)
		}
	}
}
