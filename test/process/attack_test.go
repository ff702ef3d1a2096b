package process_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

// Attacks on one real Caddy process, as a hostile client or publisher
// would make them over loopback, each bounded in count and time. Memory is
// measured from outside: the process's resident set, and the Go runtime's
// figures after a collection (memory_test.go).

const tokenSecret = "process-test-token-secret"

// ---------------------------------------------------------------------------
// A logged-in user floods one connection with subscribe messages, each
// carrying a valid token of its own: the connection keeps a bounded number
// of grants, so the process does not grow with the number of messages.

// floodTokens signs n distinct tokens (each grants private-flood and a
// channel of its own, so that no two grant the same thing) padded with
// pad extra channel patterns each, and returns the subscribe message of
// each as a client frame.
func floodTokens(t *testing.T, n, pad int) (frames [][]byte, tokenLen int) {
	exp := time.Now().Add(time.Hour)
	for i := 0; i < n; i++ {
		chans := []string{"private-flood", fmt.Sprintf("o%d.%d", pad, i)}
		for k := 0; k < pad; k++ {
			chans = append(chans, fmt.Sprintf("private-post.%d.*", 100000+k))
		}
		tok := rtclient.Token(t, tokenSecret, chans, exp)
		tokenLen = len(tok)
		msg, _ := json.Marshal(map[string]string{"type": "realtime:subscribe", "channel": "private-flood", "token": tok})
		frames = append(frames, rtclient.AppendFrame(nil, true, rtclient.OpText, msg, -1))
	}
	return frames, tokenLen
}

// floodReader counts what the server answers a subscribe flood.
type floodReader struct {
	acks   atomic.Int64 // realtime:subscribed for private-flood
	other  atomic.Int64 // any other text frame
	last   atomic.Value // the last other frame, for failure messages
	closed atomic.Value // the close frame's payload, or the read error
	done   chan struct{}
}

func (r *floodReader) read(c *rtclient.RawConn) {
	defer close(r.done)
	ack := []byte(`"realtime:subscribed","channel":"private-flood"`)
	for {
		op, p, err := c.ReadFrame()
		switch {
		case err != nil:
			r.closed.Store(fmt.Sprint("read error: ", err))
			return
		case op == rtclient.OpClose:
			r.closed.Store(fmt.Sprintf("close frame %v", p))
			return
		case op != rtclient.OpText:
		case strings.Contains(string(p), string(ack)):
			r.acks.Add(1)
		default:
			r.other.Add(1)
			r.last.Store(string(p))
		}
	}
}

func TestSubscribeFloodMemoryBounded(t *testing.T) {
	const (
		warmup   = 20000
		flood    = 1000000
		bigEvery = 10 // one message in bigEvery carries the large token
		budget   = 150 * time.Second
		maxGrow  = 5 << 20
	)
	port, admin := freePort(t), freePort(t)
	site := fmt.Sprintf("\trealtime_ws /ws {\n\t\ttoken_secret %s\n\t}", tokenSecret)
	p := startCaddy(t, caddyfile(admin, port, hubBlock("default", 100), site), port, admin)

	small, smallLen := floodTokens(t, 500, 0)
	big, bigLen := floodTokens(t, 100, 110)
	c := rtclient.RawDial(t, p.wsURL("/ws", "channels=lobby"))
	c.SetDeadline(time.Now().Add(budget + time.Minute))
	c.ExpectText(`"realtime:welcome"`)
	c.ExpectText(`"realtime:subscribed"`)
	r := &floodReader{done: make(chan struct{})}
	go r.read(c)

	// send writes n more subscribe messages, 64 to a TCP write with at
	// most two writes unanswered (so that the old queue accounting, which
	// counted replies against send_queue, does not end the flood before it
	// shows anything), and waits until each is answered; it reports false
	// when the time budget ran out first.
	const window = 64
	sent := 0
	var buf []byte
	deadline := time.Now().Add(budget)
	waitAcks := func(upTo int) {
		for r.acks.Load() < int64(upTo) {
			select {
			case <-r.done:
				t.Fatalf("after %d messages (%d answered): the connection ended: %v; last other frame %v",
					sent, r.acks.Load(), r.closed.Load(), r.last.Load())
			case <-time.After(50 * time.Microsecond):
			}
			if time.Now().After(deadline.Add(30 * time.Second)) {
				t.Fatalf("%d of %d messages answered", r.acks.Load(), sent)
			}
		}
	}
	send := func(n int) bool {
		for end := sent + n; sent < end; {
			if time.Now().After(deadline) {
				return false
			}
			buf = buf[:0]
			for k := 0; k < window && sent < end; k++ {
				if sent%bigEvery == 0 {
					buf = append(buf, big[sent/bigEvery%len(big)]...)
				} else {
					buf = append(buf, small[sent%len(small)]...)
				}
				sent++
			}
			if err := c.TryWrite(buf); err != nil {
				<-r.done
				t.Fatalf("after %d messages: write: %v; the server: %v", sent, err, r.closed.Load())
			}
			waitAcks(sent - window)
		}
		waitAcks(sent)
		return true
	}

	start := p.memory(time.Second)
	send(warmup)
	base := p.memory(time.Second)
	began := time.Now()
	completed := send(flood)
	took := time.Since(began)
	after := p.memory(time.Second)
	grew := after.sub(base)
	n := sent - warmup
	t.Logf("tokens of %d and %d bytes; %d subscribe messages in %v (%.0f/s)", smallLen, bigLen, n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	t.Logf("at start:          %v", start)
	t.Logf("after %6d:      %v", warmup, base)
	t.Logf("after %7d more: %v", n, after)
	t.Logf("growth over the flood: %v", grew)
	if other := r.other.Load(); other != 0 {
		t.Errorf("%d answers other than subscribed, the last: %v", other, r.last.Load())
	}
	if !completed {
		if n < flood/10 {
			t.Fatalf("only %d messages within %v: too few to show a bound", n, budget)
		}
		t.Logf("the time budget ended the flood after %d of %d messages", n, flood)
	}
	if grew.RSS > maxGrow || grew.HeapAlloc > maxGrow {
		t.Errorf("%d subscribe messages with valid tokens grew the process by %s resident, %s of live heap: want under %s",
			n, mib(grew.RSS), mib(grew.HeapAlloc), mib(maxGrow))
	}
}
