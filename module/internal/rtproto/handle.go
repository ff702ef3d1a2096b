package rtproto

import "github.com/wprealtime/caddy-realtime/module/hub"

// Handle handles one message of a client of the module's own protocol. It
// first waits for room in the session's queue, so a client that pipelines
// requests is answered at the pace it reads.
func Handle(s *hub.Session, data []byte) {
	if !s.WaitForRoom() {
		return
	}
	m, err := ParseClientMessage(data)
	if err != nil {
		s.SendError(hub.ErrorMessage{Code: hub.CodeBadRequest, Message: err.Error()})
		return
	}
	switch m.Type {
	case TypePing:
		s.Pong()
	case TypeSubscribe:
		s.Subscribe(m.Channels, hub.SubscribeOptions{Since: m.Since, Resume: m.HasSince, Token: m.Token})
	case TypeUnsubscribe:
		s.Unsubscribe(m.Channels)
	}
}
