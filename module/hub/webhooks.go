package hub

import (
	"context"
	"strings"
	"time"
)

// Webhooks: the hub tells the application what happened on it. The
// engine decides the events (its presence store decides them once for the
// whole hub) and queues them; a sender outside the engine reads the queue
// for each target (a URL), posts batches and acknowledges them, so delivery
// is at least once and never blocks the hub.

// WebhookSet is a set of webhook event kinds.
type WebhookSet uint8

// The webhook event kinds, named as in Pusher's webhooks.
const (
	WebhookChannelOccupied WebhookSet = 1 << iota
	WebhookChannelVacated
	WebhookMemberAdded
	WebhookMemberRemoved
	// WebhookClientEvent is a client event (the Pusher protocol's client-*
	// events); the protocol that relays one queues it with
	// WebhookQueue.Add.
	WebhookClientEvent
)

// webhookNames are the events' names, in bit order.
var webhookNames = [...]string{"channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event"}

// AllWebhooks is every kind of webhook event.
const AllWebhooks = WebhookChannelOccupied | WebhookChannelVacated | WebhookMemberAdded | WebhookMemberRemoved | WebhookClientEvent

// WebhookEventNames lists the names of the webhook events.
func WebhookEventNames() []string { return append([]string(nil), webhookNames[:]...) }

// ParseWebhookEvent returns the kind of a webhook event name.
func ParseWebhookEvent(name string) (WebhookSet, bool) {
	for i, n := range webhookNames {
		if n == name {
			return 1 << i, true
		}
	}
	return 0, false
}

// Has reports whether s holds any kind of k.
func (s WebhookSet) Has(k WebhookSet) bool { return s&k != 0 }

// String lists the set's names, space-separated.
func (s WebhookSet) String() string {
	var names []string
	for i, n := range webhookNames {
		if s&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, " ")
}

// WebhookEvent is one event for the application, in Pusher's webhook shape
// plus a unique ID for deduplication.
type WebhookEvent struct {
	// Pos orders the events of a queue; a target acknowledges up to one.
	Pos Position
	// ID is unique per event and stays the same when the event is sent
	// again, so that receivers can drop duplicates.
	ID string
	// Time is when the event was decided.
	Time time.Time
	// Name is the event's name: channel_occupied, member_added, ...
	Name    string
	Channel string
	// UserID is the member of member_added and member_removed, and the
	// sender of a client event on a presence channel.
	UserID string
	// Event, Data and SocketID are a client event's name, data and sender.
	Event    string
	Data     string
	SocketID string
}

// Kind returns the event's kind, or 0 for an unknown name.
func (e *WebhookEvent) Kind() WebhookSet {
	k, _ := ParseWebhookEvent(e.Name)
	return k
}

// WebhookQueue keeps a hub's webhook events until each target has them. A
// queue that several nodes share gives a target's events to one node at a
// time, and keeps them when a node dies.
type WebhookQueue interface {
	// Add queues events decided outside a presence store: client events.
	// The queue sets their Pos, ID and Time.
	Add(ctx context.Context, events []WebhookEvent) error
	// Read returns up to max events that target has not acknowledged,
	// oldest first, waiting until there is one or ctx ends. A new target
	// starts at the oldest event kept.
	Read(ctx context.Context, target string, max int) ([]WebhookEvent, error)
	// Ack records that target is done with every event up to upTo:
	// delivered, or given up on.
	Ack(ctx context.Context, target string, upTo Position) error
	// Forget drops a target that is no longer configured, so that its
	// position holds nothing back.
	Forget(ctx context.Context, target string) error
}

// Webhooks returns the hub's webhook queue, for the sender.
func (h *Hub) Webhooks() WebhookQueue { return h.presence.queue }

// SetWebhooks sets the webhook events that the hub's targets want; the
// store queues only those. Turning occupancy events on counts the channels
// already subscribed as occupied from now on.
func (h *Hub) SetWebhooks(hooks WebhookSet) { h.setWebhooks(hooks) }
