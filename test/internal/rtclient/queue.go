package rtclient

import (
	"fmt"
	"strings"
	"time"
)

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
// channel, in any order, and requires the welcome first. A connection
// that asked to resume (since= in its URL) must get recovered on each. It
// returns the welcome and recovered per channel (false where absent: a
// subscription that did not ask to resume has nothing to recover).
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
	resume := strings.Contains(c.url, "since=")
	for _, f := range fs {
		if f.Type != "realtime:subscribed" {
			continue
		}
		switch {
		case resume && f.Recovered == nil:
			c.t.Fatalf("%s: realtime:subscribed of a resume without recovered: %s", c.url, f)
		case f.Recovered != nil:
			recovered[f.Channel] = *f.Recovered
		}
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
