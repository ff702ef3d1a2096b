package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Presence: who is on a presence channel, right across nodes.
//
// A member is a user (a token's sub), not a connection. The work is split
// in two. The hub keeps what this node holds (presence_local.go): how many
// of its connections each user has on each presence channel, the leave
// delay, a mirror of each channel's members and the frames its sessions
// get. A PresenceStore decides what is true for the whole hub: a node tells
// it only when it starts or stops holding a user (the first connection, or
// the last one gone for the leave delay), and the store decides whether
// that makes the user a member or no longer one, delivers the change to
// every node in one order, and queues the webhooks. The in-memory store
// (MemoryPresence) does this for one node; a backplane shared by several
// nodes implements the same contract (PresenceLog).

// PresenceConfig are a hub's presence settings. Hub.SetPresence changes
// them in place.
type PresenceConfig struct {
	// Patterns are * globs of channels that are presence channels beyond
	// presence-*, which always are.
	Patterns []string
	// LeaveDelay is how long a user stays a member after its last
	// connection on this node is gone: a tab that reloads within it is
	// never seen leaving. 0 leaves at once.
	LeaveDelay time.Duration
	// MaxMembers is how many members a channel lists; above it, snapshots
	// carry only the count and member events give way to a count at most
	// once a second. 0 lists none.
	MaxMembers int
	// TTL is how soon a store shared by nodes removes the members of a node
	// that died without saying so; the in-memory store has no use for it.
	TTL time.Duration
}

// Defaults of the presence settings.
const (
	DefaultPresenceLeaveDelay = 3 * time.Second
	DefaultPresenceMaxMembers = 100
	DefaultPresenceTTL        = 30 * time.Second
)

// DefaultPresenceConfig returns the default presence settings.
func DefaultPresenceConfig() PresenceConfig {
	return PresenceConfig{LeaveDelay: DefaultPresenceLeaveDelay, MaxMembers: DefaultPresenceMaxMembers, TTL: DefaultPresenceTTL}
}

// presencePrefix marks presence channels on every wire format.
const presencePrefix = "presence-"

// IsPresenceChannel reports whether channel is a presence channel under
// patterns: presence-* always is.
func IsPresenceChannel(channel string, patterns []string) bool {
	if strings.HasPrefix(channel, presencePrefix) {
		return true
	}
	for _, p := range patterns {
		if Glob(p, channel) {
			return true
		}
	}
	return false
}

// MaxInfoSize is the largest member info, in bytes of compact JSON.
const MaxInfoSize = 1024

// ErrInfoInvalid is a member info that is not a JSON object of at most
// MaxInfoSize bytes.
var ErrInfoInvalid = errors.New("info must be a JSON object of at most 1 KiB")

// NormalizeInfo checks a member's info and returns it compacted: a JSON
// object of at most MaxInfoSize bytes, or nil for none (absent or null).
// Protocols call it on whatever carries the info (a token's info claim, the
// Pusher protocol's user_info).
func NormalizeInfo(raw json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	if t[0] != '{' || len(t) > 64*MaxInfoSize {
		return nil, ErrInfoInvalid
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, t); err != nil || buf.Len() > MaxInfoSize {
		return nil, ErrInfoInvalid
	}
	return buf.Bytes(), nil
}

// PresenceStore decides presence for every node of a hub. The hub calls it
// only on node-level transitions, never while holding its own lock, and
// never twice at once for one (channel, user) or one channel's occupancy:
// calls for one of them are in order.
//
// A store orders its changes: each has a position (a Cursor, comparable
// within an epoch), and every node gets every change once, in that order,
// through PresenceNode.Deliver. A snapshot is as of a position, so a node
// applies to it exactly the changes after it: no gap, no double apply.
type PresenceStore interface {
	// Start begins delivering changes to n. It is called once, by
	// Hub.Start, before any other method.
	Start(n PresenceNode) error

	// Join records that this node holds m.ID on channel. When no node held
	// the user, the store adds the member (first info wins), delivers the
	// change and queues a member_added webhook when o.Hooks asks for it,
	// all as one step. The result's Pos is that change's position, or the
	// store's latest when the user was a member already: once a node has
	// delivered Pos, its mirror of the channel lists the user.
	Join(ctx context.Context, channel string, m Member, o JoinOptions) (PresenceResult, error)

	// Leave records that this node no longer holds user on channel (its
	// last connection here has been gone for the leave delay). When no
	// node holds the user any more, the store removes the member, delivers
	// the change and queues member_removed when hooks asks for it. Leaving
	// what this node does not hold changes nothing.
	Leave(ctx context.Context, channel, user string, hooks WebhookSet) (PresenceResult, error)

	// Occupy and Vacate are Join and Leave for a channel's subscribers of
	// any kind, for the channel_occupied and channel_vacated webhooks. The
	// hub calls them only while hooks asks for one of those.
	Occupy(ctx context.Context, channel string, hooks WebhookSet) error
	Vacate(ctx context.Context, channel string, hooks WebhookSet) error

	// Snapshot returns the members of channel, for the whole hub, and the
	// position it is as of. Members is nil when there are more than max
	// (max < 0: list them all).
	Snapshot(ctx context.Context, channel string, max int) (PresenceState, error)

	// Close stops delivery. The hub calls it after closing its log.
	Close() error
}

