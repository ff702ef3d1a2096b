package redis

import (
	"context"
	"fmt"
	"github.com/wprealtime/caddy-realtime/test/testenv"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/rtproto"
)

// Two nodes on one stream deliver the same events in the same order, with
// the cursors Append answered.
func TestTwoNodesSameOrder(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	a := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	b := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	ra, rb := startRecorder(t, a), startRecorder(t, b)
	ha, _ := a.Head(context.Background())
	hb, _ := b.Head(context.Background())
	if ha != hb || ha.Epoch == "" {
		t.Fatalf("heads differ at start: %v %v", ha, hb)
	}
	var want []string
	var cursors []hub.Cursor
	for i := 0; i < 20; i++ {
		l := a
		if i%2 == 1 {
			l = b
		}
		typ := fmt.Sprintf("e%d", i)
		got := appendOne(t, l, pub("c", typ, ""))
		if got.Duplicate || len(got.Cursors) != 1 || got.Cursors[0].Epoch != ha.Epoch {
			t.Fatalf("append %d: %+v", i, got)
		}
		want = append(want, typ)
		cursors = append(cursors, got.Cursors[0])
	}
	waitFor(t, "deliveries", 5*time.Second, func() bool { return ra.count() == 20 && rb.count() == 20 })
	headA, evA := ra.snapshot()
	headB, evB := rb.snapshot()
	if !reflect.DeepEqual(types(evA), want) || !reflect.DeepEqual(types(evB), want) {
		t.Fatalf("order: a=%v b=%v want %v", types(evA), types(evB), want)
	}
	for i := range evA {
		if evA[i].Cursor != cursors[i] || evB[i].Cursor != cursors[i] {
			t.Fatalf("event %d cursor: a=%v b=%v append=%v", i, evA[i].Cursor, evB[i].Cursor, cursors[i])
		}
		if string(evA[i].Data()) != string(evB[i].Data()) {
			t.Fatalf("event %d differs between nodes:\n%s\n%s", i, evA[i].Data(), evB[i].Data())
		}
	}
	if headA != cursors[19] || headB != cursors[19] {
		t.Fatalf("heads %v %v, want %v", headA, headB, cursors[19])
	}
	if h, _ := a.Head(context.Background()); h != cursors[19] {
		t.Fatalf("Head %v want %v", h, cursors[19])
	}
	if up, msg := a.Healthy(); !up {
		t.Fatalf("unhealthy: %s", msg)
	}
}

// An event keeps the publisher's fields; a missing payload stays missing
// and a missing timestamp is the time Redis accepted it, on every node.
func TestEventFields(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	a := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	r := startRecorder(t, a)
	appendOne(t, a, &hub.Publication{Channels: []string{"c"}, Type: "bare"})
	appendOne(t, a, &hub.Publication{Channels: []string{"c"}, Type: "full", Payload: []byte(`{"x":[1,"é"]}`), Timestamp: "2026-11-26 16:00:00", ID: "id-1"})
	appendOne(t, a, &hub.Publication{Channels: []string{"c"}, Type: "client-typing", Exclude: "12.34", UserID: "42"})
	waitFor(t, "deliveries", 5*time.Second, func() bool { return r.count() == 3 })
	_, ev := r.snapshot()
	if ev[0].Payload != nil || ev[0].ID != "" || ev[0].Timestamp != time.UnixMilli(int64(ev[0].Cursor.Pos.Hi)).UTC().Format(time.RFC3339) {
		t.Fatalf("bare event: %s", ev[0].Data())
	}
	want := `{"type":"full","channel":"c","cursor":"` + ev[1].Cursor.String() + `","payload":{"x":[1,"é"]},"timestamp":"2026-11-26 16:00:00","id":"id-1"}`
	if string(ev[1].Data()) != want {
		t.Fatalf("full event:\n got %s\nwant %s", ev[1].Data(), want)
	}
	if ev[2].Exclude != "12.34" || ev[2].UserID != "42" || ev[1].Exclude != "" || ev[1].UserID != "" {
		t.Fatalf("exclusion and user id did not cross the stream: %+v / %+v", ev[2], ev[1])
	}
}

