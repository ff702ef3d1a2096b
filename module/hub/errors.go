package hub

import "errors"

var (
	errBadCursor = errors.New("malformed cursor")

	// ErrClosed is returned for work offered to a hub that is shutting down.
	ErrClosed = errors.New("hub is closed")
	// ErrTooManyConnections means the hub is at its connection limit.
	ErrTooManyConnections = errors.New("too many connections")
	// ErrTooManyConnectionsPerIP means this client address is at its limit.
	ErrTooManyConnectionsPerIP = errors.New("too many connections from this address")
)

// WebSocket close codes the hub uses (RFC 6455 section 7.4.1).
const (
	CloseNormal         = 1000
	CloseGoingAway      = 1001
	CloseProtocolError  = 1002
	CloseUnsupported    = 1003 // binary frame
	CloseInvalidPayload = 1007 // invalid UTF-8
	ClosePolicy         = 1008
	CloseTooBig         = 1009
	CloseInternal       = 1011
	CloseServiceRestart = 1012 // hub replaced by a reload that changed its backplane
	CloseTryAgainLater  = 1013 // send queue overflow; resume with the last cursor
)

// Error codes of realtime:error frames.
const (
	CodeForbidden            = "forbidden"
	CodeTokenInvalid         = "token_invalid"
	CodeTokenExpired         = "token_expired"
	CodeBadRequest           = "bad_request"
	CodeTooManySubscriptions = "too_many_subscriptions"
)
