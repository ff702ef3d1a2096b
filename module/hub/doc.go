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
// it with a JWT library).
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
//
// # Locks
//
// Lock order: MemoryLog.mu, then Hub.mu, then Session.mu, then Event.mu.
// Never the other way round.
//
//   - MemoryLog.mu is held across Append's delivery, so Hub.deliver runs
//     under it.
//   - Hub.mu guards the channels' live sets, every session's subs map, the
//     head cursor, limits, and the flusher's ready list. A subscription
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
