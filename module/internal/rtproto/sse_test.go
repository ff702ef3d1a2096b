package rtproto

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// sseMessage is one dispatched event of a stream, parsed the way
// EventSource parses it (lines end with CR, LF or CRLF; data lines joined
// with LF; comments ignored; dispatched at a blank line when data is not
// empty).
type sseMessage struct {
	id, event, data string
	retry           int // -1 when the message set none
	hasID           bool
}

func parseSSE(t *testing.T, b []byte) []sseMessage {
	t.Helper()
	var out []sseMessage
	cur := sseMessage{retry: -1}
	var data []string
	sc := bufio.NewScanner(bytes.NewReader(bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(data) > 0 {
				cur.data = strings.Join(data, "\n")
				out = append(out, cur)
			}
			cur, data = sseMessage{retry: -1}, nil
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			cur.id, cur.hasID = value, true
		case "event":
			cur.event = value
		case "data":
			data = append(data, value)
		case "retry":
			n, err := strconv.Atoi(value)
			if err != nil {
				t.Fatalf("retry %q is not digits", value)
			}
			cur.retry = n
		default:
			t.Fatalf("unknown field %q in %q", field, b)
		}
	}
	if !bytes.HasSuffix(b, []byte("\n\n")) {
		t.Fatalf("message does not end with a blank line: %q", b)
	}
	return out
}

func one(t *testing.T, b []byte) sseMessage {
	t.Helper()
	ms := parseSSE(t, b)
	if len(ms) != 1 {
		t.Fatalf("want one event in %q, got %d", b, len(ms))
	}
	return ms[0]
}

func TestSSEEventIsUnnamedWithItsCursorAsID(t *testing.T) {
	p := &hub.Publication{Type: "message", Payload: json.RawMessage(`{"title":"Hi"}`)}
	c := hub.Cursor{Epoch: "abc", Pos: hub.Position{Hi: 42}}
	e := hub.NewEvent(c, "posts", p, time.Now())
	b := e.Wire(SSE{})
	m := one(t, b)
	if m.event != "" {
		t.Fatalf("application event named %q: EventSource's onmessage would miss it", m.event)
	}
	if !m.hasID || m.id != c.String() {
		t.Fatalf("id %q, want the cursor %q", m.id, c.String())
	}
	if m.data != string(e.Data()) {
		t.Fatalf("data %q, want the WebSocket JSON %q", m.data, e.Data())
	}
	if &e.Wire(SSE{})[0] != &b[0] {
		t.Fatal("the SSE encoding is built again instead of shared")
	}
	// The WebSocket encoding of the same event is still its own.
	if _, payloads := decodeFrames(t, e.Wire(WebSocket{})); !bytes.Equal(payloads[0], e.Data()) {
		t.Fatal("the WebSocket frame changed after the SSE encoding")
	}
}

func TestSSEDataWithLineBreaksStaysOneEvent(t *testing.T) {
	for _, raw := range []string{"{\"a\":\n1}", "{\"a\":\r\n1}", "{\"a\":\r1,\n\"b\":2}\n"} {
		p := &hub.Publication{Type: "t", Payload: json.RawMessage(raw)}
		e := hub.NewEvent(hub.Cursor{Epoch: "e", Pos: hub.Position{Hi: 1}}, "c", p, time.Now())
		m := one(t, SSE{}.Event(e))
		var v map[string]any
		if err := json.Unmarshal([]byte(m.data), &v); err != nil {
			t.Fatalf("payload %q: data %q is not the JSON: %v", raw, m.data, err)
		}
		if v["type"] != "t" {
			t.Fatalf("payload %q: got %v", raw, v)
		}
	}
}

