package hub

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestWelcomeIsFirstAndDefaultsJoined(t *testing.T) {
	h, _ := newTestHub(t, 10)
	_, c := connect(t, h, testPolicy(), ConnectOptions{})
	waitFor(t, "welcome and subscribed", func() bool { return len(c.msgs()) >= 2 })
	ms := c.msgs()
	if ms[0]["type"] != "realtime:welcome" || ms[0]["cursor"] != h.Head().String() {
		t.Fatalf("first frame = %v, want welcome with the head cursor", ms[0])
	}
	if ms[1]["type"] != "realtime:subscribed" || ms[1]["channel"] != "default" || ms[1]["recovered"] != false {
		t.Fatalf("second frame = %v, want subscribed to default", ms[1])
	}
}

func TestFanOutInOrderPerChannel(t *testing.T) {
	h, _ := newTestHub(t, 1000)
	var conns []*fakeConn
	for i := 0; i < 20; i++ {
		ch := []string{"a"}
		if i%2 == 1 {
			ch = []string{"a", "b"}
		}
		_, c := connect(t, h, testPolicy(), ConnectOptions{Channels: ch})
		conns = append(conns, c)
	}
	var want []string
	for i := 0; i < 100; i++ {
		ch := "a"
		if i%3 == 0 {
			ch = "b"
		}
		a := publish(t, h, ch, "n", strconv.Itoa(i))
		if ch == "a" {
			want = append(want, a.Cursors[0].String())
		}
	}
	for i, c := range conns {
		want := want
		n := len(want)
		if i%2 == 1 {
			n = 100
		}
		waitFor(t, "all events", func() bool { return len(c.events()) >= n })
		got := c.events()
		if len(got) != n {
			t.Fatalf("conn %d got %d events, want %d", i, len(got), n)
		}
		if i%2 == 0 {
			for j, e := range got {
				if e["cursor"] != want[j] || e["channel"] != "a" {
					t.Fatalf("conn %d event %d = %v, want cursor %s", i, j, e, want[j])
				}
			}
		}
		prev := -1
		for _, e := range got {
			seq, _ := strconv.Atoi(fmt.Sprint(e["payload"]))
			if seq <= prev {
				t.Fatalf("conn %d: event %d after %d: out of order", i, seq, prev)
			}
			prev = seq
		}
	}
}

func TestSlowConsumerIsClosedOthersLoseNothing(t *testing.T) {
	h, _ := newTestHub(t, 1000)
	p := testPolicy()
	p.SendQueue = 8
	slow, sc := connect(t, h, p, ConnectOptions{})
	waitFor(t, "slow welcome", func() bool { return len(sc.msgs()) >= 2 })
	sc.mu.Lock()
	sc.gate = make(chan struct{})
	sc.mu.Unlock()
	_, fast := connect(t, h, p, ConnectOptions{})
	// The fast consumer's writer keeps up because the test reads nothing
	// from it: its fake transport never blocks.
	for i := 0; i < 50; i++ {
		publish(t, h, "default", "n", strconv.Itoa(i))
		time.Sleep(100 * time.Microsecond)
	}
	close(sc.gate)
	waitFor(t, "slow consumer closed", func() bool { return sc.closeCode() != 0 })
	if got := sc.closeCode(); got != CloseTryAgainLater {
		t.Fatalf("slow consumer close code = %d, want 1013", got)
	}
	<-slow.Done()
	waitFor(t, "fast consumer got all", func() bool { return len(fast.events()) >= 50 })
	if n := len(fast.events()); n != 50 {
		t.Fatalf("fast consumer got %d events, want 50", n)
	}
	if h.Stats().SlowDisconnects.Load() != 1 {
		t.Fatalf("slow disconnects = %d, want 1", h.Stats().SlowDisconnects.Load())
	}
	if h.Sessions() != 1 {
		t.Fatalf("sessions = %d after the slow one finished, want 1", h.Sessions())
	}
}

func TestConcurrentPublishSubscribeUnsubscribe(t *testing.T) {
	h, _ := newTestHub(t, 1000)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				publish(t, h, fmt.Sprintf("c%d", j%3), "n", strconv.Itoa(j))
			}
		}(i)
	}
	var conns []*fakeConn
	var mu sync.Mutex
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				s, c := connect(t, h, testPolicy(), ConnectOptions{Channels: []string{"c0", "c1"}})
				s.HandleText([]byte(`{"type":"realtime:subscribe","channel":"c2"}`))
				s.HandleText([]byte(`{"type":"realtime:unsubscribe","channel":"c0"}`))
				if j%2 == 0 {
					s.Finish()
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	close(stop)
	for _, c := range conns {
		seen := map[string]bool{}
		for _, e := range c.events() {
			cur := e["cursor"].(string)
			if seen[cur] {
				t.Fatalf("duplicate delivery of %s", cur)
			}
			seen[cur] = true
		}
	}
}

