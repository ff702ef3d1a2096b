package redis

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/test/testenv"
)

// startPrimaryReplica starts a primary and a replica of it, in sync.
func startPrimaryReplica(t testing.TB) (primary, replica *testenv.RedisServer) {
	t.Helper()
	primary = testenv.StartRedisServerWith(t, 0, "--repl-diskless-sync-delay", "0")
	replica = testenv.StartRedisServerWith(t, 0, "--replicaof", "127.0.0.1", fmt.Sprint(primary.Port))
	waitOnline(t, primary)
	return primary, replica
}

// waitOnline waits until the primary counts a replica online (WAIT counts
// only those).
func waitOnline(t testing.TB, primary *testenv.RedisServer) {
	t.Helper()
	waitFor(t, "a replica online and caught up", 10*time.Second, func() bool {
		info, _ := testenv.RedisBulk(primary.Addr(), "INFO", "replication")
		var off string
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
				off = v
			}
		}
		return strings.Contains(info, "state=online") && off != "" && strings.Contains(info, "offset="+off+",")
	})
}

// min_replicas_acked=1: an append is answered once the replica has it; with
// no replica it is answered with an error after min_replicas_timeout (it
// is in Redis all the same), and a retry with its id, once the replica is
// back, answers duplicate and delivers nothing twice.
func TestMinReplicasAcked(t *testing.T) {
	primary, replica := startPrimaryReplica(t)
	const prefix = "wait:"
	l, r, err := startLog(t, fmt.Sprintf("redis://%s/0?prefix=%s&min_replicas_acked=1&min_replicas_timeout=1s", primary.Addr(), prefix))
	if err != nil {
		t.Fatal(err)
	}
	appendOne(t, l, pub("c", "confirmed", "w-1"))
	if n, _ := testenv.RedisCommand(replica.Addr(), "XLEN", prefix+"{test}:stream"); n != ":1" {
		t.Fatalf("the replica has %s entries when the append is answered, want 1", n)
	}

	// The replica goes away: WAIT times out.
	replica.Kill()
	start := time.Now()
	_, err = l.Append(context.Background(), []*hub.Publication{pub("c", "unconfirmed", "w-2")})
	if !errors.Is(err, errUnconfirmed) {
		t.Fatalf("append without a replica: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the unconfirmed append took %v", d)
	}
	_ = testenv.StartRedisServerWith(t, replica.Port, "--replicaof", "127.0.0.1", fmt.Sprint(primary.Port))
	waitOnline(t, primary)
	again := appendOne(t, l, pub("c", "unconfirmed", "w-2"))
	if !again.Duplicate {
		t.Fatalf("the retry of an applied, unconfirmed append: %+v", again)
	}
	waitFor(t, "delivery", 5*time.Second, func() bool { return r.count() == 2 })
	time.Sleep(100 * time.Millisecond)
	if got := types(r.events); strings.Join(got, ",") != "confirmed,unconfirmed" {
		t.Fatalf("delivered %v", got)
	}
}

// BenchmarkAppendLatency measures what min_replicas_acked costs a publish:
// the latency of one append (one publisher, so no grouping) to a primary
// with one replica on loopback, without and with WAIT 1.
//
//	go test -run '^$' -bench AppendLatency ./module/redis/
func BenchmarkAppendLatency(b *testing.B) {
	primary, _ := startPrimaryReplica(b)
	for _, acked := range []int{0, 1} {
		for _, publishers := range []int{1, 16} {
			b.Run(fmt.Sprintf("min_replicas_acked=%d/publishers=%d", acked, publishers), func(b *testing.B) {
				l, _, err := startLog(b, fmt.Sprintf("redis://%s/0?prefix=bench%d%d:&min_replicas_acked=%d", primary.Addr(), acked, publishers, acked))
				if err != nil {
					b.Fatal(err)
				}
				var mu sync.Mutex
				var lat []time.Duration
				var left atomic.Int64
				left.Store(int64(b.N))
				b.ResetTimer()
				var wg sync.WaitGroup
				for range publishers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var mine []time.Duration
						for left.Add(-1) >= 0 {
							start := time.Now()
							if _, err := l.Append(context.Background(), []*hub.Publication{pub("c", "bench", "")}); err != nil {
								b.Error(err)
								return
							}
							mine = append(mine, time.Since(start))
						}
						mu.Lock()
						lat = append(lat, mine...)
						mu.Unlock()
					}()
				}
				wg.Wait()
				b.StopTimer()
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				if len(lat) > 0 {
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
					b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				}
			})
		}
	}
}
