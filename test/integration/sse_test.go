package integration

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
	"github.com/wprealtime/caddy-realtime/test/internal/sseclient"
)

// openSSE opens path on the main site as an event stream.
func openSSE(t *testing.T, path string, h http.Header) *sseclient.Stream {
	t.Helper()
	return sseclient.Open(t, httpBase+path, sseclient.Options{Header: h})
}

// expectSSERefused opens path as an event stream and requires a JSON
// refusal with status.
func expectSSERefused(t *testing.T, path string, h http.Header, status int) *response {
	t.Helper()
	s, hr, err := sseclient.TryOpen(t, httpBase+path, sseclient.Options{Header: h})
	if err == nil {
		s.Close()
		t.Fatalf("open %s: want %d, got an event stream", path, status)
	}
	if hr == nil {
		t.Fatalf("open %s: want %d, got %v", path, status, err)
	}
	r := fromHandshake(hr)
	expectError(t, r, status)
	return r
}

// TestSSEHeadersAndFormat: a GET accepting text/event-stream is a stream
// with the headers that keep every cache, proxy and compressor out of the
// way, taken over on HTTP/1.1 (identity framing, Connection: close); the
// welcome comes first with the hub's cursor as its id, control messages
// are named by their type, and an event is unnamed, with its cursor as id
// and, as data, exactly the JSON a WebSocket client gets.
func TestSSEHeadersAndFormat(t *testing.T) {
	loadMain(t)
	ch := uniq("sse")
	s := openSSE(t, "/realtime/ws?channels="+ch, nil)
	resp := s.Response()
	for name, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-store, no-transform",
		"X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("Vary %q does not name Origin", resp.Header.Values("Vary"))
	}
	if resp.ProtoMajor != 1 || len(resp.TransferEncoding) != 0 || resp.ContentLength != -1 || !resp.Close {
		t.Errorf("HTTP/1.1 stream: want identity framing and Connection: close, got HTTP/%d transfer-encoding %v, length %d, close %v",
			resp.ProtoMajor, resp.TransferEncoding, resp.ContentLength, resp.Close)
	}
	w := s.Expect("realtime:welcome")
	if !w.HasID || w.ID != w.Frame.Cursor || !cursorRE.MatchString(w.ID) {
		t.Fatalf("welcome id %q: want its cursor %q (Last-Event-ID from the start)", w.ID, w.Frame.Cursor)
	}
	if w.Retry <= 0 {
		t.Fatalf("welcome without retry: %s", w)
	}
	if w.Frame.ConnectionID == "" || w.Frame.PingInterval == nil || *w.Frame.PingInterval != mainPingInterval {
		t.Fatalf("welcome data: %s", w)
	}
	if m := s.Expect("realtime:subscribed"); m.Frame.Channel != ch || m.Frame.Recovered != nil || m.HasID {
		t.Fatalf("subscribed: want %s without recovered nor id, got %s", ch, m)
	}

	wsc := dial(t, "/realtime/ws?channels="+ch, nil)
	wsc.Welcome(ch)
	publish(t, `{"channel":"`+ch+`","type":"message","payload":{"title":"line\nbreak","n":1},"id":"k-`+ch+`"}`)
	e := s.ExpectEvent(ch, "message")
	wf := wsc.ExpectEvent(ch, "message")
	if e.Data != string(wf.Raw) {
		t.Fatalf("SSE data %q is not the WebSocket message %q", e.Data, wf.Raw)
	}
	if s.LastID() != e.ID {
		t.Fatalf("Last-Event-ID would be %q, want the event's %q", s.LastID(), e.ID)
	}
}

// TestSSEDefaultChannels: without channels= the stream joins
// default_channels; there is no way to subscribe later.
func TestSSEDefaultChannels(t *testing.T) {
	loadMain(t)
	s := openSSE(t, "/realtime/ws", nil)
	s.Welcome("default", "news")
	publish(t, event("news", "headline"))
	s.ExpectEvent("news", "headline")
}

