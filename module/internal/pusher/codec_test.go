package pusher

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/wsframe"
)

// unframe checks that b is exactly one unmasked text (or close) frame with
// a minimal header and returns its opcode and payload.
func unframe(t testing.TB, b []byte) (byte, []byte) {
	t.Helper()
	if len(b) < 2 || b[0]&0x80 == 0 || b[1]&0x80 != 0 {
		t.Fatalf("not a final unmasked frame: %q", b)
	}
	n, hl := int(b[1]&0x7f), 2
	switch n {
	case 126:
		n, hl = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		n, hl = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	if len(b) != hl+n {
		t.Fatalf("frame of %d bytes carries %d", len(b), hl+n)
	}
	if hl != 2 && (n < 126 || hl == 4 && n > 0xFFFF) {
		t.Fatalf("payload of %d bytes with a %d-byte header", n, hl)
	}
	return b[0] & 0x0f, b[hl:]
}

// decode unframes a text frame and decodes its JSON.
func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	op, p := unframe(t, b)
	if op != wsframe.OpText {
		t.Fatalf("opcode %d, want text", op)
	}
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		t.Fatalf("%v: %s", err, p)
	}
	return m
}

func event(channel, typ, payload, userID string) *hub.Event {
	p := &hub.Publication{Type: typ, UserID: userID}
	if payload != "" {
		p.Payload = json.RawMessage(payload)
	}
	return hub.NewEvent(hub.Cursor{Epoch: "e", Pos: hub.Position{Hi: 1}}, channel, p, time.Now())
}

func TestEventData(t *testing.T) {
	for _, c := range []struct {
		payload string
		data    any // the frame's data field; nil = absent
	}{
		{`{"id":7}`, `{"id":7}`},
		{`{"id": 7, "s": "a\"b"}`, `{"id": 7, "s": "a\"b"}`}, // the text as it is, whitespace included
		{"{\n\t\"a\":1}", "{\n\t\"a\":1}"},
		{`"plain string"`, `plain string`}, // a JSON string is sent as that string
		{`"{\"id\":7}"`, `{"id":7}`},
		{`"é \u00e9 \ud83d\ude00"`, "é é 😀"},
		{`123`, `123`},
		{`null`, `null`},
		{`[1,"x"]`, `[1,"x"]`},
		{``, nil},
	} {
		m := decode(t, Codec{}.Event(event("private-orders.1", `App\Events\OrderShipped`, c.payload, "")))
		if m["event"] != `App\Events\OrderShipped` || m["channel"] != "private-orders.1" {
			t.Errorf("%s: %v", c.payload, m)
		}
		if got, ok := m["data"]; got != c.data || (c.data == nil && ok) {
			t.Errorf("payload %s: data %#v, want %#v", c.payload, got, c.data)
		}
		if _, ok := m["user_id"]; ok {
			t.Errorf("%s: user_id without a user", c.payload)
		}
	}
	m := decode(t, Codec{}.Event(event("presence-room", "client-hi", `{"x":1}`, "42")))
	if m["user_id"] != "42" {
		t.Fatalf("user_id: %v", m)
	}
}

// The codec's encoding is built once per event and shared (Event.Wire),
// and it is a separate slot from the module's own protocol.
func TestEventEncodedOncePerFormat(t *testing.T) {
	e := event("c", "t", `{"a":1}`, "")
	a, b := e.Wire(Codec{}), e.Wire(Codec{ActivityTimeout: time.Minute})
	if &a[0] != &b[0] {
		t.Fatal("encoded twice")
	}
	if bytes.Contains(a, []byte("cursor")) {
		t.Fatalf("the module's own JSON leaked into a Pusher frame: %s", a)
	}
}

func TestEventLargePayloadFrames(t *testing.T) {
	for _, n := range []int{100, 126, 70000} {
		payload := `"` + strings.Repeat("x", n) + `"`
		m := decode(t, Codec{}.Event(event("c", "t", payload, "")))
		if m["data"] != strings.Repeat("x", n) {
			t.Fatalf("size %d: data differs", n)
		}
	}
}

