package hub

import (
	"bytes"
	"encoding/json"
	"sync"
	"sync/atomic"
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
	// Exclude is the id of a session that must not receive the event: the
	// Pusher protocol's socket_id (a client event's sender, or Laravel
	// Echo's toOthers()). "" excludes nobody.
	Exclude string
	// UserID is the user who sent a client event on a presence channel;
	// subscribers see it as user_id.
	UserID string
}

// Event is one publication on one channel, placed in the log. Its JSON is
// built once, when the log creates it; each wire format's encoding is built
// from it on first use and shared by every subscriber and every replay.
type Event struct {
	Cursor    Cursor
	Channel   string
	Type      string
	Payload   json.RawMessage
	Timestamp string
	ID        string
	Exclude   string    // a session that must not receive it (Publication.Exclude)
	UserID    string    // the sending user of a client event (Publication.UserID)
	Time      time.Time // when the log accepted it; history_ttl counts from here

	buf []byte // Headroom spare bytes, then the JSON

	mu   sync.Mutex
	wire [maxFormats][]byte // encodings by format, built on first use
}

// Headroom is how many spare bytes precede an event's JSON in its buffer,
// so that a codec can put a frame header in front of it without a copy.
const Headroom = 10

// NewEvent builds an event and its JSON. Logs call it for every event they
// accept or read back, so the encoding happens once per event per node.
//
// The subscriber-facing JSON is the recipe's event plus channel, cursor and
// the publisher's id:
//
//	{"type":…,"channel":…,"cursor":…,"payload":…,"timestamp":…,"id":…,"user_id":…}
//
// payload, id and user_id are left out when empty. It is appended by hand into one
// buffer with Headroom bytes in front of it; the bytes are what
// encoding/json would write without HTML escaping (TestEventEncoding).
func NewEvent(c Cursor, channel string, p *Publication, accepted time.Time) *Event {
	e := &Event{
		Cursor:    c,
		Channel:   channel,
		Type:      p.Type,
		Payload:   p.Payload,
		Timestamp: p.Timestamp,
		ID:        p.ID,
		Exclude:   p.Exclude,
		UserID:    p.UserID,
		Time:      accepted,
	}
	if e.Timestamp == "" {
		e.Timestamp = rfc3339(accepted)
	}
	size := Headroom + 72 + len(e.Type) + len(channel) + len(c.Epoch) + 42 +
		len(e.Payload) + len(e.Timestamp) + len(e.ID) + len(e.UserID)
	b := make([]byte, Headroom, size+size/8)
	b = append(b, `{"type":`...)
	b = appendJSONString(b, e.Type)
	b = append(b, `,"channel":`...)
	b = appendJSONString(b, channel)
	b = append(b, `,"cursor":"`...)
	b = c.AppendTo(b)
	b = append(b, '"')
	if len(e.Payload) > 0 {
		b = append(b, `,"payload":`...)
		b = append(b, e.Payload...)
	}
	b = append(b, `,"timestamp":`...)
	b = appendJSONString(b, e.Timestamp)
	if e.ID != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, e.ID)
	}
	if e.UserID != "" {
		b = append(b, `,"user_id":`...)
		b = appendJSONString(b, e.UserID)
	}
	b = append(b, '}')
	e.buf = b
	return e
}

// appendJSONString appends s as a JSON string. Plain printable ASCII, the
// usual case for types, channels, ids and timestamps, is copied as is;
// anything else goes through encoding/json (without HTML escaping), so the
// escaping rules are the standard library's.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return appendJSONStringSlow(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendJSONStringSlow(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// rfc3339 formats the accepted time as the default event timestamp. The
// last second's string is kept, because a busy hub accepts many events per
// second and this is otherwise an allocation per event.
func rfc3339(t time.Time) string {
	sec := t.Unix()
	if last := lastStamp.Load(); last != nil && last.sec == sec {
		return last.s
	}
	s := t.UTC().Format(time.RFC3339)
	lastStamp.Store(&stamp{sec: sec, s: s})
	return s
}

type stamp struct {
	sec int64
	s   string
}

var lastStamp atomic.Pointer[stamp]

// Data returns the event's JSON, as the module's own protocol sends it.
func (e *Event) Data() []byte { return e.buf[Headroom:] }

// Headroom returns the event's buffer: Headroom spare bytes, then the JSON.
// One codec, the module's own WebSocket protocol, writes its frame header
// at the end of the spare bytes and sends buf[Headroom-n:], so the frame
// every subscriber gets costs no copy. Codec.Event runs under the event's
// lock, once per format, so the room is written once; a second codec that
// used it would overwrite the first's header, so no other codec does.
func (e *Event) Headroom() []byte { return e.buf }

// Wire returns the event encoded by c, building it on first use.
func (e *Event) Wire(c Codec) []byte {
	f := c.Format()
	e.mu.Lock()
	defer e.mu.Unlock()
	if b := e.wire[f]; b != nil {
		return b
	}
	b := c.Event(e)
	e.wire[f] = b
	return b
}

// Appended is a log's answer for one publication, in request order.
type Appended struct {
	Channels  []string
	Cursors   []Cursor // one per channel
	Duplicate bool     // the ID was seen within the TTL: these are the original cursors
}
