package hub

import "github.com/wprealtime/caddy-realtime/module/internal/wsframe"

// Disconnect is why the server ends a session. Code is the module's own
// WebSocket close code (RFC 6455); other wire formats map it to their own
// (the Pusher protocol's 4200 for "reconnect now", say). Name labels logs
// and metrics.
type Disconnect struct {
	Name   string
	Code   int
	Reason string
}

// The reasons the server ends sessions. Every one of them means "resume
// with your last cursor": a client loses nothing still in history.
var (
	// DisconnectShutdown: the server stops, or a reload no longer declares
	// the hub.
	DisconnectShutdown = Disconnect{Name: "shutdown", Code: wsframe.CloseGoingAway, Reason: "server going away"}
	// DisconnectBackplaneReplaced: a reload changed the hub's backplane
	// and a new hub took its place.
	DisconnectBackplaneReplaced = Disconnect{Name: "backplane_replaced", Code: wsframe.CloseServiceRestart, Reason: "hub restarted with a new backplane; resume with your last cursor"}
	// DisconnectGap: the backplane skipped events this node's subscribers
	// would otherwise miss silently.
	DisconnectGap = Disconnect{Name: "gap", Code: wsframe.CloseServiceRestart, Reason: "events were lost by the backplane; resume with your last cursor"}
	// DisconnectSlowConsumer: the client fell further behind than history
	// reaches, or stopped reading (a write did not finish within the write
	// timeout).
	DisconnectSlowConsumer = Disconnect{Name: "slow_consumer", Code: wsframe.CloseTryAgainLater, Reason: "send queue overflow; resume with your last cursor"}
)

// ProtocolViolation is a disconnect for a client that broke the wire
// protocol (framing, UTF-8, sizes); code and reason come from the parser.
func ProtocolViolation(code int, reason string) Disconnect {
	return Disconnect{Name: "protocol", Code: code, Reason: reason}
}

// ClientClosed is the answer to a client's own close: its code echoed.
func ClientClosed(code int) Disconnect {
	if code == wsframe.CloseNoStatus {
		code = wsframe.CloseNormal
	}
	return Disconnect{Name: "client", Code: code}
}