func TestSSEControlMessagesAreNamedByType(t *testing.T) {
	c := hub.Cursor{Epoch: "abc", Pos: hub.Position{Hi: 7}}
	for _, tc := range []struct {
		b    []byte
		name string
	}{
		{SSE{}.Welcome(hub.Welcome{ConnectionID: "1.2", Cursor: c, PingInterval: 25 * time.Second}), "realtime:welcome"},
		{SSE{}.Subscribed("posts", hub.Recovered), "realtime:subscribed"},
		{SSE{}.Unsubscribed("posts"), "realtime:unsubscribed"},
		{SSE{}.Error(hub.ErrorMessage{Code: hub.CodeForbidden, Message: "no", Channel: "private-x"}), "realtime:error"},
		{SSE{}.Presence("presence-x", hub.PresenceSnapshot{Count: 1, Members: []hub.Member{{ID: "u"}}}), "realtime:presence"},
		{SSE{}.MemberAdded("presence-x", hub.Member{ID: "u"}, 2), "realtime:member_added"},
		{SSE{}.MemberRemoved("presence-x", hub.Member{ID: "u"}, 1), "realtime:member_removed"},
		{SSE{}.PresenceCount("presence-x", 300), "realtime:presence_count"},
		{SSE{}.Close(hub.DisconnectSlowConsumer), "realtime:error"},
	} {
		m := one(t, tc.b)
		if m.event != tc.name {
			t.Errorf("%q: event %q, want %q", tc.b, m.event, tc.name)
		}
		var v struct{ Type string }
		if err := json.Unmarshal([]byte(m.data), &v); err != nil || v.Type != tc.name {
			t.Errorf("%q: data type %q (%v), want %q", tc.b, v.Type, err, tc.name)
		}
		if m.event == "message" {
			t.Errorf("%q: an event named message", tc.b)
		}
	}
}

func TestSSEWelcomeSetsRetryAndResumePoint(t *testing.T) {
	c := hub.Cursor{Epoch: "abc", Pos: hub.Position{Hi: 7}}
	m := one(t, SSE{}.Welcome(hub.Welcome{ConnectionID: "1.2", Cursor: c, PingInterval: 25 * time.Second}))
	if !m.hasID || m.id != c.String() {
		t.Fatalf("welcome id %q, want the hub's cursor %q (Last-Event-ID from the start)", m.id, c.String())
	}
	if m.retry != SSEReconnectDelay {
		t.Fatalf("welcome retry %d, want %d", m.retry, SSEReconnectDelay)
	}
	if m.data != string(WelcomeJSON(hub.Welcome{ConnectionID: "1.2", Cursor: c, PingInterval: 25 * time.Second})) {
		t.Fatalf("welcome data %q is not the WebSocket JSON", m.data)
	}
	// A resume replays events older than the hub's cursor after the
	// welcome: an id there would skip them on a reconnect.
	if m := one(t, SSE{}.Welcome(hub.Welcome{ConnectionID: "1.2", Cursor: c, Resuming: true})); m.hasID {
		t.Fatalf("welcome of a resume sets id %q", m.id)
	}
}

func TestSSECloseIsAnErrorWithTheDisconnectName(t *testing.T) {
	for _, d := range []hub.Disconnect{hub.DisconnectSlowConsumer, hub.DisconnectShutdown, hub.DisconnectBackplaneReplaced} {
		m := one(t, SSE{}.Close(d))
		var v struct{ Type, Code, Message string }
		if err := json.Unmarshal([]byte(m.data), &v); err != nil {
			t.Fatal(err)
		}
		if v.Type != "realtime:error" || v.Code != d.Name || v.Message != d.Reason {
			t.Fatalf("close %s: got %+v", d.Name, v)
		}
		lo, hi := 100, 1000
		if d == hub.DisconnectShutdown {
			lo, hi = 500, 3000
		}
		if m.retry < lo || m.retry >= hi {
			t.Fatalf("close %s: retry %d outside [%d, %d)", d.Name, m.retry, lo, hi)
		}
	}
}

func TestSSEKeepAliveIsAComment(t *testing.T) {
	b := SSE{}.KeepAlive()
	if len(b) == 0 || b[0] != ':' || !bytes.HasSuffix(b, []byte("\n\n")) {
		t.Fatalf("keep-alive %q: want a comment and a blank line", b)
	}
	if ms := parseSSE(t, b); len(ms) != 0 {
		t.Fatalf("keep-alive dispatches an event: %v", ms)
	}
	if (SSE{}).Pong() != nil {
		t.Fatal("SSE has no pong")
	}
}

// The resume point is an id with no data: EventSource takes it as its
// Last-Event-ID and dispatches nothing.
func TestSSEResumePointIsAnIDAlone(t *testing.T) {
	c := hub.Cursor{Epoch: "abc", Pos: hub.Position{Hi: 7, Lo: 2}}
	b := SSE{}.ResumePoint(c)
	if want := "id: " + c.String() + "\n\n"; string(b) != want {
		t.Fatalf("resume point %q, want %q", b, want)
	}
	if ms := parseSSE(t, b); len(ms) != 0 {
		t.Fatalf("the resume point dispatches %d events", len(ms))
	}
}
