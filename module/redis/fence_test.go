package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// The clock estimate keeps the largest proven offset of the last one or two
// windows, and the fence sits fenceMargin before the deadline, in Redis's
// clock (with little time left, fenceMinRun or a quarter of it after now).
func TestRedisClockFence(t *testing.T) {
	var c redisClock
	local := time.Now()
	if c.fence(local, local.Add(2*time.Second)) != 0 {
		t.Fatal("a fence without any sample")
	}
	redis := time.UnixMilli(1_700_000_000_000)
	c.observe(redis, local)
	if got, want := c.fence(local, local.Add(2*time.Second)), redis.Add(1500*time.Millisecond).UnixMilli(); got != want {
		t.Fatalf("fence %d, want %d", got, want)
	}
	if got, want := c.fence(local, local.Add(400*time.Millisecond)), redis.Add(fenceMinRun).UnixMilli(); got != want {
		t.Fatalf("short deadline: fence %d, want %d", got, want)
	}
	if got, want := c.fence(local, local.Add(100*time.Millisecond)), redis.Add(25*time.Millisecond).UnixMilli(); got != want {
		t.Fatalf("very short deadline: fence %d, want %d", got, want)
	}
	if got, want := c.fence(local.Add(time.Second), local.Add(900*time.Millisecond)), redis.Add(time.Second).UnixMilli(); got != want {
		t.Fatalf("deadline passed: fence %d, want %d (now)", got, want)
	}
	// A reply that took 300 ms proves less: the estimate stays.
	c.observe(redis.Add(time.Second), local.Add(1300*time.Millisecond))
	if b := c.best(); b.redis != redis {
		t.Fatalf("a worse sample replaced the best: %v", b.redis)
	}
	// A quicker one proves more.
	c.observe(redis.Add(2*time.Second), local.Add(1990*time.Millisecond))
	if b := c.best(); !b.redis.Equal(redis.Add(2 * time.Second)) {
		t.Fatalf("a better sample was ignored: %v", b.redis)
	}
	// A slow sample in a new window does not replace the previous window's
	// best, until that window is over too.
	slow := local.Add(clockWindow + 2*time.Second)
	c.observe(redis.Add(clockWindow), slow)
	if b := c.best(); !b.redis.Equal(redis.Add(2 * time.Second)) {
		t.Fatalf("the previous window's best was dropped: %v", b.redis)
	}
	c.observe(redis.Add(3*clockWindow), local.Add(3*clockWindow))
	if b := c.best(); !b.redis.Equal(redis.Add(3 * clockWindow)) {
		t.Fatalf("after two windows: %v", b.redis)
	}
	// A step of Redis's clock forward is learnt at once.
	c.observe(redis.Add(3*clockWindow+time.Hour), local.Add(3*clockWindow+time.Second))
	if b := c.best(); !b.redis.Equal(redis.Add(3*clockWindow + time.Hour)) {
		t.Fatalf("forward step not learnt: %v", b.redis)
	}
}

// A script that Redis runs after its fence applies nothing, not even a new
// epoch, and answers FENCED with Redis's clock; the log answers errFenced
// and learns the clock from the refusal.
func TestFencedAppendAppliesNothing(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	l := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	ctx := context.Background()
	stream, meta := l.Keys()
	err := appendScript.Run(ctx, l.rdb, []string{stream, meta}, 1, "epoch", 100, 0, 1000, 1, "", 1, "c", "t", "", "", "", "").Err()
	if !goredis.HasErrorPrefix(err, "FENCED") {
		t.Fatalf("script with a past fence: %v", err)
	}
	if n, err := l.rdb.Exists(ctx, stream, meta).Result(); err != nil || n != 0 {
		t.Fatalf("a fenced script wrote %d keys (%v)", n, err)
	}
	// Through the log (not started: no other goroutine): a clock estimate
	// an hour behind Redis puts the fence in Redis's past.
	l.clock.observe(time.Now().Add(-time.Hour), time.Now())
	_, err = l.appendPubs(ctx, time.Now().Add(2*time.Second), []*hub.Publication{pub("c", "x", "")})
	if err != errFenced {
		t.Fatalf("append fenced by a wrong clock: %v", err)
	}
	if n, err := l.rdb.Exists(ctx, stream, meta).Result(); err != nil || n != 0 {
		t.Fatalf("a fenced append wrote %d keys (%v)", n, err)
	}
	// The refusal carried Redis's clock: the next append goes through.
	out, err := l.appendPubs(ctx, time.Now().Add(2*time.Second), []*hub.Publication{pub("c", "y", "")})
	if err != nil || len(out) != 1 || len(out[0].Cursors) != 1 {
		t.Fatalf("append after the refusal: %+v %v", out, err)
	}
	if n, _ := l.rdb.XLen(ctx, stream).Result(); n != 1 {
		t.Fatalf("%d entries, want 1", n)
	}
}

// A script that passes its fence at the start but finds Redis's clock past
// it once its entries are added (Redis paused in the middle of it) takes
// them back: FENCED, and the stream, the idempotency keys and the meta hash
// are as before. The fence is swept across a long batch's run time until
// one run lands in that window.
func TestFenceRollsBackMidScript(t *testing.T) {
	srv := startServer(t, 0)
	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer rc.Close()
	ctx := context.Background()
	stream, meta := "fence{h}:stream", "fence{h}:meta"
	const pubs, channels = 512, 8
	run := func(attempt int, fence int64) error {
		keys := []string{stream, meta}
		args := []any{fence, "epoch", 1 << 30, 0, 60000, pubs}
		for i := 0; i < pubs; i++ {
			id := fmt.Sprintf("a%d-%d", attempt, i)
			keys = append(keys, "fence{h}:id:"+id)
			args = append(args, id, channels)
			for j := 0; j < channels; j++ {
				args = append(args, fmt.Sprint("c", j))
			}
			args = append(args, "t", "", "", "", "")
		}
		return appendScript.Run(ctx, rc, keys, args...).Err()
	}
	if err := run(0, 1<<50); err != nil { // creates the keys, loads the script
		t.Fatal(err)
	}
	rolledBack := false
	for attempt := 1; attempt < 2000 && !rolledBack; attempt++ {
		now, err := rc.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		before, err := rc.XInfoStream(ctx, stream).Result()
		if err != nil {
			t.Fatal(err)
		}
		n0, _ := rc.HGet(ctx, meta, "n").Result()
		err = run(attempt, now.UnixMilli()+int64(attempt%40))
		if err == nil {
			continue // ran within its fence
		}
		if !goredis.HasErrorPrefix(err, "FENCED") {
			t.Fatal(err)
		}
		after, _ := rc.XInfoStream(ctx, stream).Result()
		if after.LastGeneratedID == before.LastGeneratedID {
			continue // refused before its first write
		}
		rolledBack = true
		n1, _ := rc.HGet(ctx, meta, "n").Result()
		if after.Length != before.Length || n1 != n0 {
			t.Fatalf("rolled back: stream length %d -> %d, n %s -> %s", before.Length, after.Length, n0, n1)
		}
		ids, _ := rc.Keys(ctx, fmt.Sprintf("fence{h}:id:a%d-*", attempt)).Result()
		if len(ids) != 0 {
			t.Fatalf("rolled back: %d idempotency keys left", len(ids))
		}
	}
	if !rolledBack {
		t.Fatal("no run was fenced in the middle of the script")
	}
}
