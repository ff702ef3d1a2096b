package pusher

import (
	"strconv"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/wsframe"
)

// Codec is the Pusher protocol's wire format over WebSocket: one text frame
// per message, pusher:ping as the keep-alive, close frames with the codes
// pusher-js acts on. Its settings only change control messages, so every
// Codec value shares one event encoding per event.
type Codec struct {
	// ActivityTimeout is announced in pusher:connection_established:
	// pusher-js pings after this long without a frame from the server.
	// 0 announces the session's ping interval.
	ActivityTimeout time.Duration
}

var format = hub.NewFormat()

// Format implements hub.Codec.
func (Codec) Format() hub.Format { return format }

// Event encodes a channel event:
//
//	{"event":T,"channel":C,"data":"<payload as a JSON string>","user_id":U}
//
// data is left out when the event has no payload, user_id when it has no
// sending user (only client events on presence channels have one).
func (Codec) Event(e *hub.Event) []byte {
	size := wsframe.MaxHeader + 32 + len(e.Type) + len(e.Channel) + len(e.Payload) + len(e.Payload)/8 + len(e.UserID)
	b := make([]byte, wsframe.MaxHeader, size)
	b = append(b, `{"event":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"channel":`...)
	b = appendString(b, e.Channel)
	if len(e.Payload) > 0 {
		b = append(b, `,"data":`...)
		b = appendData(b, e.Payload)
	}
	if e.UserID != "" {
		b = append(b, `,"user_id":`...)
		b = appendString(b, e.UserID)
	}
	return frame(append(b, '}'))
}

// frame turns b, MaxHeader spare bytes followed by a message, into one
// text frame without a copy.
func frame(b []byte) []byte {
	n := wsframe.PutHeader(b[:wsframe.MaxHeader], wsframe.OpText, len(b)-wsframe.MaxHeader)
	return b[wsframe.MaxHeader-n:]
}

// startMessage starts a control message of event ev on channel ("" for none),
// with MaxHeader spare bytes in front for frame.
func startMessage(ev, channel string) []byte {
	b := make([]byte, wsframe.MaxHeader, 128+len(channel))
	b = append(b, `{"event":`...)
	b = appendString(b, ev)
	if channel != "" {
		b = append(b, `,"channel":`...)
		b = appendString(b, channel)
	}
	return b
}

// Welcome is pusher:connection_established; its socket_id is the session's
// id, which has the "<digits>.<digits>" form the Pusher SDKs require.
func (c Codec) Welcome(w hub.Welcome) []byte {
	timeout := c.ActivityTimeout
	if timeout <= 0 {
		timeout = w.PingInterval
	}
	// pusher-js refuses a handshake without a positive activity_timeout.
	secs := max(int64((timeout+time.Second-1)/time.Second), 1)
	inner := make([]byte, 0, 64)
	inner = append(inner, `{"socket_id":`...)
	inner = appendString(inner, w.ConnectionID)
	inner = append(inner, `,"activity_timeout":`...)
	inner = strconv.AppendInt(inner, secs, 10)
	inner = append(inner, '}')
	b := startMessage("pusher:connection_established", "")
	b = append(b, `,"data":`...)
	b = appendString(b, string(inner))
	return frame(append(b, '}'))
}

// Subscribed is pusher_internal:subscription_succeeded with data "{}". A
// presence channel's subscription is acknowledged by Presence instead,
// which carries the members.
func (Codec) Subscribed(channel string, _ hub.Recovery) []byte {
	if IsPresence(channel) {
		return nil
	}
	b := startMessage("pusher_internal:subscription_succeeded", channel)
	return frame(append(b, `,"data":"{}"}`...))
}

// Unsubscribed sends nothing: Pusher does not acknowledge unsubscribes.
func (Codec) Unsubscribed(string) []byte { return nil }

// Error reports a refused request. A refused subscription is a
// pusher:subscription_error on its channel, with the {type, error, status}
// data that pusher-js gives its own auth failures, so Laravel Echo's
// .error() callback gets it; anything else is a pusher:error.
func (Codec) Error(e hub.ErrorMessage) []byte {
	if e.Channel == "" {
		return ErrorFrame(0, e.Message)
	}
	typ, status := "Error", 400
	switch e.Code {
	case hub.CodeTokenInvalid, hub.CodeTokenExpired:
		typ, status = "AuthError", 401
	case hub.CodeForbidden:
		typ, status = "AuthError", 403
	case hub.CodeTooManySubscriptions, hub.CodeMemberLimit:
		typ, status = "LimitReached", CloseOverCapacity
	case hub.CodeBadRequest:
		typ, status = "BadRequest", 400
	}
	return SubscriptionError(e.Channel, typ, e.Message, status)
}

