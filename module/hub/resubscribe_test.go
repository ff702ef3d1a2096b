package hub

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// A client that subscribes with a cursor deep in history and unsubscribes
// again, over and over, while it reads: the replay of a subscription it
// gave up stops, so the catch-ups alive at once stay bounded by its
// subscriptions, and no event of a channel follows that channel's
// unsubscribed answer.
func TestResubscribeLoopKeepsCatchUpsBounded(t *testing.T) {
	h, _ := newTestHub(t, 1000)
	defer h.Close(DisconnectShutdown, 0, time.Second)
	first := publish(t, h, "h", "n", "0").Cursors[0]
	for i := 1; i < 1000; i++ {
		publish(t, h, "h", "n", strconv.Itoa(i))
	}
	p := testPolicy()
	p.SendQueue = 16
	c := &pacedConn{fakeConn: newFakeConn(), delay: 20 * time.Microsecond}
	s, err := h.Admit(p, testCodec{}, "")
	if err != nil {
		t.Fatal(err)
	}
	c.s = s
	s.Start(c, ConnectOptions{Channels: []string{"lobby"}})
	before := runtime.NumGoroutine()
	most := 0
	const rounds = 100
	for i := 0; i < rounds; i++ {
		s.WaitForRoom()
		s.Subscribe([]string{"h"}, SubscribeOptions{Since: first.String(), Resume: true})
		s.WaitForRoom()
		s.Unsubscribe([]string{"h"})
		most = max(most, runtime.NumGoroutine()-before)
	}
	waitFor(t, "every answer", func() bool { return countType(c.msgs(), "realtime:unsubscribed") == rounds })
	time.Sleep(50 * time.Millisecond)
	t.Logf("%d rounds: at most %d goroutines more than before, %d events replayed", rounds, most, len(c.events()))
	if most > 3 {
		t.Errorf("%d catch-ups alive at once for one subscription", most)
	}
	subscribed := false
	for i, m := range c.msgs() {
		switch {
		case m["type"] == "realtime:subscribed" && m["channel"] == "h":
			subscribed = true
		case m["type"] == "realtime:unsubscribed":
			subscribed = false
		case m["channel"] == "h" && !subscribed:
			t.Fatalf("message %d, an event of h after its unsubscribed answer: %v", i, m)
		}
	}
}
