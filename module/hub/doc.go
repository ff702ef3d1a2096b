// Package hub is the realtime engine: channels, sessions, the ordered event
// log with history and resume, idempotent publishing and fan-out.
//
// It knows nothing of Caddy, HTTP or Redis. A transport (the Caddy WebSocket
// handler) hands it framed connections through the Transport interface, and a
// backplane (the in-memory log, or Redis) orders and keeps events through the
// Log interface. Everything here can be unit-tested without a network.
package hub
