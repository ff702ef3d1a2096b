package process_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// frame is any server frame: control frames and events.
type frame struct {
	Type      string          `json:"type"`
	Channel   string          `json:"channel"`
	Cursor    string          `json:"cursor"`
	Recovered *bool           `json:"recovered"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	ID        string          `json:"id"`
	Payload   json.RawMessage `json:"payload"`

	n  int // payload.n of a tick event, -1 otherwise
	at time.Time
}

func (f frame) isEvent() bool { return !strings.HasPrefix(f.Type, "realtime:") }

func parseFrame(b []byte) (frame, error) {
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("bad frame %.200q: %v", b, err)
	}
	f.n = -1
	if f.Type == "tick" {
		var tk tick
		if err := json.Unmarshal(f.Payload, &tk); err == nil {
			f.n = tk.N
		}
	}
	f.at = time.Now()
	return f, nil
}

// dialOpts change how a client connects.
type dialOpts struct {
	origin string
	rcvBuf int  // SO_RCVBUF of the client socket, 0 for the default
	noRead bool // do not start the reader goroutine
}

// client is a WebSocket client that records every frame it reads and how
// its connection ended.
type client struct {
	name string
	conn *websocket.Conn

	mu        sync.Mutex
	frames    []frame
	readErr   error
	closeCode int // close code received; 1006 for a dropped socket; -1 other error
	closeText string
	closedAt  time.Time
	ours      bool // we closed it
	done      chan struct{}
	started   bool
}

// dialWS connects; on a refused handshake it returns the HTTP response.
func dialWS(url string, o dialOpts) (*client, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if o.rcvBuf > 0 {
		nd := net.Dialer{Control: rcvBufControl(o.rcvBuf)}
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nd.DialContext(ctx, network, addr)
		}
	}
	h := http.Header{}
	if o.origin != "" {
		h.Set("Origin", o.origin)
	}
	conn, resp, err := d.Dial(url, h)
	if err != nil {
		return nil, resp, err
	}
	c := &client{name: url, conn: conn, done: make(chan struct{})}
	if !o.noRead {
		c.startReader()
	}
	return c, resp, nil
}

// mustDial connects or fails the test.
func mustDial(t *testing.T, url string, o dialOpts) *client {
	t.Helper()
	c, resp, err := dialWS(url, o)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("dial %s: %v %s", url, err, status)
	}
	t.Cleanup(func() { c.close() })
	return c
}

// startReader reads frames until the connection ends.
func (c *client) startReader() {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return
	}
	c.started = true
	c.mu.Unlock()
	go func() {
		defer close(c.done)
		for {
			_, b, err := c.conn.ReadMessage()
			if err != nil {
				c.finish(err)
				return
			}
			f, perr := parseFrame(b)
			c.mu.Lock()
			if perr != nil {
				c.readErr = perr
			}
			c.frames = append(c.frames, f)
			c.mu.Unlock()
		}
	}()
}

func (c *client) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closedAt = time.Now()
	if c.readErr == nil {
		c.readErr = err
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		c.closeCode, c.closeText = ce.Code, ce.Text
	} else {
		c.closeCode = -1
		c.closeText = err.Error()
	}
}

// readOne reads one frame synchronously (reader goroutine not started).
func (c *client) readOne(timeout time.Duration) (frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.conn.SetReadDeadline(time.Time{})
	_, b, err := c.conn.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	f, err := parseFrame(b)
	if err != nil {
		return f, err
	}
	c.mu.Lock()
	c.frames = append(c.frames, f)
	c.mu.Unlock()
	return f, nil
}

// close ends the connection from our side, politely.
func (c *client) close() {
	c.mu.Lock()
	c.ours = true
	c.mu.Unlock()
	_ = c.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = c.conn.Close()
}

// drop closes the socket with no close frame.
func (c *client) drop() {
	c.mu.Lock()
	c.ours = true
	c.mu.Unlock()
	_ = c.conn.Close()
}

func (c *client) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *client) snapshot() []frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]frame(nil), c.frames...)
}

func (c *client) events() []frame {
	var out []frame
	for _, f := range c.snapshot() {
		if f.isEvent() {
			out = append(out, f)
		}
	}
	return out
}

// ended returns how the connection ended (code, text, when); ok is false
// while it is open.
func (c *client) ended() (code int, text string, at time.Time, ok bool) {
	if !c.isDone() {
		return 0, "", time.Time{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode, c.closeText, c.closedAt, true
}

// waitFor polls until cond holds for the frames so far, or the connection
// ends, or timeout passes.
func (c *client) waitFor(timeout time.Duration, cond func([]frame) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond(c.snapshot()) {
			return true
		}
		if c.isDone() {
			return cond(c.snapshot())
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEvents waits until the client has at least n events.
func (c *client) waitEvents(n int, timeout time.Duration) bool {
	return c.waitFor(timeout, func(fs []frame) bool {
		k := 0
		for _, f := range fs {
			if f.isEvent() {
				k++
			}
		}
		return k >= n
	})
}

// subscribed waits for the welcome and a realtime:subscribed frame for each
// channel, and returns recovered per channel.
func (c *client) subscribed(t *testing.T, channels ...string) (welcome frame, recovered map[string]bool) {
	t.Helper()
	ok := c.waitFor(5*time.Second, func(fs []frame) bool {
		seen := 0
		for _, ch := range channels {
			for _, f := range fs {
				if f.Type == "realtime:subscribed" && f.Channel == ch {
					seen++
					break
				}
			}
		}
		return seen == len(channels)
	})
	fs := c.snapshot()
	if !ok {
		code, text, _, _ := c.ended()
		t.Fatalf("%s: no realtime:subscribed for %v within 5s; frames %s; close %d %q", c.name, channels, describe(fs), code, text)
	}
	if len(fs) == 0 || fs[0].Type != "realtime:welcome" {
		t.Fatalf("%s: first frame is not realtime:welcome: %s", c.name, describe(fs))
	}
	recovered = make(map[string]bool)
	for _, f := range fs {
		if f.Type == "realtime:subscribed" {
			if f.Recovered == nil {
				t.Fatalf("%s: subscribed frame without recovered: %+v", c.name, f)
			}
			recovered[f.Channel] = *f.Recovered
		}
	}
	return fs[0], recovered
}

// seqOf returns the n of each tick event of frames.
func seqOf(fs []frame) []int {
	var out []int
	for _, f := range fs {
		if f.isEvent() {
			out = append(out, f.n)
		}
	}
	return out
}

// checkSeq reports whether got is exactly from..to.
func checkSeq(got []int, from, to int) error {
	want := to - from + 1
	if want < 0 {
		want = 0
	}
	if len(got) != want {
		return fmt.Errorf("got %d events, want %d (%d..%d): %s", len(got), want, from, to, abbrev(got))
	}
	for i, n := range got {
		if n != from+i {
			return fmt.Errorf("event #%d is n=%d, want %d: %s", i, n, from+i, abbrev(got))
		}
	}
	return nil
}

func abbrev(ns []int) string {
	if len(ns) <= 24 {
		return fmt.Sprint(ns)
	}
	return fmt.Sprintf("%v ... %v", ns[:12], ns[len(ns)-12:])
}

func describe(fs []frame) string {
	var b strings.Builder
	for i, f := range fs {
		if i == 12 {
			fmt.Fprintf(&b, " ...(%d more)", len(fs)-12)
			break
		}
		switch {
		case f.isEvent():
			fmt.Fprintf(&b, " [%s n=%d]", f.Type, f.n)
		case f.Recovered != nil:
			fmt.Fprintf(&b, " [%s %s recovered=%v]", f.Type, f.Channel, *f.Recovered)
		case f.Code != "":
			fmt.Fprintf(&b, " [%s %s %s]", f.Type, f.Code, f.Channel)
		default:
			fmt.Fprintf(&b, " [%s]", f.Type)
		}
	}
	return b.String()
}