// The same id on two nodes is accepted once, delivered once, and answered
// with the first cursors; several channels share one key; a batch with the
// same id twice accepts it once.
func TestIdempotencyAcrossNodes(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	a := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	b := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	ra, rb := startRecorder(t, a), startRecorder(t, b)
	first := appendOne(t, a, &hub.Publication{Channels: []string{"x", "y"}, Type: "t", ID: "k1"})
	second := appendOne(t, b, &hub.Publication{Channels: []string{"z"}, Type: "other", ID: "k1"})
	if first.Duplicate || !second.Duplicate {
		t.Fatalf("duplicate flags: %+v %+v", first, second)
	}
	if !reflect.DeepEqual(second.Channels, []string{"x", "y"}) || !reflect.DeepEqual(second.Cursors, first.Cursors) {
		t.Fatalf("duplicate answer %+v, want the original %+v", second, first)
	}
	ctx := context.Background()
	out, err := b.Append(ctx, []*hub.Publication{pub("c", "k2a", "k2"), pub("c", "k2b", "k2"), pub("c", "plain", "")})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Duplicate || !out[1].Duplicate || out[2].Duplicate || out[1].Cursors[0] != out[0].Cursors[0] {
		t.Fatalf("batch answers: %+v", out)
	}
	waitFor(t, "deliveries", 5*time.Second, func() bool { return ra.count() >= 4 && rb.count() >= 4 })
	time.Sleep(100 * time.Millisecond)
	_, ea := ra.snapshot()
	_, eb := rb.snapshot()
	want := []string{"t", "t", "k2a", "plain"}
	if !reflect.DeepEqual(types(ea), want) || !reflect.DeepEqual(types(eb), want) {
		t.Fatalf("delivered a=%v b=%v want %v", types(ea), types(eb), want)
	}
	// The key expires with history_ttl.
	rc := goredis.NewClient(&goredis.Options{Addr: testAddr()})
	defer rc.Close()
	ttl, err := rc.PTTL(ctx, prefix+"{test}:id:k1").Result()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("idempotency key TTL %v (%v), want about 1h", ttl, err)
	}
}

// Range: exclusive start, bounded by upTo, filtered, paged with next.
func TestRange(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	a := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	r := startRecorder(t, a)
	start, _ := a.Head(context.Background())
	var cs []hub.Cursor
	for i := 0; i < 10; i++ {
		ch := "even"
		if i%2 == 1 {
			ch = "odd"
		}
		cs = append(cs, appendOne(t, a, pub(ch, fmt.Sprint(i), "")).Cursors[0])
	}
	waitFor(t, "deliveries", 5*time.Second, func() bool { return r.count() == 10 })
	ctx := context.Background()
	all := func(string) bool { return true }
	odd := func(c string) bool { return c == "odd" }

	ev, next, ok, err := a.Range(ctx, start, cs[9], 100, all)
	if err != nil || !ok || next != cs[9] || !reflect.DeepEqual(types(ev), []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}) {
		t.Fatalf("full range: %v %v %v %v", types(ev), next, ok, err)
	}
	ev, next, ok, _ = a.Range(ctx, cs[2], cs[6], 100, odd)
	if !ok || next != cs[6] || !reflect.DeepEqual(types(ev), []string{"3", "5"}) {
		t.Fatalf("bounded filtered range: %v %v %v", types(ev), next, ok)
	}
	ev, next, ok, _ = a.Range(ctx, start, cs[9], 2, odd)
	if !ok || next != cs[3] || !reflect.DeepEqual(types(ev), []string{"1", "3"}) {
		t.Fatalf("limited range: %v %v %v", types(ev), next, ok)
	}
	ev, next, ok, _ = a.Range(ctx, next, cs[9], 2, odd)
	if !ok || next != cs[7] || !reflect.DeepEqual(types(ev), []string{"5", "7"}) {
		t.Fatalf("second page: %v %v %v", types(ev), next, ok)
	}
	ev, next, ok, _ = a.Range(ctx, cs[9], cs[9], 100, all)
	if !ok || next != cs[9] || len(ev) != 0 {
		t.Fatalf("empty range at head: %v %v %v", types(ev), next, ok)
	}
	// Another epoch, garbage, and a position never issued: incomplete.
	for _, c := range []hub.Cursor{
		{Epoch: "otherepoch", Pos: cs[2].Pos},
		{Epoch: cs[0].Epoch, Pos: hub.Position{Hi: cs[9].Pos.Hi + 1000}},
	} {
		if _, _, ok, err := a.Range(ctx, c, cs[9], 100, all); ok || err != nil {
			t.Fatalf("Range(%v) complete=%v err=%v, want incomplete", c, ok, err)
		}
	}
}

