package hub

import (
	"context"
	"encoding/json"
	"strconv"
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
// reader that keeps reading, at any speed, is never disconnected and gets
// every event of its channels once and in order.
func runQueueOps(t *testing.T, ops []byte, sendQueue int) {
	h, _ := newTestHub(t, 100000)
	defer h.Close(DisconnectShutdown, 0, time.Second)
	p := testPolicy()
	p.SendQueue = sendQueue
	c := &pacedConn{fakeConn: newFakeConn()}
	s, err := h.Admit(p, testCodec{}, "")
	if err != nil {
		t.Fatal(err)
	}
	c.s = s
	s.Start(c, ConnectOptions{Channels: []string{"a", "b", "c"}})
	want := map[string][]string{}  // channel -> cursors expected, in order
	var cursors []Cursor           // every event published so far
	resumed := map[string]Cursor{} // resumed channel -> its since
	n := 0
	for i := 0; i+1 < len(ops); i += 2 {
		op, arg := ops[i], int(ops[i+1])
		switch op % 4 {
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
			if _, done := resumed[ch]; done {
				continue
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
	for _, w := range want {
		total += len(w)
	}
	waitFor(t, "every event and pong", func() bool {
		return len(c.events()) >= total && countType(c.msgs(), "realtime:pong") >= expectedPongs(ops) || c.closeCode() != 0 || c.isClosed()
	})
	if c.closeCode() != 0 || c.isClosed() {
		t.Fatalf("a reading client was disconnected (code %d) with send_queue %d; stats %+v", c.closeCode(), sendQueue, h.Stats().Snapshot())
	}
	got := map[string][]string{}
	for _, e := range c.events() {
		got[e["channel"].(string)] = append(got[e["channel"].(string)], e["cursor"].(string))
	}
	for ch, w := range want {
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
		if ops[i]%4 == 2 {
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

// FuzzQueueAccounting mixes events, replays and control replies against a
// reader of random speed: the session's queue must never disconnect a
// client that reads.
func FuzzQueueAccounting(f *testing.F) {
	f.Add([]byte{0, 39, 2, 79, 0, 39, 1, 5, 3, 2, 0, 39, 0, 39, 2, 50}, uint8(8))
	f.Add([]byte{3, 2, 0, 30, 0, 30, 1, 1, 1, 2, 1, 3, 2, 70, 0, 39}, uint8(4))
	f.Add([]byte{0, 39, 0, 39, 0, 39, 0, 39, 0, 39, 0, 39, 0, 39, 0, 39}, uint8(16))
	f.Fuzz(func(t *testing.T, ops []byte, q uint8) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		runQueueOps(t, ops, 2+int(q)%62)
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
