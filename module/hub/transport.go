package hub

// Transport is what a session needs from its connection: the ordered
// delivery of encoded messages. The Caddy layer implements it over hijacked
// connections (WebSocket, Server-Sent Events).
type Transport interface {
	// Write writes whole messages, in order, within the write timeout. It
	// is called by one goroutine at a time.
	Write(msgs [][]byte) error
	// Close closes the connection at once. It may be called more than once.
	Close() error
}

// TryWriter is implemented by transports that can write without blocking
// (plain TCP on Linux). The hub then writes fan-out from a flusher that
// serves many sessions, and a session only gets a goroutine of its own
// while its connection would block.
type TryWriter interface {
	// TryWrite writes as much of msgs as the connection takes at once,
	// without waiting, and returns the number of bytes written.
	TryWrite(msgs [][]byte) (int, error)
}
