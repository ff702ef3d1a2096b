// Package rtclient is the WebSocket protocol client of every Go test suite
// that talks to realtime_ws: it dials (headers, Origin, TLS, a small receive
// buffer), reads the server's messages with timeouts, expects control
// messages and events, tells how a connection ended, signs subscriber
// tokens, and writes hand-made frames where a client must misbehave
// (RawConn).
//
// A Client keeps what it reads in a queue. Tests that check one message
// after another take from its front with Next and the Expect helpers;
// tests that look at everything a client got so far use Frames, Events
// and WaitFor. Every connection goes to 127.0.0.1 (see LoopbackDial).
package rtclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// expectTimeout is how long the Expect helpers wait for a message.
const expectTimeout = 5 * time.Second

// Client is one WebSocket connection to realtime_ws. Its reader goroutine
// (unless Options.Manual) answers protocol pings, as browsers do, and
// queues every message. Helpers that fail do so on the test that dialed.
type Client struct {
	t    testing.TB
	url  string
	conn *websocket.Conn
	resp *Response

	wmu sync.Mutex // one writer of data messages at a time

	mu      sync.Mutex
	queue   []Frame       // read and not yet taken by Next
	more    chan struct{} // holds a token after each message queued
	started bool          // the reader runs (or ran)
	closing bool          // Close or Drop was called
	end     End           // set before done is closed

	done  chan struct{} // closed when the reader has stopped
	pings atomic.Int32
}

// End is how a connection ended.
type End struct {
	// Code is the close code the server sent, 1006 when the socket ended
	// without a close frame, or -1 for any other read error.
	Code int
	Text string
	At   time.Time
	// Err is the reader's error.
	Err error
}

// Dial connects to url and fails the test unless the server upgrades. The
// connection is closed when the test ends.
func Dial(t testing.TB, url string, o Options) *Client {
	t.Helper()
	c, r, err := TryDial(t, url, o)
	if err != nil {
		if r != nil {
			t.Fatalf("dial %s: %v: %s", url, err, r)
		}
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

// TryDial connects to url. When the server refuses the handshake it
// returns the answer (status, headers, body) and websocket.ErrBadHandshake.
// A connection made is closed when the test ends.
func TryDial(t testing.TB, url string, o Options) (*Client, *Response, error) {
	t.Helper()
	conn, resp, err := o.dialer().Dial(url, o.header())
	r := handshakeResponse(resp)
	if err != nil {
		return nil, r, err
	}
	c := &Client{
		t:    t,
		url:  url,
		conn: conn,
		resp: r,
		more: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	conn.SetPingHandler(func(data string) error {
		c.pings.Add(1)
		if o.Deaf {
			return nil
		}
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		var ne net.Error
		if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})
	if !o.Manual {
		c.Start()
	}
	t.Cleanup(c.Close)
	return c, r, nil
}

// Start starts the reader of a Manual client (once; later calls do nothing).
func (c *Client) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return
	}
	c.started = true
	go c.read()
}

func (c *Client) read() {
	defer close(c.done)
	for {
		mt, data, err := c.conn.ReadMessage()
		if err != nil {
			c.finish(err)
			return
		}
		c.push(parseFrame(mt != websocket.TextMessage, data))
	}
}

func (c *Client) push(f Frame) {
	c.mu.Lock()
	c.queue = append(c.queue, f)
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

func (c *Client) finish(err error) {
	e := End{Code: -1, Text: err.Error(), At: time.Now(), Err: err}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		e.Code, e.Text = ce.Code, ce.Text
	}
	c.mu.Lock()
	c.end = e
	c.mu.Unlock()
}

// ReadOne reads one message itself, for a Manual client whose reader has
// not started, and queues it like the reader would. A read error (the
// timeout included) leaves the connection unusable.
func (c *Client) ReadOne(timeout time.Duration) (Frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.conn.SetReadDeadline(time.Time{})
	mt, data, err := c.conn.ReadMessage()
	if err != nil {
		return Frame{}, err
	}
	f := parseFrame(mt != websocket.TextMessage, data)
	c.push(f)
	return f, nil
}

// Close ends the connection politely: a 1000 close frame, up to a second
// for the server's answer, then the socket. It does nothing the second
// time.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	started := c.started
	c.mu.Unlock()
	_ = c.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	if started {
		select {
		case <-c.done:
		case <-time.After(time.Second):
		}
	}
	_ = c.conn.Close()
	if started {
		<-c.done
	}
}

