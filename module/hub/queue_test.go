package hub

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pacedConn is a reader of a given speed: each write takes delay. It never
// stops reading unless stopped, when its writes fail after a while, as a
// real transport's do at its write timeout.
type pacedConn struct {
	*fakeConn
	mu      sync.Mutex
	delay   time.Duration
	stopped bool
}

func (c *pacedConn) Write(msgs [][]byte) error {
	c.mu.Lock()
	d, stopped := c.delay, c.stopped
	c.mu.Unlock()
	if stopped {
		time.Sleep(20 * time.Millisecond)
		return context.DeadlineExceeded
	}
	time.Sleep(d)
	return c.fakeConn.Write(msgs)
}

// runQueueOps plays a script of publishes, resumes and client requests
// against one session read by a paced reader, and checks what it got: a
// reader that keeps reading, at any speed, is never disconnected, gets
// every event of its channels once and in order, and an answer to every
// request. The session connects naming wide channels besides a, b and c
// (each answered at connect), and requests may name up to 256 channels. A
// resumed channel may be unsubscribed while its replay runs: it then shows
// a prefix of its events and none after its unsubscribed answer.
func runQueueOps(t *testing.T, ops []byte, sendQueue, wide int, pace time.Duration) {
	h, _ := newTestHub(t, 100000)
	defer h.Close(DisconnectShutdown, 0, time.Second)
	p := testPolicy()
	p.SendQueue = sendQueue
	p.MaxSubscriptions = 2000
	c := &pacedConn{fakeConn: newFakeConn(), delay: pace}
	s, err := h.Admit(p, testCodec{}, "")
	if err != nil {
		t.Fatal(err)
	}
	c.s = s
	connect := []string{"a", "b", "c"}
	for k := 0; k < wide; k++ {
		connect = append(connect, "w"+strconv.Itoa(k))
	}
	s.Start(c, ConnectOptions{Channels: connect})
	want := map[string][]string{}  // channel -> cursors expected, in order
	var cursors []Cursor           // every event published so far
	resumed := map[string]Cursor{} // resumed channel -> its since
	dropped := map[string]bool{}   // resumed channels unsubscribed since
	replies := wide                // answers to requests on channels g*, w* and invalid names
	n, g := 0, 0
	for i := 0; i+1 < len(ops); i += 2 {
		op, arg := ops[i], int(ops[i+1])
		switch op % 7 {
		case 0: // a batch of events on several channels
			var pubs []*Publication
			for k := 0; k <= arg%40; k++ {
				ch := string(rune('a' + (arg+k)%6))
				pubs = append(pubs, &Publication{Channels: []string{ch}, Type: "n", Payload: json.RawMessage(strconv.Itoa(n))})
				n++
			}
			res, err := h.Publish(context.Background(), pubs)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range res {
				cursors = append(cursors, a.Cursors[0])
			}
		case 1: // a resume of one of d, e, f from an earlier cursor
			ch := string(rune('d' + arg%3))
			if _, done := resumed[ch]; done || h.Stats().Subscriptions.Load() >= int64(p.MaxSubscriptions) {
				continue // done already, or it would be refused for the limit
			}
			since := h.Head()
			if len(cursors) > 0 {
				since = cursors[arg%len(cursors)]
			}
			resumed[ch] = since
			s.WaitForRoom()
			s.Subscribe([]string{ch}, SubscribeOptions{Since: since.String(), Resume: true})
		case 2: // pipelined requests, each answered
			for k := 0; k < arg%80; k++ {
				s.WaitForRoom()
				s.Pong()
			}
		case 3: // the reader changes pace
			c.mu.Lock()
			c.delay = time.Duration(arg%3) * 300 * time.Microsecond
			c.mu.Unlock()
		case 4: // one request subscribing to many new channels, some names invalid
			var names []string
			for k := 0; k <= arg; k++ {
				if k%7 == 3 {
					names = append(names, "bad name")
				} else {
					names = append(names, "g"+strconv.Itoa(g))
					g++
				}
			}
			replies += len(names)
			s.WaitForRoom()
			// An odd arg resumes from garbage: every channel is answered
			// recovered:false and goes live at once.
			s.Subscribe(names, SubscribeOptions{Since: "garbage", Resume: arg%2 == 1})
		case 5: // one request unsubscribing from many, some never subscribed
			var names []string
			for k := 0; k <= arg; k++ {
				names = append(names, "g"+strconv.Itoa((arg*k)%(g+1)))
			}
			names = append(names, "bad name")
			replies += len(names)
			s.WaitForRoom()
			s.Unsubscribe(names)
		case 6: // a resumed channel dropped, maybe while its replay runs
			ch := string(rune('d' + arg%3))
			if _, ok := resumed[ch]; !ok || dropped[ch] {
				continue
			}
			dropped[ch] = true
			s.WaitForRoom()
			s.Unsubscribe([]string{ch})
		}
	}
	// Work out what each channel must show: a, b, c from the start; a
	// resumed channel from its since (everything published after it).
	evs, _, _, _ := h.log.Range(context.Background(), Cursor{Epoch: h.log.(*MemoryLog).Epoch()}, h.Head(), 0, nil)
	for _, e := range evs {
		switch since, ok := resumed[e.Channel]; {
		case e.Channel <= "c":
			want[e.Channel] = append(want[e.Channel], e.Cursor.String())
		case ok && since.Pos.Less(e.Cursor.Pos):
			want[e.Channel] = append(want[e.Channel], e.Cursor.String())
		}
	}
	total := 0
	for ch, w := range want {
		if !dropped[ch] {
			total += len(w)
		}
	}
	kept := func() int {
		n := 0
		for _, e := range c.events() {
			if !dropped[e["channel"].(string)] {
				n++
			}
		}
		return n
	}
	waitFor(t, "every event, pong and answer", func() bool {
		return kept() >= total && countType(c.msgs(), "realtime:pong") >= expectedPongs(ops) && countReplies(c.msgs()) >= replies &&
			countType(c.msgs(), "realtime:unsubscribed") >= len(dropped) || c.closeCode() != 0 || c.isClosed()
	})
	if c.closeCode() != 0 || c.isClosed() {
		t.Fatalf("a reading client was disconnected (code %d) with send_queue %d; stats %+v", c.closeCode(), sendQueue, h.Stats().Snapshot())
	}
	got := map[string][]string{}
	for _, e := range c.events() {
		got[e["channel"].(string)] = append(got[e["channel"].(string)], e["cursor"].(string))
	}
	for ch, w := range want {
		if dropped[ch] {
			w = w[:min(len(w), len(got[ch]))] // a prefix
		}
		if len(got[ch]) != len(w) {
			t.Fatalf("channel %s: %d events, want %d", ch, len(got[ch]), len(w))
		}
		for i := range w {
			if got[ch][i] != w[i] {
				t.Fatalf("channel %s: event %d is %s, want %s", ch, i, got[ch][i], w[i])
			}
		}
	}
	if pongs := countType(c.msgs(), "realtime:pong"); pongs != expectedPongs(ops) {
		t.Fatalf("%d pongs, want %d", pongs, expectedPongs(ops))
	}
	after := map[string]bool{}
	for i, m := range c.msgs() {
		ch, _ := m["channel"].(string)
		switch {
		case m["type"] == "realtime:unsubscribed" && dropped[ch]:
			after[ch] = true
		case after[ch] && m["cursor"] != nil:
			t.Fatalf("message %d: an event of %s after its unsubscribed answer", i, ch)
		}
	}
	if got := countReplies(c.msgs()); got != replies {
		t.Fatalf("%d answers to requests naming many channels, want %d", got, replies)
	}
}

