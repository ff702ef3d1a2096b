package hub

import (
	"strings"
	"unicode/utf8"
)

// Names are shared by every wire format of a hub, so they follow the widest
// of them: the Pusher protocol's channel alphabet (plus ':') and its event
// names, such as Laravel's App\Events\OrderShipped.

// maxChannelLen is the longest channel name, in bytes (all ASCII).
const maxChannelLen = 164

const channelRule = "must be 1 to 164 characters of A-Z a-z 0-9 . _ - : @ = , ;"

// ValidChannel reports whether name is a valid channel name.
func ValidChannel(name string) bool {
	if len(name) == 0 || len(name) > maxChannelLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '-', c == ':', c == '@', c == '=', c == ',', c == ';':
		default:
			return false
		}
	}
	return true
}

// maxTypeLen is the longest event type, in characters.
const maxTypeLen = 200

const typeRule = "must be 1 to 200 characters, none of them a control character"

// ValidType reports whether t may name an event: 1 to 200 characters of
// valid UTF-8 with no control characters. Reserved prefixes are checked
// separately (IsControlType).
func ValidType(t string) bool {
	if t == "" || len(t) > 4*maxTypeLen || !utf8.ValidString(t) {
		return false
	}
	n := 0
	for _, r := range t {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
		n++
	}
	return n <= maxTypeLen
}

// IsControlType reports whether t is reserved for the protocols' own
// messages: realtime: (this module's), pusher: and pusher_internal:.
func IsControlType(t string) bool {
	return strings.HasPrefix(t, "realtime:") || strings.HasPrefix(t, "pusher:") || strings.HasPrefix(t, "pusher_internal:")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
