package redis

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// A Redis that stalls for longer than the 2 s append bound while publishers
// keep going: an append answered with an error never appears later, neither
// in the stream nor in the node's delivery, although its script reached
// Redis's socket buffer and ran when Redis woke; every append answered with
// cursors is delivered once.
//
// Redis is frozen while no append is in flight: an append whose script ran
// just before the freeze, with its reply not yet written, is the window a
// fence cannot close (see fence.go).
func TestStalledAppendNeverAppearsLater(t *testing.T) {
	srv := startServer(t, 0)
	l := newTestLog(t, srv.Addr(), "stall:", 100000, time.Hour)
	r := startRecorder(t, l)
	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		refused  = map[string]bool{}
		seq      int
	)
	// Publisher w waits as long as Append lets it (2 s) for w < 3, and
	// w*200 ms otherwise, so that several groups reach the stalled Redis.
	publish := func(w int) bool {
		mu.Lock()
		typ := fmt.Sprintf("w%d-%04d", w, seq)
		seq++
		mu.Unlock()
		ctx := context.Background()
		if w >= 3 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(w)*200*time.Millisecond)
			defer cancel()
		}
		start := time.Now()
		_, err := l.Append(ctx, []*hub.Publication{pub("c", typ, "")})
		if d := time.Since(start); d > 2100*time.Millisecond {
			t.Errorf("append %s answered after %v", typ, d)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			refused[typ] = true
		} else {
			accepted[typ] = true
		}
		return err == nil
	}
	for i := 0; i < 5; i++ {
		if !publish(0) {
			t.Fatal("append before the stall failed")
		}
	}

	// Open idle connections: a group on a new connection waits for its
	// HELLO during the stall and never sends its script, so without them
	// only the first group would reach the stalled Redis.
	var warm sync.WaitGroup
	for i := 0; i < 8; i++ {
		warm.Add(1)
		go func() {
			defer warm.Done()
			_ = l.rdb.Do(context.Background(), "BLPOP", "stall:nothing", "0.2").Err()
		}()
	}
	warm.Wait()

	const stall = 3 * time.Second
	thaw := srv.Freeze()
	thawed := time.Now().Add(stall)
	var wg sync.WaitGroup
	for w := 1; w <= 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(thawed.Add(500 * time.Millisecond)) {
				publish(w)
			}
		}()
	}
	time.Sleep(time.Until(thawed))
	thaw()
	wg.Wait()
	waitFor(t, "the node to reach Redis again", 10*time.Second, func() bool {
		up, _ := l.Healthy()
		return up
	})
	for i := 0; i < 5; i++ {
		if !publish(0) {
			t.Fatal("append after the stall failed")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d appends answered with cursors, %d with an error", len(accepted), len(refused))
	if len(refused) == 0 {
		t.Fatal("no append failed during the stall: the test proves nothing")
	}

	// Give every script that was waiting in Redis's socket buffers time to
	// run and be read, then compare the stream and the delivery with the
	// answers.
	waitFor(t, "the accepted appends to be delivered", 10*time.Second, func() bool { return r.count() >= len(accepted) })
	time.Sleep(500 * time.Millisecond)
	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer rc.Close()
	stream, _ := l.Keys()
	msgs, err := rc.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	inStream := map[string]int{}
	for _, m := range msgs {
		typ, _ := m.Values["t"].(string)
		inStream[typ]++
	}
	_, events := r.snapshot()
	delivered := map[string]int{}
	for _, e := range events {
		delivered[e.Type]++
	}
	var late []string
	for typ := range refused {
		if inStream[typ] > 0 || delivered[typ] > 0 {
			late = append(late, typ)
		}
	}
	sort.Strings(late)
	if len(late) > 0 {
		t.Fatalf("%d appends answered with an error appeared later (in the stream and delivered): %v", len(late), late)
	}
	for typ := range accepted {
		if inStream[typ] != 1 || delivered[typ] != 1 {
			t.Fatalf("accepted %s: %d in the stream, delivered %d times", typ, inStream[typ], delivered[typ])
		}
	}
	if len(msgs) != len(accepted) || len(events) != len(accepted) {
		t.Fatalf("%d entries in the stream and %d delivered, %d accepted", len(msgs), len(events), len(accepted))
	}
	// Scripts did reach the stalled Redis and were refused when it woke.
	info, err := rc.Info(context.Background(), "errorstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	fenced := 0
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "errorstat_FENCED:count="); ok {
			fenced, _ = strconv.Atoi(v)
		}
	}
	t.Logf("Redis refused %d append scripts that ran after their fence", fenced)
	if fenced == 0 {
		t.Fatal("Redis refused no append: no script reached it during the stall, the test proves nothing")
	}
}
