package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// DefaultChannel is where an event without a channel goes.
const DefaultChannel = "default"

// PublishError is a publish body the hub refuses. Field names the offending
// field ("body" for the document itself, "[2].type" inside a batch).
type PublishError struct {
	Field   string
	Message string
	TooMany bool // the batch is over the limit (HTTP 413 rather than 400)
}

func (e *PublishError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// publishItem mirrors the publish body. Unknown fields are ignored so that
// the recipe's format and future extensions pass.
type publishItem struct {
	Channel   *string         `json:"channel"`
	Channels  []string        `json:"channels"`
	Type      *string         `json:"type"`
	Payload   json.RawMessage `json:"payload"`
	Timestamp *string         `json:"timestamp"`
	ID        *string         `json:"id"`
}

// ParsePublish validates a publish body: one event object or an array of at
// most maxBatch of them. Nothing is accepted unless everything is valid.
func ParsePublish(body []byte, maxBatch int) ([]*Publication, error) {
	if !utf8.Valid(body) {
		return nil, &PublishError{Field: "body", Message: "invalid UTF-8"}
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, &PublishError{Field: "body", Message: "empty body"}
	}
	if !json.Valid(trimmed) {
		return nil, &PublishError{Field: "body", Message: "invalid JSON"}
	}
	var raw []json.RawMessage
	batch := trimmed[0] == '['
	if batch {
		if err := json.Unmarshal(trimmed, &raw); err != nil {
			return nil, &PublishError{Field: "body", Message: "invalid JSON"}
		}
		if len(raw) == 0 {
			return nil, &PublishError{Field: "body", Message: "empty batch"}
		}
		if maxBatch > 0 && len(raw) > maxBatch {
			return nil, &PublishError{Field: "body", Message: fmt.Sprintf("batch of %d events is over the limit of %d", len(raw), maxBatch), TooMany: true}
		}
	} else {
		raw = []json.RawMessage{trimmed}
	}
	pubs := make([]*Publication, 0, len(raw))
	for i, r := range raw {
		prefix := ""
		if batch {
			prefix = fmt.Sprintf("[%d].", i)
		}
		p, err := parseItem(r, prefix)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, p)
	}
	return pubs, nil
}

func parseItem(r json.RawMessage, prefix string) (*Publication, error) {
	r = bytes.TrimLeft(r, " \t\r\n")
	if len(r) == 0 || r[0] != '{' {
		return nil, &PublishError{Field: prefix + "event", Message: "must be a JSON object"}
	}
	var it publishItem
	if err := json.Unmarshal(r, &it); err != nil {
		return nil, &PublishError{Field: prefix + fieldOf(err), Message: "wrong JSON type"}
	}
	p := &Publication{}
	switch {
	case it.Type == nil:
		return nil, &PublishError{Field: prefix + "type", Message: "is required"}
	case len(*it.Type) == 0 || utf8.RuneCountInString(*it.Type) > 64:
		return nil, &PublishError{Field: prefix + "type", Message: "must be 1 to 64 characters"}
	case IsControlType(*it.Type):
		return nil, &PublishError{Field: prefix + "type", Message: `must not start with "realtime:"`}
	}
	p.Type = *it.Type
	if it.Channel != nil && it.Channels != nil {
		return nil, &PublishError{Field: prefix + "channels", Message: "give channel or channels, not both"}
	}
	switch {
	case it.Channels != nil:
		if len(it.Channels) == 0 {
			return nil, &PublishError{Field: prefix + "channels", Message: "must not be empty"}
		}
		seen := make(map[string]bool, len(it.Channels))
		for j, c := range it.Channels {
			if !ValidChannel(c) {
				return nil, &PublishError{Field: fmt.Sprintf("%schannels[%d]", prefix, j), Message: channelRule}
			}
			if !seen[c] {
				seen[c] = true
				p.Channels = append(p.Channels, c)
			}
		}
	case it.Channel != nil:
		if !ValidChannel(*it.Channel) {
			return nil, &PublishError{Field: prefix + "channel", Message: channelRule}
		}
		p.Channels = []string{*it.Channel}
	default:
		p.Channels = []string{DefaultChannel}
	}
	if len(it.Payload) > 0 && !bytes.Equal(it.Payload, []byte("null")) {
		p.Payload = compactJSON(it.Payload)
	}
	if it.Timestamp != nil {
		if len(*it.Timestamp) > 64 {
			return nil, &PublishError{Field: prefix + "timestamp", Message: "must be at most 64 characters"}
		}
		p.Timestamp = *it.Timestamp
	}
	if it.ID != nil {
		if len(*it.ID) == 0 || len(*it.ID) > 128 {
			return nil, &PublishError{Field: prefix + "id", Message: "must be 1 to 128 characters"}
		}
		p.ID = *it.ID
	}
	return p, nil
}

// compactJSON removes insignificant whitespace so that the frame sent to
// every subscriber is as small as it can be.
func compactJSON(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return append(json.RawMessage(nil), b...)
	}
	return buf.Bytes()
}

// fieldOf names the field of a json.UnmarshalTypeError.
func fieldOf(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return te.Field
	}
	return "event"
}

const channelRule = "must be 1 to 128 characters of A-Z a-z 0-9 . _ - : @ ="

// ValidChannel reports whether name is a valid channel name.
func ValidChannel(name string) bool {
	if len(name) == 0 || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '-', c == ':', c == '@', c == '=':
		default:
			return false
		}
	}
	return true
}

// IsControlType reports whether t is reserved for the hub's control frames.
func IsControlType(t string) bool {
	return len(t) >= 9 && t[:9] == "realtime:"
}
