package hub

import "testing"

// The Pusher protocol asks who is subscribed: a session about itself
// (client events) and the HTTP API about channels.
func TestSubscriptionQueries(t *testing.T) {
	h, _ := newTestHub(t, 10)
	a, _ := connect(t, h, testPolicy(), ConnectOptions{Channels: []string{"orders", "orders.1"}})
	b, _ := connect(t, h, testPolicy(), ConnectOptions{Channels: []string{"orders"}})
	waitFor(t, "live subscriptions", func() bool { return h.SubscriberCount("orders") == 2 })
	if !a.IsSubscribed("orders.1") || b.IsSubscribed("orders.1") || a.IsSubscribed("nope") {
		t.Fatal("IsSubscribed is wrong")
	}
	if n := h.SubscriberCount("orders.1"); n != 1 {
		t.Fatalf("orders.1 has %d subscribers, want 1", n)
	}
	if got := h.OccupiedChannels("orders."); len(got) != 1 || got["orders.1"] != 1 {
		t.Fatalf("occupied with prefix: %v", got)
	}
	if got := h.OccupiedChannels(""); len(got) != 2 || got["orders"] != 2 {
		t.Fatalf("occupied: %v", got)
	}
	a.Unsubscribe([]string{"orders.1"})
	b.Finish()
	if a.IsSubscribed("orders.1") || h.SubscriberCount("orders") != 1 || len(h.OccupiedChannels("")) != 1 {
		t.Fatalf("after leaving: %v", h.OccupiedChannels(""))
	}
}
