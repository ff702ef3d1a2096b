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
func TestSentinelFailover(t *testing.T) { sentinelFailover(t, false) }

// TestSentinelFailoverLosesEvents is TestSentinelFailover with a replica
// that stopped receiving a moment before the primary died (the primary
// refuses its resync), so that the new primary lacks events the old one
// answered 200 and the nodes delivered: the nodes find it and close every
// client (1012), which resumes from its cursor, with recovered:false
// unless it had everything; none gets an event twice (the retries of
// publishes cut off by the kill included).
func TestSentinelFailoverLosesEvents(t *testing.T) { sentinelFailover(t, true) }

func sentinelFailover(t *testing.T, lose bool) {
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
	var cutAt int
	if lose {
		pc := goredis.NewClient(&goredis.Options{Addr: primary.Addr(), MaxRetries: -1})
		if err := pc.Do(ctx, "ACL", "SETUSER", "default", "-psync", "-sync").Err(); err != nil {
			t.Fatal(err)
		}
		if err := pc.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
			t.Fatal(err)
		}
		pc.Close()
		cutAt = pl.count()
		waitFor(t, "publishes the replica does not get", 10*time.Second, func() bool { return pl.count() >= cutAt+10 })
	}
	killedAt := time.Now()
	primary.Kill() // SIGKILL to its own PID, mid-stream
	waitFor(t, "the promotion of the replica", 30*time.Second, func() bool { return masterOf() == replica.Addr() })
	promoted := time.Since(killedAt)
	before := pl.count()
	waitFor(t, "publishes accepted on the new primary", 30*time.Second, func() bool { return pl.count() >= before+50 })
	close(stopPubs)
	pubsWG.Wait()

	// Last events after everything, published until every subscriber has
	// one (a node that resyncs its clients after a loss delivers what
	// comes before their reconnection to nobody): then it has all it will
	// get.
	deadline := time.Now().Add(20 * time.Second)
	for k := 0; !allHave(subs, "end-"); k++ {
		if time.Now().After(deadline) {
			for i, s := range subs {
				s.mu.Lock()
				t.Logf("subscriber %d: %d events, last %v, %d reconnections, %d recovered:false, connection: %v",
					i, len(s.order), s.order[max(len(s.order)-3, 0):], s.reconnect, s.notRecov, s.cur.Err())
				s.mu.Unlock()
			}
			t.Fatal("the last events did not reach every subscriber")
		}
		id := fmt.Sprintf("end-%03d", k)
		if a := nodes[k%2].publish("live", "f", id); a.status == 200 {
			pl.mu.Lock()
			pl.accepted[id] = true
			pl.mu.Unlock()
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stopSubs)
	subsWG.Wait()

	// What the new primary lacks of what the old one answered 200.
	rc := goredis.NewClient(&goredis.Options{Addr: replica.Addr(), MaxRetries: -1})
	defer rc.Close()
	entries, err := rc.XRange(ctx, "failover:{live}:stream", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	inRedis := map[string]bool{}
	for _, e := range entries {
		if id, _ := e.Values["i"].(string); id != "" {
			inRedis[id] = true
		}
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	missing := 0
	for id := range pl.accepted {
		if !inRedis[id] {
			missing++
		}
	}
	t.Logf("the new primary lacks %d of the %d events answered 200", missing, len(pl.accepted))
	if lose && missing == 0 {
		t.Error("the replica had every event: the test proves nothing")
	}
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
		if missing > 0 && s.reconnect == 0 {
			// Its node closed it (1012) so that it resumes from its
			// cursor: recovered:false unless it had everything.
			t.Errorf("subscriber %d: Redis lost %d acknowledged events and its node did not resync it", i, missing)
		}
	}
}

// allHave reports whether every subscriber got an event whose id starts
// with prefix.
func allHave(subs []*subscriber, prefix string) bool {
	for _, s := range subs {
		s.mu.Lock()
		found := false
		for id := range s.seen {
			if strings.HasPrefix(id, prefix) {
				found = true
				break
			}
		}
		s.mu.Unlock()
		if !found {
			return false
		}
	}
	return true
}