func TestControlMessages(t *testing.T) {
	c := Codec{ActivityTimeout: 120 * time.Second}
	w := decode(t, c.Welcome(hub.Welcome{ConnectionID: "123.456", PingInterval: 100 * time.Second}))
	if w["event"] != "pusher:connection_established" {
		t.Fatal(w)
	}
	var inner map[string]any
	if err := json.Unmarshal([]byte(w["data"].(string)), &inner); err != nil {
		t.Fatalf("data is not a JSON string of JSON: %v", w)
	}
	if inner["socket_id"] != "123.456" || inner["activity_timeout"] != float64(120) {
		t.Fatalf("welcome data %v", inner)
	}
	// Without a setting, the ping interval is announced, rounded up and
	// never 0 (pusher-js refuses 0).
	for iv, want := range map[time.Duration]float64{0: 1, 1500 * time.Millisecond: 2, 30 * time.Second: 30} {
		w := decode(t, Codec{}.Welcome(hub.Welcome{ConnectionID: "1.2", PingInterval: iv}))
		_ = json.Unmarshal([]byte(w["data"].(string)), &inner)
		if inner["activity_timeout"] != want {
			t.Errorf("ping interval %v: activity_timeout %v, want %v", iv, inner["activity_timeout"], want)
		}
	}

	for _, ch := range []string{"public", "private-x", "private-encrypted-x", "room.1"} {
		m := decode(t, c.Subscribed(ch, hub.NoResume))
		if m["event"] != "pusher_internal:subscription_succeeded" || m["channel"] != ch || m["data"] != "{}" {
			t.Errorf("%s: %v", ch, m)
		}
	}
	if c.Subscribed("presence-x", hub.NoResume) != nil {
		t.Error("a presence channel is acknowledged by its presence snapshot, not by Subscribed")
	}
	if c.Unsubscribed("x") != nil {
		t.Error("Pusher does not acknowledge unsubscribes")
	}
	if m := decode(t, c.Pong()); m["event"] != "pusher:pong" || m["data"] == nil {
		t.Errorf("pong %v", m)
	}
	if m := decode(t, c.KeepAlive()); m["event"] != "pusher:ping" {
		t.Errorf("keep-alive %v", m)
	}

	for code, want := range map[string][2]any{
		hub.CodeTokenInvalid:         {"AuthError", float64(401)},
		hub.CodeForbidden:            {"AuthError", float64(403)},
		hub.CodeTooManySubscriptions: {"LimitReached", float64(4100)},
		hub.CodeBadRequest:           {"BadRequest", float64(400)},
	} {
		m := decode(t, c.Error(hub.ErrorMessage{Code: code, Message: "m \"q\"", Channel: "private-x"}))
		data, _ := m["data"].(map[string]any)
		if m["event"] != "pusher:subscription_error" || m["channel"] != "private-x" || data["type"] != want[0] || data["status"] != want[1] || data["error"] != `m "q"` {
			t.Errorf("%s: %v", code, m)
		}
	}
	m := decode(t, c.Error(hub.ErrorMessage{Code: hub.CodeBadRequest, Message: "nope"}))
	if data, _ := m["data"].(map[string]any); m["event"] != "pusher:error" || data["code"] != nil || data["message"] != "nope" {
		t.Errorf("error without a channel: %v", m)
	}
	m = decode(t, ErrorFrame(ErrorClientEvent, "Client event rejected due to rate limit"))
	if data, _ := m["data"].(map[string]any); data["code"] != float64(4301) {
		t.Errorf("4301: %v", m)
	}
}

func TestCloseCodes(t *testing.T) {
	for d, want := range map[hub.Disconnect]int{
		hub.DisconnectShutdown:                       CloseReconnect,
		hub.DisconnectBackplaneReplaced:              CloseReconnect,
		hub.DisconnectGap:                            CloseReconnect,
		hub.DisconnectSlowConsumer:                   CloseOverCapacity,
		hub.ProtocolViolation(1009, "too big"):       1009,
		hub.ClientClosed(wsframe.CloseNoStatus):      wsframe.CloseNormal,
		hub.ClientClosed(4000):                       4000,
		hub.ProtocolViolation(1007, "invalid UTF-8"): 1007,
	} {
		op, p := unframe(t, Codec{}.Close(d))
		if op != wsframe.OpClose || int(binary.BigEndian.Uint16(p)) != want {
			t.Errorf("%s: close %d, want %d", d.Name, binary.BigEndian.Uint16(p), want)
		}
	}
}

