package hub

import (
	"bytes"
	"encoding/binary"
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
}

// checkEvent fails unless e's data is what encoding/json writes for it and
// e's frame is that data as one unmasked text frame.
func checkEvent(t testing.TB, e *Event) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(referenceEvent{Type: e.Type, Channel: e.Channel, Cursor: e.Cursor.String(),
		Payload: e.Payload, Timestamp: e.Timestamp, ID: e.ID}); err != nil {
		t.Fatal(err)
	}
	want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if !bytes.Equal(e.Data(), want) {
		t.Fatalf("event data\n got %q\nwant %q", e.Data(), want)
	}
	f := e.Frame()
	if f[0] != finBit|opText {
		t.Fatalf("frame opcode byte %#x", f[0])
	}
	n, hl := int(f[1]), 2
	switch n {
	case 126:
		n, hl = int(binary.BigEndian.Uint16(f[2:])), 4
	case 127:
		n, hl = int(binary.BigEndian.Uint64(f[2:])), 10
	}
	if n != len(want) || !bytes.Equal(f[hl:], want) {
		t.Fatalf("frame of %d bytes announces %d, header %d bytes", len(f), n, hl)
	}
	if hl != 2 && (n < 126 || hl == 4 && n > 0xFFFF) {
		t.Fatalf("payload of %d bytes with a %d-byte header (not minimal)", n, hl)
	}
}

func TestEventEncoding(t *testing.T) {
	at := time.Date(2026, 11, 26, 20, 0, 0, 0, time.FixedZone("x", 3600))
	c := Cursor{Epoch: "abc", Pos: Position{Hi: 42, Lo: 7}}
	for _, p := range []Publication{
		{Type: "post.published", Payload: json.RawMessage(`{"title":"<b>Hello</b> & bye"}`), ID: "k1"},
		{Type: "t", Timestamp: "2026-11-26T20:00:00+01:00"},
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
