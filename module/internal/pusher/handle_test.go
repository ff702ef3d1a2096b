package pusher

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/rtproto"
	"github.com/wprealtime/caddy-realtime/module/internal/wsframe"
)

// conn is a hub.Transport that keeps the frames written.
type conn struct {
	mu     sync.Mutex
	frames [][]byte
}

func (c *conn) Write(msgs [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		c.frames = append(c.frames, append([]byte(nil), m...))
	}
	return nil
}

func (c *conn) Close() error { return nil }

// messages decodes the text frames written so far.
func (c *conn) messages(t testing.TB) []map[string]any {
	c.mu.Lock()
	frames := append([][]byte(nil), c.frames...)
	c.mu.Unlock()
	var out []map[string]any
	for _, f := range frames {
		if op, _ := unframe(t, f); op != wsframe.OpText {
			continue
		}
		out = append(out, decode(t, f))
	}
	return out
}

// waitFor polls until match finds a message, and returns it.
func (c *conn) waitFor(t testing.TB, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, m := range c.messages(t) {
			if match(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in %v", what, c.messages(t))
		}
		time.Sleep(time.Millisecond)
	}
}

// count counts the messages that match.
func (c *conn) count(t testing.TB, match func(map[string]any) bool) int {
	n := 0
	for _, m := range c.messages(t) {
		if match(m) {
			n++
		}
	}
	return n
}

func isEvent(ev, channel string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["event"] == ev && (channel == "" || m["channel"] == channel) }
}

func errorCode(code float64) func(map[string]any) bool {
	return func(m map[string]any) bool {
		d, _ := m["data"].(map[string]any)
		return m["event"] == "pusher:error" && d["code"] == code
	}
}

// client is one Pusher session of a test hub.
type client struct {
	t *testing.T
	s *hub.Session
	c *conn
	p *Conn
}

const (
	testKey    = "app-key"
	testSecret = "app-secret"
)

func newEndpoint(clientEvents bool, rate int) *Endpoint {
	return &Endpoint{
		Policy:          &hub.Policy{SendQueue: 1024, Private: []string{"presence-*", "user.*"}, Tokens: Authorizer{Key: testKey, Secret: []byte(testSecret)}},
		ClientEvents:    clientEvents,
		ClientEventRate: rate,
	}
}

func newHub(t *testing.T) *hub.Hub {
	h := hub.New("t", hub.NewMemoryLog(100, time.Hour))
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(hub.DisconnectShutdown, 0, 10*time.Millisecond) })
	return h
}

