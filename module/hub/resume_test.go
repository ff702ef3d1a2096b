package hub

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
)

// subscribedFrames returns the realtime:subscribed frames received.
func subscribedFrames(c *fakeConn) []map[string]any {
	var out []map[string]any
	for _, m := range c.msgs() {
		if m["type"] == "realtime:subscribed" {
			out = append(out, m)
		}
	}
	return out
}

// resumeFixture is a hub with history 5 holding events 4..8 of channel a,
// interleaved with events of channel b; a's events 1..3 are gone.
func resumeFixture(t *testing.T) (h *Hub, a []string, empty string) {
	h, _ = newTestHub(t, 5)
	empty = h.Head().String()
	for i := 0; i < 8; i++ {
		a = append(a, publish(t, h, "a", "n", strconv.Itoa(i)).Cursors[0].String())
		publish(t, h, "b", "n", strconv.Itoa(i))
	}
	return h, a, empty
}

func TestResume(t *testing.T) {
	bump := func(s string, n uint64) string { c, _ := ParseCursor(s); c.Pos.Hi += n; return c.String() }
	cases := []struct {
		name      string
		since     func(h *Hub, a []string, empty string) string
		recovered bool
		want      func(a []string) []string
	}{
		{"at head", func(h *Hub, _ []string, _ string) string { return h.Head().String() }, true, nil},
		{"inside history", func(_ *Hub, a []string, _ string) string { return a[6] }, true, func(a []string) []string { return a[7:] }},
		{"on another channel's event", func(_ *Hub, a []string, _ string) string { return bump(a[6], 1) }, true, func(a []string) []string { return a[7:] }},
		{"at the oldest retained", func(_ *Hub, a []string, _ string) string { return bump(a[5], 1) }, true, func(a []string) []string { return a[6:] }},
		{"before the start", func(_ *Hub, a []string, _ string) string { return a[0] }, false, nil},
		{"empty-hub cursor after trimming", func(_ *Hub, _ []string, e string) string { return e }, false, nil},
		{"another epoch", func(*Hub, []string, string) string { return "zzzzzzzzzzzzz-1-0" }, false, nil},
		{"garbage", func(*Hub, []string, string) string { return "not-a-cursor" }, false, nil},
		{"beyond head", func(h *Hub, _ []string, _ string) string { return bump(h.Head().String(), 10) }, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, a, empty := resumeFixture(t)
			var want []string
			if tc.want != nil {
				want = tc.want(a)
			}
			_, c := connect(t, h, testPolicy(), ConnectOptions{Channels: []string{"a"}, Since: tc.since(h, a, empty)})
			waitFor(t, "subscribed", func() bool { return len(subscribedFrames(c)) == 1 })
			if got := subscribedFrames(c)[0]["recovered"]; got != tc.recovered {
				t.Fatalf("recovered = %v, want %v", got, tc.recovered)
			}
			live := publish(t, h, "a", "live", "").Cursors[0].String()
			want = append(want, live)
			waitFor(t, "live event", func() bool {
				ev := c.events()
				return len(ev) > 0 && ev[len(ev)-1]["cursor"] == live
			})
			got := cursorsOf(c.events())
			if len(got) != len(want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("got %v, want %v", got, want)
				}
			}
		})
	}
}

func TestResumeOnEmptyHubWithWelcomeCursor(t *testing.T) {
	h, _ := newTestHub(t, 10)
	_, c := connect(t, h, testPolicy(), ConnectOptions{})
	waitFor(t, "welcome", func() bool { return len(c.msgs()) >= 1 })
	welcome := c.msgs()[0]["cursor"].(string)
	want := publish(t, h, "default", "n", "1").Cursors[0].String()
	_, c2 := connect(t, h, testPolicy(), ConnectOptions{Since: welcome})
	waitFor(t, "replay", func() bool { return len(c2.events()) == 1 })
	if subscribedFrames(c2)[0]["recovered"] != true || c2.events()[0]["cursor"] != want {
		t.Fatalf("resume from the welcome cursor of an empty hub: %v", c2.msgs())
	}
}

// TestResumeDuringPublishesIsGapFree resumes while a publisher keeps going:
// the replay and the live stream must join with no gap and no duplicate.
func TestResumeDuringPublishesIsGapFree(t *testing.T) {
	for round := 0; round < 20; round++ {
		h, _ := newTestHub(t, 10000)
		since := h.Head().String()
		var all []string
		var mu sync.Mutex
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 300; i++ {
				a := publish(t, h, "a", "n", strconv.Itoa(i))
				mu.Lock()
				all = append(all, a.Cursors[0].String())
				mu.Unlock()
			}
		}()
		time.Sleep(time.Duration(round) * 50 * time.Microsecond)
		p := testPolicy()
		p.SendQueue = 1000 // this test is about the join; flow control has its own
		_, c := connect(t, h, p, ConnectOptions{Channels: []string{"a"}, Since: since})
		<-done
		deadline := time.Now().Add(5 * time.Second)
		for len(c.events()) < 300 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if len(c.events()) < 300 {
			t.Fatalf("round %d: got %d events, close code %d, stats %+v, msgs %v", round, len(c.events()), c.closeCode(), h.Stats().Snapshot(), c.msgs()[:3])
		}
		got := cursorsOf(c.events())
		mu.Lock()
		for i := range all {
			if got[i] != all[i] {
				t.Fatalf("round %d: event %d = %s, want %s", round, i, got[i], all[i])
			}
		}
		mu.Unlock()
		if len(got) != 300 || c.closeCode() != 0 {
			t.Fatalf("round %d: %d events, close %d", round, len(got), c.closeCode())
		}
	}
}

