package rtclient

import (
	"errors"
	"time"

	"github.com/gorilla/websocket"
)

// expectTimeout is how long the Expect helpers wait for a message.
const expectTimeout = 5 * time.Second

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