// JoinOptions qualify a Join.
type JoinOptions struct {
	// Hooks are the webhook events the hub's targets want.
	Hooks WebhookSet
	// Limit, when positive, refuses a user who would be a new member of a
	// channel that already has Limit members (the Pusher protocol's
	// subscription error), decided atomically with the join.
	Limit int
}

// PresenceResult is a store's answer to Join or Leave.
type PresenceResult struct {
	Pos     Cursor // the change's position, or the store's latest
	Changed bool   // the user became a member, or stopped being one
	Refused bool   // Join only: JoinOptions.Limit refused a new member
	Count   int    // members after the call
}

// PresenceChange is one member added to or removed from a channel.
type PresenceChange struct {
	Pos     Cursor
	Channel string
	Added   bool   // true: added, with its info; false: removed
	Member  Member // Info is nil for a removal: nodes keep it in their mirror
	Count   int    // members after the change
}

// PresenceState is who is on a channel, as of a position.
type PresenceState struct {
	Pos     Cursor
	Count   int
	Members []Member // nil above the limit asked for
}

// PresenceNode is what a hub gives its store when it starts it.
type PresenceNode struct {
	// Deliver applies changes, in the store's order, one call at a time.
	// It never blocks on a session.
	Deliver func(changes []PresenceChange)
	// Resync tells the hub that the changes it was given cannot be
	// trusted to be complete (data lost, a gap, an outage): it takes a new
	// snapshot of every channel it mirrors and sends it to its sessions.
	// A store calls it after it has registered Held again.
	Resync func()
	// Held lists what this node holds right now, for a store that must
	// register it again (after an outage, or after other nodes took this
	// node for dead).
	Held func() []Holding
}

// Holding is something a node holds: a user on a presence channel, or,
// with User "", a channel it has subscribers of (occupancy).
type Holding struct {
	Channel string
	User    string
	Info    json.RawMessage
	// Limit is the member limit its join would carry (JoinOptions.Limit):
	// set while every subscription on it takes a refusal over the limit.
	Limit int
}

// PresenceLog is implemented by logs that several nodes share and that keep
// presence and webhooks for all of them (the Redis backplane). A hub over
// any other log keeps both in memory, for its node alone.
type PresenceLog interface {
	// Presence returns the store that decides the hub's presence.
	Presence() PresenceStore
	// Webhooks returns the queue that the store's decisions go to.
	Webhooks() WebhookQueue
}

// PresenceConfigReceiver is implemented by a store that acts on the hub's
// presence settings and webhook events itself. A store shared by nodes
// beats and reaps by the presence TTL, says goodbye for the leave delay
// when its node stops, and queues the webhooks of the members of a dead
// node that it reaps: those follow the hub's settings, not any one call.
// The hub passes both on when either changes, without holding its lock;
// a store that does not implement it is never told.
type PresenceConfigReceiver interface {
	SetPresenceConfig(c PresenceConfig, hooks WebhookSet)
}

// Presence returns who is on channel, for the whole hub: the answer to the
// server-side presence queries. It lists every member.
func (h *Hub) Presence(ctx context.Context, channel string) (PresenceState, error) {
	return h.presence.store.Snapshot(ctx, channel, -1)
}

// PresenceCount returns how many members channel has, for the whole hub,
// without listing them.
func (h *Hub) PresenceCount(ctx context.Context, channel string) (int, error) {
	st, err := h.presence.store.Snapshot(ctx, channel, 0)
	return st.Count, err
}

// IsPresence reports whether channel is a presence channel of this hub.
func (h *Hub) IsPresence(channel string) bool {
	return IsPresenceChannel(channel, h.pconfig.Load().Patterns)
}

// PresenceConfig returns the hub's presence settings.
func (h *Hub) PresenceConfig() PresenceConfig { return *h.pconfig.Load() }

// SetPresence changes the hub's presence settings in place. Sessions keep
// the presence channels they joined under the old patterns.
func (h *Hub) SetPresence(c PresenceConfig) {
	if c.MaxMembers < 0 {
		c.MaxMembers = 0
	}
	if c.LeaveDelay < 0 {
		c.LeaveDelay = 0
	}
	c.Patterns = append([]string(nil), c.Patterns...)
	h.pconfig.Store(&c)
	h.configureStore()
}

// configureStore passes the presence settings and the webhook events on to
// a store that wants them. It is called without h.mu.
func (h *Hub) configureStore() {
	r, ok := h.presence.store.(PresenceConfigReceiver)
	if !ok {
		return
	}
	h.mu.Lock()
	hooks := h.presence.hooks
	h.mu.Unlock()
	r.SetPresenceConfig(*h.pconfig.Load(), hooks)
}