func TestReplayIsFlowControlled(t *testing.T) {
	h, _ := newTestHub(t, 5000)
	since := h.Head().String()
	for i := 0; i < 5000; i++ {
		publish(t, h, "a", "n", strconv.Itoa(i))
	}
	p := testPolicy()
	p.SendQueue = 8
	_, c := connect(t, h, p, ConnectOptions{Channels: []string{"a"}, Since: since})
	c.mu.Lock()
	c.gate = make(chan struct{}) // a slow reader during the replay
	c.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	close(c.gate)
	waitFor(t, "5000 replayed", func() bool { return len(c.events()) == 5000 })
	if c.closeCode() != 0 || h.Stats().SlowDisconnects.Load() != 0 {
		t.Fatalf("replay overflowed: close %d", c.closeCode())
	}
	if h.Stats().Replayed.Load() != 5000 {
		t.Fatalf("replayed counter = %d", h.Stats().Replayed.Load())
	}
}

func TestHistoryTTL(t *testing.T) {
	h, l := newTestHub(t, 100)
	now := time.Now()
	l.mu.Lock()
	l.now = func() time.Time { return now }
	l.mu.Unlock()
	old := publish(t, h, "a", "n", "1").Cursors[0].String()
	publish(t, h, "a", "n", "2")
	l.mu.Lock()
	l.now = func() time.Time { return now.Add(2 * time.Hour) }
	l.mu.Unlock()
	_, c := connect(t, h, testPolicy(), ConnectOptions{Channels: []string{"a"}, Since: old})
	waitFor(t, "subscribed", func() bool { return len(subscribedFrames(c)) == 1 })
	if subscribedFrames(c)[0]["recovered"] != false {
		t.Fatal("resume across expired history said recovered:true")
	}
}

func TestRetentionChangesInPlace(t *testing.T) {
	h, l := newTestHub(t, 10)
	var cs []string
	for i := 0; i < 10; i++ {
		cs = append(cs, publish(t, h, "a", "n", strconv.Itoa(i)).Cursors[0].String())
	}
	h.SetRetention(3, time.Hour)
	c0, _ := ParseCursor(cs[5])
	if _, _, ok, _ := l.Range(context.Background(), c0, h.Head(), 0, nil); ok {
		t.Fatal("shrunk history still claims to cover an event it dropped")
	}
	c1, _ := ParseCursor(cs[6])
	ev, _, ok, _ := l.Range(context.Background(), c1, h.Head(), 0, nil)
	if !ok || len(ev) != 3 {
		t.Fatalf("after shrink: ok=%v, %d events, want 3", ok, len(ev))
	}
	h.SetRetention(100, time.Hour)
	ev, _, ok, _ = l.Range(context.Background(), c1, h.Head(), 0, nil)
	if !ok || len(ev) != 3 {
		t.Fatalf("after grow: ok=%v, %d events, want the same 3", ok, len(ev))
	}
}

func TestIdempotentPublish(t *testing.T) {
	h, _ := newTestHub(t, 100)
	_, c := connect(t, h, testPolicy(), ConnectOptions{Channels: []string{"a", "b"}})
	first, err := h.Publish(context.Background(), []*Publication{{Channels: []string{"a", "b"}, Type: "x", ID: "k1"}})
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.Publish(context.Background(), []*Publication{
		{Channels: []string{"a"}, Type: "other body, same key", ID: "k1"},
		{Channels: []string{"a"}, Type: "y", ID: "k2"},
		{Channels: []string{"a"}, Type: "y again", ID: "k2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Duplicate || again[0].Cursors[0] != first[0].Cursors[0] || again[0].Cursors[1] != first[0].Cursors[1] {
		t.Fatalf("repeat of k1 = %+v, want duplicate with %+v", again[0], first[0])
	}
	if again[1].Duplicate || !again[2].Duplicate || again[2].Cursors[0] != again[1].Cursors[0] {
		t.Fatalf("repeat inside a batch: %+v / %+v", again[1], again[2])
	}
	time.Sleep(20 * time.Millisecond)
	waitFor(t, "events", func() bool { return len(c.events()) >= 3 })
	time.Sleep(20 * time.Millisecond)
	if n := len(c.events()); n != 3 {
		t.Fatalf("delivered %d events, want 3 (k1 on a and b, k2 once)", n)
	}
}