// Drop closes the socket without a close frame, as a lost network would.
func (c *Client) Drop() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	_ = c.conn.Close()
}

// Conn is the underlying connection, for what no helper does.
func (c *Client) Conn() *websocket.Conn { return c.conn }

// Response is the handshake's answer (101 and its headers).
func (c *Client) Response() *Response { return c.resp }

// Pings is how many protocol pings the client has received.
func (c *Client) Pings() int { return int(c.pings.Load()) }

// Done is closed when the reader has stopped: the connection ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Ended tells how the connection ended; ok is false while it is open (or
// while a Manual client's reader has not run).
func (c *Client) Ended() (e End, ok bool) {
	select {
	case <-c.done:
	default:
		return End{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.end, true
}

// Err is the reader's error once the connection ended, nil before.
func (c *Client) Err() error {
	e, _ := c.Ended()
	return e.Err
}

// Send writes v as a JSON text message.
func (c *Client) Send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.SendRaw(websocket.TextMessage, b)
}

// SendRaw writes b as one message of type mt (websocket.TextMessage, ...).
func (c *Client) SendRaw(mt int, b []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.conn.WriteMessage(mt, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// take removes the oldest queued message.
func (c *Client) take() (Frame, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return Frame{}, false
	}
	f := c.queue[0]
	c.queue[0] = Frame{}
	c.queue = c.queue[1:]
	return f, true
}

// Next takes the oldest queued message, waiting up to timeout for one; it
// fails the test if none comes or the connection ends first.
func (c *Client) Next(timeout time.Duration) Frame {
	c.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		if f, ok := c.take(); ok {
			return f
		}
		select {
		case <-c.more:
		case <-c.done:
			// Messages read before the end are still queued.
			if f, ok := c.take(); ok {
				return f
			}
			c.t.Fatalf("%s: connection ended while waiting for a message: %v", c.url, c.Err())
		case <-timer.C:
			c.t.Fatalf("%s: no message within %v", c.url, timeout)
		}
	}
}

// Expect takes the next message and requires its type.
func (c *Client) Expect(typ string) Frame {
	c.t.Helper()
	f := c.Next(expectTimeout)
	if f.Type != typ {
		c.t.Fatalf("want a %s message, got %s", typ, f)
	}
	return f
}

// ExpectSubscribed requires realtime:subscribed for channels, in order.
func (c *Client) ExpectSubscribed(channels ...string) {
	c.t.Helper()
	for _, ch := range channels {
		f := c.Expect("realtime:subscribed")
		if f.Channel != ch {
			c.t.Fatalf("want realtime:subscribed for %q, got %s", ch, f)
		}
	}
}

// ExpectError requires a realtime:error with code (and channel, unless
// "") that carries a message.
func (c *Client) ExpectError(code, channel string) Frame {
	c.t.Helper()
	f := c.Expect("realtime:error")
	if f.Code != code || (channel != "" && f.Channel != channel) {
		c.t.Fatalf("want realtime:error %s for channel %q, got %s", code, channel, f)
	}
	if f.Message == "" {
		c.t.Fatalf("realtime:error without a message: %s", f)
	}
	return f
}

// ExpectEvent requires the next message to be event typ on channel, with
// a cursor.
func (c *Client) ExpectEvent(channel, typ string) Frame {
	c.t.Helper()
	f := c.Next(expectTimeout)
	if f.Type != typ || f.Channel != channel {
		c.t.Fatalf("want event %s on %q, got %s", typ, channel, f)
	}
	if f.Cursor == "" {
		c.t.Fatalf("event without a cursor: %s", f)
	}
	return f
}

// Welcome takes the welcome and the realtime:subscribed of channels, in
// order, and returns the welcome.
func (c *Client) Welcome(channels ...string) Frame {
	c.t.Helper()
	w := c.Expect("realtime:welcome")
	c.ExpectSubscribed(channels...)
	return w
}

// Ping round-trips realtime:ping: the connection is open and the server
// has read everything sent before it.
func (c *Client) Ping() {
	c.t.Helper()
	c.Send(map[string]string{"type": "realtime:ping"})
	c.Expect("realtime:pong")
}

// ExpectClose waits up to 5 s for the server to end the connection with
// a close frame carrying code.
func (c *Client) ExpectClose(code int) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(expectTimeout):
		c.t.Fatalf("connection still open %v after it should have closed with %d", expectTimeout, code)
	}
	var ce *websocket.CloseError
	if err := c.Err(); !errors.As(err, &ce) {
		c.t.Fatalf("want close frame %d, connection ended with %v", code, err)
	}
	if ce.Code != code {
		c.t.Fatalf("want close code %d, got %d (%q)", code, ce.Code, ce.Text)
	}
}