// TestSSENotAnUpgrade: only a GET that accepts text/event-stream is a
// stream; anything else without an upgrade is still 426.
func TestSSENotAnUpgrade(t *testing.T) {
	loadMain(t)
	expectError(t, request(t, http.MethodPost, httpBase+"/realtime/ws", []byte("{}"), "Accept", "text/event-stream", "Content-Type", "application/json"), http.StatusUpgradeRequired)
	expectError(t, request(t, http.MethodGet, httpBase+"/realtime/ws", nil, "Accept", "application/json"), http.StatusUpgradeRequired)
	s := openSSE(t, "/realtime/ws", http.Header{"Accept": {"text/html, text/event-stream;q=0.9"}})
	s.Expect("realtime:welcome")
}

// TestSSELastEventIDResume: a stream reopened with the last id it got
// (what EventSource does on its own) is recovered:true and gets what it
// missed, in order, once; Last-Event-ID wins over since.
func TestSSELastEventIDResume(t *testing.T) {
	loadMain(t)
	ch := uniq("sse-resume")
	s := openSSE(t, "/realtime/ws?channels="+ch, nil)
	s.Welcome(ch)
	publish(t, event(ch, "seen"))
	s.ExpectEvent(ch, "seen")
	last := s.LastID()
	s.Close()
	for i := 0; i < 3; i++ {
		publish(t, event(ch, fmt.Sprintf("missed%d", i)))
	}
	resume := func(t *testing.T, query string, h http.Header, recovered bool) *sseclient.Stream {
		t.Helper()
		r := openSSE(t, "/realtime/ws?channels="+ch+query, h)
		w := r.Expect("realtime:welcome")
		if w.HasID {
			t.Fatalf("the welcome of a resume sets id %q: a reconnect before the replay would skip it", w.ID)
		}
		m := r.Expect("realtime:subscribed")
		if m.Frame.Recovered == nil || *m.Frame.Recovered != recovered {
			t.Fatalf("want recovered:%v, got %s", recovered, m)
		}
		return r
	}
	t.Run("Last-Event-ID", func(t *testing.T) {
		r := resume(t, "", http.Header{"Last-Event-ID": {last}}, true)
		for i := 0; i < 3; i++ {
			r.ExpectEvent(ch, fmt.Sprintf("missed%d", i))
		}
		publish(t, event(ch, "live"))
		r.ExpectEvent(ch, "live")
	})
	t.Run("Last-Event-ID wins over since", func(t *testing.T) {
		r := resume(t, "&since=garbage", http.Header{"Last-Event-ID": {last}}, true)
		r.ExpectEvent(ch, "missed0")
		resume(t, "&since="+url.QueryEscape(last), http.Header{"Last-Event-ID": {"garbage"}}, false)
	})
	t.Run("after recovered:false", func(t *testing.T) {
		// The stream says where it went live, so that the next reconnect
		// does not ask for the lost cursor again.
		r := resume(t, "", http.Header{"Last-Event-ID": {"gone-1-1"}}, false)
		deadline := time.Now().Add(5 * time.Second)
		for r.LastID() == "" {
			if time.Now().After(deadline) {
				t.Fatal("no id after recovered:false")
			}
			time.Sleep(10 * time.Millisecond)
		}
		id := r.LastID()
		r.Close()
		publish(t, event(ch, "after_not_recovered"))
		n := resume(t, "", http.Header{"Last-Event-ID": {id}}, true)
		n.ExpectEvent(ch, "after_not_recovered")
	})
	t.Run("since alone", func(t *testing.T) {
		r := resume(t, "&since="+url.QueryEscape(last), nil, true)
		r.ExpectEvent(ch, "missed0")
	})
	t.Run("from the welcome", func(t *testing.T) {
		c2 := uniq("sse-welcome")
		a := openSSE(t, "/realtime/ws?channels="+c2, nil)
		a.Welcome(c2)
		id := a.LastID()
		a.Close()
		publish(t, event(c2, "after_welcome"))
		b := openSSE(t, "/realtime/ws?channels="+c2, http.Header{"Last-Event-ID": {id}})
		b.Expect("realtime:welcome")
		if m := b.Expect("realtime:subscribed"); m.Frame.Recovered == nil || !*m.Frame.Recovered {
			t.Fatalf("resume from the welcome's id: %s", m)
		}
		b.ExpectEvent(c2, "after_welcome")
	})
}