// history_size: Range replays only the last size events, although the
// stream keeps a margin for readers; history_ttl: none older than the TTL.
func TestRetention(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	a := newTestLog(t, testAddr(), prefix, 3, time.Hour)
	r := startRecorder(t, a)
	start, _ := a.Head(context.Background())
	var cs []hub.Cursor
	for i := 0; i < 6; i++ {
		cs = append(cs, appendOne(t, a, pub("c", fmt.Sprint(i), "")).Cursors[0])
	}
	waitFor(t, "deliveries", 5*time.Second, func() bool { return r.count() == 6 })
	ctx := context.Background()
	if _, _, ok, _ := a.Range(ctx, start, cs[5], 100, nil); ok {
		t.Fatal("range from before the last 3 events is complete")
	}
	if _, _, ok, _ := a.Range(ctx, cs[1], cs[5], 100, nil); ok {
		t.Fatal("range after event 1 (event 2 is out of history) is complete")
	}
	ev, _, ok, _ := a.Range(ctx, cs[2], cs[5], 100, nil)
	if !ok || !reflect.DeepEqual(types(ev), []string{"3", "4", "5"}) {
		t.Fatalf("range of the last 3: %v %v", types(ev), ok)
	}
	// A reload that grows history applies in place.
	a.SetRetention(5, time.Hour)
	if ev, _, ok, _ = a.Range(ctx, cs[0], cs[5], 100, nil); !ok || len(ev) != 5 {
		t.Fatalf("after growing history: %v %v", types(ev), ok)
	}
	// TTL.
	a.SetRetention(100, 300*time.Millisecond)
	time.Sleep(400 * time.Millisecond)
	if _, _, ok, _ := a.Range(ctx, cs[3], cs[5], 100, nil); ok {
		t.Fatal("range over events older than history_ttl is complete")
	}
	c := appendOne(t, a, pub("c", "fresh", "")).Cursors[0]
	waitFor(t, "delivery", 5*time.Second, func() bool { return r.count() == 7 })
	if ev, _, ok, _ = a.Range(ctx, cs[5], c, 100, nil); !ok || len(ev) != 1 {
		t.Fatalf("range over a fresh event: %v %v", types(ev), ok)
	}
}

// The stream itself is trimmed to history_size plus the readers' margin.
func TestStreamTrimmed(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	a := newTestLog(t, testAddr(), prefix, 10, time.Hour)
	startRecorder(t, a)
	pubs := make([]*hub.Publication, 100)
	for i := range pubs {
		pubs[i] = pub("c", "x", "")
	}
	for i := 0; i < 12; i++ {
		if _, err := a.Append(context.Background(), pubs); err != nil {
			t.Fatal(err)
		}
	}
	c := goredis.NewClient(&goredis.Options{Addr: testAddr()})
	defer c.Close()
	stream, _ := a.Keys()
	n, err := c.XLen(context.Background(), stream).Result()
	if err != nil || n != 10+readerSlack {
		t.Fatalf("stream length %d (%v), want %d", n, err, 10+readerSlack)
	}
}

// A Redis that lost the hub's keys starts a new epoch: old cursors are
// incomplete, the reader moves to the new epoch and delivers its events.
func TestEpochLost(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	a := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	b := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	ra, rb := startRecorder(t, a), startRecorder(t, b)
	old := appendOne(t, a, pub("c", "old", "")).Cursors[0]
	waitFor(t, "delivery", 5*time.Second, func() bool { return rb.count() == 1 })
	deleteKeys(testAddr(), prefix)
	c := appendOne(t, a, pub("c", "new", "")).Cursors[0]
	if c.Epoch == old.Epoch {
		t.Fatal("same epoch after the keys were lost")
	}
	waitFor(t, "new epoch delivered", 5*time.Second, func() bool { return ra.count() == 2 && rb.count() == 2 })
	for _, r := range []*recorder{ra, rb} {
		head, ev := r.snapshot()
		if head != c || ev[1].Cursor != c || ev[1].Type != "new" {
			t.Fatalf("after the epoch change: head %v, events %v", head, types(ev))
		}
	}
	if _, _, ok, _ := b.Range(context.Background(), old, c, 100, nil); ok {
		t.Fatal("an old-epoch cursor resumed as complete")
	}
	// The stream lost but the meta kept (partial eviction): new epoch too.
	stream, _ := a.Keys()
	cl := goredis.NewClient(&goredis.Options{Addr: testAddr()})
	defer cl.Close()
	cl.Del(context.Background(), stream)
	c2 := appendOne(t, b, pub("c", "newer", "")).Cursors[0]
	if c2.Epoch == c.Epoch {
		t.Fatal("same epoch after the stream was lost")
	}
	waitFor(t, "third epoch delivered", 5*time.Second, func() bool { return ra.count() == 3 && rb.count() == 3 })
}

