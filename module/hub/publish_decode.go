package hub

import (
	"bytes"
	"encoding/json"
	"errors"
)

// item is one publish object, decoded but not yet validated. The has* flags
// tell a missing (or null) field from an empty one, as pointers would in a
// struct for encoding/json.
type item struct {
	typ, channel, timestamp, id              string
	hasType, hasChannel, hasTimestamp, hasID bool
	channels                                 []string // nil: not given (or null)
	payload                                  []byte   // the raw JSON value
}

// publishItem mirrors the publish body for encoding/json. Unknown fields are
// ignored so that the recipe's format and future extensions pass.
type publishItem struct {
	Channel   *string         `json:"channel"`
	Channels  []string        `json:"channels"`
	Type      *string         `json:"type"`
	Payload   json.RawMessage `json:"payload"`
	Timestamp *string         `json:"timestamp"`
	ID        *string         `json:"id"`
}

// decodeItem decodes one publish object with encoding/json: the reference
// decoder, used for every object the fast decoder leaves to it.
func decodeItem(r []byte, prefix string) (item, error) {
	var it publishItem
	if err := json.Unmarshal(r, &it); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return item{}, errInvalidJSON
		}
		return item{}, &PublishError{Field: prefix + fieldOf(err), Message: "wrong JSON type"}
	}
	out := item{channels: it.Channels, payload: it.Payload}
	out.typ, out.hasType = deref(it.Type)
	out.channel, out.hasChannel = deref(it.Channel)
	out.timestamp, out.hasTimestamp = deref(it.Timestamp)
	out.id, out.hasID = deref(it.ID)
	return out, nil
}

func deref(s *string) (string, bool) {
	if s == nil {
		return "", false
	}
	return *s, true
}

// decodeItemFast decodes the common shape of a publish object without
// reflection: a valid JSON object whose keys are the exact lowercase field
// names (or unknown ones) and whose string fields have no escapes. It
// reports false for anything else (channels, escapes, wrong types,
// case-folded keys, invalid JSON) and the caller then uses decodeItem, so
// both decoders give the same answer for every input (FuzzPublishDecoders).
// The payload shares r's memory.
//
// A publish is decoded on every request, and encoding/json's reflection
// and allocations cost more than the rest of the publish.
func decodeItemFast(r []byte) (item, bool) {
	var it item
	if !json.Valid(r) {
		return it, false
	}
	// r is valid JSON from here on, which keeps the scanning below simple:
	// every string is closed, every bracket matched.
	i := skipSpace(r, 0)
	if r[i] != '{' {
		return it, false
	}
	i++
	for {
		i = skipSpace(r, i)
		switch r[i] {
		case '}':
			return it, true
		case ',':
			i = skipSpace(r, i+1)
		}
		// A key: r[i] is its opening quote.
		j := i + 1
		for r[j] != '"' {
			if r[j] == '\\' || r[j] >= 0x80 {
				return it, false // escaped or non-ASCII key: folding rules apply
			}
			j++
		}
		key := r[i+1 : j]
		i = skipSpace(r, j+1) // the colon
		i = skipSpace(r, i+1)
		end := skipValue(r, i)
		val := r[i:end]
		i = end
		var ok bool
		switch string(key) {
		case "type":
			it.typ, it.hasType, ok = plainString(val)
		case "channel":
			it.channel, it.hasChannel, ok = plainString(val)
		case "timestamp":
			it.timestamp, it.hasTimestamp, ok = plainString(val)
		case "id":
			it.id, it.hasID, ok = plainString(val)
		case "payload":
			it.payload, ok = val, true
		default:
			// encoding/json matches keys case-insensitively: "Type" is
			// "type". Those and "channels" go to the reference decoder;
			// other keys are ignored, as it ignores them.
			ok = !knownKeyFold(key)
		}
		if !ok {
			return it, false
		}
	}
}

// plainString reads a JSON string without escapes, or null (absent). ok is
// false for anything else.
func plainString(v []byte) (s string, has, ok bool) {
	if v[0] == 'n' { // null: valid JSON starting with n
		return "", false, true
	}
	if v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return "", false, false
	}
	return string(v[1 : len(v)-1]), true, true
}

var publishKeys = [][]byte{[]byte("type"), []byte("channel"), []byte("channels"), []byte("timestamp"), []byte("id"), []byte("payload")}

func knownKeyFold(key []byte) bool {
	for _, k := range publishKeys {
		if bytes.EqualFold(key, k) {
			return true
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at b[i]; b is valid.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default: // number, true, false, null
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// skipString returns the index after the string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}
