package process_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
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

// ---------------------------------------------------------------------------
// Bursts of replies: a client that pipelines requests is answered at the
// pace it reads, never closed with 1013; a connect that names more
// channels than a connection may hold is refused before upgrading.

func TestReplyBurstsNever1013(t *testing.T) {
	port, admin := freePort(t), freePort(t)
	site := `	realtime_ws /ws
	realtime_ws /small {
		send_queue 16
	}
	realtime_ws /wide {
		send_queue 16
		max_subscriptions 5000
	}`
	p := startCaddy(t, caddyfile(admin, port, hubBlock("default", 100), site), port, admin)
	ping := rtclient.AppendFrame(nil, true, rtclient.OpText, []byte(`{"type":"realtime:ping"}`), -1)

	for _, tc := range []struct {
		path  string
		pings int
	}{{"/ws", 320}, {"/ws", 5000}, {"/small", 320}, {"/small", 5000}} {
		t.Run(fmt.Sprintf("%d pings in one write to %s", tc.pings, tc.path), func(t *testing.T) {
			c := rtclient.RawDial(t, p.wsURL(tc.path, "channels=pings"))
			c.ExpectText(`"realtime:welcome"`)
			c.ExpectText(`"realtime:subscribed"`)
			c.Write(bytesRepeat(ping, tc.pings))
			for i := 0; i < tc.pings; i++ {
				op, b, err := c.ReadFrame()
				switch {
				case err != nil:
					t.Fatalf("after %d pongs of %d: %v", i, tc.pings, err)
				case op == rtclient.OpClose:
					t.Fatalf("after %d pongs of %d: closed %s", i, tc.pings, closeText(b))
				case op != rtclient.OpText || string(b) != `{"type":"realtime:pong"}`:
					t.Fatalf("after %d pongs of %d: got %q", i, tc.pings, b)
				}
			}
			c.Write(ping)
			c.ExpectText(`"realtime:pong"`)
		})
	}

	// WebSocket ping frames, answered with pong frames through the same
	// queue.
	t.Run("5000 WebSocket pings in one write to /small", func(t *testing.T) {
		const pings = 5000
		c := rtclient.RawDial(t, p.wsURL("/small", "channels=pings"))
		c.ExpectText(`"realtime:welcome"`)
		c.ExpectText(`"realtime:subscribed"`)
		c.Write(bytesRepeat(rtclient.AppendFrame(nil, true, rtclient.OpPing, []byte("are you there"), -1), pings))
		for i := 0; i < pings; i++ {
			op, b, err := c.ReadFrame()
			switch {
			case err != nil:
				t.Fatalf("after %d pongs of %d: %v", i, pings, err)
			case op == rtclient.OpClose:
				t.Fatalf("after %d pongs of %d: closed %s", i, pings, closeText(b))
			case op != rtclient.OpPong || string(b) != "are you there":
				t.Fatalf("after %d pongs of %d: got opcode %d %q", i, pings, op, b)
			}
		}
	})

	channels := func(n int) string {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("c%04d", i)
		}
		return strings.Join(names, ",")
	}
	t.Run("300 channels over max_subscriptions", func(t *testing.T) {
		c, r, err := rtclient.TryDial(t, p.wsURL("/ws", "channels="+channels(300)), rtclient.Options{})
		if err == nil {
			c.Close()
			t.Fatal("a connect naming 300 channels (max_subscriptions 100) was upgraded")
		}
		if r == nil {
			t.Fatalf("no answer: %v", err)
		}
		var body struct{ Code string }
		if r.Status != 400 || !strings.Contains(r.Header.Get("Content-Type"), "json") || json.Unmarshal(r.Body, &body) != nil || body.Code != "too_many_subscriptions" {
			t.Fatalf("want 400 JSON too_many_subscriptions, got %s (%s)", r, r.Header.Get("Content-Type"))
		}
	})
	for _, n := range []int{300, 2000} {
		t.Run(fmt.Sprintf("%d channels within max_subscriptions, send_queue 16", n), func(t *testing.T) {
			c := rtclient.Dial(t, p.wsURL("/wide", "channels="+channels(n)), rtclient.Options{})
			ok := c.WaitFor(10*time.Second, func(fs []rtclient.Frame) bool {
				k := 0
				for _, f := range fs {
					if f.Type == "realtime:subscribed" {
						k++
					}
				}
				return k == n
			})
			if e, ended := c.Ended(); !ok || ended {
				t.Fatalf("want %d subscribed on an open connection; got %d frames, ended %v %+v", n, len(c.Frames()), ended, e)
			}
			c.Send(map[string]string{"type": "realtime:ping"})
			if !c.WaitFor(5*time.Second, func([]rtclient.Frame) bool { _, ok := c.Find("realtime:pong"); return ok }) {
				t.Fatal("no pong after the subscriptions")
			}
		})
	}
	if s := p.hub("default"); s.SlowDisconnects != 0 {
		t.Errorf("%d slow-consumer disconnects", s.SlowDisconnects)
	}
}

