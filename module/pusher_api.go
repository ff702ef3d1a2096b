package module

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/pusher"
)

// The Pusher HTTP API of realtime_pusher, under /apps/<app_id>/:
//
//	POST /events                               trigger
//	POST /batch_events                         batch trigger
//	GET  /channels                             occupied channels
//	GET  /channels/<name>                      one channel
//	GET  /channels/<name>/users                a presence channel's users
//	POST /users/<id>/terminate_connections     (no signed-in users: {})
//
// Every request is signed (pusher.APICredentials.Verify) before anything
// else happens. Answers are JSON objects with status 200, as
// pusher-http-php requires; refusals carry Pusher's status codes and
// {"error": message, "code": status}. Presence (user_count, users, and
// whether a presence channel is occupied) is the hub's, for every node;
// subscription counts and the channel list are this node's: the hub's
// live subscribers here.

// maxAPIBody bounds an HTTP API request body: a batch of 10 events of
// 10 KiB data (escaped, up to 6 bytes a byte) and 100 channels each fits.
const maxAPIBody = 1 << 20

// idempotencyHeader carries the publisher's idempotency key: no Pusher SDK
// sends one, so it is this server's extension.
const idempotencyHeader = "Idempotency-Key"

// pusherAPIError is the body of a refused HTTP API request.
type pusherAPIError struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
}

func writePusherError(w http.ResponseWriter, status int, msg string) error {
	return writeJSON(w, status, pusherAPIError{Error: msg, Code: status})
}

// serveAPI checks a request's signature and routes it; rest is the path
// after /apps/<app_id>/ and prefix what came before /apps/.
func (h *PusherHandler) serveAPI(w http.ResponseWriter, r *http.Request, prefix, rest string) error {
	body, rj := readBody(w, r, maxAPIBody, false)
	if rj != nil {
		return h.refuse(w, rj.status, rj.code, rj.msg)
	}
	req := pusher.SignedRequest{Method: r.Method, Paths: signedPaths(r, prefix), RawQuery: r.URL.RawQuery, Body: body}
	if err := h.api.Verify(req, time.Now()); err != nil {
		return h.refuse(w, err.Status, "unauthorized", err.Message)
	}
	route, name, tail := rest, "", ""
	if after, ok := strings.CutPrefix(rest, "channels/"); ok {
		route = "channel"
		name, tail, _ = strings.Cut(after, "/")
	} else if after, ok := strings.CutPrefix(rest, "users/"); ok {
		route = "user"
		name, tail, _ = strings.Cut(after, "/")
	}
	method := http.MethodGet
	switch route {
	case "events", "batch_events":
		method = http.MethodPost
	case "user":
		method = http.MethodPost
		if tail != "terminate_connections" {
			route = ""
		}
	case "channel":
		if tail != "" && tail != "users" {
			route = ""
		}
	case "channels":
	default:
		route = ""
	}
	if route == "" {
		return writePusherError(w, http.StatusNotFound, "no such HTTP API endpoint: "+truncate(rest, 128))
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		return writePusherError(w, http.StatusMethodNotAllowed, "use "+method)
	}
	q := r.URL.Query()
	switch route {
	case "events":
		return h.trigger(w, r, body)
	case "batch_events":
		return h.batchTrigger(w, r, body)
	case "channels":
		return h.channelList(r.Context(), w, q.Get("filter_by_prefix"), q.Get("info"))
	case "user":
		// Only connections that completed pusher:signin belong to a user,
		// and this server does not support signin: there are none.
		return writeJSONBytes(w, http.StatusOK, []byte("{}\n"))
	}
	if !hub.ValidChannel(name) {
		return writePusherError(w, http.StatusBadRequest, "invalid channel name "+strconv.Quote(truncate(name, 170)))
	}
	if tail == "users" {
		return h.channelUsers(r.Context(), w, name)
	}
	return h.channelInfo(r.Context(), w, name, q.Get("info"))
}

// signedPaths are the paths a signature may cover: the API path without
// the route's prefix (pusher-http-php leaves its path option out of what
// it signs), then the full path; each as decoded and as sent.
func signedPaths(r *http.Request, prefix string) []string {
	var out []string
	add := func(p string) {
		for _, q := range out {
			if q == p {
				return
			}
		}
		out = append(out, p)
	}
	for _, p := range []string{r.URL.Path, r.URL.EscapedPath()} {
		if i := strings.Index(p, "/apps/"); i >= 0 && len(prefix) > 0 {
			add(p[i:])
		}
	}
	add(r.URL.Path)
	add(r.URL.EscapedPath())
	return out
}

