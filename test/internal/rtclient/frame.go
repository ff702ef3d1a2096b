package rtclient

import (
	"encoding/json"
	"strings"
)

// Frame is one message the server sent: a control message (its type starts
// with "realtime:") or an event. Fields a message does not carry are zero;
// the pointer fields tell "absent" from false or 0.
type Frame struct {
	Type         string          `json:"type"`
	Channel      string          `json:"channel"`
	Cursor       string          `json:"cursor"`
	ConnectionID string          `json:"connection_id"`
	PingInterval *int            `json:"ping_interval"`
	Recovered    *bool           `json:"recovered"`
	Code         string          `json:"code"`
	Message      string          `json:"message"`
	Payload      json.RawMessage `json:"payload"`
	Timestamp    string          `json:"timestamp"`
	ID           string          `json:"id"`

	// Raw is the message as received.
	Raw []byte `json:"-"`
}

// Types given to messages that are not JSON text.
const (
	TypeBinary  = "<binary frame>"
	TypeNotJSON = "<not JSON>"
)

// parseFrame decodes a message; one that is binary or not JSON keeps only
// Raw and a Type saying so.
func parseFrame(binary bool, data []byte) Frame {
	f := Frame{Raw: data}
	if binary {
		f.Type = TypeBinary
		return f
	}
	if err := json.Unmarshal(data, &f); err != nil {
		f = Frame{Raw: data, Type: TypeNotJSON}
	}
	return f
}

// IsEvent reports whether the frame is an event (not a realtime: control
// message).
func (f Frame) IsEvent() bool {
	return f.Type != TypeBinary && f.Type != TypeNotJSON && !strings.HasPrefix(f.Type, "realtime:")
}

// DecodePayload unmarshals the payload into v.
func (f Frame) DecodePayload(v any) error { return json.Unmarshal(f.Payload, v) }

// String is the message as received, for failure messages.
func (f Frame) String() string { return string(f.Raw) }
