package redis

import (
	"context"
	"fmt"
	"github.com/wprealtime/caddy-realtime/test/testenv"
	"reflect"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/rtproto"
)

// A node started while Redis is down starts, hands out usable cursors, and
// catches up with what was appended after it started once Redis is there.
func TestFaultNodeStartsWhileRedisDown(t *testing.T) {
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	a := newTestLog(t, addr, "fault:", 100, time.Hour)
	h := hub.New("test", a)
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	defer h.Close(hub.DisconnectShutdown, 0, time.Second)
	if up, _ := a.Healthy(); up {
		t.Fatal("healthy without Redis")
	}
	conn := &fakeConn{}
	if _, err := h.Connect(conn, &hub.Policy{SendQueue: 256}, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"c"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "welcome", 5*time.Second, func() bool { return conn.find("realtime:welcome") != nil })
	w := conn.find("realtime:welcome")
	if _, err := hub.ParseCursor(w["cursor"].(string)); err != nil {
		t.Fatalf("welcome cursor %v unusable: %v", w["cursor"], err)
	}
	srv := startServer(t, port)
	b := newTestLog(t, srv.Addr(), "fault:", 100, time.Hour)
	startRecorder(t, b)
	appendOne(t, b, pub("c", "one", ""))
	appendOne(t, b, pub("c", "two", ""))
	waitFor(t, "the late node to catch up", 10*time.Second, func() bool { return len(conn.events()) == 2 })
	if got := eventTypes(conn.events()); !reflect.DeepEqual(got, []string{"one", "two"}) {
		t.Fatalf("got %v", got)
	}
	waitFor(t, "healthy", 5*time.Second, func() bool { up, _ := a.Healthy(); return up })
	// The cursor handed out before Redis was reached cannot be proved
	// complete: recovered:false, not a guess.
	c2 := &fakeConn{}
	if _, err := h.Connect(c2, &hub.Policy{SendQueue: 256}, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"c"}, Since: w["cursor"].(string)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscribed", 5*time.Second, func() bool { return c2.find("realtime:subscribed") != nil })
	if c2.find("realtime:subscribed")["recovered"] != false {
		t.Fatal("placeholder cursor recovered")
	}
}

// Redis killed (SIGKILL) while two nodes have clients and publishers keep
// going, then restarted empty (no persistence): publishes fail fast while it is down, clients
// stay connected, every accepted event reaches every client exactly once and
// in the same order, no refused one reaches anybody, and a cursor of the
// lost epoch resumes with recovered:false.
func TestFaultRedisKilledAndRestartedEmpty(t *testing.T) {
	srv := startServer(t, 0)
	la := newTestLog(t, srv.Addr(), "fault:", 1000, time.Hour)
	lb := newTestLog(t, srv.Addr(), "fault:", 1000, time.Hour)
	ha := hub.New("test", la)
	if err := ha.Start(); err != nil {
		t.Fatal(err)
	}
	defer ha.Close(hub.DisconnectShutdown, 0, time.Second)
	hb := hub.New("test", lb)
	if err := hb.Start(); err != nil {
		t.Fatal(err)
	}
	defer hb.Close(hub.DisconnectShutdown, 0, time.Second)
	p := &hub.Policy{SendQueue: 4096}
	var conns []*fakeConn
	for _, h := range []*hub.Hub{ha, hb, ha, hb} {
		c := &fakeConn{}
		if _, err := h.Connect(c, p, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"c"}}); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	accepted := map[string]bool{}
	refused := map[string]bool{}
	var oldCursor string
	publish := func(h *hub.Hub, typ string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		out, err := h.Publish(ctx, []*hub.Publication{pub("c", typ, "")})
		if d := time.Since(start); d > 2100*time.Millisecond {
			t.Fatalf("publish %s took %v", typ, d)
		}
		if err != nil {
			refused[typ] = true
			return
		}
		accepted[typ] = true
		if oldCursor == "" {
			oldCursor = out[0].Cursors[0].String()
		}
	}
	n := 0
	next := func() {
		h := ha
		if n%2 == 1 {
			h = hb
		}
		publish(h, fmt.Sprintf("e%03d", n))
		n++
	}
	for i := 0; i < 20; i++ {
		next()
	}
	// Redis is killed once both nodes have read what it accepted: an entry
	// accepted in the very moment Redis dies without persistence can be
	// lost to a node that had not read it yet (see the README).
	waitFor(t, "both nodes to read everything", 5*time.Second, func() bool {
		for _, c := range conns {
			if len(c.events()) < 20 {
				return false
			}
		}
		return true
	})
	srv.Kill()
	for i := 0; i < 6; i++ {
		next()
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "both nodes down", 5*time.Second, func() bool {
		upA, _ := la.Healthy()
		upB, _ := lb.Healthy()
		return !upA && !upB
	})
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for len(accepted) < 40 && time.Now().Before(deadline) {
		next()
		time.Sleep(10 * time.Millisecond)
	}
	if len(refused) < 6 {
		t.Fatalf("only %d publishes refused while Redis was down", len(refused))
	}
	if len(accepted) < 40 {
		t.Fatalf("only %d publishes accepted", len(accepted))
	}
	defer func() {
		if t.Failed() {
			for i, c := range conns {
				t.Logf("client %d: %v", i, eventTypes(c.events()))
			}
			t.Logf("accepted %v refused %v", accepted, refused)
			ha2, _ := la.Head(context.Background())
			hb2, _ := lb.Head(context.Background())
			t.Logf("heads %v %v", ha2, hb2)
		}
	}()
	waitFor(t, "every accepted event on every client", 10*time.Second, func() bool {
		for _, c := range conns {
			if len(c.events()) < len(accepted) {
				return false
			}
		}
		return true
	})
	time.Sleep(200 * time.Millisecond)
	first := eventTypes(conns[0].events())
	for i, c := range conns {
		got := eventTypes(c.events())
		if !reflect.DeepEqual(got, first) {
			t.Fatalf("client %d order differs:\n%v\n%v", i, got, first)
		}
		seen := map[string]bool{}
		for _, typ := range got {
			if seen[typ] || !accepted[typ] || refused[typ] {
				t.Fatalf("client %d: %s delivered twice, or not accepted", i, typ)
			}
			seen[typ] = true
		}
		if len(seen) != len(accepted) {
			t.Fatalf("client %d got %d events, %d accepted", i, len(seen), len(accepted))
		}
		if c.closeCode() != 0 {
			t.Fatalf("client %d closed with %d", i, c.closeCode())
		}
	}
	// A cursor of the lost epoch resumes with recovered:false.
	c := &fakeConn{}
	if _, err := hb.Connect(c, p, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"c"}, Since: oldCursor}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscribed", 5*time.Second, func() bool { return c.find("realtime:subscribed") != nil })
	if c.find("realtime:subscribed")["recovered"] != false {
		t.Fatal("old-epoch cursor recovered")
	}
	// A cursor of the new epoch resumes on the other node.
	evs := conns[0].events()
	mid := evs[len(evs)-3]["cursor"].(string)
	c = &fakeConn{}
	if _, err := ha.Connect(c, p, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"c"}, Since: mid}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replay", 5*time.Second, func() bool { return len(c.events()) == 2 })
	if c.find("realtime:subscribed")["recovered"] != true {
		t.Fatal("new-epoch cursor not recovered")
	}
}