// TestSSEKeepAlive: a comment every ping_interval, and a stream whose
// client sends nothing (as EventSource never does) is not swept as idle.
func TestSSEKeepAlive(t *testing.T) {
	loadMain(t) // /ws/ping: ping_interval 300ms
	s := openSSE(t, "/ws/ping", nil)
	s.Welcome("default")
	time.Sleep(1500 * time.Millisecond) // 5 intervals: a WebSocket that said nothing would be gone
	select {
	case <-s.Done():
		t.Fatalf("the stream ended after 5 silent intervals: %v", s.Err())
	default:
	}
	if n := s.Comments(); n < 3 {
		t.Fatalf("%d keep-alive comments in 1.5 s at ping_interval 300ms", n)
	}
	if m, err := s.TryNext(10 * time.Millisecond); err == nil {
		t.Fatalf("a keep-alive dispatched an event: %s", m)
	}
	if r := request(t, http.MethodPost, adminBase+"/realtime/hubs/pinghub/publish", []byte(event("default", "still_here")), jsonCT...); r.status != http.StatusOK {
		t.Fatalf("publish: %s", r)
	}
	s.ExpectEvent("default", "still_here")
}

// TestSSETokens: private channels take a token from the Authorization
// header or the cookie, never the query; a refused channel is a
// realtime:error event on an open stream, like on WebSocket.
func TestSSETokens(t *testing.T) {
	loadMain(t)
	p := uniq("private-sse")
	t.Run("none", func(t *testing.T) {
		s := openSSE(t, "/realtime/ws?channels="+p, nil)
		s.Expect("realtime:welcome")
		if m := s.Expect("realtime:error"); m.Frame.Code != "forbidden" && m.Frame.Code != "token_invalid" || m.Frame.Channel != p {
			t.Fatalf("private channel without a token: %s", m)
		}
	})
	t.Run("query", func(t *testing.T) {
		s := openSSE(t, "/realtime/ws?channels="+p+"&token="+validToken(t, p), nil)
		s.Expect("realtime:welcome")
		if m := s.Expect("realtime:error"); m.Frame.Channel != p {
			t.Fatalf("token in the query: want an error for %s, got %s", p, m)
		}
	})
	t.Run("bearer", func(t *testing.T) {
		s := openSSE(t, "/realtime/ws?channels="+p, http.Header{"Authorization": {"Bearer " + validToken(t, p)}})
		s.Welcome(p)
		publish(t, event(p, "secret_bearer"))
		s.ExpectEvent(p, "secret_bearer")
	})
	t.Run("cookie", func(t *testing.T) {
		cookie := (&http.Cookie{Name: "realtime_token", Value: validToken(t, p)}).String()
		s := openSSE(t, "/realtime/ws?channels="+p, http.Header{"Cookie": {cookie}})
		s.Welcome(p)
		publish(t, event(p, "secret_cookie"))
		s.ExpectEvent(p, "secret_cookie")
	})
	t.Run("expired", func(t *testing.T) {
		tok := rtclient.Token(t, tokenSecret, []string{p}, time.Now().Add(-time.Minute))
		s := openSSE(t, "/realtime/ws?channels="+p, http.Header{"Authorization": {"Bearer " + tok}})
		s.Expect("realtime:welcome")
		if m := s.Expect("realtime:error"); m.Frame.Code != "token_expired" {
			t.Fatalf("expired token: %s", m)
		}
	})
}