func connect(t *testing.T, h *hub.Hub, e *Endpoint) *client {
	c := &conn{}
	s, err := h.Connect(c, e.Policy, Codec{ActivityTimeout: time.Minute}, "", hub.ConnectOptions{Channels: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{t: t, s: s, c: c, p: e.NewConn()}
	cl.c.waitFor(t, "welcome", isEvent("pusher:connection_established", ""))
	return cl
}

func (cl *client) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.p.Handle(cl.s, b)
}

func (cl *client) subscribe(channel string, auth bool) {
	data := map[string]any{"channel": channel, "auth": ""}
	if auth {
		data["auth"] = SignChannel(testKey, []byte(testSecret), cl.s.ID(), channel, "")
	}
	cl.send(map[string]any{"event": "pusher:subscribe", "data": data})
}

func (cl *client) subscribed(channel string) {
	cl.t.Helper()
	cl.c.waitFor(cl.t, "subscription_succeeded on "+channel, isEvent("pusher_internal:subscription_succeeded", channel))
}

// sync sends a ping and waits for its pong: everything sent before has
// been handled.
func (cl *client) sync() {
	cl.t.Helper()
	n := cl.c.count(cl.t, isEvent("pusher:pong", ""))
	cl.send(map[string]any{"event": "pusher:ping", "data": map[string]any{}})
	deadline := time.Now().Add(5 * time.Second)
	for cl.c.count(cl.t, isEvent("pusher:pong", "")) == n {
		if time.Now().After(deadline) {
			cl.t.Fatal("no pong")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWelcomeIsFirstAndCarriesTheSocketID(t *testing.T) {
	h := newHub(t)
	cl := connect(t, h, newEndpoint(false, 10))
	m := cl.c.messages(t)[0]
	var data map[string]any
	if err := json.Unmarshal([]byte(m["data"].(string)), &data); err != nil {
		t.Fatal(err)
	}
	if data["socket_id"] != cl.s.ID() || !ValidSocketID(cl.s.ID()) || data["activity_timeout"] != float64(60) {
		t.Fatalf("welcome %v", data)
	}
}

func TestSubscriptions(t *testing.T) {
	h := newHub(t)
	cl := connect(t, h, newEndpoint(false, 10))
	cl.subscribe("public", false)
	cl.subscribed("public")
	cl.subscribe("private-a", true)
	cl.subscribed("private-a")
	cl.subscribe("private-encrypted-a", true)
	cl.subscribed("private-encrypted-a")

	// A wrong signature, a missing one, and one for another socket are
	// refused with AuthError, and the connection stays.
	cl.subscribe("private-b", false)
	cl.send(map[string]any{"event": "pusher:subscribe", "data": map[string]any{"channel": "private-c", "auth": SignChannel(testKey, []byte(testSecret), "1.1", "private-c", "")}})
	cl.send(map[string]any{"event": "pusher:subscribe", "data": map[string]any{"channel": "private-d", "auth": SignChannel(testKey, []byte("other"), cl.s.ID(), "private-d", "")}})
	// An extra private pattern needs a signature too, although pusher-js
	// takes the channel for public.
	cl.subscribe("user.1", false)
	for _, ch := range []string{"private-b", "private-c", "private-d", "user.1"} {
		m := cl.c.waitFor(t, "subscription_error on "+ch, isEvent("pusher:subscription_error", ch))
		if d := m["data"].(map[string]any); d["type"] != "AuthError" || d["status"] != float64(401) {
			t.Errorf("%s: %v", ch, m)
		}
	}
	cl.subscribe("user.2", true)
	cl.subscribed("user.2")
	cl.subscribe("bad name", false)
	cl.c.waitFor(t, "subscription_error on a bad name", isEvent("pusher:subscription_error", "bad name"))
	// Presence needs a signature over the member, and member data that
	// names a user.
	cl.send(map[string]any{"event": "pusher:subscribe", "data": map[string]any{"channel": "presence-x", "auth": "k:s", "channel_data": `{"user_id":"1"}`}})
	cl.send(map[string]any{"event": "pusher:subscribe", "data": map[string]any{"channel": "presence-y", "auth": "k:s", "channel_data": "{}"}})
	for ch, want := range map[string]string{"presence-x": "AuthError 401", "presence-y": "BadRequest 400"} {
		m := cl.c.waitFor(t, "subscription_error on "+ch, isEvent("pusher:subscription_error", ch))
		if d := m["data"].(map[string]any); fmt.Sprint(d["type"], " ", d["status"]) != want {
			t.Errorf("%s: %v, want %s", ch, m, want)
		}
	}
	// Bad messages get pusher:error and change nothing.
	for _, bad := range []string{`nope`, `{}`, `{"event":"pusher:subscribe","data":5}`, `{"event":"what"}`, `{"event":"pusher:signin","data":{}}`} {
		cl.p.Handle(cl.s, []byte(bad))
	}
	cl.sync()
	if n := cl.c.count(t, isEvent("pusher:error", "")); n != 5 {
		t.Fatalf("%d pusher:error frames, want 5", n)
	}
	// Subscribing again is acknowledged again (pusher-js does it after a
	// reconnect); unsubscribing is not acknowledged, and stops events.
	cl.subscribe("public", false)
	cl.c.waitFor(t, "second acknowledgement", func(map[string]any) bool {
		return cl.c.count(t, isEvent("pusher_internal:subscription_succeeded", "public")) == 2
	})
	cl.send(map[string]any{"event": "pusher:unsubscribe", "data": map[string]any{"channel": "public"}})
	cl.sync()
	publish(t, h, &hub.Publication{Channels: []string{"public", "private-a"}, Type: "after", Payload: json.RawMessage(`1`)})
	cl.c.waitFor(t, "event on private-a", isEvent("after", "private-a"))
	if cl.c.count(t, isEvent("after", "public")) != 0 {
		t.Fatal("event after unsubscribe")
	}
	if cl.s.Closing() {
		t.Fatal("connection closed")
	}
}

// grantAll is a token verifier that grants every channel.
type grantAll struct{}

func (grantAll) Verify(string) (*hub.Grant, error) {
	return &hub.Grant{Channels: []string{"*"}, Expires: time.Now().Add(time.Hour)}, nil
}

func publish(t *testing.T, h *hub.Hub, p *hub.Publication) {
	t.Helper()
	if _, err := h.Publish(context.Background(), []*hub.Publication{p}); err != nil {
		t.Fatal(err)
	}
}

func TestClientEvents(t *testing.T) {
	h := newHub(t)
	e := newEndpoint(true, 10)
	a, b := connect(t, h, e), connect(t, h, e)
	// A subscriber of the module's own protocol on the same hub.
	own := &conn{}
	if _, err := h.Connect(own, &hub.Policy{SendQueue: 64, Tokens: grantAll{}}, rtproto.WebSocket{}, "", hub.ConnectOptions{Channels: []string{"private-room"}, Token: "t"}); err != nil {
		t.Fatal(err)
	}
	own.waitFor(t, "realtime:subscribed", func(m map[string]any) bool { return m["type"] == "realtime:subscribed" })
	for _, cl := range []*client{a, b} {
		cl.subscribe("private-room", true)
		cl.subscribed("private-room")
	}
	a.send(map[string]any{"event": "client-typing", "channel": "private-room", "data": map[string]any{"who": "A"}})
	m := b.c.waitFor(t, "client event", isEvent("client-typing", "private-room"))
	if m["data"] != `{"who":"A"}` {
		t.Fatalf("client event %v", m)
	}
	if _, ok := m["user_id"]; ok {
		t.Fatal("user_id on a private channel")
	}
	o := own.waitFor(t, "client event on the own protocol", func(m map[string]any) bool { return m["type"] == "client-typing" })
	if p, _ := o["payload"].(map[string]any); p["who"] != "A" {
		t.Fatalf("own protocol got %v", o)
	}
	a.sync()
	if a.c.count(t, isEvent("client-typing", "")) != 0 {
		t.Fatal("client event echoed to its sender")
	}

	// Refusals: each a 4301 pusher:error, none delivered, none closing.
	a.subscribe("public", false)
	a.subscribed("public")
	a.send(map[string]any{"event": "client-x", "channel": "public", "data": 1})
	a.send(map[string]any{"event": "client-x", "channel": "private-other", "data": 1})
	a.send(map[string]any{"event": "client-x", "channel": "private-encrypted-x", "data": 1})
	a.send(map[string]any{"event": "client-x", "channel": "private-room", "data": strings.Repeat("x", MaxDataSize)})
	a.send(map[string]any{"event": "client-" + strings.Repeat("x", 200), "channel": "private-room", "data": 1})
	a.sync()
	if n := a.c.count(t, errorCode(4301)); n != 5 {
		t.Fatalf("%d 4301 errors, want 5: %v", n, a.c.messages(t))
	}
	b.sync()
	if n := b.c.count(t, func(m map[string]any) bool { return strings.HasPrefix(m["event"].(string), "client-") }); n != 1 {
		t.Fatalf("b got %d client events, want 1", n)
	}

	// Client events off: refused.
	off := connect(t, h, newEndpoint(false, 10))
	off.subscribe("private-room", true)
	off.subscribed("private-room")
	off.send(map[string]any{"event": "client-x", "channel": "private-room", "data": 1})
	off.sync()
	if off.c.count(t, errorCode(4301)) != 1 {
		t.Fatal("client event accepted with client events off")
	}
}

// A burst over the rate is cut at the rate: the excess is dropped with a
// 4301 each, the connection stays, and the others get exactly what
// passed.
func TestClientEventRateLimit(t *testing.T) {
	h := newHub(t)
	e := newEndpoint(true, 10)
	a, b := connect(t, h, e), connect(t, h, e)
	for _, cl := range []*client{a, b} {
		cl.subscribe("private-room", true)
		cl.subscribed("private-room")
	}
	for i := range 50 {
		a.send(map[string]any{"event": "client-n", "channel": "private-room", "data": i})
	}
	a.sync()
	rejected := a.c.count(t, errorCode(4301))
	passed := 50 - rejected
	// At 10 a second with a burst of 10, a burst of 50 passes 10 plus
	// however many the clock allowed meanwhile.
	if passed < 10 || rejected == 0 {
		t.Fatalf("%d passed, %d rejected", passed, rejected)
	}
	b.c.waitFor(t, "the events that passed", func(map[string]any) bool {
		return b.c.count(t, isEvent("client-n", "private-room")) == passed
	})
	if a.s.Closing() {
		t.Fatal("rate limit closed the connection")
	}
}

func TestRateLimiter(t *testing.T) {
	c := (&Endpoint{ClientEventRate: 10}).NewConn()
	now := time.Now().UnixNano()
	n := 0
	for range 100 {
		if c.allow(now) {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("burst of %d at once, want 10", n)
	}
	// A second later, another 10.
	now += int64(time.Second)
	n = 0
	for range 100 {
		if c.allow(now) {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("%d after a second, want 10", n)
	}
	// Steady at the rate: every event passes.
	for i := range 100 {
		now += int64(100 * time.Millisecond)
		if !c.allow(now) {
			t.Fatalf("event %d at the rate refused", i)
		}
	}
}

// socket_id exclusion (Laravel Echo's toOthers()) skips one connection,
// live and in replay.
func TestExclude(t *testing.T) {
	h := newHub(t)
	e := newEndpoint(false, 10)
	a, b := connect(t, h, e), connect(t, h, e)
	for _, cl := range []*client{a, b} {
		cl.subscribe("orders", false)
		cl.subscribed("orders")
	}
	publish(t, h, &hub.Publication{Channels: []string{"orders"}, Type: `App\Events\OrderShipped`, Payload: DataPayload(`{"id":7}`), Exclude: a.s.ID()})
	publish(t, h, &hub.Publication{Channels: []string{"orders"}, Type: "marker", Payload: DataPayload("x")})
	m := b.c.waitFor(t, "the event", isEvent(`App\Events\OrderShipped`, "orders"))
	if m["data"] != `{"id":7}` {
		t.Fatalf("data %v", m["data"])
	}
	a.c.waitFor(t, "marker", isEvent("marker", "orders"))
	if a.c.count(t, isEvent(`App\Events\OrderShipped`, "")) != 0 {
		t.Fatal("the excluded socket got the event")
	}
}

func TestCloseOnShutdownIs4200(t *testing.T) {
	h := hub.New("t", hub.NewMemoryLog(10, time.Hour))
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	cl := connect(t, h, newEndpoint(false, 10))
	h.Close(hub.DisconnectShutdown, 0, time.Second)
	cl.c.mu.Lock()
	last := cl.c.frames[len(cl.c.frames)-1]
	cl.c.mu.Unlock()
	op, p := unframe(t, last)
	if op != wsframe.OpClose || fmt.Sprint(int(p[0])<<8|int(p[1])) != "4200" {
		t.Fatalf("last frame %q", last)
	}
}