// Close stops the reader and leaves no goroutine behind; no delivery after.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	before := runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		l, err := New(Config{Client: &goredis.Options{Addr: testAddr()}, Prefix: prefix, Hub: "g", Size: 10, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		r := &recorder{}
		if err := l.Start(r.deliver); err != nil {
			t.Fatal(err)
		}
		appendOne(t, l, pub("c", "x", ""))
		waitFor(t, "delivery", 5*time.Second, func() bool { return r.count() == 1 })
		start := time.Now()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Close took %v", d)
		}
		n := r.count()
		time.Sleep(50 * time.Millisecond)
		if r.count() != n {
			t.Fatal("delivery after Close")
		}
	}
	waitFor(t, "goroutines to end", 3*time.Second, func() bool { return runtime.NumGoroutine() <= before })
}

// Unreachable Redis: Start succeeds, Append fails within 2 s, Healthy is
// false and says why; a Range fails (so the resume is not claimed).
func TestRedisDown(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) // nothing listens there
	l := newTestLog(t, addr, "x:", 10, time.Hour)
	start := time.Now()
	r := startRecorder(t, l)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("Start took %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start = time.Now()
	if _, err := l.Append(ctx, []*hub.Publication{pub("c", "x", "")}); err == nil {
		t.Fatal("append to a Redis that is down succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("append failed after %v", d)
	}
	if up, msg := l.Healthy(); up || msg == "" {
		t.Fatalf("Healthy() = %v %q", up, msg)
	}
	head, _ := l.Head(context.Background())
	if _, err := hub.ParseCursor(head.String()); err != nil {
		t.Fatalf("head %q is not a usable cursor: %v", head, err)
	}
	if _, _, ok, _ := l.Range(context.Background(), hub.Cursor{Epoch: "abc", Pos: hub.Position{Hi: 1}}, head, 10, nil); ok {
		t.Fatal("Range with Redis down is complete")
	}
	if r.count() != 0 {
		t.Fatal("delivered something")
	}
	// A black hole (a listener that never answers) fails within 2 s too,
	// even when the caller sets no deadline.
	hole := newTestLog(t, blackHole(t), "x:", 10, time.Hour)
	startRecorder(t, hole)
	start = time.Now()
	if _, err := hole.Append(context.Background(), []*hub.Publication{pub("c", "x", "")}); err == nil {
		t.Fatal("append to a black hole succeeded")
	}
	if d := time.Since(start); d > 2100*time.Millisecond {
		t.Fatalf("append to a black hole failed after %v", d)
	}
}

// Sessions on two hubs sharing one stream: live cross-node delivery, and a
// client that leaves node A resumes on node B with exactly what it missed.
func TestHubResumeOnOtherNode(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	la := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	lb := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	ha := hub.New("test", la)
	if err := ha.Start(); err != nil {
		t.Fatal(err)
	}
	hb := hub.New("test", lb)
	if err := hb.Start(); err != nil {
		t.Fatal(err)
	}
	defer ha.Close(hub.DisconnectShutdown, 0, time.Second)
	defer hb.Close(hub.DisconnectShutdown, 0, time.Second)
	p := &hub.Policy{SendQueue: 256, MaxSubscriptions: 10}
	ca, cb := &fakeConn{}, &fakeConn{}
	sa, err := ha.Connect(ca, p, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"news"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hb.Connect(cb, p, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"news"}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		h := ha
		if i == 1 {
			h = hb
		}
		if _, err := h.Publish(ctx, []*hub.Publication{pub("news", fmt.Sprint("live", i), "")}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "live events on both nodes", 5*time.Second, func() bool { return len(ca.events()) == 3 && len(cb.events()) == 3 })
	if !reflect.DeepEqual(eventTypes(ca.events()), eventTypes(cb.events())) {
		t.Fatalf("orders differ: %v %v", eventTypes(ca.events()), eventTypes(cb.events()))
	}
	last := ca.events()[2]["cursor"].(string)
	sa.Finish()
	for i := 0; i < 4; i++ {
		if _, err := ha.Publish(ctx, []*hub.Publication{pub("news", fmt.Sprint("missed", i), ""), pub("other", "noise", "")}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "node B to read", 5*time.Second, func() bool { return len(cb.events()) == 7 })
	cr := &fakeConn{}
	if _, err := hb.Connect(cr, p, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"news"}, Since: last}); err != nil {
		t.Fatal(err)
	}
	if _, err := ha.Publish(ctx, []*hub.Publication{pub("news", "after", "")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "resumed events", 5*time.Second, func() bool { return len(cr.events()) == 5 })
	time.Sleep(100 * time.Millisecond)
	sub := cr.find("realtime:subscribed")
	if sub == nil || sub["recovered"] != true {
		t.Fatalf("subscribed frame %v", sub)
	}
	want := []string{"missed0", "missed1", "missed2", "missed3", "after"}
	if got := eventTypes(cr.events()); !reflect.DeepEqual(got, want) {
		t.Fatalf("resumed %v, want %v", got, want)
	}
	// An old-epoch or foreign cursor: recovered:false.
	cf := &fakeConn{}
	if _, err := hb.Connect(cf, p, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"news"}, Since: "zzzz-1-0"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscribed", 5*time.Second, func() bool { return cf.find("realtime:subscribed") != nil })
	if cf.find("realtime:subscribed")["recovered"] != false {
		t.Fatal("foreign cursor recovered")
	}
	// The welcome cursor is a usable since on the other node.
	welcome := cb.find("realtime:welcome")["cursor"].(string)
	cw := &fakeConn{}
	if _, err := ha.Connect(cw, p, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"news"}, Since: welcome}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replay from welcome cursor", 5*time.Second, func() bool { return len(cw.events()) == 8 })
	if cw.find("realtime:subscribed")["recovered"] != true {
		t.Fatal("welcome cursor not recovered")
	}
}

// A client resuming on a node whose reader is behind its cursor waits for
// the reader rather than being refused.
func TestResumeAheadOfReader(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	a := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	pr := newProxy(t, testAddr())
	b := newTestLog(t, pr.addr(), prefix, 100, time.Hour)
	startRecorder(t, a)
	rb := startRecorder(t, b)
	c0 := appendOne(t, a, pub("c", "0", "")).Cursors[0]
	waitFor(t, "b reads", 5*time.Second, func() bool { return rb.count() == 1 })
	pr.setCut(true)
	c1 := appendOne(t, a, pub("c", "1", "")).Cursors[0]
	c2 := appendOne(t, a, pub("c", "2", "")).Cursors[0]
	headB, _ := b.Head(context.Background())
	if headB != c0 {
		t.Fatalf("b head %v want %v", headB, c0)
	}
	pr.setCut(false)
	// The cursor c1 is ahead of b's head: nothing yet, but complete.
	ctx := context.Background()
	for deadline := time.Now().Add(5 * time.Second); ; {
		ev, next, ok, err := b.Range(ctx, c1, headB, 100, nil)
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("range ahead of the reader: still failing after 5 s: %v", err)
			}
			time.Sleep(20 * time.Millisecond) // the pool is reconnecting
			continue
		}
		if !ok {
			t.Fatalf("range ahead of the reader is incomplete")
		}
		if len(ev) > 0 {
			t.Fatalf("range returned %v beyond upTo", types(ev))
		}
		if next != c1 {
			t.Fatalf("next %v want %v", next, c1)
		}
		break
	}
	waitFor(t, "b catches up", 5*time.Second, func() bool { return rb.count() == 3 })
	ev, next, ok, err := b.Range(ctx, c1, c2, 100, nil)
	if err != nil || !ok || next != c2 || !reflect.DeepEqual(types(ev), []string{"2"}) {
		t.Fatalf("after catch-up: %v %v %v %v", types(ev), next, ok, err)
	}
}

