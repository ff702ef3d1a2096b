package module

import (
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/pusher"
	"github.com/wprealtime/caddy-realtime/module/internal/wsframe"
)

// serveWebSocket accepts a Pusher connection at /app/<key>. Refusals come
// after the upgrade, as a pusher:error frame and a close frame with
// Pusher's code, because that is what pusher-js acts on: an unknown key
// (4001), protocol (4007, 4008) or origin (4009) stop it for good, a full
// hub (4100) makes it back off. An HTTP error would only make it retry.
func (h *PusherHandler) serveWebSocket(w http.ResponseWriter, r *http.Request, key string) error {
	if !websocket.IsWebSocketUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		return writeJSONError(w, http.StatusUpgradeRequired, "upgrade_required", "this endpoint only speaks WebSocket (the Pusher protocol)")
	}
	code, reason := h.handshakeRefusal(r, key)
	var s *hub.Session
	if code == 0 {
		ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
		var err error
		if s, err = h.hub.Admit(h.endpoint.Policy, h.codec, ip); err != nil {
			code, reason = pusher.CloseOverCapacity, "Over capacity: "+err.Error()
		} else if err := h.hub.Start(); err != nil {
			s.Cancel()
			s, code, reason = nil, pusher.CloseOverCapacity, "Unavailable: "+err.Error()
		}
	}
	conn, err := h.upgrader.Upgrade(hijacker{w}, r, nil)
	if err != nil {
		// gorilla has answered the client already.
		if s != nil {
			s.Cancel()
		}
		h.logger.Debug("websocket upgrade failed", zap.Error(err))
		return nil
	}
	if code != 0 {
		refuseSocket(conn, code, reason, time.Duration(h.WriteTimeout))
		return nil
	}
	t := newTransport(conn.NetConn().(*lockedConn), time.Duration(h.WriteTimeout))
	// Each connection has its protocol state (the client event rate
	// limit); on Linux it waits for reads in the epoll set like
	// realtime_ws's, with no goroutine while idle.
	pc := h.endpoint.NewConn()
	polled := newPolledConn(s, t, pc.Handle, h.MaxMessageSize, h.serverPing)
	s.Start(platformTransport(t), hub.ConnectOptions{Channels: []string{}})
	if polled != nil {
		polled.register()
		return nil
	}
	go readWebSocket(s, conn, t, pc.Handle, h.MaxMessageSize, h.serverPing)
	return nil
}

// handshakeRefusal returns the close code and reason for a connection the
// handler refuses, in Pusher's order of checks; 0 to accept it.
func (h *PusherHandler) handshakeRefusal(r *http.Request, key string) (int, string) {
	switch protocol := r.URL.Query().Get("protocol"); {
	case key != h.key:
		return pusher.CloseAppNotFound, "Application does not exist"
	case protocol == "":
		return pusher.CloseNoProtocol, "No protocol version supplied"
	case protocol != "7":
		return pusher.CloseUnsupportedProtocol, "Unsupported protocol version"
	case !h.origins.allowed(r):
		return pusher.CloseUnauthorized, "Origin not allowed"
	}
	return 0, ""
}

// refuseSocket ends a connection that never became a session: a
// pusher:error and a close frame with code, then the socket. The client
// sends nothing before the server's first frame, so closing right away
// does not reset the connection under the frames.
func refuseSocket(conn *websocket.Conn, code int, reason string, writeTimeout time.Duration) {
	c := conn.NetConn()
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, _ = c.Write(append(pusher.ErrorFrame(code, reason), wsframe.Close(code, reason)...))
	_ = c.Close()
}
