package rtproto

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/wsframe"
)

// decodeFrames splits server frames (never masked) into opcode and payload.
func decodeFrames(t testing.TB, b []byte) (ops []byte, payloads [][]byte) {
	t.Helper()
	for len(b) > 0 {
		n, hl := int(b[1]&0x7f), 2
		switch n {
		case 126:
			n, hl = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, hl = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		if b[0]&0x80 == 0 || len(b) < hl+n {
			t.Fatalf("bad frame %q", b)
		}
		if hl != 2 && (n < 126 || hl == 4 && n > 0xFFFF) {
			t.Fatalf("payload of %d bytes with a %d-byte header (not minimal)", n, hl)
		}
		ops = append(ops, b[0]&0x0f)
		payloads = append(payloads, b[hl:hl+n])
		b = b[hl+n:]
	}
	return ops, payloads
}

func TestEventFrameIsTheJSONInOneTextFrame(t *testing.T) {
	for _, size := range []int{0, 100, 200, 70000} {
		p := &hub.Publication{Type: "t", Payload: json.RawMessage(`"` + strings.Repeat("x", size) + `"`)}
		e := hub.NewEvent(hub.Cursor{Epoch: "e", Pos: hub.Position{Hi: 1}}, "c", p, time.Now())
		f := e.Wire(WebSocket{})
		ops, payloads := decodeFrames(t, f)
		if len(ops) != 1 || ops[0] != wsframe.OpText || !bytes.Equal(payloads[0], e.Data()) {
			t.Fatalf("size %d: frame does not carry the event's JSON", size)
		}
		if &e.Wire(WebSocket{})[0] != &f[0] {
			t.Fatal("the frame is built again instead of shared")
		}
	}
}

func TestSubscribedOmitsRecoveredWithoutResume(t *testing.T) {
	for r, want := range map[hub.Recovery]string{
		hub.NoResume:     `{"type":"realtime:subscribed","channel":"c"}`,
		hub.Recovered:    `{"type":"realtime:subscribed","channel":"c","recovered":true}`,
		hub.NotRecovered: `{"type":"realtime:subscribed","channel":"c","recovered":false}`,
	} {
		if got := string(SubscribedJSON("c", r)); got != want {
			t.Errorf("recovery %d: %s, want %s", r, got, want)
		}
	}
}

// conn is a hub.Transport that keeps the bytes written.
type conn struct {
	mu  sync.Mutex
	buf []byte
}

func (c *conn) Write(msgs [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		c.buf = append(c.buf, m...)
	}
	return nil
}
func (c *conn) Close() error { return nil }

func (c *conn) messages(t *testing.T) []map[string]any {
	c.mu.Lock()
	b := append([]byte(nil), c.buf...)
	c.mu.Unlock()
	_, payloads := decodeFrames(t, b)
	var out []map[string]any
	for _, p := range payloads {
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("%v: %q", err, p)
		}
		out = append(out, m)
	}
	return out
}

func TestBadMessagesGetBadRequestAndStayOpen(t *testing.T) {
	h := hub.New("t", hub.NewMemoryLog(10, time.Hour))
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	defer h.Close(hub.DisconnectShutdown, 0, time.Second)
	c := &conn{}
	s, err := h.Connect(c, &hub.Policy{DefaultChannels: []string{"default"}, SendQueue: 256}, WebSocket{}, "", hub.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{`nope`, `[]`, `{"type":"what"}`, `{}`, `{"type":"realtime:subscribe"}`, `{"type":"realtime:subscribe","channel":"bad name"}`, `{"type":"realtime:unsubscribe","channel":"bad/name"}`} {
		Handle(s, []byte(m))
	}
	Handle(s, []byte(`{"type":"realtime:ping"}`))
	deadline := time.Now().Add(5 * time.Second)
	for {
		ms := c.messages(t)
		if len(ms) > 0 && ms[len(ms)-1]["type"] == "realtime:pong" {
			n := 0
			for _, m := range ms {
				if m["type"] == "realtime:error" && m["code"] == hub.CodeBadRequest {
					n++
				}
			}
			if n != 7 || s.Closing() {
				t.Fatalf("%d bad_request errors, closing %v; want 7 and open", n, s.Closing())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pong: %v", ms)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func FuzzParseClientMessage(f *testing.F) {
	for _, s := range []string{`{"type":"realtime:subscribe","channel":"a","since":"x-1-0","token":"t"}`, `{"type":"realtime:ping"}`, `{"type":"realtime:unsubscribe","channels":["a"]}`, `[]`, `{"type":5}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseClientMessage(data)
		if err != nil {
			return
		}
		switch m.Type {
		case TypePing:
		case TypeSubscribe, TypeUnsubscribe:
			if len(m.Channels) == 0 || len(m.Channels) > maxMessageChannels {
				t.Fatalf("accepted %d channels", len(m.Channels))
			}
		default:
			t.Fatalf("accepted type %q", m.Type)
		}
	})
}

// An empty presence channel lists no one ("members":[]); above the member
// limit the list is absent, which clients read as counts only.
func TestPresenceJSONTellsEmptyFromCountsOnly(t *testing.T) {
	for _, c := range []struct {
		snap hub.PresenceSnapshot
		want string
	}{
		{hub.PresenceSnapshot{Count: 0, Members: []hub.Member{}}, `"members":[]`},
		{hub.PresenceSnapshot{Count: 0, Members: nil}, ``},
		{hub.PresenceSnapshot{Count: 1, Members: []hub.Member{{ID: "7"}}}, `"members":[{`},
	} {
		got := string(PresenceJSON("presence-x", c.snap))
		has := strings.Contains(got, `"members"`)
		if c.want == "" && has || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("PresenceJSON(%+v) = %s, want %q", c.snap, got, c.want)
		}
	}
}
