package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/rtproto"
)

// countingConn is a hub.Transport that only counts frames, so the benchmark
// measures the hub and its log, not a network.
type countingConn struct{ frames atomic.Int64 }

func (c *countingConn) Write(f [][]byte) error { c.frames.Add(int64(len(f))); return nil }
func (c *countingConn) Close() error           { return nil }

// BenchmarkFanOut compares fan-out through the Redis log with the in-memory
// log: 1,000 subscribers of one channel on one node, 200-byte events
// published by 16 concurrent publishers (PHP workers on several nodes). The
// time runs until every subscriber has been handed every event. Compare
// the events/s of the two: go test -run '^$' -bench FanOut ./module/redis/
func BenchmarkFanOut(b *testing.B) {
	const subscribers = 1000
	b.Run("log=memory", func(b *testing.B) {
		benchFanOut(b, hub.NewMemoryLog(1000, time.Hour), subscribers)
	})
	b.Run("log=redis", func(b *testing.B) {
		needRedis(b)
		l := newTestLog(b, testAddr(), uniquePrefix(b, testAddr()), 1000, time.Hour)
		benchFanOut(b, l, subscribers)
	})
}

func benchFanOut(b *testing.B, log hub.Log, n int) {
	h := hub.New("bench", log)
	if err := h.Start(); err != nil {
		b.Fatal(err)
	}
	defer h.Close(hub.DisconnectShutdown, 0, 0)
	p := &hub.Policy{SendQueue: 1 << 20, MaxSubscriptions: 10}
	conns := make([]*countingConn, n)
	for i := range conns {
		conns[i] = &countingConn{}
		if _, err := h.Connect(conns[i], p, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"bench"}}); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, "welcomes", 10*time.Second, func() bool {
		for _, c := range conns {
			if c.frames.Load() < 2 {
				return false
			}
		}
		return true
	})
	payload := json.RawMessage(`{"title":"` + fmt.Sprintf("%0180d", 0) + `"}`)
	base := make([]int64, n)
	for i, c := range conns {
		base[i] = c.frames.Load()
	}
	const publishers = 16
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(int64(b.N))
	for w := 0; w < publishers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub := []*hub.Publication{{Channels: []string{"bench"}, Type: "bench", Payload: payload}}
			for left.Add(-1) >= 0 {
				if _, err := h.Publish(context.Background(), pub); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	want := int64(b.N)
	waitFor(b, "deliveries", time.Minute, func() bool {
		for i, c := range conns {
			if c.frames.Load()-base[i] < want {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(b.N)*float64(n)/elapsed.Seconds(), "deliveries/s")
}
