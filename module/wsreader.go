package module

import (
	"io"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/wsframe"
)

// readWebSocket reads a session's client frames on a goroutine of its own
// until the connection ends, for connections the epoll set cannot watch.
// Protocol pings and pongs keep the read deadline ahead; a client that
// answers nothing for two ping intervals is gone. handle is the protocol's
// handler of a text message.
func readWebSocket(s *hub.Session, conn *websocket.Conn, t *transport, handle func(*hub.Session, []byte), maxMessage int64, pingInterval time.Duration) {
	// Let a close frame out before the socket goes.
	defer s.End(t.writeTimeout)
	idle := 2 * pingInterval
	alive := func() { _ = conn.SetReadDeadline(time.Now().Add(idle)) }
	conn.SetReadLimit(maxMessage)
	conn.SetPingHandler(func(data string) error {
		alive()
		if s.WaitForRoom() {
			s.QueueControl(wsframe.Pong([]byte(data)))
		}
		return nil
	})
	conn.SetPongHandler(func(string) error {
		alive()
		return nil
	})
	conn.SetCloseHandler(func(code int, _ string) error {
		// Echo the client's close through the ordered queue.
		s.Disconnect(hub.ClientClosed(code))
		return nil
	})
	for {
		alive()
		mt, r, err := conn.NextReader()
		if err != nil {
			return
		}
		if mt == websocket.BinaryMessage {
			s.Disconnect(hub.ProtocolViolation(wsframe.CloseUnsupported, "binary frames are not supported"))
			return
		}
		// Over max_message_size, gorilla itself sends the 1009 close frame
		// and fails the read; the deferred Finish then closes the socket.
		data, err := io.ReadAll(r)
		if err != nil {
			return
		}
		if !utf8.Valid(data) {
			s.Disconnect(hub.ProtocolViolation(wsframe.CloseInvalidPayload, "invalid UTF-8"))
			return
		}
		handle(s, data)
	}
}
