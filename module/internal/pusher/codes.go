package pusher

// Close codes of the Pusher protocol, as pusher-js acts on them: 4000-4099
// refuse the connection for good, 4100-4199 make the client back off
// before it reconnects, 4200-4299 make it reconnect at once, and 4300 and
// above refuse it for good.
const (
	// CloseAppNotFound: the key in the URL names no application.
	CloseAppNotFound = 4001
	// CloseUnsupportedProtocol: the protocol query is not 7.
	CloseUnsupportedProtocol = 4007
	// CloseNoProtocol: the protocol query is missing.
	CloseNoProtocol = 4008
	// CloseUnauthorized: the connection is refused (origin not allowed).
	CloseUnauthorized = 4009
	// CloseOverCapacity: over the connection limits, or a client that
	// could not keep up; it reconnects after a back-off.
	CloseOverCapacity = 4100
	// CloseReconnect: reconnect now (shutdown, the hub restarted, the
	// backplane lost events).
	CloseReconnect = 4200
)

// Error codes of pusher:error frames, which never close the connection.
const (
	// ErrorClientEvent: a client event was rejected (rate limit, client
	// events off, not subscribed, too large). pusher-js treats 4301 as
	// final only as a close code, so it is sent as an error frame only.
	ErrorClientEvent = 4301
)
