package hub

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// streamConn is a TryWriter transport that takes only a few bytes per
// non-blocking write, like a socket with a small buffer: frames are split
// across writes, and the rest must follow in order from a writer goroutine.
type streamConn struct {
	mu       sync.Mutex
	buf      []byte
	tries    int
	partials int
	closed   bool
	s        *Session
}

func (c *streamConn) TryWrite(frames [][]byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tries++
	room := rand.IntN(300)
	n := 0
	for _, f := range frames {
		take := min(len(f), room-n)
		c.buf = append(c.buf, f[:take]...)
		n += take
		if take < len(f) {
			c.partials++
			break
		}
	}
	return n, nil
}

func (c *streamConn) Write(frames [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range frames {
		c.buf = append(c.buf, f...)
	}
	return nil
}

func (c *streamConn) Close() error {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	c.mu.Unlock()
	if !already && c.s != nil {
		go c.s.Finish()
	}
	return nil
}

// payloads decodes the byte stream into the events' payloads.
func (c *streamConn) payloads(t *testing.T) []int {
	c.mu.Lock()
	b := append([]byte(nil), c.buf...)
	c.mu.Unlock()
	var out []int
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return out
		}
		var m map[string]any
		if err := json.Unmarshal(b[:i], &m); err != nil {
			t.Fatalf("corrupt message: %v: %q", err, b[:i])
		}
		if p, ok := m["payload"]; ok {
			out = append(out, int(p.(float64)))
		}
		b = b[i+1:]
	}
}

func TestFanOutWithPartialNonBlockingWrites(t *testing.T) {
	h, _ := newTestHub(t, 10)
	p := testPolicy()
	p.SendQueue = 10000
	var conns []*streamConn
	for i := 0; i < 20; i++ {
		c := &streamConn{}
		s, err := h.Admit(p, testCodec{}, "")
		if err != nil {
			t.Fatal(err)
		}
		c.s = s
		s.Start(c, ConnectOptions{})
		conns = append(conns, c)
	}
	// In rounds that each wait for the last: a round then starts with idle
	// sessions, so the hub's flusher (not a writer goroutine still busy with
	// the welcome) takes the frames.
	for round := 0; round < 20; round++ {
		for i := round * 10; i < round*10+10; i++ {
			publish(t, h, "default", "n", strconv.Itoa(i))
		}
		for _, c := range conns {
			waitFor(t, "the round's payloads", func() bool { return len(c.payloads(t)) >= round*10+10 })
		}
	}
	tries, partials := 0, 0
	for i, c := range conns {
		waitFor(t, "all payloads", func() bool { return len(c.payloads(t)) >= 200 })
		for j, v := range c.payloads(t) {
			if v != j {
				t.Fatalf("conn %d: payload %d at position %d", i, v, j)
			}
		}
		tries += c.tries
		partials += c.partials
	}
	if tries == 0 || partials == 0 {
		t.Fatalf("the non-blocking path was not exercised: %d tries, %d partial", tries, partials)
	}
}

// countingTryConn takes everything at once without blocking and counts the
// events, like an idle socket with room.
type countingTryConn struct {
	mu     sync.Mutex
	events int
	tries  int
}

func (c *countingTryConn) TryWrite(msgs [][]byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tries++
	n := 0
	for _, m := range msgs {
		if bytes.Contains(m, []byte(`"type":"n"`)) {
			c.events++
		}
		n += len(m)
	}
	return n, nil
}

func (c *countingTryConn) Write(msgs [][]byte) error {
	_, err := c.TryWrite(msgs)
	return err
}

func (c *countingTryConn) Close() error { return nil }

func (c *countingTryConn) counts() (events, tries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events, c.tries
}

// A fan-out to more sessions than one flusher goroutine takes in a row is
// split over the processors (flushAll's parallel branch): every session
// still gets every event, in order, and the flusher writes them (tries),
// not a writer goroutine per session.
func TestParallelFlushReachesEverySession(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		// The parallel branch needs two processors' worth of workers; a
		// one-CPU machine still runs it, on one CPU.
		prev := runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
	h, _ := newTestHub(t, 100)
	p := testPolicy()
	const n = 3 * flushChunk
	conns := make([]*countingTryConn, n)
	for i := range conns {
		conns[i] = &countingTryConn{}
		s, err := h.Admit(p, testCodec{}, "")
		if err != nil {
			t.Fatal(err)
		}
		s.Start(conns[i], ConnectOptions{})
	}
	// Let the welcomes go out (each on its session's own writer).
	waitFor(t, "welcomes", func() bool {
		for _, c := range conns {
			if _, tries := c.counts(); tries < 1 {
				return false
			}
		}
		return true
	})
	time.Sleep(10 * time.Millisecond)
	for i := 0; i < 20; i++ {
		publish(t, h, "default", "n", strconv.Itoa(i))
	}
	waitFor(t, "every event at every session", func() bool {
		for _, c := range conns {
			if ev, _ := c.counts(); ev < 20 {
				return false
			}
		}
		return true
	})
	for i, c := range conns {
		if ev, _ := c.counts(); ev != 20 {
			t.Fatalf("session %d got %d events, want 20", i, ev)
		}
	}
}