func TestConnectionLimits(t *testing.T) {
	h, _ := newTestHub(t, 10)
	p := testPolicy()
	p.MaxConnections, p.MaxConnectionsPerIP = 3, 2
	connect(t, h, p, ConnectOptions{IP: "10.0.0.1"})
	s2, _ := connect(t, h, p, ConnectOptions{IP: "10.0.0.1"})
	if _, err := h.Admit(p, "10.0.0.1"); err != ErrTooManyConnectionsPerIP {
		t.Fatalf("third from one IP: err = %v, want ErrTooManyConnectionsPerIP", err)
	}
	connect(t, h, p, ConnectOptions{IP: "10.0.0.2"})
	if _, err := h.Admit(p, "10.0.0.3"); err != ErrTooManyConnections {
		t.Fatalf("fourth: err = %v, want ErrTooManyConnections", err)
	}
	s2.Finish()
	if _, err := h.Admit(p, "10.0.0.1"); err != nil {
		t.Fatalf("after one left: err = %v, want room", err)
	}
}

func TestMaxSubscriptions(t *testing.T) {
	h, _ := newTestHub(t, 10)
	p := testPolicy()
	p.MaxSubscriptions = 2
	s, c := connect(t, h, p, ConnectOptions{Channels: []string{"a", "b"}})
	s.HandleText([]byte(`{"type":"realtime:subscribe","channels":["c"]}`))
	waitFor(t, "error frame", func() bool { return len(c.msgs()) >= 4 })
	last := c.msgs()[3]
	if last["code"] != CodeTooManySubscriptions || last["channel"] != "c" {
		t.Fatalf("got %v, want too_many_subscriptions for c", last)
	}
	s.HandleText([]byte(`{"type":"realtime:unsubscribe","channel":"a"}`))
	s.HandleText([]byte(`{"type":"realtime:subscribe","channel":"c"}`))
	waitFor(t, "subscribed c", func() bool {
		m := lastMsg(c)
		return m["type"] == "realtime:subscribed" && m["channel"] == "c"
	})
}

func TestBadFramesGetBadRequestAndStayOpen(t *testing.T) {
	h, _ := newTestHub(t, 10)
	s, c := connect(t, h, testPolicy(), ConnectOptions{})
	for _, f := range []string{`nope`, `[]`, `{"type":"what"}`, `{}`, `{"type":"realtime:subscribe"}`, `{"type":"realtime:subscribe","channel":"bad name"}`} {
		s.HandleText([]byte(f))
	}
	s.HandleText([]byte(`{"type":"realtime:ping"}`))
	waitFor(t, "pong", func() bool { return lastMsg(c)["type"] == "realtime:pong" })
	n := 0
	for _, m := range c.msgs() {
		if m["type"] == "realtime:error" {
			if m["code"] != CodeBadRequest {
				t.Fatalf("error %v, want bad_request", m)
			}
			n++
		}
	}
	if n != 6 || c.closeCode() != 0 {
		t.Fatalf("%d bad_request errors and close %d, want 6 and still open", n, c.closeCode())
	}
}

func TestCloseSendsGoingAwayToEveryone(t *testing.T) {
	h, _ := newTestHub(t, 10)
	var conns []*fakeConn
	for i := 0; i < 50; i++ {
		_, c := connect(t, h, testPolicy(), ConnectOptions{})
		conns = append(conns, c)
	}
	h.Close(CloseGoingAway, "bye", ShutdownSpread(50), time.Second)
	for i, c := range conns {
		if c.closeCode() != CloseGoingAway {
			t.Fatalf("conn %d: close code %d, want 1001", i, c.closeCode())
		}
	}
	if h.Sessions() != 0 {
		t.Fatalf("%d sessions left", h.Sessions())
	}
	if _, err := h.Publish(context.Background(), []*Publication{{Channels: []string{"a"}, Type: "x"}}); err != ErrClosed {
		t.Fatalf("publish after close: %v, want ErrClosed", err)
	}
}