// refuse answers a refused request and counts it with the hub's rejected
// publishes.
func (h *PusherHandler) refuse(w http.ResponseWriter, status int, reason, msg string) error {
	metrics.rejected.WithLabelValues(h.hub.name, reason).Inc()
	return writePusherError(w, status, msg)
}

// refuseAPI answers a request body the API refused.
func (h *PusherHandler) refuseAPI(w http.ResponseWriter, err *pusher.APIError) error {
	reason := "invalid_event"
	if err.Status == http.StatusRequestEntityTooLarge {
		reason = "body_too_large"
	}
	return h.refuse(w, err.Status, reason, err.Message)
}

// idempotencyKey reads the Idempotency-Key header: the publication's id,
// so that a retried trigger is delivered once.
func idempotencyKey(r *http.Request) (string, *pusher.APIError) {
	k := r.Header.Get(idempotencyHeader)
	if len(k) > 128 {
		return "", &pusher.APIError{Status: http.StatusBadRequest, Message: idempotencyHeader + " must be at most 128 characters"}
	}
	return k, nil
}

// publication is a trigger as the hub takes it; socket_id becomes the
// session the event skips.
func publication(t pusher.Trigger, id string) *hub.Publication {
	return &hub.Publication{Channels: t.Channels, Type: t.Name, Payload: t.Payload, Exclude: t.SocketID, ID: id}
}

// publish appends to the hub's log; false means it answered 503.
func (h *PusherHandler) publish(ctx context.Context, w http.ResponseWriter, pubs []*hub.Publication) bool {
	start := time.Now()
	_, err := h.hub.Publish(ctx, pubs)
	h.hub.observePublish(time.Since(start))
	if err != nil {
		h.hub.log.logger().Warn("pusher trigger failed", errField(err))
		w.Header().Set("Retry-After", "1")
		_ = h.refuse(w, http.StatusServiceUnavailable, "unavailable", "the event could not be accepted; retry later")
		return false
	}
	return true
}

func (h *PusherHandler) trigger(w http.ResponseWriter, r *http.Request, body []byte) error {
	t, err := pusher.ParseTrigger(body)
	if err != nil {
		return h.refuseAPI(w, err)
	}
	id, err := idempotencyKey(r)
	if err != nil {
		return h.refuseAPI(w, err)
	}
	if !h.publish(r.Context(), w, []*hub.Publication{publication(t, id)}) {
		return nil
	}
	if len(t.Info) == 0 {
		return writeJSONBytes(w, http.StatusOK, []byte("{}\n"))
	}
	channels := make(map[string]map[string]int, len(t.Channels))
	for _, c := range t.Channels {
		channels[c] = h.channelAttributes(r.Context(), c, t.Info)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"channels": channels})
}

func (h *PusherHandler) batchTrigger(w http.ResponseWriter, r *http.Request, body []byte) error {
	batch, err := pusher.ParseBatch(body)
	if err != nil {
		return h.refuseAPI(w, err)
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return h.refuseAPI(w, err)
	}
	pubs := make([]*hub.Publication, len(batch))
	info := false
	for i, t := range batch {
		id := ""
		if key != "" {
			// One key covers the request; each event gets its own id.
			id = key + "." + strconv.Itoa(i)
		}
		pubs[i] = publication(t, id)
		info = info || len(t.Info) > 0
	}
	if !h.publish(r.Context(), w, pubs) {
		return nil
	}
	if !info {
		return writeJSONBytes(w, http.StatusOK, []byte("{}\n"))
	}
	out := make([]map[string]int, len(batch))
	for i, t := range batch {
		out[i] = map[string]int{}
		if len(t.Info) > 0 {
			out[i] = h.channelAttributes(r.Context(), t.Channels[0], t.Info)
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"batch": out})
}

// channelAttributes answers a trigger's info for one channel. The event
// is published already: a user_count that cannot be read is left out
// rather than failing the request.
func (h *PusherHandler) channelAttributes(ctx context.Context, channel string, info []string) map[string]int {
	out := make(map[string]int, 2)
	for _, a := range info {
		switch {
		case a == pusher.InfoSubscriptionCount:
			out[a] = h.hub.SubscriberCount(channel)
		case a == pusher.InfoUserCount && pusher.IsPresence(channel):
			if n, err := h.userCount(ctx, channel); err == nil {
				out[a] = n
			}
		}
	}
	return out
}