// TestSSECORS: a cross-origin stream is answered with the exact origin
// and credentials allowed (EventSource withCredentials refuses *); other
// origins are refused; a preflight (fetch with Authorization) is answered.
func TestSSECORS(t *testing.T) {
	loadMain(t) // /ws/origins: allowed_origins https://app.example.org https://*.example.com
	for _, o := range []string{"https://app.example.org", "https://www.example.com"} {
		s := openSSE(t, "/ws/origins", http.Header{"Origin": {o}})
		h := s.Response().Header
		if h.Get("Access-Control-Allow-Origin") != o || h.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("origin %s: Access-Control-Allow-Origin %q, -Credentials %q", o, h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Credentials"))
		}
		s.Expect("realtime:welcome")
	}
	r := expectSSERefused(t, "/ws/origins", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden)
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a refused origin is allowed by CORS: %v", r.header)
	}
	expectSSERefused(t, "/realtime/ws", http.Header{"Origin": {"http://evil.example"}}, http.StatusForbidden)
	// Same origin needs no CORS, and gets none it could misuse.
	s := openSSE(t, "/realtime/ws", http.Header{"Origin": {httpBase}})
	s.Expect("realtime:welcome")

	pre := request(t, http.MethodOptions, httpBase+"/ws/origins", nil,
		"Origin", "https://app.example.org", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization,last-event-id")
	if pre.status != http.StatusNoContent || pre.header.Get("Access-Control-Allow-Origin") != "https://app.example.org" ||
		!strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), "Last-Event-ID") ||
		pre.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("preflight: %d %v", pre.status, pre.header)
	}
	bad := request(t, http.MethodOptions, httpBase+"/ws/origins", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
	expectError(t, bad, http.StatusForbidden)
}

// TestSSELimits: streams count against the same limits as WebSockets, and
// a refusal is JSON before the stream starts.
func TestSSELimits(t *testing.T) {
	loadMain(t)
	t.Run("max_connections", func(t *testing.T) {
		waitFor(t, 3*time.Second, "hub capped to have no connections", func() bool { return statInt(t, "capped", "connections") == 0 })
		a := dial(t, "/ws/capped", nil)
		a.Expect("realtime:welcome")
		b := openSSE(t, "/ws/capped", nil)
		b.Expect("realtime:welcome")
		r := expectSSERefused(t, "/ws/capped", nil, http.StatusServiceUnavailable)
		if r.header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
		expectRefused(t, "/ws/capped", nil, http.StatusServiceUnavailable)
		b.Close()
		waitFor(t, 3*time.Second, "a freed connection slot", func() bool {
			s, _, err := sseclient.TryOpen(t, httpBase+"/ws/capped", sseclient.Options{})
			if err != nil {
				return false
			}
			s.Close()
			return true
		})
	})
	t.Run("max_connections_per_ip", func(t *testing.T) {
		waitFor(t, 3*time.Second, "hub perip to have no connections", func() bool { return statInt(t, "perip", "connections") == 0 })
		for i := 0; i < 2; i++ {
			openSSE(t, "/ws/perip", nil).Expect("realtime:welcome")
		}
		expectSSERefused(t, "/ws/perip", nil, http.StatusTooManyRequests)
	})
	t.Run("max_subscriptions", func(t *testing.T) {
		var many []string
		for i := 0; i < 7; i++ {
			many = append(many, uniq("many"))
		}
		expectSSERefused(t, "/realtime/ws?channels="+strings.Join(many, ","), nil, http.StatusBadRequest)
	})
}