// Frames returns the queued messages: everything read and not taken by
// Next, in order.
func (c *Client) Frames() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Frame(nil), c.queue...)
}

// Events returns the queued events.
func (c *Client) Events() []Frame {
	var out []Frame
	for _, f := range c.Frames() {
		if f.IsEvent() {
			out = append(out, f)
		}
	}
	return out
}

// Find returns the first queued message of type typ.
func (c *Client) Find(typ string) (Frame, bool) {
	for _, f := range c.Frames() {
		if f.Type == typ {
			return f, true
		}
	}
	return Frame{}, false
}

// WaitFor polls until cond holds for the queued messages, the connection
// ends, or timeout passes, and reports whether cond held.
func (c *Client) WaitFor(timeout time.Duration, cond func([]Frame) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond(c.Frames()) {
			return true
		}
		select {
		case <-c.done:
			return cond(c.Frames())
		default:
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitEvents waits until at least n events are queued.
func (c *Client) WaitEvents(n int, timeout time.Duration) bool {
	return c.WaitFor(timeout, func(fs []Frame) bool {
		k := 0
		for _, f := range fs {
			if f.IsEvent() {
				k++
			}
		}
		return k >= n
	})
}

// WaitSubscribed waits up to 5 s for a realtime:subscribed for each
// channel, in any order, and requires the welcome first and recovered on
// each. It returns the welcome and recovered per channel.
func (c *Client) WaitSubscribed(channels ...string) (welcome Frame, recovered map[string]bool) {
	c.t.Helper()
	ok := c.WaitFor(expectTimeout, func(fs []Frame) bool {
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
	fs := c.Frames()
	if !ok {
		e, _ := c.Ended()
		c.t.Fatalf("%s: no realtime:subscribed for %v within %v; messages %s; close %d %q", c.url, channels, expectTimeout, Describe(fs), e.Code, e.Text)
	}
	if len(fs) == 0 || fs[0].Type != "realtime:welcome" {
		c.t.Fatalf("%s: first message is not realtime:welcome: %s", c.url, Describe(fs))
	}
	recovered = make(map[string]bool)
	for _, f := range fs {
		if f.Type != "realtime:subscribed" {
			continue
		}
		if f.Recovered == nil {
			c.t.Fatalf("%s: realtime:subscribed without recovered: %s", c.url, f)
		}
		recovered[f.Channel] = *f.Recovered
	}
	return fs[0], recovered
}

// Describe abbreviates messages for a failure message: the first 12, each
// as [type channel code recovered payload].
func Describe(fs []Frame) string {
	var b strings.Builder
	for i, f := range fs {
		if i == 12 {
			fmt.Fprintf(&b, " ...(%d more)", len(fs)-12)
			break
		}
		b.WriteString(" [" + f.Type)
		if f.Channel != "" {
			b.WriteString(" " + f.Channel)
		}
		if f.Code != "" {
			b.WriteString(" " + f.Code)
		}
		if f.Recovered != nil {
			fmt.Fprintf(&b, " recovered=%v", *f.Recovered)
		}
		if len(f.Payload) > 0 {
			fmt.Fprintf(&b, " %.40s", f.Payload)
		}
		b.WriteString("]")
	}
	return b.String()
}
