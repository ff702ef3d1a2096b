package rtproto

import (
	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/wsframe"
)

// WebSocket is the codec of the module's own protocol over WebSocket: one
// text frame per message, protocol pings as keep-alive, close frames with
// the disconnect's code.
type WebSocket struct{}

var wsFormat = hub.NewFormat()

// Format implements hub.Codec.
func (WebSocket) Format() hub.Format { return wsFormat }

// Event frames the event's JSON in its headroom: every subscriber gets the
// same bytes, and building them costs no copy.
func (WebSocket) Event(e *hub.Event) []byte {
	buf := e.Headroom()
	n := wsframe.PutHeader(buf[hub.Headroom-wsframe.MaxHeader:hub.Headroom], wsframe.OpText, len(buf)-hub.Headroom)
	return buf[hub.Headroom-n:]
}

// Welcome implements hub.Codec.
func (WebSocket) Welcome(w hub.Welcome) []byte { return wsframe.Text(WelcomeJSON(w)) }

// Subscribed implements hub.Codec.
func (WebSocket) Subscribed(ch string, r hub.Recovery) []byte {
	return wsframe.Text(SubscribedJSON(ch, r))
}

// Unsubscribed implements hub.Codec.
func (WebSocket) Unsubscribed(ch string) []byte { return wsframe.Text(UnsubscribedJSON(ch)) }

// Error implements hub.Codec.
func (WebSocket) Error(e hub.ErrorMessage) []byte { return wsframe.Text(ErrorJSON(e)) }

// Pong implements hub.Codec.
func (WebSocket) Pong() []byte { return pongFrame }

// KeepAlive is a protocol ping: browsers answer it without the page's code.
func (WebSocket) KeepAlive() []byte { return pingFrame }

// Close implements hub.Codec.
func (WebSocket) Close(d hub.Disconnect) []byte { return wsframe.Close(d.Code, d.Reason) }

// Presence implements hub.Codec.
func (WebSocket) Presence(ch string, p hub.PresenceSnapshot) []byte {
	return wsframe.Text(PresenceJSON(ch, p))
}

// MemberAdded implements hub.Codec.
func (WebSocket) MemberAdded(ch string, m hub.Member, count int) []byte {
	return wsframe.Text(MemberJSON("realtime:member_added", ch, m, count))
}

// MemberRemoved implements hub.Codec.
func (WebSocket) MemberRemoved(ch string, m hub.Member, count int) []byte {
	return wsframe.Text(MemberJSON("realtime:member_removed", ch, m, count))
}

// PresenceCount implements hub.Codec.
func (WebSocket) PresenceCount(ch string, count int) []byte {
	return wsframe.Text(PresenceCountJSON(ch, count))
}

var (
	pongFrame = wsframe.Text(PongJSON)
	pingFrame = wsframe.Ping()
)

var _ hub.Codec = WebSocket{}
