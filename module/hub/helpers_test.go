package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testCodec is the engine tests' wire format: one JSON object per message,
// each ending in a newline, shaped like the module's own protocol, so that
// the tests read like a client's view without any framing.
type testCodec struct{}

var testFormat = NewFormat()

func (testCodec) Format() Format { return testFormat }

func (testCodec) Event(e *Event) []byte { return append(append([]byte(nil), e.Data()...), '\n') }

func (testCodec) Welcome(w Welcome) []byte {
	return line(map[string]any{"type": "realtime:welcome", "connection_id": w.ConnectionID, "cursor": w.Cursor.String()})
}

func (testCodec) Subscribed(ch string, r Recovery) []byte {
	m := map[string]any{"type": "realtime:subscribed", "channel": ch}
	if r != NoResume {
		m["recovered"] = r == Recovered
	}
	return line(m)
}

func (testCodec) Unsubscribed(ch string) []byte {
	return line(map[string]any{"type": "realtime:unsubscribed", "channel": ch})
}

func (testCodec) Error(e ErrorMessage) []byte {
	return line(map[string]any{"type": "realtime:error", "code": e.Code, "message": e.Message, "channel": e.Channel})
}

func (testCodec) Pong() []byte      { return line(map[string]any{"type": "realtime:pong"}) }
func (testCodec) KeepAlive() []byte { return nil }

func (testCodec) Close(d Disconnect) []byte {
	return line(map[string]any{"type": "close", "code": d.Code, "reason": d.Reason})
}

func (testCodec) Presence(ch string, p PresenceSnapshot) []byte {
	return line(map[string]any{"type": "realtime:presence", "channel": ch, "count": p.Count, "members": p.Members})
}

func (testCodec) MemberAdded(ch string, m Member, count int) []byte {
	return line(map[string]any{"type": "realtime:member_added", "channel": ch, "member": m, "count": count})
}

func (testCodec) MemberRemoved(ch string, m Member, count int) []byte {
	return line(map[string]any{"type": "realtime:member_removed", "channel": ch, "member": m, "count": count})
}

func (testCodec) PresenceCount(ch string, count int) []byte {
	return line(map[string]any{"type": "realtime:presence_count", "channel": ch, "count": count})
}

func line(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// fakeConn is the engine tests' Transport: it decodes what the hub writes,
// like a client would. It can be made to block, to play a slow reader.
type fakeConn struct {
	mu      sync.Mutex
	msgs_   []map[string]any
	closed  bool
	gate    chan struct{} // when non-nil, writes wait for it to close
	changed chan struct{}
	s       *Session
}

func newFakeConn() *fakeConn { return &fakeConn{changed: make(chan struct{}, 1)} }

func (c *fakeConn) Write(msgs [][]byte) error {
	c.mu.Lock()
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		<-gate
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("closed")
	}
	for _, m := range msgs {
		c.msgs_ = append(c.msgs_, decodeLines(m)...)
	}
	c.notify()
	return nil
}

// decodeLines decodes newline-ended JSON messages.
func decodeLines(b []byte) []map[string]any {
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			panic(fmt.Sprintf("%v: %q", err, l))
		}
		out = append(out, m)
	}
	return out
}

func (c *fakeConn) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	s := c.s
	c.notify()
	c.mu.Unlock()
	if !already && s != nil {
		// The transport's reader would now fail and finish the session.
		go s.Finish()
	}
	return nil
}

// msgs returns the messages received so far.
func (c *fakeConn) msgs() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.msgs_...)
}

// events returns the messages that are events.
func (c *fakeConn) events() []map[string]any {
	var out []map[string]any
	for _, m := range c.msgs() {
		if t := m["type"].(string); t != "close" && !IsControlType(t) {
			out = append(out, m)
		}
	}
	return out
}

// closeCode returns the code of the close message received, or 0.
func (c *fakeConn) closeCode() int {
	for _, m := range c.msgs() {
		if m["type"] == "close" {
			return int(m["code"].(float64))
		}
	}
	return 0
}

// waitFor polls cond until it holds or the test's patience runs out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func testPolicy() *Policy {
	return &Policy{DefaultChannels: []string{"default"}, SendQueue: 256, MaxSubscriptions: 100}
}

func newTestHub(t testing.TB, size int) (*Hub, *MemoryLog) {
	t.Helper()
	l := NewMemoryLog(size, time.Hour)
	h := New("test", l)
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	return h, l
}

func connect(t testing.TB, h *Hub, p *Policy, o ConnectOptions) (*Session, *fakeConn) {
	t.Helper()
	return connectFrom(t, h, p, "", o)
}

func connectFrom(t testing.TB, h *Hub, p *Policy, ip string, o ConnectOptions) (*Session, *fakeConn) {
	t.Helper()
	c := newFakeConn()
	s, err := h.Admit(p, testCodec{}, ip)
	if err != nil {
		t.Fatal(err)
	}
	c.s = s
	s.Start(c, o)
	return s, c
}

func publish(t testing.TB, h *Hub, channel, typ string, payload string) Appended {
	t.Helper()
	p := &Publication{Channels: []string{channel}, Type: typ}
	if payload != "" {
		p.Payload = json.RawMessage(payload)
	}
	res, err := h.Publish(context.Background(), []*Publication{p})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func cursorsOf(ms []map[string]any) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m["cursor"].(string)
	}
	return out
}

// lastMsg returns the last message received, or nil.
func lastMsg(c *fakeConn) map[string]any {
	ms := c.msgs()
	if len(ms) == 0 {
		return nil
	}
	return ms[len(ms)-1]
}

var _ Codec = testCodec{}