// A node cut off from Redis while another keeps appending: its publishes
// fail fast, it reports down, and when the link is back it continues from
// its last position: every event once, in order.
func TestPartitionResume(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	pr := newProxy(t, testAddr())
	a := newTestLog(t, testAddr(), prefix, 100, time.Hour)
	b := newTestLog(t, pr.addr(), prefix, 100, time.Hour)
	ra, rb := startRecorder(t, a), startRecorder(t, b)
	var want []string
	add := func(typ string) {
		appendOne(t, a, pub("c", typ, ""))
		want = append(want, typ)
	}
	add("before")
	waitFor(t, "b reads", 5*time.Second, func() bool { return rb.count() == 1 })
	pr.setCut(true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	start := time.Now()
	_, err := b.Append(ctx, []*hub.Publication{pub("c", "lost", "")})
	cancel()
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("append through a cut link: %v after %v", err, time.Since(start))
	}
	for i := 0; i < 50; i++ {
		add(fmt.Sprint("during", i))
	}
	waitFor(t, "b reports down", 5*time.Second, func() bool { up, _ := b.Healthy(); return !up })
	pr.setCut(false)
	waitFor(t, "b catches up", 10*time.Second, func() bool { return rb.count() == len(want) })
	waitFor(t, "b reports up", 5*time.Second, func() bool { up, _ := b.Healthy(); return up })
	add("after")
	waitFor(t, "both deliver", 5*time.Second, func() bool { return ra.count() == len(want) && rb.count() == len(want) })
	time.Sleep(100 * time.Millisecond)
	_, ea := ra.snapshot()
	_, eb := rb.snapshot()
	if !reflect.DeepEqual(types(ea), want) || !reflect.DeepEqual(types(eb), want) {
		t.Fatalf("a=%v\nb=%v\nwant %v", types(ea), types(eb), want)
	}
	if b.Gaps() != 0 {
		t.Fatal("gap reported")
	}
}

