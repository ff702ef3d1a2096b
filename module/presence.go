package module

import (
	"context"
	"net/http"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// The server-side presence queries: GET <realtime_broadcast
// route>?presence=<channel> (with a publisher's credentials) and the admin
// API's GET /realtime/hubs/<name>/presence/<channel>. Both answer who is on
// the channel for the whole hub, every member listed.

// presenceAnswer is the answer of a presence query.
type presenceAnswer struct {
	Channel string       `json:"channel"`
	Count   int          `json:"count"`
	Members []hub.Member `json:"members"`
}

// presenceQueryTimeout bounds a query's wait for the hub's presence store.
const presenceQueryTimeout = 2 * time.Second

// servePresence answers a presence query for channel.
func servePresence(ctx context.Context, w http.ResponseWriter, ph *pooledHub, channel string) error {
	switch {
	case !hub.ValidChannel(channel):
		return writeJSONError(w, http.StatusBadRequest, "invalid_channel", "presence: invalid channel name")
	case !ph.IsPresence(channel):
		return writeJSONError(w, http.StatusBadRequest, "not_presence", "presence: "+channel+" is not a presence channel of hub "+ph.name+" (presence-* and the hub's presence patterns are)")
	}
	if err := ph.Start(); err != nil {
		w.Header().Set("Retry-After", "1")
		return writeJSONError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	}
	ctx, cancel := context.WithTimeout(ctx, presenceQueryTimeout)
	defer cancel()
	st, err := ph.Presence(ctx, channel)
	if err != nil {
		ph.log.logger().Warn("presence query failed", errField(err))
		w.Header().Set("Retry-After", "1")
		return writeJSONError(w, http.StatusServiceUnavailable, "unavailable", "presence could not be read; retry later")
	}
	members := st.Members
	if members == nil {
		members = []hub.Member{}
	}
	return writeJSON(w, http.StatusOK, presenceAnswer{Channel: channel, Count: st.Count, Members: members})
}
