package pusher

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// The frames are built by hand: channel events are encoded once per event
// for every Pusher subscriber on the node, and the control messages are a
// handful of fixed shapes. The codec tests decode every one of them with
// encoding/json, and FuzzEventData checks the escaping.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

// appendEscaped appends the JSON string escaping of s, without quotes:
// quote, backslash and control characters escaped, invalid UTF-8 replaced
// by U+FFFD, everything else as it is (no HTML escaping). Plain printable
// ASCII, the usual case, is copied in one go.
func appendEscaped[T ~string | ~[]byte](b []byte, s T) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	return append(b, s[start:]...)
}

// appendData appends a payload as the data of a channel event, which is
// always a JSON string in Pusher's frames: a payload that is a JSON string
// is sent as that string (a trigger's data comes back verbatim), any other
// JSON as its text.
func appendData(b []byte, payload json.RawMessage) []byte {
	p := bytes.TrimSpace(payload)
	if len(p) > 0 && p[0] == '"' {
		return append(b, p...)
	}
	b = append(b, '"')
	b = appendEscaped(b, payload)
	return append(b, '"')
}

// DataPayload is the hub payload of a Pusher event's data string: the data
// parsed as JSON when it is JSON (kept byte for byte, so a Pusher
// subscriber gets the string back verbatim), else the string itself.
// Subscribers of the module's own protocol see it as payload.
func DataPayload(data string) json.RawMessage {
	if json.Valid([]byte(data)) {
		return json.RawMessage(data)
	}
	return json.RawMessage(appendString(make([]byte, 0, len(data)+2), data))
}