// userCount is a presence channel's number of members, for the whole hub.
func (h *PusherHandler) userCount(ctx context.Context, channel string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, presenceQueryTimeout)
	defer cancel()
	n, err := h.hub.PresenceCount(ctx, channel)
	if err != nil {
		h.hub.log.logger().Warn("pusher: presence could not be read", zap.String("channel", channel), errField(err))
	}
	return n, err
}

// presenceUnavailable answers a query whose presence could not be read.
func presenceUnavailable(w http.ResponseWriter) error {
	w.Header().Set("Retry-After", "1")
	return writePusherError(w, http.StatusServiceUnavailable, "presence could not be read; retry later")
}

// parseInfo splits an info query into attributes, refusing unknown ones.
func parseInfo(info string) ([]string, string) {
	if info == "" {
		return nil, ""
	}
	attrs := strings.Split(info, ",")
	for _, a := range attrs {
		if a != pusher.InfoSubscriptionCount && a != pusher.InfoUserCount {
			return nil, "info: unknown attribute " + strconv.Quote(truncate(a, 64)) + " (want user_count, subscription_count)"
		}
	}
	return attrs, ""
}

// channelList answers GET /channels: the channels occupied on this node
// whose names start with prefix; with info=user_count (presence- prefixes
// only, as Pusher), each with its members for the whole hub.
func (h *PusherHandler) channelList(ctx context.Context, w http.ResponseWriter, prefix, info string) error {
	attrs, msg := parseInfo(info)
	if msg != "" {
		return writePusherError(w, http.StatusBadRequest, msg)
	}
	for _, a := range attrs {
		if a == pusher.InfoUserCount && !strings.HasPrefix(prefix, "presence-") {
			return writePusherError(w, http.StatusBadRequest, "info=user_count needs filter_by_prefix=presence-")
		}
	}
	occupied := h.hub.OccupiedChannels(prefix)
	channels := make(map[string]map[string]int, len(occupied))
	for name, n := range occupied {
		c := make(map[string]int, len(attrs))
		for _, a := range attrs {
			if a == pusher.InfoSubscriptionCount {
				c[a] = n
				continue
			}
			users, err := h.userCount(ctx, name)
			if err != nil {
				return presenceUnavailable(w)
			}
			c[a] = users
		}
		channels[name] = c
	}
	return writeJSON(w, http.StatusOK, map[string]any{"channels": channels})
}

// channelInfo answers GET /channels/<name>. A presence channel is occupied
// while it has members anywhere; any other while it has subscribers on
// this node.
func (h *PusherHandler) channelInfo(ctx context.Context, w http.ResponseWriter, name, info string) error {
	attrs, msg := parseInfo(info)
	if msg != "" {
		return writePusherError(w, http.StatusBadRequest, msg)
	}
	n := h.hub.SubscriberCount(name)
	out := map[string]any{"occupied": n > 0}
	users := -1
	if pusher.IsPresence(name) {
		var err error
		if users, err = h.userCount(ctx, name); err != nil {
			return presenceUnavailable(w)
		}
		out["occupied"] = n > 0 || users > 0
	}
	for _, a := range attrs {
		switch {
		case a == pusher.InfoSubscriptionCount:
			out[a] = n
		case users < 0:
			return writePusherError(w, http.StatusBadRequest, "info=user_count is only for presence channels")
		default:
			out[a] = users
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// pusherUser is one entry of GET /channels/<name>/users.
type pusherUser struct {
	ID string `json:"id"`
}

// channelUsers answers GET /channels/<name>/users: a presence channel's
// members, for the whole hub.
func (h *PusherHandler) channelUsers(ctx context.Context, w http.ResponseWriter, name string) error {
	if !pusher.IsPresence(name) {
		return writePusherError(w, http.StatusBadRequest, "users are only listed for presence channels")
	}
	ctx, cancel := context.WithTimeout(ctx, presenceQueryTimeout)
	defer cancel()
	st, err := h.hub.Presence(ctx, name)
	if err != nil {
		h.hub.log.logger().Warn("pusher: presence could not be read", zap.String("channel", name), errField(err))
		return presenceUnavailable(w)
	}
	users := make([]pusherUser, len(st.Members))
	for i, m := range st.Members {
		users[i] = pusherUser{ID: m.ID}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"users": users})
}