// countReplies counts the answers about channels g* and w* and invalid
// names: subscribed, unsubscribed and errors.
func countReplies(ms []map[string]any) int {
	n := 0
	for _, m := range ms {
		ch, _ := m["channel"].(string)
		switch {
		case m["type"] == "realtime:error":
			n++
		case m["type"] != "realtime:subscribed" && m["type"] != "realtime:unsubscribed":
		case strings.HasPrefix(ch, "g"), strings.HasPrefix(ch, "w"):
			n++
		}
	}
	return n
}

func countType(ms []map[string]any, typ string) int {
	n := 0
	for _, m := range ms {
		if m["type"] == typ {
			n++
		}
	}
	return n
}

func expectedPongs(ops []byte) int {
	n := 0
	for i := 0; i+1 < len(ops); i += 2 {
		if ops[i]%7 == 2 {
			n += int(ops[i+1]) % 80
		}
	}
	return n
}

func (c *fakeConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// FuzzQueueAccounting mixes events, replays and control replies (pongs,
// and requests answered channel by channel, at connect too) against a
// reader of random speed: the session's queue must never disconnect a
// client that reads.
func FuzzQueueAccounting(f *testing.F) {
	f.Add([]byte{0, 39, 2, 79, 0, 39, 1, 5, 3, 2, 0, 39, 0, 39, 2, 50}, uint8(8), uint16(0))
	f.Add([]byte{3, 2, 0, 30, 0, 30, 1, 1, 1, 2, 1, 3, 2, 70, 0, 39}, uint8(4), uint16(0))
	f.Add([]byte{0, 39, 0, 39, 0, 39, 0, 39, 0, 39, 0, 39, 0, 39, 0, 39}, uint8(16), uint16(0))
	f.Add([]byte{4, 255, 0, 39, 4, 254, 5, 200, 2, 79, 4, 128, 0, 39, 5, 255}, uint8(0), uint16(1500))
	f.Add([]byte{3, 1, 4, 201, 0, 39, 4, 255, 1, 4, 5, 17, 2, 60, 4, 99}, uint8(2), uint16(400))
	f.Add([]byte{3, 0, 0, 39, 4, 255, 0, 39}, uint8(2), uint16(1899+2*1900))
	f.Add([]byte{0, 39, 0, 39, 0, 39, 3, 2, 1, 0, 6, 0, 1, 1, 0, 39, 6, 1, 2, 40}, uint8(2), uint16(2*1900))
	f.Fuzz(func(t *testing.T, ops []byte, q uint8, wide uint16) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		// The reader's pace until the script changes it: 0, 300 or 600 µs
		// a write.
		pace := time.Duration(int(wide)/1900%3) * 300 * time.Microsecond
		runQueueOps(t, ops, 2+int(q)%62, int(wide)%1900, pace)
	})
}

// A reader that stops is ended by its transport (the write timeout), and
// the hub goes on for the others, which lose nothing.
func TestStoppedReaderIsEndedOthersUnharmed(t *testing.T) {
	h, _ := newTestHub(t, 1000)
	p := testPolicy()
	p.SendQueue = 8
	stopped := &pacedConn{fakeConn: newFakeConn(), stopped: true}
	s, err := h.Admit(p, testCodec{}, "")
	if err != nil {
		t.Fatal(err)
	}
	stopped.s = s
	s.Start(stopped, ConnectOptions{})
	_, fast := connect(t, h, p, ConnectOptions{})
	for i := 0; i < 200; i++ {
		publish(t, h, "default", "n", strconv.Itoa(i))
		if i%8 == 7 {
			time.Sleep(time.Millisecond)
		}
	}
	<-s.Done()
	waitFor(t, "fast consumer got all", func() bool { return len(fast.events()) >= 200 })
	if len(fast.events()) != 200 || fast.closeCode() != 0 {
		t.Fatalf("fast consumer: %d events, close %d", len(fast.events()), fast.closeCode())
	}
}
