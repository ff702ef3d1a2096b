package pusher

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// A presence subscription names its member in channel_data, a JSON string
// the application's auth endpoint signed together with the socket and the
// channel:
//
//	{"user_id":"42","user_info":{"name":"Ana"}}
//
// user_id is a string or a number (Laravel sends its numeric ids as
// numbers): the member's id is its text, so 42 and "42" are one member.
// user_info is any JSON value, shown to the other members.

// MaxUserIDLen bounds a member's id, as Pusher does.
const MaxUserIDLen = 128

// Errors of ParseChannelData. Their text reaches the client in
// pusher:subscription_error.
var (
	ErrChannelData    = errors.New("channel_data must be a JSON object with a user_id (a string or a number)")
	ErrUserIDTooLong  = errors.New("channel_data: user_id must be at most 128 characters")
	ErrUserInfoTooBig = errors.New("channel_data: user_info must be at most 1 KiB of JSON")
)

// ParseChannelData reads the member of a presence subscription from its
// channel_data: the id as a string, and the info compacted (nil when
// absent or null).
func ParseChannelData(data string) (hub.Member, error) {
	var cd struct {
		UserID   json.RawMessage `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info"`
	}
	b := bytes.TrimSpace([]byte(data))
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &cd) != nil {
		return hub.Member{}, ErrChannelData
	}
	id, err := userID(cd.UserID)
	if err != nil {
		return hub.Member{}, err
	}
	m := hub.Member{ID: id}
	info := bytes.TrimSpace(cd.UserInfo)
	if len(info) == 0 || string(info) == "null" {
		return m, nil
	}
	if len(info) > 64*hub.MaxInfoSize {
		return hub.Member{}, ErrUserInfoTooBig
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, info); err != nil {
		return hub.Member{}, ErrChannelData
	}
	if buf.Len() > hub.MaxInfoSize {
		return hub.Member{}, ErrUserInfoTooBig
	}
	m.Info = buf.Bytes()
	return m, nil
}

// userID returns the text of a user_id: a non-empty string, or a number as
// written.
func userID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", ErrChannelData
	}
	var id string
	switch raw[0] {
	case '"':
		if json.Unmarshal(raw, &id) != nil {
			return "", ErrChannelData
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return "", ErrChannelData
		}
		id = n.String()
	default:
		return "", ErrChannelData
	}
	switch {
	case id == "":
		return "", ErrChannelData
	case len(id) > MaxUserIDLen:
		return "", ErrUserIDTooLong
	}
	return id, nil
}
