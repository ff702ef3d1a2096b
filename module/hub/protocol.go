package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// Client frame types.
const (
	TypeSubscribe   = "realtime:subscribe"
	TypeUnsubscribe = "realtime:unsubscribe"
	TypePing        = "realtime:ping"
)

// ClientFrame is a parsed client -> server control frame.
type ClientFrame struct {
	Type     string
	Channels []string // channel and channels, merged
	Token    string
	Since    string
	HasSince bool
}

type clientFrame struct {
	Type     string   `json:"type"`
	Channel  *string  `json:"channel"`
	Channels []string `json:"channels"`
	Token    string   `json:"token"`
	Since    *string  `json:"since"`
}

// maxFrameChannels bounds the channels one subscribe frame may name, so a
// single frame cannot make the hub do unbounded work.
const maxFrameChannels = 256

// ParseClientFrame reads one text frame from a client. Errors are
// bad_request answers; they never close the connection by themselves.
func ParseClientFrame(data []byte) (ClientFrame, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return ClientFrame{}, errors.New("frame must be a JSON object")
	}
	var f clientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		return ClientFrame{}, errors.New("frame is not valid JSON of the protocol")
	}
	out := ClientFrame{Type: f.Type, Token: f.Token}
	switch f.Type {
	case TypePing:
		return out, nil
	case TypeSubscribe, TypeUnsubscribe:
	case "":
		return ClientFrame{}, errors.New("frame has no type")
	default:
		return ClientFrame{}, errors.New("unknown frame type " + strconv.Quote(truncate(f.Type, 64)))
	}
	if f.Channel != nil {
		out.Channels = append(out.Channels, *f.Channel)
	}
	out.Channels = append(out.Channels, f.Channels...)
	if len(out.Channels) == 0 {
		return ClientFrame{}, errors.New(f.Type + " needs channel or channels")
	}
	if len(out.Channels) > maxFrameChannels {
		return ClientFrame{}, errors.New("too many channels in one frame")
	}
	if f.Since != nil {
		out.Since, out.HasSince = *f.Since, true
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Server control frames. They are small and rare, so encoding/json is fine.

type welcomeFrame struct {
	Type         string `json:"type"`
	ConnectionID string `json:"connection_id"`
	Cursor       string `json:"cursor"`
	PingInterval int    `json:"ping_interval"`
}

type subscribedFrame struct {
	Type      string `json:"type"`
	Channel   string `json:"channel"`
	Recovered bool   `json:"recovered"`
}

type unsubscribedFrame struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
}

type errorFrame struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Channel string `json:"channel,omitempty"`
}

var pongMessage = textFrame([]byte(`{"type":"realtime:pong"}`))

func controlFrame(v any) []byte {
	b, _ := json.Marshal(v) // only strings, ints and bools
	return textFrame(b)
}