func TestPresenceMessages(t *testing.T) {
	c := Codec{}
	snap := hub.PresenceSnapshot{Count: 2, Members: []hub.Member{{ID: "1", Info: json.RawMessage(`{"name":"A"}`)}, {ID: "2"}}}
	m := decode(t, c.Presence("presence-room", snap))
	if m["event"] != "pusher_internal:subscription_succeeded" || m["channel"] != "presence-room" {
		t.Fatal(m)
	}
	var data struct {
		Presence struct {
			IDs   []string                   `json:"ids"`
			Hash  map[string]json.RawMessage `json:"hash"`
			Count int                        `json:"count"`
		} `json:"presence"`
	}
	if err := json.Unmarshal([]byte(m["data"].(string)), &data); err != nil {
		t.Fatal(err)
	}
	p := data.Presence
	if len(p.IDs) != 2 || p.IDs[0] != "1" || p.IDs[1] != "2" || p.Count != 2 || string(p.Hash["1"]) != `{"name":"A"}` || string(p.Hash["2"]) != "null" {
		t.Fatalf("presence %+v", p)
	}
	m = decode(t, c.MemberAdded("presence-room", hub.Member{ID: "3", Info: json.RawMessage(`{"n":1}`)}, 3))
	if m["event"] != "pusher_internal:member_added" || m["data"] != `{"user_id":"3","user_info":{"n":1}}` {
		t.Fatal(m)
	}
	m = decode(t, c.MemberRemoved("presence-room", hub.Member{ID: "3"}, 2))
	if m["event"] != "pusher_internal:member_removed" || m["data"] != `{"user_id":"3"}` {
		t.Fatal(m)
	}
	// Pusher clients see presence only on presence- channels.
	if c.Presence("room.1", snap) != nil || c.MemberAdded("room.1", hub.Member{ID: "1"}, 1) != nil || c.MemberRemoved("room.1", hub.Member{ID: "1"}, 0) != nil || c.PresenceCount("presence-room", 500) != nil {
		t.Fatal("presence messages on a channel Pusher clients do not see as presence")
	}
}

func TestStringsRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x01\x1f\x7f", "line\nbreak\r\ttab", "é😀", "bad \xff utf8", "<&>", "\u2028"} {
		got := appendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q: %s is not JSON: %v", s, got, err)
		}
		if want := viaEncodingJSON(s); back != want {
			t.Errorf("%q: round trip %q", s, back)
		}
	}
}

func FuzzEventData(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `"x"`, `"\u0000"`, `[1, 2]`, "{\"a\":\"\\n\"}", `1e9`, `true`} {
		f.Add(s, "42")
	}
	f.Fuzz(func(t *testing.T, payload, user string) {
		if !json.Valid([]byte(payload)) {
			return
		}
		p := &hub.Publication{Type: "t", Payload: json.RawMessage(payload), UserID: user}
		e := hub.NewEvent(hub.Cursor{}, "c", p, time.Now())
		m := decode(t, Codec{}.Event(e))
		data, ok := m["data"].(string)
		if !ok {
			t.Fatalf("data is not a string: %v", m)
		}
		var want string
		if trimmed := bytes.TrimSpace([]byte(payload)); trimmed[0] == '"' {
			_ = json.Unmarshal(trimmed, &want)
		} else {
			want = viaEncodingJSON(payload)
		}
		if data != want {
			t.Fatalf("data %q, want %q", data, want)
		}
		if user != "" && m["user_id"] != viaEncodingJSON(user) {
			t.Fatalf("user_id %v", m["user_id"])
		}
	})
}

// viaEncodingJSON is s after a round trip through encoding/json, which
// replaces each invalid UTF-8 byte with U+FFFD.
func viaEncodingJSON(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}
