package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// One node at a time sends a target's webhooks: the other's Read waits
// while the first holds the lease (and renews it), and when the first is
// cut off, the other takes over from the acknowledged position: the events
// the first read but did not acknowledge come again, with the same IDs,
// in order. An acknowledgement never moves the position back.
func TestWebhookLeaseHandover(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	lease := func(c *Config) { c.WebhookLease = 600 * time.Millisecond }
	px := newProxy(t, testAddr())
	la := newTestLog(t, px.addr(), prefix, 100, time.Hour, lease)
	lb := newTestLog(t, testAddr(), prefix, 100, time.Hour, lease)
	startRecorder(t, la)
	startRecorder(t, lb)
	qa, qb := la.Webhooks(), lb.Webhooks()
	ctx := context.Background()
	var add []hub.WebhookEvent
	for i := 0; i < 10; i++ {
		add = append(add, hub.WebhookEvent{Name: "client_event", Channel: "private-c", Event: "client-x", Data: fmt.Sprint(i), SocketID: "1.2"})
	}
	if err := qa.Add(ctx, add); err != nil {
		t.Fatal(err)
	}
	first, err := qa.Read(ctx, "t", 4)
	if err != nil || len(first) != 4 {
		t.Fatalf("A read %d events (%v)", len(first), err)
	}
	for i, e := range first {
		if e.Data != fmt.Sprint(i) || e.Event != "client-x" || e.SocketID != "1.2" || e.ID == "" {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	if err := qa.Ack(ctx, "t", first[1].Pos); err != nil {
		t.Fatal(err)
	}
	got := make(chan []hub.WebhookEvent, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		evs, _ := qb.Read(rctx, "t", 100)
		got <- evs
	}()
	select {
	case evs := <-got:
		t.Fatalf("B read %d events while A holds the lease", len(evs))
	case <-time.After(1500 * time.Millisecond): // A renews meanwhile
	}
	if !qa.(*webhookQueue).Holds("t") {
		t.Fatal("A does not hold the lease")
	}
	px.setCut(true) // A can renew no more: its lease expires
	var second []hub.WebhookEvent
	select {
	case second = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("B never took the lease over")
	}
	if len(second) != 8 || second[0].ID != first[2].ID || second[1].ID != first[3].ID {
		t.Fatalf("B read %d events from %+v; want the 8 after A's acknowledgement, from %s", len(second), second[0], first[2].ID)
	}
	for i := 1; i < len(second); i++ {
		if !second[i-1].Pos.Less(second[i].Pos) || second[i].Data != fmt.Sprint(i+2) {
			t.Fatalf("out of order: %+v after %+v", second[i], second[i-1])
		}
	}
	if err := qb.Ack(ctx, "t", second[len(second)-1].Pos); err != nil {
		t.Fatal(err)
	}
	px.setCut(false)
	waitFor(t, "A to find its lease gone", 5*time.Second, func() bool { return !qa.(*webhookQueue).Holds("t") })
	if err := qa.Ack(ctx, "t", first[3].Pos); err != nil { // late: must not move back
		t.Fatal(err)
	}
	rc := goredis.NewClient(&goredis.Options{Addr: testAddr()})
	defer rc.Close()
	pos, _ := rc.HGet(ctx, prefix+"{test}:whpos", "t").Result()
	if want := formatID(second[len(second)-1].Pos) + " "; len(pos) < len(want) || pos[:len(want)] != want {
		t.Fatalf("position %q, want %q...", pos, want)
	}
	// Everything acknowledged is trimmed but the last entry.
	if n, _ := rc.XLen(ctx, prefix+"{test}:wh").Result(); n != 1 {
		t.Fatalf("%d entries kept after every event was acknowledged", n)
	}
}
