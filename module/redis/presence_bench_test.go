package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/rtproto"
)

// BenchmarkPresenceChurn: join/leave churn on presence channels, paced
// at 1,000 joins and 1,000 leaves a second: b.N transitions, each a user's
// first connection joining (member_added) or its last leaving
// (member_removed, leave delay 0), over 10 channels that each have 10
// listening members, with member webhooks queued and read as a sender
// reads them. redis-2-nodes runs two nodes (two hubs in this process, each
// over its own log, half the listeners and joins on each) sharing the
// test Redis; memory-1-node the same load on one in-memory hub, for
// comparison. It reports the CPU of the process per transition (both
// nodes: joins, store calls, the change stream's readers, frames to the
// listeners; from getrusage) and, with Redis, Redis's (INFO cpu; shared
// with whatever else runs on the machine).
//
//	go test ./module/redis -run '^$' -bench PresenceChurn -benchtime 10000x
func BenchmarkPresenceChurn(b *testing.B) {
	cfg := hub.PresenceConfig{LeaveDelay: 0, MaxMembers: 100, TTL: 30 * time.Second}
	b.Run("redis-2-nodes", func(b *testing.B) {
		needRedis(b)
		prefix := uniquePrefix(b, testAddr())
		rc := goredis.NewClient(&goredis.Options{Addr: testAddr()})
		defer rc.Close()
		churn(b, rc, newPresenceNode(b, testAddr(), prefix, cfg, memberHooks), newPresenceNode(b, testAddr(), prefix, cfg, memberHooks))
	})
	b.Run("memory-1-node", func(b *testing.B) {
		h := hub.New("test", hub.NewMemoryLog(1000, time.Hour))
		h.SetPresence(cfg)
		h.SetWebhooks(memberHooks)
		if err := h.Start(); err != nil {
			b.Fatal(err)
		}
		defer h.Close(hub.DisconnectShutdown, 0, time.Second)
		churn(b, nil, &pnode{h: h, p: &hub.Policy{SendQueue: 4096}})
	})
}

// churn runs the churn over nodes; rc, when not nil, is the Redis whose
// CPU is measured.
func churn(b *testing.B, rc *goredis.Client, nodes ...*pnode) {
	// The webhooks are read as a sender reads them: batches of up to 100,
	// one at most every 250 ms unless a full one is waiting.
	tap := tapHooksEvery(b, nodes[0].h.Webhooks(), "bench", 250*time.Millisecond)
	const channels, listeners = 10, 10
	for c := 0; c < channels; c++ {
		for i := 0; i < listeners; i++ {
			n := nodes[i%len(nodes)]
			s, err := n.h.Connect(discard{}, n.p, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{}})
			if err != nil {
				b.Fatal(err)
			}
			s.Subscribe([]string{"presence-bench" + strconv.Itoa(c)}, hub.SubscribeOptions{Member: &hub.Member{ID: fmt.Sprintf("listener%d", i)}})
		}
	}
	time.Sleep(time.Second) // the listeners' joins settle

	const interval = 500 * time.Microsecond // 2,000 transitions a second
	type op struct {
		join bool
		n    *pnode
		user string
		ch   string
	}
	ops := make(chan op, 1024)
	var mu sync.Mutex
	open := map[string]*hub.Session{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range ops {
				if o.join {
					s, err := o.n.h.Connect(discard{}, o.n.p, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{}})
					if err != nil {
						b.Error(err)
						continue
					}
					s.Subscribe([]string{o.ch}, hub.SubscribeOptions{Member: &hub.Member{ID: o.user, Info: json.RawMessage(`{"name":"` + o.user + `"}`)}})
					mu.Lock()
					open[o.user] = s
					mu.Unlock()
					continue
				}
				mu.Lock()
				s := open[o.user]
				delete(open, o.user)
				mu.Unlock()
				if s != nil {
					s.Finish()
				}
			}
		}()
	}
	redis0 := redisCPU(b, rc)
	cpu0 := processCPU()
	b.ResetTimer()
	start := time.Now()
	joined := 0
	for i := 0; i < b.N; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		// Joins run ahead of leaves by 200 users: every leave finds its
		// user joined.
		if i%2 == 0 || joined < 200 {
			u := "u" + strconv.Itoa(joined)
			ops <- op{join: true, n: nodes[joined%len(nodes)], user: u, ch: "presence-bench" + strconv.Itoa(joined%channels)}
			joined++
			continue
		}
		ops <- op{user: "u" + strconv.Itoa(i/2-100)}
	}
	close(ops)
	wg.Wait()
	paced := time.Since(start)
	// Wait until the webhooks of every transition are queued and read: the
	// nodes' work for them is done.
	want := b.N + channels*listeners
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		tap.mu.Lock()
		n := len(tap.events)
		tap.mu.Unlock()
		if n >= want {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	rcpu := redisCPU(b, rc) - redis0
	tap.mu.Lock()
	got := len(tap.events)
	tap.mu.Unlock()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "node-cpu-µs/transition")
	if rc != nil {
		b.ReportMetric(float64(rcpu.Microseconds())/float64(b.N), "redis-cpu-µs/transition")
	}
	b.ReportMetric(float64(b.N)/paced.Seconds(), "transitions/s")
	if got < want {
		b.Logf("%d webhooks of %d transitions arrived", got, want)
	}
}

// discard is a transport that takes every frame and keeps none: the
// benchmark measures the nodes, not a client.
type discard struct{}

func (discard) Write([][]byte) error { return nil }
func (discard) TryWrite(msgs [][]byte) (int, error) {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	return n, nil
}
func (discard) Close() error { return nil }

// processCPU is the CPU time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the CPU time the Redis server used so far (0 without one).
func redisCPU(b *testing.B, rc *goredis.Client) time.Duration {
	if rc == nil {
		return 0
	}
	info, err := rc.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			var f float64
			_, _ = fmt.Sscanf(v, "%g", &f)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

var (
	_ hub.Transport = discard{}
	_ hub.TryWriter = discard{}
)
