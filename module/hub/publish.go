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

// ParsePublish validates a publish body: one event object or an array of at
// most maxBatch of them. Nothing is accepted unless everything is valid.
// Payloads may share memory with body, which must not change afterwards.
//
// encoding/json checks the whole document before it decodes anything, so a
// syntax error anywhere is reported as such (field "body") before any field
// is looked at, without a separate validation pass.
func ParsePublish(body []byte, maxBatch int) ([]*Publication, error) {
	return parsePublish(body, maxBatch, true)
}

// parsePublish is ParsePublish with the fast decoder on or off; tests check
// that both give the same answer for every input.
func parsePublish(body []byte, maxBatch int, fast bool) ([]*Publication, error) {
	if !utf8.Valid(body) {
		return nil, &PublishError{Field: "body", Message: "invalid UTF-8"}
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, &PublishError{Field: "body", Message: "empty body"}
	}
	if trimmed[0] != '[' {
		if trimmed[0] != '{' && !json.Valid(trimmed) {
			return nil, errInvalidJSON
		}
		p, err := parseItem(trimmed, "", fast)
		if err != nil {
			return nil, err
		}
		return []*Publication{p}, nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return nil, errInvalidJSON
	}
	if len(raw) == 0 {
		return nil, &PublishError{Field: "body", Message: "empty batch"}
	}
	if maxBatch > 0 && len(raw) > maxBatch {
		return nil, &PublishError{Field: "body", Message: fmt.Sprintf("batch of %d events is over the limit of %d", len(raw), maxBatch), TooMany: true}
	}
	pubs := make([]*Publication, 0, len(raw))
	for i, r := range raw {
		p, err := parseItem(r, fmt.Sprintf("[%d].", i), fast)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, p)
	}
	return pubs, nil
}

var errInvalidJSON = &PublishError{Field: "body", Message: "invalid JSON"}

func parseItem(r json.RawMessage, prefix string, fast bool) (*Publication, error) {
	r = bytes.TrimLeft(r, " \t\r\n")
	if len(r) == 0 || r[0] != '{' {
		return nil, &PublishError{Field: prefix + "event", Message: "must be a JSON object"}
	}
	it, ok := item{}, false
	if fast {
		it, ok = decodeItemFast(r)
	}
	if !ok {
		var err error
		if it, err = decodeItem(r, prefix); err != nil {
			return nil, err
		}
	}
	return it.publication(prefix)
}

// publication validates a decoded item.
func (it *item) publication(prefix string) (*Publication, error) {
	p := &Publication{}
	switch {
	case !it.hasType:
		return nil, &PublishError{Field: prefix + "type", Message: "is required"}
	case !ValidType(it.typ):
		return nil, &PublishError{Field: prefix + "type", Message: typeRule}
	case IsControlType(it.typ):
		return nil, &PublishError{Field: prefix + "type", Message: `must not start with "realtime:", "pusher:" or "pusher_internal:"`}
	}
	p.Type = it.typ
	if it.hasChannel && it.channels != nil {
		return nil, &PublishError{Field: prefix + "channels", Message: "give channel or channels, not both"}
	}
	switch {
	case it.channels != nil:
		if len(it.channels) == 0 {
			return nil, &PublishError{Field: prefix + "channels", Message: "must not be empty"}
		}
		seen := make(map[string]bool, len(it.channels))
		for j, c := range it.channels {
			if !ValidChannel(c) {
				return nil, &PublishError{Field: fmt.Sprintf("%schannels[%d]", prefix, j), Message: channelRule}
			}
			if !seen[c] {
				seen[c] = true
				p.Channels = append(p.Channels, c)
			}
		}
	case it.hasChannel:
		if !ValidChannel(it.channel) {
			return nil, &PublishError{Field: prefix + "channel", Message: channelRule}
		}
		p.Channels = []string{it.channel}
	default:
		p.Channels = []string{DefaultChannel}
	}
	if len(it.payload) > 0 && !bytes.Equal(it.payload, []byte("null")) {
		p.Payload = compactJSON(it.payload)
	}
	if it.hasTimestamp {
		if len(it.timestamp) > 64 {
			return nil, &PublishError{Field: prefix + "timestamp", Message: "must be at most 64 characters"}
		}
		p.Timestamp = it.timestamp
	}
	if it.hasID {
		if len(it.id) == 0 || len(it.id) > 128 {
			return nil, &PublishError{Field: prefix + "id", Message: "must be 1 to 128 characters"}
		}
		p.ID = it.id
	}
	return p, nil
}

// compactJSON removes insignificant whitespace so that the frame sent to
// every subscriber is as small as it can be. b is valid JSON that the caller
// owns (json.RawMessage fields are copies), so compact input is kept as is.
func compactJSON(b []byte) json.RawMessage {
	if isCompact(b) {
		return b
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return append(json.RawMessage(nil), b...)
	}
	return buf.Bytes()
}

// isCompact reports whether valid JSON b has no whitespace outside strings.
func isCompact(b []byte) bool {
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++ // skip the escaped byte, which may be a quote
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ' ', '\t', '\n', '\r':
			return false
		}
	}
	return true
}

// fieldOf names the field of a json.UnmarshalTypeError.
func fieldOf(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return te.Field
	}
	return "event"
}
