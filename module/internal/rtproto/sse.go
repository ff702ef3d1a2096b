package rtproto

import (
	"bytes"
	"math/rand/v2"
	"strconv"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// SSE is the codec of the module's own protocol over Server-Sent Events.
// Each message is one event of the stream whose data line is exactly the
// JSON the WebSocket codec sends:
//
//	id: <cursor>
//	data: {"type":"post_published","channel":"posts","cursor":"<cursor>",...}
//
// Application events carry no event: line, so that EventSource's
// onmessage gets every one of them (a named event reaches only a listener
// registered for that name, and a browser drops the others silently);
// their type is in the JSON. Control messages are events named by their
// type (realtime:welcome, realtime:subscribed, realtime:error, the
// presence messages). The welcome carries the hub's cursor as its id, so
// the browser's Last-Event-ID resumes a stream that ends before its first
// event. The keep-alive is a comment, which EventSource ignores.
type SSE struct{}

var sseFormat = hub.NewFormat()

// SSEReconnectDelay is the reconnect delay, in milliseconds, that the
// welcome sets for EventSource (its own default is 3 s).
const SSEReconnectDelay = 2000

// Format implements hub.Codec.
func (SSE) Format() hub.Format { return sseFormat }

// Event writes the event's cursor as its id and its JSON as its data.
func (SSE) Event(e *hub.Event) []byte {
	data := e.Data()
	b := make([]byte, 0, len("id: \ndata: \n\n")+64+len(data))
	b = append(b, "id: "...)
	b = e.Cursor.AppendTo(b)
	b = append(b, '\n')
	b = appendSSEData(b, data)
	return append(b, '\n')
}

// Welcome sets the reconnect delay, the resume point (id) and says hello.
// A session that resumes from a cursor gets no id: the replayed events
// that follow are older than the hub's cursor, and the browser keeps the
// id it resumed from (or the since in the URL still applies) until they
// are in.
func (SSE) Welcome(w hub.Welcome) []byte {
	b := make([]byte, 0, 192)
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, SSEReconnectDelay, 10)
	b = append(b, '\n')
	if w.Cursor.Epoch != "" && !w.Resuming {
		b = append(b, "id: "...)
		b = w.Cursor.AppendTo(b)
		b = append(b, '\n')
	}
	return appendSSEEvent(b, "realtime:welcome", WelcomeJSON(w))
}

// ResumePoint implements hub.ResumePointer: an id with no data sets the
// browser's Last-Event-ID without dispatching an event.
func (SSE) ResumePoint(c hub.Cursor) []byte {
	b := make([]byte, 0, 64)
	b = append(b, "id: "...)
	b = c.AppendTo(b)
	return append(b, "\n\n"...)
}

// Subscribed implements hub.Codec.
func (SSE) Subscribed(ch string, r hub.Recovery) []byte {
	return sseEvent("realtime:subscribed", SubscribedJSON(ch, r))
}

// Unsubscribed implements hub.Codec; SSE clients cannot unsubscribe, but
// the engine may still say it.
func (SSE) Unsubscribed(ch string) []byte {
	return sseEvent("realtime:unsubscribed", UnsubscribedJSON(ch))
}

// Error implements hub.Codec.
func (SSE) Error(e hub.ErrorMessage) []byte { return sseEvent("realtime:error", ErrorJSON(e)) }

// Pong sends nothing: an SSE client cannot ping.
func (SSE) Pong() []byte { return nil }

// KeepAlive is a comment: it keeps proxies and the TCP connection busy, and
// EventSource ignores it.
func (SSE) KeepAlive() []byte { return sseKeepAlive }

// Close is a realtime:error event whose code is the disconnect's name
// (slow_consumer, shutdown, ...), after a reconnect delay that spreads the
// clients' reconnects: EventSource reconnects by itself, with the
// Last-Event-ID of the last event it got, once the stream ends.
func (SSE) Close(d hub.Disconnect) []byte {
	b := make([]byte, 0, 192)
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, int64(closeRetry(d)), 10)
	b = append(b, '\n')
	return appendSSEEvent(b, "realtime:error", ErrorJSON(hub.ErrorMessage{Code: d.Name, Message: d.Reason}))
}

// closeRetry is the reconnect delay, in milliseconds, after a disconnect:
// a server going away gives its peers a moment (500 ms to 3 s, spread),
// anything else comes back within a second.
func closeRetry(d hub.Disconnect) int {
	if d.Name == hub.DisconnectShutdown.Name {
		return 500 + rand.N(2500)
	}
	return 100 + rand.N(900)
}

// Presence implements hub.Codec.
func (SSE) Presence(ch string, p hub.PresenceSnapshot) []byte {
	return sseEvent("realtime:presence", PresenceJSON(ch, p))
}

// MemberAdded implements hub.Codec.
func (SSE) MemberAdded(ch string, m hub.Member, count int) []byte {
	return sseEvent("realtime:member_added", MemberJSON("realtime:member_added", ch, m, count))
}

// MemberRemoved implements hub.Codec.
func (SSE) MemberRemoved(ch string, m hub.Member, count int) []byte {
	return sseEvent("realtime:member_removed", MemberJSON("realtime:member_removed", ch, m, count))
}

// PresenceCount implements hub.Codec.
func (SSE) PresenceCount(ch string, count int) []byte {
	return sseEvent("realtime:presence_count", PresenceCountJSON(ch, count))
}

var sseKeepAlive = []byte(": keep-alive\n\n")

func sseEvent(name string, data []byte) []byte {
	return appendSSEEvent(make([]byte, 0, len("event: \ndata: \n\n")+len(name)+len(data)), name, data)
}

// appendSSEEvent appends a named event and the blank line that ends it.
func appendSSEEvent(b []byte, name string, data []byte) []byte {
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, '\n')
	b = appendSSEData(b, data)
	return append(b, '\n')
}

// appendSSEData appends data as data: lines. JSON from the hub is compact,
// so this is one line; a CR or LF (whitespace between JSON tokens, from a
// source that did not compact it) would end the line, so it starts
// another, and EventSource joins them with LF: the same JSON.
func appendSSEData(b, data []byte) []byte {
	for {
		b = append(b, "data: "...)
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			b = append(b, data...)
			return append(b, '\n')
		}
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

var (
	_ hub.Codec         = SSE{}
	_ hub.ResumePointer = SSE{}
)
