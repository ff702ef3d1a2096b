package process_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/sseclient"
)

// Server-Sent Events across reloads and stops. An HTTP/1.1 stream is taken
// over like a WebSocket: a reload leaves it alone, a stop ends it with the
// hub's realtime:error. An HTTP/2 stream is held by net/http: a reload
// ends it at once (a handler left running would keep the old server's
// shutdown, and with Caddy's default eternal grace period the next stop,
// waiting), and the client resumes on the new server with Last-Event-ID.

// sseSites is a config with the same hub on an HTTP site (HTTP/1.1) and on
// an HTTPS site with tls internal (HTTP/2), no grace period set (Caddy's
// default is eternal). ping is realtime_ws's ping_interval.
func sseSites(admin, httpPort, httpsPort int, ping string) string {
	handlers := fmt.Sprintf(`	realtime_ws /ws {
		hub default
		ping_interval %s
	}
	realtime_broadcast /pub {
		hub default
		secret %s
	}`, ping, secret)
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	local_certs
	skip_install_trust
	auto_https disable_redirects
	http_port %d
	https_port %d
	servers {
		protocols h1 h2
	}
	realtime {
		hub default {
			history_size 100
		}
	}
}

http://127.0.0.1:%d {
	bind 127.0.0.1
%s
}

https://localhost:%d {
	bind 127.0.0.1
	tls internal
