package hub

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeConn is a Transport that decodes the frames the hub writes, like a
// client would. It can be made to block, to play a slow consumer.
type fakeConn struct {
	mu      sync.Mutex
	frames  []decoded
	closed  bool
	gate    chan struct{} // when non-nil, writes wait for it to close
	changed chan struct{}
	s       *Session
}

type decoded struct {
	op   byte
	data []byte
}

func newFakeConn() *fakeConn { return &fakeConn{changed: make(chan struct{}, 1)} }

func (c *fakeConn) WriteFrames(frames [][]byte) error {
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
	for _, f := range frames {
		c.frames = append(c.frames, decodeFrame(f))
	}
	c.notify()
	return nil
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

func decodeFrame(f []byte) decoded {
	op := f[0] & 0x0f
	n := int(f[1] & 0x7f)
	p := f[2:]
	switch n {
	case 126:
		n = int(binary.BigEndian.Uint16(p))
		p = p[2:]
	case 127:
		n = int(binary.BigEndian.Uint64(p))
		p = p[8:]
	}
	if len(p) != n {
		panic(fmt.Sprintf("frame length %d, payload %d", n, len(p)))
	}
	return decoded{op: op, data: p}
}

// msgs returns the JSON text frames received so far.
func (c *fakeConn) msgs() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, f := range c.frames {
		if f.op != opText {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(f.data, &m); err != nil {
			panic(err)
		}
		out = append(out, m)
	}
	return out
}

// events returns the non-control messages.
func (c *fakeConn) events() []map[string]any {
	var out []map[string]any
	for _, m := range c.msgs() {
		if !IsControlType(m["type"].(string)) {
			out = append(out, m)
		}
	}
	return out
}

// closeCode returns the code of the close frame received, or 0.
func (c *fakeConn) closeCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.frames {
		if f.op == opClose {
			return int(binary.BigEndian.Uint16(f.data))
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
	h, err := New("test", l, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h, l
}

func connect(t testing.TB, h *Hub, p *Policy, o ConnectOptions) (*Session, *fakeConn) {
	t.Helper()
	c := newFakeConn()
	s, err := h.Admit(p, o.IP)
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

// lastMsg returns the last text message received, or nil.
func lastMsg(c *fakeConn) map[string]any {
	ms := c.msgs()
	if len(ms) == 0 {
		return nil
	}
	return ms[len(ms)-1]
}