// SubscriptionError is a pusher:subscription_error frame.
func SubscriptionError(channel, typ, msg string, status int) []byte {
	b := startMessage("pusher:subscription_error", channel)
	b = append(b, `,"data":{"type":`...)
	b = appendString(b, typ)
	b = append(b, `,"error":`...)
	b = appendString(b, msg)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	return frame(append(b, "}}"...))
}

// ErrorFrame is a pusher:error frame: {"code":code,"message":msg}, with a
// null code for 0. It never closes the connection by itself.
func ErrorFrame(code int, msg string) []byte {
	b := startMessage("pusher:error", "")
	b = append(b, `,"data":{"code":`...)
	if code == 0 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(code), 10)
	}
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	return frame(append(b, "}}"...))
}

// Pong answers pusher:ping.
func (Codec) Pong() []byte { return pongFrame }

// KeepAlive is a pusher:ping: pusher-js answers it with pusher:pong, which
// tells the server the client is alive, and takes it as activity, so an
// idle client does not ping the server as well.
func (Codec) KeepAlive() []byte { return pingFrame }

// Close maps the engine's reasons to the close codes pusher-js acts on:
// shutdown and restarts are 4200 (reconnect at once), a client that could
// not keep up 4100 (reconnect after a back-off). Protocol errors keep
// their RFC 6455 codes, after which pusher-js reconnects in a second.
func (Codec) Close(d hub.Disconnect) []byte {
	code := d.Code
	switch d.Name {
	case hub.DisconnectShutdown.Name, hub.DisconnectBackplaneReplaced.Name, hub.DisconnectGap.Name:
		code = CloseReconnect
	case hub.DisconnectSlowConsumer.Name:
		code = CloseOverCapacity
	}
	return wsframe.Close(code, d.Reason)
}

// Presence is the subscription_succeeded of a presence channel:
//
//	{"presence":{"ids":["1"],"hash":{"1":{"name":"A"}},"count":1}}
//
// as a JSON string. pusher-js finds the joiner in hash, so the snapshot must
// include it; a member without info is in hash as null.
func (Codec) Presence(channel string, p hub.PresenceSnapshot) []byte {
	if !IsPresence(channel) {
		return nil
	}
	inner := make([]byte, 0, 64+len(p.Members)*48)
	inner = append(inner, `{"presence":{"ids":[`...)
	for i, m := range p.Members {
		if i > 0 {
			inner = append(inner, ',')
		}
		inner = appendString(inner, m.ID)
	}
	inner = append(inner, `],"hash":{`...)
	for i, m := range p.Members {
		if i > 0 {
			inner = append(inner, ',')
		}
		inner = appendString(inner, m.ID)
		inner = append(inner, ':')
		inner = appendInfo(inner, m.Info)
	}
	inner = append(inner, `},"count":`...)
	inner = strconv.AppendInt(inner, int64(p.Count), 10)
	inner = append(inner, "}}"...)
	b := startMessage("pusher_internal:subscription_succeeded", channel)
	b = append(b, `,"data":`...)
	b = appendString(b, string(inner))
	return frame(append(b, '}'))
}

func appendInfo(b []byte, info []byte) []byte {
	if len(info) == 0 {
		return append(b, "null"...)
	}
	return append(b, info...)
}

// MemberAdded is pusher_internal:member_added with the user's id and info.
func (Codec) MemberAdded(channel string, m hub.Member, _ int) []byte {
	if !IsPresence(channel) {
		return nil
	}
	inner := make([]byte, 0, 32+len(m.ID)+len(m.Info))
	inner = append(inner, `{"user_id":`...)
	inner = appendString(inner, m.ID)
	inner = append(inner, `,"user_info":`...)
	inner = appendInfo(inner, m.Info)
	inner = append(inner, '}')
	b := startMessage("pusher_internal:member_added", channel)
	b = append(b, `,"data":`...)
	b = appendString(b, string(inner))
	return frame(append(b, '}'))
}

// MemberRemoved is pusher_internal:member_removed; pusher-js only needs the
// id (it kept the info from member_added).
func (Codec) MemberRemoved(channel string, m hub.Member, _ int) []byte {
	if !IsPresence(channel) {
		return nil
	}
	inner := appendString([]byte(`{"user_id":`), m.ID)
	inner = append(inner, '}')
	b := startMessage("pusher_internal:member_removed", channel)
	b = append(b, `,"data":`...)
	b = appendString(b, string(inner))
	return frame(append(b, '}'))
}

// PresenceCount sends nothing: Pusher has no count-only message. Above the
// member limit a Pusher subscription is refused instead.
func (Codec) PresenceCount(string, int) []byte { return nil }

var (
	pongFrame = frame(append(startMessage("pusher:pong", ""), `,"data":{}}`...))
	pingFrame = frame(append(startMessage("pusher:ping", ""), `,"data":{}}`...))
)

var _ hub.Codec = Codec{}
