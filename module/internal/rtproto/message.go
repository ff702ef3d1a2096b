package rtproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// Client message types.
const (
	TypeSubscribe   = "realtime:subscribe"
	TypeUnsubscribe = "realtime:unsubscribe"
	TypePing        = "realtime:ping"
)

// ClientMessage is a parsed client -> server message.
type ClientMessage struct {
	Type     string
	Channels []string // channel and channels, merged
	Token    string
	Since    string
	HasSince bool
}

type clientMessage struct {
	Type     string   `json:"type"`
	Channel  *string  `json:"channel"`
	Channels []string `json:"channels"`
	Token    string   `json:"token"`
	Since    *string  `json:"since"`
}

// maxMessageChannels bounds the channels one subscribe message may name, so
// that a single message cannot make the hub do unbounded work.
const maxMessageChannels = 256

// ParseClientMessage reads one message from a client. Errors are
// bad_request answers; they never close the connection by themselves.
func ParseClientMessage(data []byte) (ClientMessage, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return ClientMessage{}, errors.New("message must be a JSON object")
	}
	var m clientMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return ClientMessage{}, errors.New("message is not valid JSON of the protocol")
	}
	out := ClientMessage{Type: m.Type, Token: m.Token}
	switch m.Type {
	case TypePing:
		return out, nil
	case TypeSubscribe, TypeUnsubscribe:
	case "":
		return ClientMessage{}, errors.New("message has no type")
	default:
		return ClientMessage{}, errors.New("unknown message type " + strconv.Quote(truncate(m.Type, 64)))
	}
	if m.Channel != nil {
		out.Channels = append(out.Channels, *m.Channel)
	}
	out.Channels = append(out.Channels, m.Channels...)
	if len(out.Channels) == 0 {
		return ClientMessage{}, errors.New(m.Type + " needs channel or channels")
	}
	if len(out.Channels) > maxMessageChannels {
		return ClientMessage{}, errors.New("too many channels in one message")
	}
	if m.Since != nil {
		out.Since, out.HasSince = *m.Since, true
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