// TestSSESlowConsumer: a stream that stops reading while events pile up
// beyond its send queue and the history falls past it is ended with a
// realtime:error slow_consumer after what it was sent, in order; the
// browser's reconnect then learns it missed events (recovered:false).
func TestSSESlowConsumer(t *testing.T) {
	loadMain(t) // /sse/slow: hub sseslow (history_size 4), send_queue 8, write_timeout 10s
	waitFor(t, 3*time.Second, "hub sseslow to have no connections", func() bool { return statInt(t, "sseslow", "connections") == 0 })
	fast := openSSE(t, "/sse/slow", nil)
	fast.Welcome("firehose")
	slow := sseclient.Open(t, httpBase+"/sse/slow", sseclient.Options{RcvBuf: 4096, Manual: true})
	waitFor(t, 3*time.Second, "2 connections on hub sseslow", func() bool { return statInt(t, "sseslow", "connections") == 2 })

	pad := strings.Repeat("z", 32<<10)
	published := 0
	slowDisconnects := func() int {
		d, _ := hubStats(t, "sseslow")["disconnects"].(map[string]any)
		n, _ := d["slow_consumer"].(float64)
		return int(n)
	}
	lagged := func() bool { return statInt(t, "sseslow", "lagged") > 0 }
	for published < 400 && !lagged() {
		for i := 0; i < 10; i++ {
			publishTo(t, httpBase+"/broadcast/sseslow", fmt.Sprintf(`{"channel":"firehose","type":"e%d","payload":%q}`, published, pad))
			published++
		}
	}
	if !lagged() {
		t.Fatalf("the stream that does not read never fell behind after %d events of 32 KiB", published)
	}
	// History (4 events) moves past the laggard while it does not read.
	for i := 0; i < 20; i++ {
		publishTo(t, httpBase+"/broadcast/sseslow", fmt.Sprintf(`{"channel":"firehose","type":"e%d","payload":%q}`, published, pad))
		published++
	}
	for i := 0; i < published; i++ {
		if m := fast.Next(10 * time.Second); m.Frame.Type != fmt.Sprintf("e%d", i) {
			t.Fatalf("fast subscriber: want e%d, got %.80s", i, m.Data)
		}
	}

	slow.Start()
	all := slow.ExpectEnd(15 * time.Second)
	if len(all) < 2 || all[0].Event != "realtime:welcome" {
		t.Fatalf("slow stream: %d messages, first %v", len(all), all)
	}
	last := all[len(all)-1]
	if last.Event != "realtime:error" || last.Frame.Code != "slow_consumer" {
		t.Fatalf("slow stream ended with %.120s, want realtime:error slow_consumer", last.String())
	}
	next := 0
	for _, m := range all[1 : len(all)-1] {
		if m.Event != "" {
			continue
		}
		if m.Frame.Type != fmt.Sprintf("e%d", next) {
			t.Fatalf("slow stream: want e%d, got %s (events in order, none twice)", next, m.Frame.Type)
		}
		next++
	}
	if next >= published {
		t.Fatalf("slow stream got all %d events: it was not slow", published)
	}
	if slowDisconnects() == 0 {
		t.Fatalf("no slow_consumer disconnect counted")
	}
	t.Logf("slow stream read %d of %d events, then %s", next, published, last.Frame.Message)
	r := openSSE(t, "/sse/slow", http.Header{"Last-Event-ID": {slow.LastID()}})
	r.Expect("realtime:welcome")
	if m := r.Expect("realtime:subscribed"); m.Frame.Recovered == nil || *m.Frame.Recovered {
		t.Fatalf("reconnect after falling out of history: want recovered:false, got %s", m)
	}
}

// TestSSEIdleStreamsHoldNoGoroutine: HTTP/1.1 streams are taken over and
// wait in the epoll set like WebSockets: more idle streams add no
// goroutine of the module.
func TestSSEIdleStreamsHoldNoGoroutine(t *testing.T) {
	loadMain(t)
	ch := uniq("sse-idle")
	first := openSSE(t, "/realtime/ws?channels="+ch, nil)
	first.Welcome(ch)
	base := fewestGoroutines(300 * time.Millisecond)
	streams := []*sseclient.Stream{first}
	for i := 0; i < 5; i++ {
		s := openSSE(t, "/realtime/ws?channels="+ch, nil)
		s.Welcome(ch)
		streams = append(streams, s)
	}
	waitFor(t, 5*time.Second, "6 idle streams to hold no more goroutines of the module than 1", func() bool {
		return len(ourGoroutines()) <= base
	})
	publish(t, event(ch, "to_all"))
	for _, s := range streams {
		s.ExpectEvent(ch, "to_all")
	}
}

