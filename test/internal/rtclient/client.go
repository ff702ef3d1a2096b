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
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

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
