package hub

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// referenceEvent is the subscriber-facing shape as encoding/json writes it;
// NewEvent's hand-appended bytes must equal it.
type referenceEvent struct {
	Type      string          `json:"type"`
	Channel   string          `json:"channel"`
	Cursor    string          `json:"cursor"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	Timestamp string          `json:"timestamp"`
	ID        string          `json:"id,omitempty"`
	UserID    string          `json:"user_id,omitempty"`
}

// checkEvent fails unless e's data is what encoding/json writes for it,
// with Headroom spare bytes in front.
func checkEvent(t testing.TB, e *Event) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(referenceEvent{Type: e.Type, Channel: e.Channel, Cursor: e.Cursor.String(),
		Payload: e.Payload, Timestamp: e.Timestamp, ID: e.ID, UserID: e.UserID}); err != nil {
		t.Fatal(err)
	}
	want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if !bytes.Equal(e.Data(), want) {
		t.Fatalf("event data\n got %q\nwant %q", e.Data(), want)
	}
	if room := e.Headroom(); len(room) != Headroom+len(want) {
		t.Fatalf("buffer of %d bytes, want %d of headroom and the JSON", len(room), Headroom)
	}
}

func TestEventEncoding(t *testing.T) {
	at := time.Date(2026, 11, 26, 20, 0, 0, 0, time.FixedZone("x", 3600))
	c := Cursor{Epoch: "abc", Pos: Position{Hi: 42, Lo: 7}}
	for _, p := range []Publication{
		{Type: "post.published", Payload: json.RawMessage(`{"title":"<b>Hello</b> & bye"}`), ID: "k1"},
		{Type: "t", Timestamp: "2026-11-26T20:00:00+01:00"},
		{Type: "client-typing", Payload: json.RawMessage(`{"on":true}`), UserID: "42", Exclude: "1.2"},
		{Type: "quote\"back\\slash", Payload: json.RawMessage(`[1,2]`), ID: "\u2028\u2029\x7f\x00\x1f\t\n\r\b\f"},
		{Type: "ünïcødé 日本", Timestamp: "<>&"},
		{Type: "big", Payload: json.RawMessage(`"` + strings.Repeat("x", 200) + `"`)},
		{Type: "bigger", Payload: json.RawMessage(`"` + strings.Repeat("y", 70000) + `"`)},
	} {
		e := NewEvent(c, "news", &p, at)
		checkEvent(t, e)
		if p.Timestamp == "" && e.Timestamp != "2026-11-26T19:00:00Z" {
			t.Errorf("default timestamp %q, want the accepted time in UTC", e.Timestamp)
		}
	}
}