%s
}
`, admin, httpPort, httpsPort, httpPort, handlers, httpsPort, handlers)
}

// h2Client speaks HTTP/2 to the internal-CA site on loopback, once it
// answers (its certificate is issued in the background). The CA is this
// test's own, in the process's scratch storage: verification is skipped
// rather than read from there.
func h2Client(t *testing.T, httpsPort int) *http.Client {
	t.Helper()
	c := &http.Client{Timeout: 0, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"},
		ForceAttemptHTTP2: true,
	}}
	t.Cleanup(c.CloseIdleConnections)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := c.Get(fmt.Sprintf("https://localhost:%d/", httpsPort))
		if err == nil {
			resp.Body.Close()
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the TLS site does not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventSource follows a stream the way a browser's EventSource does: when
// the stream ends it opens it again after a short delay, with the id of
// the last event as Last-Event-ID, until stopped. It records every
// message of every stream.
type eventSource struct {
	t      *testing.T
	url    string
	client *http.Client

	mu      sync.Mutex
	msgs    []sseclient.Message
	opens   int
	ends    []time.Time
	current *sseclient.Stream

	stop chan struct{}
	done chan struct{}
}

func newEventSource(t *testing.T, url string, client *http.Client) *eventSource {
	es := &eventSource{t: t, url: url, client: client, stop: make(chan struct{}), done: make(chan struct{})}
	go es.run()
	t.Cleanup(es.Close)
	return es
}

func (es *eventSource) run() {
	defer close(es.done)
	lastID := ""
	for {
		h := http.Header{}
		if lastID != "" {
			h.Set("Last-Event-ID", lastID)
		}
		s, _, err := sseclient.TryOpen(es.t, es.url, sseclient.Options{Client: es.client, Header: h})
		if err == nil {
			es.mu.Lock()
			es.opens++
			es.current = s
			es.mu.Unlock()
			for {
				m, err := s.TryNext(50 * time.Millisecond)
				if err == nil {
					es.mu.Lock()
					es.msgs = append(es.msgs, m)
					es.mu.Unlock()
					continue
				}
				if !sseclient.IsTimeout(err) {
					break // the stream ended
				}
				select {
				case <-es.stop:
					s.Close()
					return
				default:
				}
			}
			es.mu.Lock()
			es.ends = append(es.ends, time.Now())
			es.mu.Unlock()
			if id := s.LastID(); id != "" {
				lastID = id
			}
		}
		select {
		case <-es.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops following.
func (es *eventSource) Close() {
	select {
	case <-es.stop:
	default:
		close(es.stop)
	}
	<-es.done
}

func (es *eventSource) messages() []sseclient.Message {
	es.mu.Lock()
	defer es.mu.Unlock()
	return append([]sseclient.Message(nil), es.msgs...)
}

// ticks returns the n of every tick event received, in order.
func (es *eventSource) ticks() []int {
	var out []int
	for _, m := range es.messages() {
		if m.Event == "" {
			out = append(out, tickN(m.Frame))
		}
	}
	return out
}

// waitTicks waits until n tick events have arrived.
func (es *eventSource) waitTicks(n int, timeout time.Duration) {
	es.t.Helper()
	deadline := time.Now().Add(timeout)
	for len(es.ticks()) < n {
		if time.Now().After(deadline) {
			es.t.Fatalf("%s: %d events after %v, want %d: %v", es.url, len(es.ticks()), timeout, n, abbrev(es.ticks()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (es *eventSource) stats() (opens int, ends []time.Time) {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.opens, append([]time.Time(nil), es.ends...)
}

// proto is the HTTP major version of the current stream.
func (es *eventSource) proto() int {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.current == nil {
		return 0
	}
	return es.current.Response().ProtoMajor
}

// control returns the control messages named name that arrived.
func (es *eventSource) control(name string) []sseclient.Message {
	var out []sseclient.Message
	for _, m := range es.messages() {
		if m.Event == name {
			out = append(out, m)
		}
	}
	return out
}

// TestSSEReload: a reload leaves taken-over HTTP/1.1 streams open and ends
// HTTP/2 streams at once; their clients resume with Last-Event-ID
// (recovered:true) and every client gets every event once, in order. The
// stop after it is not held up by the reloaded server: every stream ends
// and the process exits within 2 s.
func TestSSEReload(t *testing.T) {
	httpPort, httpsPort, admin := freePort(t), freePort(t), freePort(t)
	p := startCaddy(t, sseSites(admin, httpPort, httpsPort, "25s"), httpPort, admin)
	h2 := h2Client(t, httpsPort)
	h1URL := p.siteURL("/ws?channels=news")
	h2URL := fmt.Sprintf("https://localhost:%d/ws?channels=news", httpsPort)

	var h1s, h2s []*eventSource
	for i := 0; i < 3; i++ {
		h1s = append(h1s, newEventSource(t, h1URL, nil))
		h2s = append(h2s, newEventSource(t, h2URL, h2))
	}
	all := append(append([]*eventSource(nil), h1s...), h2s...)
	p.waitConnections("default", int64(len(all)), -1, 15*time.Second)
	p.publish("/pub", secret, ticks("news", 1, 5, ""))
	for _, es := range all {
		es.waitTicks(5, 5*time.Second)
	}
	for _, es := range h1s {
		if v := es.proto(); v != 1 {
			t.Fatalf("%s: HTTP/%d, want 1", es.url, v)
		}
	}
	for _, es := range h2s {
		if v := es.proto(); v != 2 {
			t.Fatalf("%s: HTTP/%d, want 2", es.url, v)
		}
	}

	// Publish during the reload too: the held streams' clients reconnect
	// meanwhile and must miss nothing.
	var pubErr error
	published := make(chan struct{})
	go func() {
		defer close(published)
		for n := 6; n <= 25; n++ {
			if _, _, err := p.publishRetry("/pub", secret, pubEvent{Channel: "news", Type: "tick", Payload: tick{N: n}, ID: fmt.Sprintf("reload-%d", n)}); err != nil {
				pubErr = err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	reloadAt := time.Now()
	took := p.Reload(sseSites(admin, httpPort, httpsPort, "20s"))
	<-published
	if pubErr != nil {
		t.Fatal(pubErr)
	}
	t.Logf("caddy reload took %v", took.Round(time.Millisecond))
	for _, es := range all {
		es.waitTicks(25, 10*time.Second)
	}
	for i, es := range all {
		if err := checkSeq(es.ticks(), 1, 25); err != nil {
			t.Errorf("stream %d (%s): %v", i, es.url, err)
		}
	}
	for i, es := range h1s {
		if opens, ends := es.stats(); opens != 1 || len(ends) != 0 {
			t.Errorf("HTTP/1.1 stream %d: opened %d times, ended %d times across the reload; want it kept open", i, opens, len(ends))
		}
	}
	for i, es := range h2s {
		opens, ends := es.stats()
		if opens != 2 || len(ends) != 1 {
			t.Fatalf("HTTP/2 stream %d: opened %d times, ended %d times; want ended by the reload and resumed once", i, opens, len(ends))
		}
		if after := ends[0].Sub(reloadAt); after > took+time.Second {
			t.Errorf("HTTP/2 stream %d ended %v after the reload began (the reload took %v): not at once", i, after, took)
		}
		if errs := es.control("realtime:error"); len(errs) != 1 || errs[0].Frame.Code != "reload" {
			t.Errorf("HTTP/2 stream %d: want one realtime:error reload before its end, got %v", i, errs)
		}
		subs := es.control("realtime:subscribed")
		if len(subs) != 2 || subs[1].Frame.Recovered == nil || !*subs[1].Frame.Recovered {
			t.Errorf("HTTP/2 stream %d: the resume after the reload: %v, want recovered:true", i, subs)
		}
	}

	// Stop: with the reloaded server's shutdown still pending, a stream it
	// held would hang this (eternal grace period).
	stopAt := time.Now()
	if out, _, err := p.CLI("stop", "--address", fmt.Sprintf("127.0.0.1:%d", admin)); err != nil {
		t.Fatalf("caddy stop: %v\n%s", err, out)
	}
	if !p.Wait(10 * time.Second) {
		t.Fatalf("process still running 10 s after caddy stop\n%s", p.LogTail(20))
	}
	exit := p.ExitedAt().Sub(stopAt)
	t.Logf("caddy stop after a reload with %d streams open: exited after %v", len(all), exit.Round(time.Millisecond))
	if exit > 2*time.Second {
		t.Errorf("process exited %v after caddy stop, want within 2 s", exit)
	}
	for i, es := range all {
		_, ends := es.stats()
		if len(ends) == 0 {
			t.Errorf("stream %d still open after the process exited", i)
			continue
		}
		last := ends[len(ends)-1]
		if d := last.Sub(stopAt); d > 2*time.Second {
			t.Errorf("stream %d ended %v after caddy stop, want within 2 s", i, d)
		}
		if errs := es.control("realtime:error"); len(errs) == 0 || errs[len(errs)-1].Frame.Code != "shutdown" {
			t.Errorf("stream %d: want realtime:error shutdown before the end, got %v", i, errs)
		}
	}
}

// TestSSEStop: caddy stop ends HTTP/1.1 and HTTP/2 streams with a
// realtime:error shutdown and the process exits, all within 2 s.
func TestSSEStop(t *testing.T) {
	httpPort, httpsPort, admin := freePort(t), freePort(t), freePort(t)
	p := startCaddy(t, sseSites(admin, httpPort, httpsPort, "25s"), httpPort, admin)
	h2 := h2Client(t, httpsPort)
	var streams []*sseclient.Stream
	for i := 0; i < 20; i++ {
		streams = append(streams, sseclient.Open(t, p.siteURL("/ws"), sseclient.Options{}))
		streams = append(streams, sseclient.Open(t, fmt.Sprintf("https://localhost:%d/ws", httpsPort), sseclient.Options{Client: h2}))
	}
	for _, s := range streams {
		s.Expect("realtime:welcome")
	}
	p.waitConnections("default", int64(len(streams)), -1, 10*time.Second)
	start := time.Now()
	p.Stop()
	for i, s := range streams {
		rest := s.ExpectEnd(2*time.Second - time.Since(start) + 100*time.Millisecond)
		if len(rest) == 0 || rest[len(rest)-1].Event != "realtime:error" || rest[len(rest)-1].Frame.Code != "shutdown" {
			t.Errorf("stream %d (HTTP/%d) ended with %v, want realtime:error shutdown", i, s.Response().ProtoMajor, rest)
		}
	}
	t.Logf("%d streams ended %v after caddy stop", len(streams), time.Since(start).Round(time.Millisecond))
	if !p.Wait(10 * time.Second) {
		t.Fatalf("process still running 10 s after caddy stop")
	}
	if exit := p.ExitedAt().Sub(start); exit > 2*time.Second {
		t.Errorf("process exited %v after caddy stop, want within 2 s", exit)
	}
}
