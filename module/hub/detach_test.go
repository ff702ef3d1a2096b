package hub

import (
	"testing"
	"time"
)

// A subscribe that comes after its session finished (a client message
// handled while the transport's end runs) is refused: nothing would ever
// drop what it registered, so it would keep a dead session in the
// channel's live set and its user a member for good.
func TestSubscribeAfterFinishLeavesNothing(t *testing.T) {
	h, _ := newTestHub(t, 16)
	defer h.Close(DisconnectShutdown, 0, time.Second)
	s, _ := connect(t, h, &Policy{SendQueue: 16}, ConnectOptions{Channels: []string{}})
	s.Finish()
	s.Subscribe([]string{"c", "presence-p"}, SubscribeOptions{Member: &Member{ID: "u"}})
	if n := h.Channels(); n != 0 {
		t.Errorf("%d channels have live subscribers, want 0", n)
	}
	if n := h.Stats().Subscriptions.Load(); n != 0 {
		t.Errorf("%d subscriptions counted, want 0", n)
	}
	if n := h.Stats().PresenceMembers.Load(); n != 0 {
		t.Errorf("%d presence members held, want 0", n)
	}
	if s.IsSubscribed("c") {
		t.Error("the finished session is subscribed")
	}
}

// A session that a gap resynced is closed with 1012 a moment later; a
// subscribe it makes meanwhile must not go live, or an event after the gap
// would move the client's cursor past the events it missed.
func TestSubscribeInResyncWindowGetsNoEvents(t *testing.T) {
	l := &gapLog{MemoryLog: NewMemoryLog(10, time.Hour)}
	h := New("gap", l)
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	defer h.Close(DisconnectShutdown, 0, time.Second)
	// Enough sessions that the 1012s are spread over a while.
	p := &Policy{SendQueue: 16}
	var sessions []*Session
	var conns []*fakeConn
	for range 200 {
		s, c := connect(t, h, p, ConnectOptions{Channels: []string{"c"}})
		sessions, conns = append(sessions, s), append(conns, c)
	}
	l.gap()
	for _, s := range sessions {
		s.Subscribe([]string{"d"}, SubscribeOptions{})
	}
	publish(t, h, "d", "after-gap", "")
	for i, c := range conns {
		waitFor(t, "the 1012", func() bool { return c.closeCode() == DisconnectGap.Code })
		if evs := c.events(); len(evs) != 0 {
			t.Fatalf("session %d got %d events after the gap", i, len(evs))
		}
	}
	if n := h.Stats().Subscriptions.Load(); n != 0 {
		t.Fatalf("%d subscriptions counted after the gap", n)
	}
}
