package hub

import (
	"encoding/json"
	"sync/atomic"
	"time"
)

// Codec is one wire format: it turns what the engine tells a session into
// the bytes its connection carries. The module's own WebSocket protocol,
// Server-Sent Events and the Pusher protocol are codecs; a session has one,
// chosen by the transport that accepted it. Codecs are stateless and safe
// for concurrent use.
//
// Event is called at most once per event per format on a node: fan-out and
// replay share the result (see Event.Wire), so encoding stays one per event
// per format, never one per subscriber. The other methods encode the
// engine's control messages, which are rare.
type Codec interface {
	// Format is the codec's slot in every event's encoding cache, from
	// NewFormat.
	Format() Format
	// Event encodes an event. It may build its bytes in the event's
	// headroom (Event.Headroom) rather than copying the JSON.
	Event(e *Event) []byte
	// Welcome is the first message of a session.
	Welcome(w Welcome) []byte
	// Subscribed acknowledges a subscription. r says whether a resume was
	// asked for and whether it is complete.
	Subscribed(channel string, r Recovery) []byte
	// Unsubscribed acknowledges an unsubscribe.
	Unsubscribed(channel string) []byte
	// Error reports a refused request; it never ends the session itself.
	Error(e ErrorMessage) []byte
	// Pong answers the protocol's ping message.
	Pong() []byte
	// KeepAlive is sent every ping interval; nil sends nothing.
	KeepAlive() []byte
	// Close is the last message of a session that the server ends; nil
	// sends nothing before the connection closes.
	Close(d Disconnect) []byte

	// Presence is the snapshot a joiner of a presence channel gets right
	// after Subscribed: the count and, up to the hub's member limit, the
	// members (the joiner included). Later changes apply on top of it.
	Presence(channel string, p PresenceSnapshot) []byte
	// MemberAdded announces a user whose first connection anywhere joined.
	MemberAdded(channel string, m Member, count int) []byte
	// MemberRemoved announces a user whose last connection anywhere has
	// been gone for the leave delay.
	MemberRemoved(channel string, m Member, count int) []byte
	// PresenceCount replaces member events on a channel above the hub's
	// member limit; nil when the wire format has no such message.
	PresenceCount(channel string, count int) []byte
}

// ResumePointer is implemented by codecs whose client keeps its resume
// point from the messages it gets, not from events alone (SSE: the
// browser's Last-Event-ID is the id of the last message). A session of
// such a codec that resumes gets ResumePoint once its subscriptions are
// live, at the head they went live at, so that its next reconnect resumes
// from there: a resume that could not be recovered would otherwise be
// asked again, from the same cursor, until an event came.
type ResumePointer interface {
	// ResumePoint tells the client that it has everything up to c; nil
	// sends nothing.
	ResumePoint(c Cursor) []byte
}

// Member is a user on a presence channel: a user, not a connection (two
// tabs of one user, on one node or two, are one member).
type Member struct {
	ID   string          `json:"id"`             // the token's sub (the Pusher protocol's user_id)
	Info json.RawMessage `json:"info,omitempty"` // the token's info claim (a JSON object, at most 1 KiB); nil for none
}

// PresenceSnapshot is who is on a presence channel.
type PresenceSnapshot struct {
	Count   int
	Members []Member // nil above the hub's member limit: counts only
}

// Format names an encoding of events: each codec has one.
type Format uint8

// maxFormats bounds the formats: every event keeps one encoding slot each.
const maxFormats = 4

var formats atomic.Int32

// NewFormat reserves an encoding slot for a codec. Codecs call it once, at
// package initialisation.
func NewFormat() Format {
	n := formats.Add(1) - 1
	if n >= maxFormats {
		panic("hub: too many wire formats")
	}
	return Format(n)
}

// Welcome is what a session learns first.
type Welcome struct {
	ConnectionID string
	Cursor       Cursor        // the hub's head: usable as since, also on an empty hub
	PingInterval time.Duration // 0: none
	// Resuming says the session resumes from a cursor given at connect:
	// events before Cursor may follow, so Cursor is not yet where the
	// client will be once they are in.
	Resuming bool
}

// Recovery is what a subscription says about a resume.
type Recovery uint8

const (
	// NoResume: the client gave no cursor, so there is nothing to recover.
	NoResume Recovery = iota
	// Recovered: the missed events follow, with no gap and no duplicate.
	Recovered
	// NotRecovered: completeness cannot be proven; the client must
	// refetch state.
	NotRecovered
)

// ErrorMessage is a refused request of a client.
type ErrorMessage struct {
	Code    string // CodeForbidden, CodeTokenExpired, ...
	Message string
	Channel string // "" when the error is not about one channel
}
