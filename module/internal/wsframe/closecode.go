package wsframe

// Close codes (RFC 6455 section 7.4.1) that the hub sends.
const (
	CloseNormal         = 1000
	CloseGoingAway      = 1001 // shutdown, or no handler names the hub any more
	CloseProtocolError  = 1002
	CloseUnsupported    = 1003 // a binary frame
	CloseNoStatus       = 1005 // the client's close frame had no code (never sent)
	CloseInvalidPayload = 1007 // invalid UTF-8
	ClosePolicy         = 1008
	CloseTooBig         = 1009
	CloseInternal       = 1011
	CloseServiceRestart = 1012 // resume with the last cursor
	CloseTryAgainLater  = 1013 // send queue overflow; resume with the last cursor
)

// ValidCloseCode reports whether a client may send code (RFC 6455 7.4).
func ValidCloseCode(code int) bool {
	switch {
	case code >= 3000 && code <= 4999:
		return true
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011:
		return true
	}
	return false
}