// TestSSEEncodeLeavesStreamsAlone: under encode, a stream is neither
// compressed nor buffered (Cache-Control: no-transform).
func TestSSEEncodeLeavesStreamsAlone(t *testing.T) {
	loadMain(t) // /sse/encoded: encode gzip, then realtime_ws
	s := openSSE(t, "/sse/encoded", http.Header{"Accept-Encoding": {"gzip"}})
	if ce := s.Response().Header.Get("Content-Encoding"); ce != "" {
		t.Fatalf("stream compressed with %s", ce)
	}
	s.Welcome("default")
	publish(t, event("default", "uncompressed"))
	s.ExpectEvent("default", "uncompressed")
}

// TestSSEMetricsByTransport: /metrics and the admin API count connections
// by transport.
func TestSSEMetricsByTransport(t *testing.T) {
	loadMain(t) // /ws/stats: hub stats
	waitFor(t, 3*time.Second, "hub stats to have no connections", func() bool { return statInt(t, "stats", "connections") == 0 })
	s := openSSE(t, "/ws/stats", nil)
	s.Expect("realtime:welcome")
	c := dial(t, "/ws/stats", nil)
	c.Expect("realtime:welcome")
	tr, _ := hubStats(t, "stats")["transports"].(map[string]any)
	if tr["sse"] != 1.0 || tr["websocket"] != 1.0 {
		t.Fatalf("admin API transports: %v, want sse 1 and websocket 1", tr)
	}
	m := request(t, http.MethodGet, adminBase+"/metrics", nil)
	for _, re := range []string{
		`(?m)^caddy_realtime_transport_connections\{hub="stats",transport="sse"\} 1$`,
		`(?m)^caddy_realtime_transport_connections\{hub="stats",transport="websocket"\} 1$`,
	} {
		if !regexp.MustCompile(re).Match(m.body) {
			t.Errorf("/metrics has no line matching %s", re)
		}
	}
}

// TestSSEOverHTTP2: over HTTP/2 (tls internal) streams share one
// connection, net/http holds them (counted), they carry the same messages,
// and a client that leaves frees its session.
func TestSSEOverHTTP2(t *testing.T) {
	loadConfig(t, tlsConfig)
	tc := &tls.Config{RootCAs: internalRoots(t), ServerName: "localhost"}
	h2 := &http.Client{Transport: &http.Transport{DialContext: rtclient.LoopbackDial, TLSClientConfig: tc, ForceAttemptHTTP2: true}}
	t.Cleanup(h2.CloseIdleConnections)
	waitFor(t, 10*time.Second, "the TLS site to answer", func() bool {
		resp, err := h2.Get(httpsBase + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	ch := uniq("sse-h2")
	var streams []*sseclient.Stream
	for i := 0; i < 3; i++ {
		s := sseclient.Open(t, httpsBase+"/realtime/ws?channels="+ch, sseclient.Options{Client: h2})
		if p := s.Response().ProtoMajor; p != 2 {
			t.Fatalf("stream over HTTP/%d, want 2", p)
		}
		if te := s.Response().Header.Get("Transfer-Encoding"); te != "" {
			t.Fatalf("HTTP/2 answer with Transfer-Encoding %q", te)
		}
		s.Welcome(ch)
		streams = append(streams, s)
	}
	metric := regexp.MustCompile(`(?m)^caddy_realtime_sse_held_streams\{hub="default"\} (\d+)$`)
	held := func() string {
		m := metric.FindSubmatch(request(t, http.MethodGet, adminBase+"/metrics", nil).body)
		if m == nil {
			return ""
		}
		return string(m[1])
	}
	waitFor(t, 3*time.Second, "3 held streams", func() bool { return held() == "3" })
	r := requestWith(t, h2, http.MethodPost, httpsBase+"/realtime/broadcast", []byte(event(ch, "over_h2")), bearer(secretA)...)
	if r.status != http.StatusOK {
		t.Fatalf("publish: %s", r)
	}
	for _, s := range streams {
		s.ExpectEvent(ch, "over_h2")
	}
	for _, s := range streams {
		s.Close()
	}
	waitFor(t, 5*time.Second, "streams closed by their clients to be gone", func() bool { return held() == "0" })
}
