package pusher

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// Endpoint is what a realtime_pusher handler decides for the connections
// it accepts; each keeps the Endpoint it was accepted under, as it keeps
// its hub.Policy.
type Endpoint struct {
	// Policy is the sessions' policy; with the hub's private patterns
	// (Session.IsPrivate) it says which channels need an auth signature
	// (private-*, presence-* and any extra patterns), and its Tokens is an
	// Authorizer.
	Policy *hub.Policy
	// ClientEvents lets clients send client-* events on private and
	// presence channels.
	ClientEvents bool
	// ClientEventRate bounds each connection's client events per second
	// (with a burst of as many); the excess is dropped with a pusher:error.
	ClientEventRate int
}

// Conn is one connection's protocol state. Its Handle is called by one
// goroutine at a time (the connection's reader), so it needs no lock.
type Conn struct {
	e *Endpoint
	// next is when the rate limiter next has room for a client event
	// (unix nanoseconds; a GCRA "theoretical arrival time").
	next int64
}

// NewConn starts the protocol state of a connection.
func (e *Endpoint) NewConn() *Conn { return &Conn{e: e} }

// Handle handles one client message. It first waits for room in the
// session's queue, so a client that pipelines requests is answered at the
// pace it reads. Nothing a client sends closes its connection: refusals
// are pusher:error or pusher:subscription_error frames.
func (c *Conn) Handle(s *hub.Session, data []byte) {
	if !s.WaitForRoom() {
		return
	}
	m, err := ParseMessage(data)
	if err != nil {
		s.QueueControl(ErrorFrame(0, err.Error()))
		return
	}
	switch {
	case m.Event == EventPing:
		s.Pong()
	case m.Event == EventPong:
		// Reading it was the point: the connection is alive.
	case m.Event == EventSubscribe:
		c.subscribe(s, m.Data)
	case m.Event == EventUnsubscribe:
		if sub, err := ParseSubscription(m.Data); err == nil && hub.ValidChannel(sub.Channel) {
			s.Unsubscribe([]string{sub.Channel})
		}
	case m.Event == EventSignin:
		s.QueueControl(ErrorFrame(0, "pusher:signin (user authentication) is not supported by this server"))
	case strings.HasPrefix(m.Event, ClientEventPrefix):
		c.clientEvent(s, m)
	default:
		s.QueueControl(ErrorFrame(0, "unknown event "+strconv.Quote(truncate(m.Event, 64))))
	}
}

// subscribe hands a subscription to the engine: its auth signature, if
// the channel needs one, goes as the token, which the Policy's Authorizer
// verifies; the engine answers subscription_succeeded or
// subscription_error.
func (c *Conn) subscribe(s *hub.Session, data []byte) {
	sub, err := ParseSubscription(data)
	if err != nil {
		s.QueueControl(ErrorFrame(0, err.Error()))
		return
	}
	// A presence channel over the hub's member limit refuses the join:
	// Pusher's frames cannot show a channel by its count alone.
	o := hub.SubscribeOptions{MemberLimit: IsPresence(sub.Channel)}
	if IsPresence(sub.Channel) && sub.HasChannelData {
		// Malformed member data is the application's mistake, not a
		// wrong signature: say what is wrong with it.
		if _, err := ParseChannelData(sub.ChannelData); err != nil {
			s.QueueControl(SubscriptionError(sub.Channel, "BadRequest", err.Error(), 400))
			return
		}
	}
	if hub.ValidChannel(sub.Channel) && (s.IsPrivate(sub.Channel) || IsPresence(sub.Channel)) {
		// A signature is good for this subscription alone: the session
		// keeps no grant of it.
		o.Token, o.SingleUse = Credential(s.ID(), sub), true
	}
	s.Subscribe([]string{sub.Channel}, o)
}

// clientEvent relays a client-* event to the channel's other subscribers,
// through the hub's log (so it reaches every node and every wire format),
// excluding the sender. Every refusal is a pusher:error 4301 frame: as a
// close code 4301 would stop pusher-js for good.
func (c *Conn) clientEvent(s *hub.Session, m Message) {
	reject := func(msg string) { s.QueueControl(ErrorFrame(ErrorClientEvent, msg)) }
	switch {
	case !c.e.ClientEvents:
		reject("Client events are not enabled for this app")
		return
	case !c.allow(time.Now().UnixNano()):
		reject("Client event rejected due to rate limit")
		return
	case !hub.ValidType(m.Event):
		reject("Client event rejected: the event name must be at most 200 characters, none of them a control character")
		return
	case !ClientEventsAllowed(m.Channel):
		reject("Client event rejected: client events are only allowed on private and presence channels, not encrypted ones")
		return
	case len(m.Data) > MaxDataSize:
		reject("Client event rejected: data over " + strconv.Itoa(MaxDataSize) + " bytes")
		return
	}
	user, subscribed := s.SubscribedAs(m.Channel)
	if !subscribed {
		reject("Client event rejected: the client is not subscribed to " + m.Channel)
		return
	}
	p := &hub.Publication{
		Channels: []string{m.Channel},
		Type:     m.Event,
		// The reader's buffer is reused: the log keeps its own copy.
		Payload: bytes.Clone(m.Data),
		Exclude: s.ID(),
		// On a presence channel the others learn who sent it: the member
		// its signature named, never anything the client says.
		UserID: user,
	}
	h := s.Hub()
	if _, err := h.Publish(context.Background(), []*hub.Publication{p}); err != nil {
		reject("Client event could not be delivered: " + err.Error())
		return
	}
	if h.WantsWebhook(hub.WebhookClientEvent) {
		ev := hub.WebhookEvent{Name: "client_event", Channel: m.Channel, Event: m.Event, Data: webhookData(m.Data), SocketID: s.ID(), UserID: user}
		ctx, cancel := context.WithTimeout(context.Background(), webhookAddTimeout)
		// A webhook that cannot be queued is lost, like one the queue
		// drops when full; the event itself was delivered.
		_ = h.Webhooks().Add(ctx, []hub.WebhookEvent{ev})
		cancel()
	}
}

// webhookAddTimeout bounds queuing a client_event webhook (a round trip to
// Redis when the hub has one).
const webhookAddTimeout = 2 * time.Second

// webhookData is a client event's data as a client_event webhook carries
// it, a string as in Pusher's: a JSON string's content, any other JSON
// value as its text.
func webhookData(data json.RawMessage) string {
	d := bytes.TrimSpace(data)
	if len(d) > 0 && d[0] == '"' {
		var s string
		if json.Unmarshal(d, &s) == nil {
			return s
		}
	}
	return string(d)
}

// allow reports whether the rate limit has room for one more client event
// at now, and takes it: ClientEventRate a second, in bursts of at most as
// many.
func (c *Conn) allow(now int64) bool {
	rate := c.e.ClientEventRate
	if rate <= 0 {
		return true
	}
	interval := int64(time.Second) / int64(rate)
	next := max(c.next, now)
	if next-now > int64(rate-1)*interval {
		return false
	}
	c.next = next + interval
	return true
}
