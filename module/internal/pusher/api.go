package pusher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// Limits of the HTTP API, Pusher's own.
const (
	// MaxDataSize bounds an event's data, in bytes.
	MaxDataSize = 10 << 10
	// MaxTriggerChannels bounds the channels of one trigger.
	MaxTriggerChannels = 100
	// MaxBatchEvents bounds the events of one batch trigger.
	MaxBatchEvents = 10
)

// Info attributes a trigger may ask for, per channel.
const (
	InfoUserCount         = "user_count"
	InfoSubscriptionCount = "subscription_count"
)

// Trigger is one event of a POST /apps/<id>/events or batch_events request.
type Trigger struct {
	Name     string
	Channels []string
	// Payload is the event's data as the hub keeps it (DataPayload).
	Payload json.RawMessage
	// SocketID is the connection that must not get the event (Laravel
	// Echo's toOthers()); "" for none.
	SocketID string
	// Info lists the attributes to answer with, per channel.
	Info []string
}

type trigger struct {
	Name     *string         `json:"name"`
	Data     json.RawMessage `json:"data"`
	Channels []string        `json:"channels"`
	Channel  *string         `json:"channel"`
	SocketID *string         `json:"socket_id"`
	Info     *string         `json:"info"`
}

func badRequest(format string, args ...any) *APIError {
	return &APIError{Status: 400, Message: fmt.Sprintf(format, args...)}
}

// ParseTrigger reads the body of POST /apps/<id>/events.
func ParseTrigger(body []byte) (Trigger, *APIError) {
	var t trigger
	if err := decodeObject(body, &t); err != nil {
		return Trigger{}, err
	}
	return t.check("")
}

// ParseBatch reads the body of POST /apps/<id>/batch_events.
func ParseBatch(body []byte) ([]Trigger, *APIError) {
	var b struct {
		Batch []json.RawMessage `json:"batch"`
	}
	if err := decodeObject(body, &b); err != nil {
		return nil, err
	}
	switch {
	case len(b.Batch) == 0:
		return nil, badRequest("batch must be a non-empty array of events")
	case len(b.Batch) > MaxBatchEvents:
		return nil, badRequest("Cannot batch-send more than %d events at once (got %d)", MaxBatchEvents, len(b.Batch))
	}
	out := make([]Trigger, 0, len(b.Batch))
	for i, raw := range b.Batch {
		var t trigger
		if err := decodeObject(raw, &t); err != nil {
			return nil, badRequest("batch[%d]: %s", i, err.Message)
		}
		tr, err := t.check(fmt.Sprintf("batch[%d].", i))
		if err != nil {
			return nil, err
		}
		out = append(out, tr)
	}
	return out, nil
}

func decodeObject(b []byte, v any) *APIError {
	if !utf8.Valid(b) {
		return badRequest("body is not valid UTF-8")
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return badRequest("body must be a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badRequest("body is not valid JSON of the Pusher API: %v", err)
	}
	return nil
}

// check validates a decoded trigger; field prefixes error messages.
func (t *trigger) check(field string) (Trigger, *APIError) {
	var out Trigger
	switch {
	case t.Name == nil || *t.Name == "":
		return out, badRequest("%sname is required", field)
	case !hub.ValidType(*t.Name):
		return out, badRequest("%sname must be 1 to 200 characters, none of them a control character", field)
	case hub.IsControlType(*t.Name):
		return out, badRequest("%sname: only the server may send events named pusher:, pusher_internal: or realtime:", field)
	}
	out.Name = *t.Name
	payload, err := dataPayload(t.Data, field)
	if err != nil {
		return out, err
	}
	out.Payload = payload
	channels := t.Channels
	if t.Channel != nil {
		channels = append(channels, *t.Channel)
	}
	switch {
	case len(channels) == 0:
		return out, badRequest("%schannels (or channel) is required", field)
	case len(channels) > MaxTriggerChannels:
		return out, badRequest("%schannels: Cannot broadcast to more than %d channels at once (got %d)", field, MaxTriggerChannels, len(channels))
	}
	seen := make(map[string]bool, len(channels))
	for _, c := range channels {
		if !hub.ValidChannel(c) {
			return out, badRequest("%schannels: invalid channel name %q: 1 to 164 characters of A-Z a-z 0-9 . _ - : @ = , ;", field, truncate(c, 170))
		}
		if !seen[c] {
			seen[c] = true
			out.Channels = append(out.Channels, c)
		}
	}
	if t.SocketID != nil && *t.SocketID != "" {
		if !ValidSocketID(*t.SocketID) {
			return out, badRequest("%ssocket_id: invalid socket id %q", field, truncate(*t.SocketID, 64))
		}
		out.SocketID = *t.SocketID
	}
	if t.Info != nil && *t.Info != "" {
		for _, a := range strings.Split(*t.Info, ",") {
			if a != InfoUserCount && a != InfoSubscriptionCount {
				return out, badRequest("%sinfo: unknown attribute %q (want user_count, subscription_count)", field, truncate(a, 64))
			}
			out.Info = append(out.Info, a)
		}
	}
	return out, nil
}

// dataPayload turns a trigger's data into the hub's payload. Pusher's data
// is a string; any other JSON value is taken as it is.
func dataPayload(data json.RawMessage, field string) (json.RawMessage, *APIError) {
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return nil, badRequest("%sdata is required", field)
	}
	if data[0] != '"' {
		if len(data) > MaxDataSize {
			return nil, dataTooLarge(field, len(data))
		}
		return bytes.Clone(data), nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, badRequest("%sdata: %v", field, err)
	}
	if len(s) > MaxDataSize {
		return nil, dataTooLarge(field, len(s))
	}
	return DataPayload(s), nil
}

func dataTooLarge(field string, n int) *APIError {
	return &APIError{Status: 413, Message: fmt.Sprintf("%sdata: the data content of this event exceeds the allowed maximum (%d bytes; got %d)", field, MaxDataSize, n)}
}

// ValidSocketID reports whether id has the "<digits>.<digits>" form of a
// socket id.
func ValidSocketID(id string) bool {
	dot := strings.IndexByte(id, '.')
	if dot <= 0 || dot == len(id)-1 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if i != dot && (id[i] < '0' || id[i] > '9') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
