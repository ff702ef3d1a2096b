package rtproto

import (
	"encoding/json"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// The control messages are small and rare, so encoding/json is fine. The
// WebSocket and SSE codecs send the same JSON, framed differently.

type welcomeMessage struct {
	Type         string `json:"type"`
	ConnectionID string `json:"connection_id"`
	Cursor       string `json:"cursor"`
	PingInterval int    `json:"ping_interval"`
}

type subscribedMessage struct {
	Type      string `json:"type"`
	Channel   string `json:"channel"`
	Recovered *bool  `json:"recovered,omitempty"` // absent when there was nothing to recover
}

type channelMessage struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
}

type errorMessage struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Channel string `json:"channel,omitempty"`
}

// WelcomeJSON is the realtime:welcome message.
func WelcomeJSON(w hub.Welcome) []byte {
	return marshal(welcomeMessage{Type: "realtime:welcome", ConnectionID: w.ConnectionID, Cursor: w.Cursor.String(), PingInterval: int(w.PingInterval / time.Second)})
}

// SubscribedJSON is the realtime:subscribed message; recovered is left out
// when the client gave no cursor.
func SubscribedJSON(channel string, r hub.Recovery) []byte {
	m := subscribedMessage{Type: "realtime:subscribed", Channel: channel}
	if r != hub.NoResume {
		ok := r == hub.Recovered
		m.Recovered = &ok
	}
	return marshal(m)
}

// UnsubscribedJSON is the realtime:unsubscribed message.
func UnsubscribedJSON(channel string) []byte {
	return marshal(channelMessage{Type: "realtime:unsubscribed", Channel: channel})
}

// ErrorJSON is the realtime:error message.
func ErrorJSON(e hub.ErrorMessage) []byte {
	return marshal(errorMessage{Type: "realtime:error", Code: e.Code, Message: e.Message, Channel: e.Channel})
}

type presenceMessage struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
	Count   int    `json:"count"`
	// A pointer, because omitempty leaves out an empty slice too: absent
	// above the member limit, [] for a channel with no one in it.
	Members *[]hub.Member `json:"members,omitempty"`
}

type memberMessage struct {
	Type    string     `json:"type"`
	Channel string     `json:"channel"`
	Member  hub.Member `json:"member"`
	Count   int        `json:"count"`
}

type countMessage struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
	Count   int    `json:"count"`
}

// PresenceJSON is the realtime:presence snapshot.
func PresenceJSON(channel string, p hub.PresenceSnapshot) []byte {
	m := presenceMessage{Type: "realtime:presence", Channel: channel, Count: p.Count}
	if p.Members != nil {
		m.Members = &p.Members
	}
	return marshal(m)
}

// MemberJSON is realtime:member_added or realtime:member_removed.
func MemberJSON(typ, channel string, m hub.Member, count int) []byte {
	return marshal(memberMessage{Type: typ, Channel: channel, Member: m, Count: count})
}

// PresenceCountJSON is the realtime:presence_count message.
func PresenceCountJSON(channel string, count int) []byte {
	return marshal(countMessage{Type: "realtime:presence_count", Channel: channel, Count: count})
}

// PongJSON is the realtime:pong message.
var PongJSON = []byte(`{"type":"realtime:pong"}`)

func marshal(v any) []byte {
	b, _ := json.Marshal(v) // only strings, ints, bools and pointers to them
	return b
}