// A node cut off while more events than the stream keeps were appended
// cannot deliver them: it reports the gap, and its hub closes its sessions
// with 1012 so that clients resume (and learn they missed events).
func TestPartitionGap(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	pr := newProxy(t, testAddr())
	a := newTestLog(t, testAddr(), prefix, 5, time.Hour)
	b := newTestLog(t, pr.addr(), prefix, 5, time.Hour)
	startRecorder(t, a)
	hb := hub.New("test", b)
	if err := hb.Start(); err != nil {
		t.Fatal(err)
	}
	defer hb.Close(hub.DisconnectShutdown, 0, time.Second)
	conn := &fakeConn{}
	if _, err := hb.Connect(conn, &hub.Policy{SendQueue: 4096}, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"c"}}); err != nil {
		t.Fatal(err)
	}
	appendOne(t, a, pub("c", "first", ""))
	waitFor(t, "b delivers", 5*time.Second, func() bool { return len(conn.events()) == 1 })
	pr.setCut(true)
	batch := make([]*hub.Publication, 100)
	for i := range batch {
		batch[i] = pub("c", "flood", "")
	}
	for i := 0; i < 11; i++ {
		if _, err := a.Append(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	pr.setCut(false)
	waitFor(t, "gap reported", 10*time.Second, func() bool { return b.Gaps() == 1 })
	waitFor(t, "session closed with 1012", 5*time.Second, func() bool { return conn.closeCode() == hub.DisconnectGap.Code })
}

// The fan-out order is the same as the append order under concurrency:
// every node sees the same sequence and every publisher's events in its
// own order.
func TestConcurrentAppends(t *testing.T) {
	needRedis(t)
	prefix := uniquePrefix(t, testAddr())
	a := newTestLog(t, testAddr(), prefix, 1000, time.Hour)
	b := newTestLog(t, testAddr(), prefix, 1000, time.Hour)
	ra, rb := startRecorder(t, a), startRecorder(t, b)
	const per = 100
	done := make(chan error, 4)
	for w := 0; w < 4; w++ {
		go func(w int) {
			l := a
			if w%2 == 1 {
				l = b
			}
			for i := 0; i < per; i++ {
				if _, err := l.Append(context.Background(), []*hub.Publication{pub("c", fmt.Sprintf("w%d-%03d", w, i), "")}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}(w)
	}
	for i := 0; i < 4; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all delivered", 10*time.Second, func() bool { return ra.count() == 4*per && rb.count() == 4*per })
	_, ea := ra.snapshot()
	_, eb := rb.snapshot()
	if !reflect.DeepEqual(types(ea), types(eb)) {
		t.Fatal("nodes delivered different orders")
	}
	for w := 0; w < 4; w++ {
		var mine []string
		for _, typ := range types(ea) {
			if typ[:2] == fmt.Sprintf("w%d", w) {
				mine = append(mine, typ)
			}
		}
		if len(mine) != per || !slices.IsSorted(mine) {
			t.Fatalf("publisher %d: %d events, sorted=%v", w, len(mine), slices.IsSorted(mine))
		}
	}
	for i := 1; i < len(ea); i++ {
		if !ea[i-1].Cursor.Pos.Less(ea[i].Cursor.Pos) {
			t.Fatal("cursors not increasing")
		}
	}
}
