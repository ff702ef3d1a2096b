package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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
	if _, has := ms[1]["recovered"]; ms[1]["type"] != "realtime:subscribed" || ms[1]["channel"] != "default" || has {
		t.Fatalf("second message = %v, want subscribed to default, without recovered (nothing to recover)", ms[1])
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

// A reader that falls behind is not closed: it leaves the live set and
// catches up from history at its own pace, losing nothing, while the
// others are never held up.
func TestSlowReaderCatchesUpFromHistory(t *testing.T) {
	h, _ := newTestHub(t, 1000)
	p := testPolicy()
	p.SendQueue = 8
	_, sc := connect(t, h, p, ConnectOptions{})
	waitFor(t, "slow welcome", func() bool { return len(sc.msgs()) >= 2 })
	sc.mu.Lock()
	sc.gate = make(chan struct{})
	sc.mu.Unlock()
	_, fast := connect(t, h, p, ConnectOptions{})
	for i := 0; i < 50; i++ {
		publish(t, h, "default", "n", strconv.Itoa(i))
	}
	waitFor(t, "fast consumer got all", func() bool { return len(fast.events()) >= 50 })
	close(sc.gate)
	waitFor(t, "slow consumer got all", func() bool { return len(sc.events()) >= 50 })
	for i, e := range sc.events() {
		if e["payload"] != float64(i) {
			t.Fatalf("slow consumer's event %d has payload %v", i, e["payload"])
		}
	}
	if len(sc.events()) != 50 || sc.closeCode() != 0 {
		t.Fatalf("slow consumer: %d events, close %d; want 50 and still open", len(sc.events()), sc.closeCode())
	}
	if h.Stats().Lagged.Load() == 0 || h.Stats().SlowDisconnects.Load() != 0 {
		t.Fatalf("stats %+v: want a lag and no slow disconnect", h.Stats().Snapshot())
	}
}

// A reader that falls further behind than history reaches is closed with
// 1013 once it reads again, so that it resumes and learns recovered:false;
// the others lose nothing.
func TestReaderBehindHistoryIsSlowConsumer(t *testing.T) {
	h, _ := newTestHub(t, 30)
	p := testPolicy()
	p.SendQueue = 8
	slow, sc := connect(t, h, p, ConnectOptions{})
	waitFor(t, "slow welcome", func() bool { return len(sc.msgs()) >= 2 })
	sc.mu.Lock()
	sc.gate = make(chan struct{})
	sc.mu.Unlock()
	_, fast := connect(t, h, p, ConnectOptions{})
	for i := 0; i < 50; i++ {
		publish(t, h, "default", "n", strconv.Itoa(i))
		time.Sleep(100 * time.Microsecond) // the fast one keeps up
	}
	close(sc.gate)
	waitFor(t, "slow consumer closed", func() bool { return sc.closeCode() != 0 })
	if got := sc.closeCode(); got != DisconnectSlowConsumer.Code {
		t.Fatalf("slow consumer close code = %d, want %d", got, DisconnectSlowConsumer.Code)
	}
	<-slow.Done()
	waitFor(t, "fast consumer got all", func() bool { return len(fast.events()) >= 50 })
	if n := len(fast.events()); n != 50 {
		t.Fatalf("fast consumer got %d events, want 50", n)
	}
	if h.Sessions() != 1 {
		t.Fatalf("sessions = %d after the slow one finished, want 1", h.Sessions())
	}
	if got := h.Stats().Disconnects()["slow_consumer"]; got != 1 || h.Stats().SlowDisconnects.Load() != 1 {
		t.Fatalf("slow_consumer disconnects = %d (counter %d), want 1", got, h.Stats().SlowDisconnects.Load())
	}
}

// One publish of more events than the send queue holds reaches a reading
// client whole: a single delivery never costs a client its connection.
func TestOneLargePublishNeverOverflows(t *testing.T) {
	h, _ := newTestHub(t, 1000)
	p := testPolicy()
	p.SendQueue = 8
	_, c := connect(t, h, p, ConnectOptions{Channels: []string{"a", "b", "c"}})
	waitFor(t, "subscribed", func() bool { return len(c.msgs()) >= 4 })
	var pubs []*Publication
	for i := 0; i < 100; i++ {
		pubs = append(pubs, &Publication{Channels: []string{"a", "b", "c"}, Type: "n", Payload: json.RawMessage(strconv.Itoa(i))})
	}
	if _, err := h.Publish(context.Background(), pubs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "300 events", func() bool { return len(c.events()) >= 300 || c.closeCode() != 0 })
	if len(c.events()) != 300 || c.closeCode() != 0 {
		t.Fatalf("%d events, close %d; want 300 and still open", len(c.events()), c.closeCode())
	}
	for i, e := range c.events() {
		if e["payload"] != float64(i/3) || e["channel"] != []string{"a", "b", "c"}[i%3] {
			t.Fatalf("event %d = %v, out of order", i, e)
		}
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
				s.Subscribe([]string{"c2"}, SubscribeOptions{})
				s.Unsubscribe([]string{"c0"})
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
	h.SetLimits(Limits{MaxConnections: 3, MaxConnectionsPerIP: 2})
	p := testPolicy()
	connectFrom(t, h, p, "10.0.0.1", ConnectOptions{})
	s2, _ := connectFrom(t, h, p, "10.0.0.1", ConnectOptions{})
	if _, err := h.Admit(p, testCodec{}, "10.0.0.1"); err != ErrTooManyConnectionsPerIP {
		t.Fatalf("third from one IP: err = %v, want ErrTooManyConnectionsPerIP", err)
	}
	connectFrom(t, h, p, "10.0.0.2", ConnectOptions{})
	if _, err := h.Admit(p, testCodec{}, "10.0.0.3"); err != ErrTooManyConnections {
		t.Fatalf("fourth: err = %v, want ErrTooManyConnections", err)
	}
	s2.Finish()
	if _, err := h.Admit(p, testCodec{}, "10.0.0.1"); err != nil {
		t.Fatalf("after one left: err = %v, want room", err)
	}
}

// An endpoint's own limits (the deprecated per-handler spelling) replace
// the hub's for its sessions, both ways: tighter, or unlimited.
func TestEndpointLimits(t *testing.T) {
	h, _ := newTestHub(t, 10)
	h.SetLimits(Limits{MaxConnections: 100, MaxConnectionsPerIP: 1})
	p := testPolicy()
	p.Limits = &Limits{MaxConnections: 3, MaxConnectionsPerIP: 2}
	connectFrom(t, h, p, "10.0.0.1", ConnectOptions{})
	connectFrom(t, h, p, "10.0.0.1", ConnectOptions{})
	if _, err := h.Admit(p, testCodec{}, "10.0.0.1"); err != ErrTooManyConnectionsPerIP {
		t.Fatalf("third from one IP: err = %v, want ErrTooManyConnectionsPerIP", err)
	}
	connectFrom(t, h, p, "10.0.0.2", ConnectOptions{})
	if _, err := h.Admit(p, testCodec{}, "10.0.0.3"); err != ErrTooManyConnections {
		t.Fatalf("fourth: err = %v, want ErrTooManyConnections", err)
	}
	if _, err := h.Admit(testPolicy(), testCodec{}, "10.0.0.1"); err != ErrTooManyConnectionsPerIP {
		t.Fatalf("another endpoint with the hub's limits: err = %v, want ErrTooManyConnectionsPerIP", err)
	}
	unlimited := testPolicy()
	unlimited.Limits = &Limits{}
	if _, err := h.Admit(unlimited, testCodec{}, "10.0.0.1"); err != nil {
		t.Fatalf("an endpoint with max_connections_per_ip 0: err = %v, want room", err)
	}
}

func TestMaxSubscriptions(t *testing.T) {
	h, _ := newTestHub(t, 10)
	p := testPolicy()
	p.MaxSubscriptions = 2
	s, c := connect(t, h, p, ConnectOptions{Channels: []string{"a", "b"}})
	s.Subscribe([]string{"c"}, SubscribeOptions{})
	waitFor(t, "error frame", func() bool { return len(c.msgs()) >= 4 })
	last := c.msgs()[3]
	if last["code"] != CodeTooManySubscriptions || last["channel"] != "c" {
		t.Fatalf("got %v, want too_many_subscriptions for c", last)
	}
	s.Unsubscribe([]string{"a"})
	s.Subscribe([]string{"c"}, SubscribeOptions{})
	waitFor(t, "subscribed c", func() bool {
		m := lastMsg(c)
		return m["type"] == "realtime:subscribed" && m["channel"] == "c"
	})
}

func TestBadChannelNamesGetBadRequestAndStayOpen(t *testing.T) {
	h, _ := newTestHub(t, 10)
	s, c := connect(t, h, testPolicy(), ConnectOptions{})
	s.Subscribe([]string{"bad name", "", strings.Repeat("x", 165)}, SubscribeOptions{})
	s.Unsubscribe([]string{"bad/name"})
	s.Pong()
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
	if n != 4 || c.closeCode() != 0 {
		t.Fatalf("%d bad_request errors and close %d, want 4 and still open", n, c.closeCode())
	}
}

func TestCloseSendsGoingAwayToEveryone(t *testing.T) {
	h, _ := newTestHub(t, 10)
	var conns []*fakeConn
	for i := 0; i < 50; i++ {
		_, c := connect(t, h, testPolicy(), ConnectOptions{})
		conns = append(conns, c)
	}
	h.Close(DisconnectShutdown, ShutdownSpread(50), time.Second)
	for i, c := range conns {
		if c.closeCode() != DisconnectShutdown.Code {
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

// otherCodec is a second wire format for tests: its events carry a marker,
// so a session shows which encoding it was given.
type otherCodec struct{ testCodec }

var otherFormat = NewFormat()

func (otherCodec) Format() Format { return otherFormat }

func (otherCodec) Event(e *Event) []byte {
	d := e.Data()
	return append(append(append([]byte(nil), d[:len(d)-1]...), `,"format":"other"}`...), '\n')
}

// Sessions of two wire formats on one channel, interleaved, each get the
// event in their own format.
func TestFanOutMixedFormats(t *testing.T) {
	h, _ := newTestHub(t, 10)
	var conns []*fakeConn
	for i := 0; i < 6; i++ {
		c := newFakeConn()
		var codec Codec = testCodec{}
		if i%2 == 1 {
			codec = otherCodec{}
		}
		s, err := h.Admit(testPolicy(), codec, "")
		if err != nil {
			t.Fatal(err)
		}
		c.s = s
		s.Start(c, ConnectOptions{})
		conns = append(conns, c)
	}
	publish(t, h, "default", "n", "1")
	for i, c := range conns {
		waitFor(t, "the event", func() bool { return len(c.events()) == 1 })
		got, want := c.events()[0]["format"], map[bool]any{true: "other", false: nil}[i%2 == 1]
		if got != want {
			t.Fatalf("session %d got format %v, want %v", i, got, want)
		}
	}
}
