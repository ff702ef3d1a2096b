package hub

import (
	"bytes"
	"encoding/json"
	"time"
)

// Publication is one accepted item of a publish request: an event for one or
// more channels. Its optional ID is the publisher's idempotency key; with
// several channels one key covers them all.
type Publication struct {
	Channels  []string
	Type      string
	Payload   json.RawMessage // nil when the publisher sent none
	Timestamp string
	ID        string
}

// Event is one publication on one channel, placed in the log. Its wire form
// and WebSocket frame are built once, when the log creates it, and shared by
// every subscriber and every replay.
type Event struct {
	Cursor    Cursor
	Channel   string
	Type      string
	Payload   json.RawMessage
	Timestamp string
	ID        string
	Time      time.Time // when the log accepted it; history_ttl counts from here

	data  []byte // JSON sent to subscribers
	frame []byte // data framed as a WebSocket text frame
}

// wireEvent is the subscriber-facing shape: the recipe's event plus channel,
// cursor and the publisher's id.
type wireEvent struct {
	Type      string          `json:"type"`
	Channel   string          `json:"channel"`
	Cursor    string          `json:"cursor"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	Timestamp string          `json:"timestamp"`
	ID        string          `json:"id,omitempty"`
}

// NewEvent builds an event and its frame. Logs call it for every event they
// accept or read back, so the encoding happens once per event per node.
func NewEvent(c Cursor, channel string, p *Publication, accepted time.Time) *Event {
	e := &Event{
		Cursor:    c,
		Channel:   channel,
		Type:      p.Type,
		Payload:   p.Payload,
		Timestamp: p.Timestamp,
		ID:        p.ID,
		Time:      accepted,
	}
	if e.Timestamp == "" {
		e.Timestamp = accepted.UTC().Format(time.RFC3339)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Payloads go out as published: no \u003c for every <, which would
	// only make each frame bigger. Clients render text, never HTML.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(wireEvent{
		Type:      e.Type,
		Channel:   e.Channel,
		Cursor:    c.String(),
		Payload:   e.Payload,
		Timestamp: e.Timestamp,
		ID:        e.ID,
	}) // cannot fail: strings and already-valid JSON
	e.data = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	e.frame = textFrame(e.data)
	return e
}

// Data returns the JSON a subscriber receives for this event.
func (e *Event) Data() []byte { return e.data }

// Frame returns the event as a WebSocket text frame.
func (e *Event) Frame() []byte { return e.frame }

// Appended is a log's answer for one publication, in request order.
type Appended struct {
	Channels  []string
	Cursors   []Cursor // one per channel
	Duplicate bool     // the ID was seen within the TTL: these are the original cursors
}
