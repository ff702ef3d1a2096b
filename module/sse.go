package module

import (
	"context"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/rtproto"
	"github.com/wprealtime/caddy-realtime/module/internal/wsframe"
)

// Server-Sent Events on the realtime_ws route: a GET that accepts
// text/event-stream and asks for no upgrade is a session of the same hub
// in the SSE wire format (rtproto.SSE), with the same channels, tokens,
// origins, limits and resume; Last-Event-ID is its since.
//
// Over HTTP/1.1 the response is taken over once its headers are out, like
// a WebSocket: identity framing (Transfer-Encoding: identity makes
// net/http send no chunks and close the connection at the end), the
// connection hijacked and parked in the epoll set, so that an idle stream
// holds no goroutine and survives a reload. Over HTTP/2 and HTTP/3, where
// nothing can be hijacked, net/http holds the stream (heldStream): the
// handler's goroutine waits until the stream ends, and a reload or stop
// ends it at once, since a handler that has not returned keeps the old
// server's shutdown (and, with Caddy's default eternal grace period, the
// next stop) waiting. Its client resumes on the new server with
// Last-Event-ID and loses nothing still in history.

func init() {
	nameTransport("sse", rtproto.SSE{})
}

// disconnectReload ends the streams net/http holds when the config that
// accepted them stops for a reload.
var disconnectReload = hub.Disconnect{Name: "reload", Code: wsframe.CloseServiceRestart, Reason: "the server reloaded; resume with your last event id"}

// heldStreamDrain is how long a stream that a stopping config ends may
// take to write its last message before it is cut.
const heldStreamDrain = 500 * time.Millisecond

// wantsEventStream reports whether r asks for an SSE stream: a GET with no
// Upgrade whose Accept lists text/event-stream.
func wantsEventStream(r *http.Request) bool {
	if r.Method != http.MethodGet || r.Header.Get("Upgrade") != "" {
		return false
	}
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// isPreflight reports whether r is a CORS preflight: browsers send one
// before a cross-origin fetch with an Authorization header (EventSource
// itself never does).
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// serveSSE serves an SSE stream, or the CORS preflight of one.
func (h *WSHandler) serveSSE(w http.ResponseWriter, r *http.Request) error {
	hd := w.Header()
	hd.Add("Vary", "Origin")
	if !h.origins.allowed(r) {
		return writeJSONError(w, http.StatusForbidden, "origin_not_allowed", "origin not allowed")
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		// The exact origin, never *: EventSource withCredentials sends
		// the token cookie, and a browser refuses * with credentials.
		hd.Set("Access-Control-Allow-Origin", origin)
		hd.Set("Access-Control-Allow-Credentials", "true")
	}
	if r.Method == http.MethodOptions {
		hd.Set("Access-Control-Allow-Methods", "GET")
		hd.Set("Access-Control-Allow-Headers", "Authorization, Last-Event-ID, Cache-Control, Accept")
		hd.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	opts, rj := h.connectOptions(r)
	if rj != nil {
		return writeJSONError(w, rj.status, rj.code, rj.msg)
	}
	// The browser's own resume point, sent on its reconnects; it is newer
	// than the since in the URL the stream was first opened with.
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		opts.Since = id
	}
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	s, err := h.hub.Admit(h.policy, rtproto.SSE{}, ip)
	if err != nil {
		return refuseConnection(w, err)
	}
	if err := h.hub.Start(); err != nil {
		s.Cancel()
		return refuseConnection(w, err)
	}
	hd.Set("Content-Type", "text/event-stream")
	// no-transform keeps Caddy's encode (and proxies) from compressing the
	// stream: a compressor per stream, and buffering.
	hd.Set("Cache-Control", "no-store, no-transform")
	hd.Set("X-Accel-Buffering", "no")
	hd.Del("Content-Length")
	if r.ProtoMajor == 1 {
		// No chunked framing: after the headers the stream is plain bytes
		// that the hub writes on the hijacked connection, and net/http
		// answers Connection: close.
		hd.Set("Transfer-Encoding", "identity")
	}
	w.WriteHeader(http.StatusOK)
	if err := http.NewResponseController(w).Flush(); err != nil {
		s.Cancel()
		return nil
	}
	if r.ProtoMajor == 1 {
		if c, _, err := (hijacker{w}).Hijack(); err == nil {
			h.takeOver(s, c.(*lockedConn), opts)
			return nil
		}
	}
	h.holdStream(w, r, s, opts)
	return nil
}

// takeOver hands a hijacked stream to the hub: it waits in the epoll set,
// or on a reader goroutine where epoll cannot watch it, only to notice the
// client leaving. An SSE client sends nothing, so there is no idle sweep:
// a dead peer shows when writes (keep-alives included) go unacknowledged.
func (h *WSHandler) takeOver(s *hub.Session, lc *lockedConn, opts hub.ConnectOptions) {
	t := newTransport(lc, time.Duration(h.WriteTimeout))
	pc := newPolledStream(s, t, 2*time.Duration(h.PingInterval))
	s.Start(platformTransport(t), opts)
	if pc != nil {
		pc.register()
		return
	}
	go readStream(s, t)
}

// holdStream serves a stream that net/http owns until it ends: the session
// ends it, the client goes, or the config that accepted it stops.
func (h *WSHandler) holdStream(w http.ResponseWriter, r *http.Request, s *hub.Session, opts hub.ConnectOptions) {
	st := newHeldStream(w, time.Duration(h.WriteTimeout))
	held := metrics.sseHeld.WithLabelValues(h.Hub)
	held.Inc()
	defer held.Dec()
	s.Start(st, opts)
	select {
	case <-st.closed:
	case <-r.Context().Done():
	case <-h.stopping:
		d := disconnectReload
		if caddy.Exiting() {
			d = hub.DisconnectShutdown
		}
		s.Disconnect(d)
		t := time.NewTimer(heldStreamDrain)
		select {
		case <-st.closed:
		case <-r.Context().Done():
		case <-t.C:
			st.abort()
		}
		t.Stop()
	}
	s.Finish()
	st.finish()
}

// stopSignal closes a handler's stopping channel when its config stops:
// Caddy emits "stopping" for the old config on every reload and on exit,
// before any app stops, and calls handlers synchronously, so it only
// signals.
type stopSignal struct {
	once *sync.Once
	ch   chan struct{}
}

// Handle implements caddyevents.Handler.
func (s stopSignal) Handle(context.Context, caddy.Event) error {
	s.once.Do(func() { close(s.ch) })
	return nil
}

// watchStopping subscribes the handler to its config's "stopping" event.
func (h *WSHandler) watchStopping(ctx caddy.Context) {
	h.stopOnce = new(sync.Once)
	h.stopping = make(chan struct{})
	app, err := ctx.App("events")
	if err == nil {
		err = app.(*caddyevents.App).On("stopping", stopSignal{once: h.stopOnce, ch: h.stopping})
	}
	if err != nil {
		// Cleanup still ends held streams, though on exit only after
		// the servers' shutdown has waited for them.
		h.logger.Warn("realtime_ws: cannot watch the config's stopping event; HTTP/2 event streams will delay shutdown", zap.Error(err))
	}
}

// Cleanup ends the streams net/http holds for this handler, in case its
// config stopped without the stopping event.
func (h *WSHandler) Cleanup() error {
	if h.stopOnce != nil {
		_ = stopSignal{once: h.stopOnce, ch: h.stopping}.Handle(context.Background(), caddy.Event{})
	}
	return nil
}

var (
	_ caddyevents.Handler = stopSignal{}
	_ caddy.CleanerUpper  = (*WSHandler)(nil)
)
