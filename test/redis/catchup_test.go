package redis_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

// A node that was away while the other appended 1,000 events (stopped with
// SIGSTOP, so its Redis reader read nothing meanwhile) delivers all of them
// to its live clients when it comes back, in order and once, and closes
// none with 1013: its reader brings up to 512 entries a read, more than a
// client's send queue (256 here), so the clients catch up from history at
// the pace they read.
func TestNodeBackFromAwayCatchesUpLiveClients(t *testing.T) {
	needRedis(t)
	const events = 1000
	url := fmt.Sprintf("redis://%s/0?prefix=%s", redisAddr(), uniquePrefix(t, redisAddr()))
	a := startNode(t, "A", url, "send_queue 256")
	b := startNode(t, "B", url, "send_queue 256")
	var clients []*rtclient.Client
	for i := 0; i < 3; i++ {
		c := dial(t, b, "burst", "")
		c.WaitSubscribed("burst")
		clients = append(clients, c)
	}
	onA := dial(t, a, "burst", "")
	onA.WaitSubscribed("burst")
	before := b.hubState(t)

	if err := b.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Signal(syscall.SIGCONT) })
	var want []string
	for i := 0; i < events; i++ {
		key := fmt.Sprintf("e%04d", i)
		if p := a.publish(t, "burst", "t", key, ""); p.status != 200 {
			t.Fatalf("publish %s to A: %d", key, p.status)
		}
		want = append(want, key)
	}
	if !onA.WaitEvents(events, 10*time.Second) {
		t.Fatalf("the client on A has %d events of %d", len(onA.Events()), events)
	}
	if err := b.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	for i, c := range clients {
		if !c.WaitEvents(events, 20*time.Second) {
			e, _ := c.Ended()
			t.Fatalf("client %d on B: %d events of %d; connection end %+v", i, len(c.Events()), events, e)
		}
		got := keys(c)
		if len(got) != events {
			t.Fatalf("client %d on B: %d events, want %d", i, len(got), events)
		}
		for k := range want {
			if got[k] != want[k] {
				t.Fatalf("client %d on B: event %d is %s, want %s", i, k, got[k], want[k])
			}
		}
		if e, ended := c.Ended(); ended {
			t.Errorf("client %d on B was closed: %+v", i, e)
		}
	}
	after := b.hubState(t)
	if after["slow_consumer_disconnects"] != before["slow_consumer_disconnects"] {
		t.Errorf("node B: slow_consumer_disconnects %v -> %v", before["slow_consumer_disconnects"], after["slow_consumer_disconnects"])
	}
	t.Logf("node B delivered the %d events appended while it was stopped to %d clients; sessions that caught up from history: %v -> %v",
		events, len(clients), before["lagged"], after["lagged"])
}
