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
	// ErrWriteTimeout is what a Transport's Write wraps when the client did
	// not take the bytes within the write timeout: a client that stopped
	// reading. The session ends as a slow consumer.
	ErrWriteTimeout = errors.New("write timed out: the client is not reading")
)

// Error codes of refused client requests (ErrorMessage.Code).
const (
	CodeForbidden            = "forbidden"
	CodeTokenInvalid         = "token_invalid"
	CodeTokenExpired         = "token_expired"
	CodeBadRequest           = "bad_request"
	CodeTooManySubscriptions = "too_many_subscriptions"
	// CodeMemberLimit refuses a presence join over the member limit, for
	// sessions that asked for refusals (SubscribeOptions.MemberLimit).
	CodeMemberLimit = "member_limit"
)