// closeText is a close frame's payload as "<code> <reason>".
func closeText(p []byte) string {
	if len(p) < 2 {
		return fmt.Sprint(p)
	}
	return fmt.Sprintf("%d %s", int(p[0])<<8|int(p[1]), p[2:])
}

func bytesRepeat(b []byte, n int) []byte {
	out := make([]byte, 0, len(b)*n)
	for i := 0; i < n; i++ {
		out = append(out, b...)
	}
	return out
}

// ---------------------------------------------------------------------------
// One valid publish larger than a client's send queue: clients that read
// get every event, in order, and none is closed with 1013 (the delivery
// overflows their queues, so they catch up from history).

func TestLargeBatchReachesReadingClients(t *testing.T) {
	port, admin := freePort(t), freePort(t)
	site := fmt.Sprintf(`	realtime_ws /ws {
		send_queue 256
	}
	realtime_ws /ws-default
	realtime_broadcast /pub {
		secret %s
		max_batch 1000
		max_body 1MiB
	}`, secret)
	p := startCaddy(t, caddyfile(admin, port, hubBlock("default", 10000), site), port, admin)
	channels := []string{"a", "b", "c"}
	for _, tc := range []struct {
		path   string
		events int
	}{{"/ws", 100}, {"/ws-default", 1000}} {
		t.Run(fmt.Sprintf("%d events x 3 channels to %s", tc.events, tc.path), func(t *testing.T) {
			var clients []*rtclient.Client
			for i := 0; i < 3; i++ {
				c := rtclient.Dial(t, p.wsURL(tc.path, "channels=a,b,c"), rtclient.Options{})
				c.WaitSubscribed(channels...)
				clients = append(clients, c)
			}
			base := p.hub("default")
			var evs []pubEvent
			for n := 1; n <= tc.events; n++ {
				evs = append(evs, pubEvent{Channels: channels, Type: "tick", Payload: tick{N: n}})
			}
			cursors, err := p.tryPublish("/pub", secret, evs)
			if err != nil || len(cursors) != 3*tc.events {
				t.Fatalf("publish: %d cursors, %v", len(cursors), err)
			}
			for i, c := range clients {
				if !c.WaitEvents(3*tc.events, 20*time.Second) {
					e, _ := c.Ended()
					t.Fatalf("client %d: %d events of %d; connection end: %+v", i, len(c.Events()), 3*tc.events, e)
				}
				for _, ch := range channels {
					var got []int
					for _, f := range c.Events() {
						if f.Channel == ch {
							got = append(got, tickN(f))
						}
					}
					if err := checkSeq(got, 1, tc.events); err != nil {
						t.Errorf("client %d, channel %s: %v", i, ch, err)
					}
				}
				if e, ended := c.Ended(); ended {
					t.Errorf("client %d closed: %+v", i, e)
				}
			}
			after := p.hub("default")
			if after.SlowDisconnects != base.SlowDisconnects {
				t.Errorf("slow_consumer_disconnects %d -> %d", base.SlowDisconnects, after.SlowDisconnects)
			}
			t.Logf("%d clients got %d events each; sessions that caught up from history: %d", len(clients), 3*tc.events, after.Lagged-base.Lagged)
			for _, c := range clients {
				c.Close()
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Half-sent signed publishes: a client that sends the headers of a signed
// publish (a current t=, any v1=) announcing a 64 KiB body, then a few
// bytes and silence, costs the server little memory before its signature is
// proven, and is answered 408 and closed once the body read deadline
// passes. Caddy's own respond handler under the same attack is the
// comparison: what net/http and Caddy hold for such a connection anyway.

// bodyDeadline is the publish body's read deadline (bodyReadTimeout in
// module/publish.go), the documented bound.
const bodyDeadline = 10 * time.Second

// halfSent is one attacking connection: when its headers went out, and how
// it ended (set before done is closed).
type halfSent struct {
	sent   time.Time
	done   chan struct{}
	closed time.Time
	answer string // the status line, "" if none
	err    error  // a read error other than the end of the connection
}

// wait waits until h's reader is done or deadline passes, and reports
// whether it is done.
func (h *halfSent) wait(deadline time.Time) bool {
	select {
	case <-h.done:
		return true
	case <-time.After(time.Until(deadline)):
		return false
	}
}

// halfSentAttack opens n connections to path, each sending a signed
// publish's headers with Content-Length 65536 and 4 bytes of body, and
// returns them with a reader on each that records how it ends (reading for
// at most wait).
func halfSentAttack(t *testing.T, p *proc, path string, n int, wait time.Duration) []*halfSent {
	t.Helper()
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n"+
		"X-Realtime-Signature: t=%d,v1=%s\r\n\r\n{\"ty", path, p.port, time.Now().Unix(), strings.Repeat("ab", 32))
	out := make([]*halfSent, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100)
	var failed atomic.Value
	for i := range out {
		h := &halfSent{done: make(chan struct{})}
		out[i] = h
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.port), 5*time.Second)
			if err != nil {
				failed.Store(err)
				close(h.done)
				return
			}
			t.Cleanup(func() { conn.Close() })
			if _, err := conn.Write([]byte(req)); err != nil {
				failed.Store(err)
				close(h.done)
				return
			}
			h.sent = time.Now()
			go func() {
				defer close(h.done)
				_ = conn.SetReadDeadline(h.sent.Add(wait))
				br := bufio.NewReader(conn)
				line, err := br.ReadString('\n')
				h.answer = strings.TrimSpace(line)
				if err == nil {
					_, err = io.Copy(io.Discard, br)
				}
				if err != nil && !errors.Is(err, io.EOF) {
					h.err = err
				}
				h.closed = time.Now()
			}()
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatalf("attack on %s: %v", path, err)
	}
	return out
}

func TestHalfSentSignedBodies(t *testing.T) {
	const (
		conns   = 5000
		maxEach = 10 << 10 // the target, per connection
		slack   = 5 * time.Second
	)
	site := fmt.Sprintf("\trealtime_broadcast /pub {\n\t\tsecret %s\n\t}\n\trespond /plain \"ok\" 200", secret)
	// measure runs the attack on path against a fresh process and returns
	// the memory it holds per connection while the attack waits: heap in
	// use and goroutine stacks (a large buffer that was never written is
	// not yet resident, so the resident set alone would hide it until the
	// memory is reused).
	measure := func(t *testing.T, path string, wait time.Duration) (int64, []*halfSent) {
		port, admin := freePort(t), freePort(t)
		p := startCaddy(t, caddyfile(admin, port, hubBlock("default", 100), site), port, admin)
		p.publish("/pub", secret, ticks("warm", 1, 1, ""))
		base := p.memory(time.Second)
		hs := halfSentAttack(t, p, path, conns, wait)
		held := p.memory(time.Second).sub(base)
		per := (held.HeapInuse + held.StackInuse) / conns
		t.Logf("%s: %d half-sent signed bodies hold %v; per connection %.1f KiB (heap %.1f KiB, stack %.1f KiB; resident %.1f KiB)",
			path, conns, held, kib(per), kib(held.HeapInuse/conns), kib(held.StackInuse/conns), kib(held.RSS/conns))
		return per, hs
	}

	var plain int64
	t.Run("Caddy's respond handler, for comparison", func(t *testing.T) {
		var hs []*halfSent
		plain, hs = measure(t, "/plain", 3*time.Second)
		deadline := time.Now().Add(5 * time.Second)
		open := 0
		for _, h := range hs {
			if !h.wait(deadline) || h.err != nil {
				open++
			}
		}
		t.Logf("/plain: %d of %d connections still open 3 s after their headers (Caddy sets no body read timeout by default)", open, conns)
	})
	t.Run("realtime_broadcast", func(t *testing.T) {
		per, hs := measure(t, "/pub", bodyDeadline+slack)
		// Every connection is answered 408 and closed within the deadline
		// (and the slack of a loaded machine).
		deadline := time.Now().Add(bodyDeadline + slack + time.Second)
		late, answers := 0, map[string]int{}
		var last time.Duration
		for _, h := range hs {
			if !h.wait(deadline) {
				late++
				continue
			}
			answers[h.answer]++
			if h.err != nil || h.closed.Sub(h.sent) > bodyDeadline+slack {
				late++
			} else {
				last = max(last, h.closed.Sub(h.sent))
			}
		}
		t.Logf("answers: %v; the last closed %v after its headers; %d not closed within %v", answers, last.Round(time.Millisecond), late, bodyDeadline+slack)
		if late > 0 || answers["HTTP/1.1 408 Request Timeout"] != conns {
			t.Errorf("want every connection answered 408 and closed within %v of its headers", bodyDeadline+slack)
		}
		// What net/http and Caddy hold for a connection before any handler
		// runs (buffers, the request, the goroutine) is over the target
		// already: the realtime handler must add little to it.
		t.Logf("per connection: %.1f KiB, Caddy's respond handler %.1f KiB (target %.0f KiB)", kib(per), kib(plain), kib(maxEach))
		if per > maxEach && per > plain+2<<10 {
			t.Errorf("a half-sent signed body holds %.1f KiB, over %.0f KiB and %.1f KiB more than Caddy's respond handler",
				kib(per), kib(maxEach), kib(per-plain))
		}
	})
}

func kib(n int64) float64 { return float64(n) / 1024 }
