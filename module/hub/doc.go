// Package hub is the realtime engine: channels, sessions, the ordered event
// log with history and resume, idempotent publishing and fan-out.
//
// It knows nothing of Caddy, HTTP, Redis or WebSocket framing. Its
// vocabulary is events, channels, sessions, cursors and disconnects. Three
// kinds of parts plug into it:
//
//   - a Log (log.go) orders and keeps a hub's events: the in-memory
//     MemoryLog, or a backplane such as module/redis shared by several
//     nodes;
//   - a Transport (transport.go) is a connection that writes encoded
//     messages: a hijacked WebSocket or Server-Sent Events stream;
//   - a Codec (codec.go) is a wire format: it encodes events and the
//     engine's control messages for one kind of client (the module's own
//     protocol over WebSocket or SSE, the Pusher protocol). Each event is
//     encoded at most once per format on a node (Event.Wire).
//
// Token checks sit behind TokenVerifier (module/internal/token implements
// it with a JWT library). Presence sits behind a PresenceStore, which
// decides presence for the whole hub (MemoryPresence on one node, or the
// backplane's through PresenceLog), and webhooks behind a WebhookQueue
// that a sender outside the engine drains.
//
// # Files
//
//	hub.go        Hub: lifecycle, limits, publish, close
//	fanout.go     live delivery from the log, the flusher
//	channel.go    the live subscriber set of each channel
//	session.go    Session: admission, start, disconnect, finish
//	subscribe.go  subscribe and unsubscribe, access, resume and catch-up
//	queue.go      a session's send queue and its writers
//	codec.go, disconnect.go, transport.go, access.go   the contracts
//	event.go, cursor.go, names.go, publish.go, publish_decode.go   values
//	log.go, memlog.go   the Log contract and the in-memory log
//	presence.go         the presence contracts: PresenceStore, settings, queries
//	presence_local.go   this node's presence: holds, mirrors, snapshots, frames
//	presence_memory.go  MemoryPresence, the store of a hub on one node
//	linger.go           the leave delay: one timer over a heap per hub
//	webhooks.go, webhooks_memory.go   the webhook queue and its in-memory form
//
// # Presence
//
// A node tells its store only about node-level transitions of a hold: a
// (channel, user) its subscriptions start holding, or stop holding once
// the last one has been gone for the leave delay (a hold with user ""
// counts a channel's subscribers for the occupied/vacated webhooks). A
// hold makes one store call at a time (hold.busy) and, when it returns,
// compares what the store knows with what the node wants, so a join and a
// leave of one user can never cross. The store decides whether the call
// changes who is a member, delivers each change with its position to every
// node, and queues its webhooks in the same step. Each node mirrors the
// presence channels it holds members of: a snapshot (as of a position),
// then the changes after it; a session gets the mirror's snapshot once the
// mirror reflects its own user's join, and from then on the changes, from
// the same lock, so it misses none and gets none twice. Sessions of a wire
// format that cannot show a channel by its count alone (the Pusher
// protocol) ask for joins over the member limit to be refused
// (SubscribeOptions.MemberLimit): their hold's Join carries the limit, the
// store decides atomically, and a refused hold's subscriptions are
// answered and dropped before they are announced. A snapshot read across
// a resync, or of another epoch than the changes delivered since, is read
// again. A store that acts on the hub's settings itself (a store shared by
// nodes beats by the TTL, says goodbye for the leave delay, queues the
// webhooks of a dead node's members) implements PresenceConfigReceiver.
//
// # Goroutines
//
//   - The log's delivery calls Hub.deliver: from Append itself for the
//     MemoryLog (under the log's lock, so delivery order is log order), or
//     from the backplane's reader goroutine. deliver never blocks on a
//     session: it appends to queues.
//   - The flusher (Hub.flushLoop) exists only while sessions are ready to
//     write; it writes for many sessions without blocking (TryWriter) and
//     splits large fan-outs over GOMAXPROCS goroutines (flushAll).
//   - A session's writer goroutine (Session.writeLoop) exists only while
//     its connection would block, or for transports that cannot write
//     without blocking; one at a time per session (Session.writing).
//   - A catch-up goroutine (Session.catchUp) replays history for a resume,
//     or for a session that fell behind (lagLocked), and waits for room in
//     the queue between events: it is how a reader that is slow, but
//     reads, is never disconnected.
//   - The transport's reader (an epoll callback or a goroutine in the
//     Caddy layer) hands client messages to the session through its
//     protocol (rtproto.Handle, the Pusher handler) and calls End or
//     Finish when the connection ends.
//   - A keep-alive timer per session (Session.ping) queues the codec's
//     keep-alive.
//   - Store calls for presence run on the goroutine that subscribes (the
//     join, and the first snapshot of a channel) or on the linger timer's
//     (one time.AfterFunc per hub, Hub.lingerExpired, for leaves); later
//     snapshots of a channel (back under the member limit, a resync) on a
//     goroutine of their own; a presence_count due later on a timer per
//     channel. The store delivers changes from its own call (MemoryPresence,
//     under its lock) or from a backplane's reader goroutine.
//
// # Locks
//
// Lock order: MemoryLog.mu or MemoryPresence.mu, then Hub.mu, then
// Session.mu, then Event.mu. Never the other way round.
// MemoryWebhookQueue.mu is a leaf, taken under MemoryPresence.mu when a
// decision queues its webhook.
//
//   - MemoryPresence.mu is held across the delivery of a change, so
//     Hub.deliverPresence runs under it. The hub never calls its store
//     while it holds Hub.mu.
//   - MemoryLog.mu is held across Append's delivery, so Hub.deliver runs
//     under it.
//   - Hub.mu guards the channels' live sets, every session's subscriptions, the
//     head cursor, limits, the flusher's ready list, and the presence
//     state (holds, lingers, mirrors, receivers). A subscription
//     joins the live set only under Hub.mu at the moment the head is where
//     its replay ended: that is what makes resume gap-free and
//     duplicate-free.
//   - Session.mu guards a session's queue and writer state. It is taken
//     under Hub.mu by deliver, never the reverse; nothing blocks while
//     holding it.
//   - Event.mu guards an event's per-format encodings; Codec.Event runs
//     under it.
//
// Everything here can be unit-tested without a network: the tests use a
// JSON codec and an in-memory transport (helpers_test.go).
package hub
