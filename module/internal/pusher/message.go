package pusher

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// Client message events the server acts on. Every other event is either a
// client event (ClientEventPrefix) or refused.
const (
	EventPing        = "pusher:ping"
	EventPong        = "pusher:pong"
	EventSubscribe   = "pusher:subscribe"
	EventUnsubscribe = "pusher:unsubscribe"
	EventSignin      = "pusher:signin"
)

// ClientEventPrefix starts the name of every event a client may send to
// other clients.
const ClientEventPrefix = "client-"

// Message is one client -> server message:
//
//	{"event":"client-typing","channel":"private-x","data":{"x":1}}
type Message struct {
	Event   string
	Channel string          // "" when absent
	Data    json.RawMessage // as received (any JSON value); nil when absent
}

type wireMessage struct {
	Event   *string         `json:"event"`
	Channel *string         `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// ParseMessage reads one client message. Errors are answered with a
// pusher:error frame; they never close the connection.
func ParseMessage(b []byte) (Message, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return Message{}, errors.New("message must be a JSON object")
	}
	var m wireMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, errors.New("message is not a valid JSON object of the Pusher protocol")
	}
	if m.Event == nil || *m.Event == "" {
		return Message{}, errors.New("message has no event")
	}
	out := Message{Event: *m.Event, Data: m.Data}
	if m.Channel != nil {
		out.Channel = *m.Channel
	}
	if bytes.Equal(out.Data, []byte("null")) {
		out.Data = nil
	}
	return out, nil
}

// Subscription is the data of a pusher:subscribe message.
type Subscription struct {
	Channel string
	// Auth is "<key>:<hex signature>"; "" for public channels.
	Auth string
	// ChannelData is the presence member's JSON exactly as the client sent
	// it: the signature covers these bytes, so it is never re-encoded.
	ChannelData    string
	HasChannelData bool
}

type subscription struct {
	Channel     *string `json:"channel"`
	Auth        *string `json:"auth"`
	ChannelData *string `json:"channel_data"`
}

// ParseSubscription reads the data of a pusher:subscribe (or unsubscribe)
// message: an object, or (older clients) a JSON string holding one.
func ParseSubscription(data json.RawMessage) (Subscription, error) {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return Subscription{}, errBadSubscription
		}
		data = []byte(s)
	}
	var sub subscription
	if len(data) == 0 || data[0] != '{' || json.Unmarshal(data, &sub) != nil {
		return Subscription{}, errBadSubscription
	}
	if sub.Channel == nil || *sub.Channel == "" {
		return Subscription{}, errors.New("subscription data has no channel")
	}
	out := Subscription{Channel: *sub.Channel}
	if sub.Auth != nil {
		out.Auth = *sub.Auth
	}
	if sub.ChannelData != nil {
		out.ChannelData, out.HasChannelData = *sub.ChannelData, true
	}
	return out, nil
}

var errBadSubscription = errors.New("subscription data must be an object with a channel, and string auth and channel_data")

// Channel kinds, by name prefix: that is how pusher-js decides, so it is how
// the server decides too.
const (
	privatePrefix   = "private-"
	encryptedPrefix = "private-encrypted-"
	presencePrefix  = "presence-"
)

// IsPrivate reports whether channel needs an auth signature: private-,
// private-encrypted- and presence- channels.
func IsPrivate(channel string) bool {
	return strings.HasPrefix(channel, privatePrefix) || strings.HasPrefix(channel, presencePrefix)
}

// IsPresence reports whether channel is a presence channel.
func IsPresence(channel string) bool { return strings.HasPrefix(channel, presencePrefix) }

// IsEncrypted reports whether channel is end-to-end encrypted: the server
// passes its events through and never sees their plaintext.
func IsEncrypted(channel string) bool { return strings.HasPrefix(channel, encryptedPrefix) }

// ClientEventsAllowed reports whether clients may send events on channel:
// private and presence channels, not encrypted ones (whose events only the
// server's trigger can produce).
func ClientEventsAllowed(channel string) bool {
	return IsPrivate(channel) && !IsEncrypted(channel)
}
