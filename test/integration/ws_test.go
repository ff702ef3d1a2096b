package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

// TestWSUpgradeWithoutLogDirective pins NOTES.md's hijack pitfall: with no
// `log` directive Caddy wraps the ResponseWriter in a writer that unwraps
// but does not hijack; the upgrade must still answer 101.
func TestWSUpgradeWithoutLogDirective(t *testing.T) {
	if regexp.MustCompile(`(?m)^\s*log\b`).MatchString(mainConfig) {
		t.Fatal("the main config must not use the log directive: it hides the hijack bug")
	}
	loadMain(t)
	c := dial(t, "/realtime/ws?channels=nolog", nil)
	if c.Response().Status != http.StatusSwitchingProtocols {
		t.Fatalf("want 101, got %d", c.Response().Status)
	}
	if !strings.EqualFold(c.Response().Header.Get("Upgrade"), "websocket") {
		t.Fatalf("101 without Upgrade: websocket: %v", c.Response().Header)
	}
	c.Welcome("nolog")
	publish(t, event("nolog", "through"))
	c.ExpectEvent("nolog", "through")
}

var cursorRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,64}$`)

func TestWSWelcomeFirst(t *testing.T) {
	loadMain(t)
	c := dial(t, "/realtime/ws", nil)
	w := c.Next(5 * time.Second)
	if w.Type != "realtime:welcome" {
		t.Fatalf("first frame: want realtime:welcome, got %s", w)
	}
	if w.ConnectionID == "" {
		t.Fatalf("welcome without connection_id: %s", w)
	}
	if !cursorRE.MatchString(w.Cursor) {
		t.Fatalf("welcome cursor %q is not URL-safe ASCII of at most 64 characters", w.Cursor)
	}
	if w.PingInterval == nil || *w.PingInterval != mainPingInterval {
		t.Fatalf("welcome ping_interval: want %d, got %s", mainPingInterval, w)
	}
	other := dial(t, "/realtime/ws", nil)
	if w2 := other.Expect("realtime:welcome"); w2.ConnectionID == w.ConnectionID {
		t.Fatalf("two connections share connection_id %q", w.ConnectionID)
	}
}

// TestWSWelcomeCursorUsableAsSince: the welcome cursor resumes with
// recovered:true, and an event published after it is replayed.
func TestWSWelcomeCursorUsableAsSince(t *testing.T) {
	loadMain(t)
	ch := uniq("since")
	c := dial(t, "/realtime/ws?channels="+ch, nil)
	w := c.Welcome(ch)
	c.Close()
	publish(t, event(ch, "missed"))
	r := dial(t, "/realtime/ws?channels="+ch+"&since="+url.QueryEscape(w.Cursor), nil)
	r.Expect("realtime:welcome")
	s := r.Expect("realtime:subscribed")
	if s.Channel != ch || s.Recovered == nil || !*s.Recovered {
		t.Fatalf("resume from the welcome cursor: want recovered:true for %s, got %s", ch, s)
	}
	r.ExpectEvent(ch, "missed")
}

func TestWSDefaultChannels(t *testing.T) {
	loadMain(t)
	c := dial(t, "/realtime/ws", nil) // default_channels default news
	c.Expect("realtime:welcome")
	for _, ch := range []string{"default", "news"} {
		f := c.Expect("realtime:subscribed")
		if f.Channel != ch || f.Recovered != nil {
			t.Fatalf("want realtime:subscribed %s without recovered (nothing to recover), got %s", ch, f)
		}
	}
	publish(t, event("news", "headline"))
	c.ExpectEvent("news", "headline")
	publish(t, event("default", "general"))
	c.ExpectEvent("default", "general")
}

func TestWSQueryChannels(t *testing.T) {
	loadMain(t)
	a, b := uniq("qa"), uniq("qb")
	c := dial(t, "/realtime/ws?channels="+a+","+b, nil)
	c.Welcome(a, b)
	publish(t, event("default", "not_joined"))
	publish(t, event(a, "to_a"))
	publish(t, event(b, "to_b"))
	// Naming channels replaces the defaults: the default event never comes.
	c.ExpectEvent(a, "to_a")
	c.ExpectEvent(b, "to_b")
}

func TestWSSubscribeUnsubscribe(t *testing.T) {
	loadMain(t)
	home, x, y, z := uniq("home"), uniq("sx"), uniq("sy"), uniq("sz")
	c := dial(t, "/realtime/ws?channels="+home, nil)
	c.Welcome(home)

	c.Send(map[string]any{"type": "realtime:subscribe", "channel": x})
	c.ExpectSubscribed(x)
	c.Send(map[string]any{"type": "realtime:subscribe", "channels": []string{y, z}})
	c.ExpectSubscribed(y, z)
	publish(t, event(x, "on_x"))
	c.ExpectEvent(x, "on_x")
	publish(t, event(z, "on_z"))
	c.ExpectEvent(z, "on_z")

	c.Send(map[string]any{"type": "realtime:unsubscribe", "channel": x})
	if f := c.Expect("realtime:unsubscribed"); f.Channel != x {
		t.Fatalf("want realtime:unsubscribed for %s, got %s", x, f)
	}
	c.Send(map[string]any{"type": "realtime:unsubscribe", "channels": []string{y}})
	if f := c.Expect("realtime:unsubscribed"); f.Channel != y {
		t.Fatalf("want realtime:unsubscribed for %s, got %s", y, f)
	}
	publish(t, event(x, "after_unsubscribe"))
	publish(t, event(y, "after_unsubscribe"))
	publish(t, event(z, "still_here"))
	c.ExpectEvent(z, "still_here")
}

func TestWSAppPingPong(t *testing.T) {
	loadMain(t)
	c := dial(t, "/realtime/ws?channels="+uniq("pp"), nil)
	c.Expect("realtime:welcome")
	c.Expect("realtime:subscribed")
	for i := 0; i < 3; i++ {
		c.Send(map[string]string{"type": "realtime:ping"})
		c.Expect("realtime:pong")
	}
}

// TestWSBadRequestKeepsConnection: junk and unknown frames get bad_request,
// and the connection carries on.
func TestWSBadRequestKeepsConnection(t *testing.T) {
	loadMain(t)
	ch := uniq("junk")
	c := dial(t, "/realtime/ws?channels="+ch, nil)
	c.Welcome(ch)
	for _, junk := range []string{
		`hello`,
		`{"type":"realtime:dance"}`,
		`{"type":"post_published","channel":"x"}`,
		`{"channel":"x"}`,
		`{"type":"realtime:subscribe"}`,
		`[1,2,3]`,
		`{"type":"realtime:subscribe","channel":`,
		`{"type":"realtime:subscribe","channel":7}`,
	} {
		c.SendRaw(websocket.TextMessage, []byte(junk))
		c.ExpectError("bad_request", "")
	}
	c.Send(map[string]any{"type": "realtime:subscribe", "channel": "bad name!"})
	c.ExpectError("bad_request", "")
	c.Ping()
	publish(t, event(ch, "still_open"))
	c.ExpectEvent(ch, "still_open")
}

func TestWSBinaryFrameCloses1003(t *testing.T) {
	loadMain(t)
	c := dial(t, "/realtime/ws?channels="+uniq("bin"), nil)
	c.Expect("realtime:welcome")
	c.SendRaw(websocket.BinaryMessage, []byte(`{"type":"realtime:ping"}`))
	c.Expect("realtime:subscribed")
	c.ExpectClose(websocket.CloseUnsupportedData)
}

func TestWSInvalidUTF8Closes1007(t *testing.T) {
	loadMain(t)
	c := dial(t, "/realtime/ws?channels="+uniq("utf"), nil)
	c.Expect("realtime:welcome")
	c.Expect("realtime:subscribed")
	c.SendRaw(websocket.TextMessage, []byte("{\"type\":\"realtime:subscribe\",\"channel\":\"caf\xe9\"}"))
	c.ExpectClose(websocket.CloseInvalidFramePayloadData)
}

func TestWSOversizeFrameCloses1009(t *testing.T) {
	loadMain(t) // max_message_size 1KiB
	ch := uniq("big")
	c := dial(t, "/realtime/ws?channels="+ch, nil)
	c.Welcome(ch)
	// A frame just under the limit is fine.
	under := fmt.Sprintf(`{"type":"realtime:ping","pad":%q}`, strings.Repeat("p", 950))
	if len(under) > 1024 {
		t.Fatalf("test bug: %d bytes", len(under))
	}
	c.SendRaw(websocket.TextMessage, []byte(under))
	c.Expect("realtime:pong")
	c.SendRaw(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"realtime:ping","pad":%q}`, strings.Repeat("p", 2048))))
	c.ExpectClose(websocket.CloseMessageTooBig)
}

func TestWSPrivateWithoutTokenForbidden(t *testing.T) {
	loadMain(t)
	p := uniq("private-room")
	c := dial(t, "/realtime/ws?channels="+p, nil)
	c.Expect("realtime:welcome")
	c.ExpectError("forbidden", p)
	c.Send(map[string]any{"type": "realtime:subscribe", "channel": p})
	c.ExpectError("forbidden", p)
	publish(t, event(p, "secret_event"))
	c.Ping() // the connection is open and nothing was delivered before the pong
	// Without token_secret there are no private channels at all, even with a
	// token.
	o := dial(t, "/ws/origins", http.Header{"Authorization": {"Bearer " + validToken(t, "*")}})
	o.Welcome("default")
	o.Send(map[string]any{"type": "realtime:subscribe", "channel": p})
	o.ExpectError("forbidden", p)
}

// privateRoundTrip checks that c holds a live subscription to channel.
func privateRoundTrip(t *testing.T, c *rtclient.Client, channel string) {
	t.Helper()
	publish(t, event(channel, "private_event"))
	c.ExpectEvent(channel, "private_event")
}

func TestWSTokenInAuthorizationHeader(t *testing.T) {
	loadMain(t)
	p := uniq("private-user")
	c := dial(t, "/realtime/ws?channels="+p, http.Header{"Authorization": {"Bearer " + validToken(t, p)}})
	c.Welcome(p)
	privateRoundTrip(t, c, p)
}

func TestWSTokenInCookie(t *testing.T) {
	loadMain(t)
	p := uniq("private-user")
	cookie := (&http.Cookie{Name: "realtime_token", Value: validToken(t, p)}).String()
	c := dial(t, "/realtime/ws?channels="+p, http.Header{"Cookie": {"theme=dark; " + cookie}})
	c.Welcome(p)
	privateRoundTrip(t, c, p)
	// Another cookie name is not read.
	q := uniq("private-user")
	other := (&http.Cookie{Name: "wordpress_logged_in", Value: validToken(t, q)}).String()
	d := dial(t, "/realtime/ws?channels="+q, http.Header{"Cookie": {other}})
	d.Expect("realtime:welcome")
	d.ExpectError("forbidden", q)
}

func TestWSTokenInSubscribeFrame(t *testing.T) {
	loadMain(t)
	p := uniq("private-user")
	c := dial(t, "/realtime/ws?channels="+uniq("pub"), nil)
	c.Expect("realtime:welcome")
	c.Expect("realtime:subscribed")
	c.Send(map[string]any{"type": "realtime:subscribe", "channel": p, "token": validToken(t, p)})
	c.ExpectSubscribed(p)
	privateRoundTrip(t, c, p)
}

func TestWSTokenInQueryIgnored(t *testing.T) {
	loadMain(t)
	p := uniq("private-user")
	tok := validToken(t, p)
	for _, name := range []string{"token", "access_token", "jwt", "auth"} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, "/realtime/ws?channels="+p+"&"+name+"="+url.QueryEscape(tok), nil)
			c.Expect("realtime:welcome")
			c.ExpectError("forbidden", p)
		})
	}
}

func TestWSTokenExpired(t *testing.T) {
	loadMain(t)
	p := uniq("private-user")
	expired := rtclient.Token(t, tokenSecret, []string{p}, time.Now().Add(-time.Minute))
	t.Run("subscribe frame", func(t *testing.T) {
		c := dial(t, "/realtime/ws?channels="+uniq("pub"), nil)
		c.Expect("realtime:welcome")
		c.Expect("realtime:subscribed")
		c.Send(map[string]any{"type": "realtime:subscribe", "channel": p, "token": expired})
		c.ExpectError("token_expired", p)
	})
	t.Run("handshake", func(t *testing.T) {
		c := dial(t, "/realtime/ws?channels="+p, http.Header{"Authorization": {"Bearer " + expired}})
		c.Expect("realtime:welcome")
		c.ExpectError("token_expired", p)
	})
}

func TestWSTokenBadSignature(t *testing.T) {
	loadMain(t)
	p := uniq("private-user")
	forged := rtclient.Token(t, "not-the-token-secret", []string{p}, time.Now().Add(time.Hour))
	good := validToken(t, p)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	for name, tok := range map[string]string{"other secret": forged, "tampered signature": tampered, "garbage": "not.a.jwt"} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, "/realtime/ws?channels="+uniq("pub"), nil)
			c.Expect("realtime:welcome")
			c.Expect("realtime:subscribed")
			c.Send(map[string]any{"type": "realtime:subscribe", "channel": p, "token": tok})
			c.ExpectError("token_invalid", p)
		})
	}
	t.Run("handshake", func(t *testing.T) {
		c := dial(t, "/realtime/ws?channels="+p, http.Header{"Authorization": {"Bearer " + forged}})
		c.Expect("realtime:welcome")
		c.ExpectError("token_invalid", p)
	})
}

// TestWSPrivatePatterns: `private user.*` makes user.* need a token too;
// other channels stay public.
func TestWSPrivatePatterns(t *testing.T) {
	loadMain(t)
	u := uniq("user")
	c := dial(t, "/realtime/ws?channels="+uniq("pub"), nil)
	c.Expect("realtime:welcome")
	c.Expect("realtime:subscribed")
	for _, ch := range []string{u + ".42", u + ".42.inbox"} {
		c.Send(map[string]any{"type": "realtime:subscribe", "channel": "user." + ch})
		c.ExpectError("forbidden", "user."+ch)
	}
	c.Send(map[string]any{"type": "realtime:subscribe", "channel": "users." + u})
	c.ExpectSubscribed("users." + u)
	ch := "user." + u
	c.Send(map[string]any{"type": "realtime:subscribe", "channel": ch, "token": validToken(t, ch)})
	c.ExpectSubscribed(ch)
	privateRoundTrip(t, c, ch)
}

func TestWSGlobClaims(t *testing.T) {
	loadMain(t)
	post := uniq("private-post")
	tok := validToken(t, post+".*", "private-user.42")
	c := dial(t, "/realtime/ws?channels="+uniq("pub"), http.Header{"Authorization": {"Bearer " + tok}})
	c.Expect("realtime:welcome")
	c.Expect("realtime:subscribed")
	for _, ch := range []string{post + ".7", post + ".7.comments", "private-user.42"} {
		c.Send(map[string]any{"type": "realtime:subscribe", "channel": ch})
		c.ExpectSubscribed(ch)
	}
	for _, ch := range []string{post, "private-user.43", "private-user.420", uniq("private-post") + ".7"} {
		c.Send(map[string]any{"type": "realtime:subscribe", "channel": ch})
		c.ExpectError("forbidden", ch)
	}
	privateRoundTrip(t, c, post+".7.comments")
}

func TestWSMaxSubscriptions(t *testing.T) {
	loadMain(t) // max_subscriptions 6
	var names []string
	for i := 0; i < 5; i++ {
		names = append(names, uniq("cap"))
	}
	c := dial(t, "/realtime/ws?channels="+strings.Join(names, ","), nil)
	c.Welcome(names...)
	sixth, seventh := uniq("cap"), uniq("cap")
	c.Send(map[string]any{"type": "realtime:subscribe", "channels": []string{sixth, seventh}})
	// The answers to one frame may come in any order: match by channel.
	got := map[string]string{}
	for i := 0; i < 2; i++ {
		f := c.Next(5 * time.Second)
		got[f.Channel] = f.Type + " " + f.Code
	}
	if got[sixth] != "realtime:subscribed " || got[seventh] != "realtime:error too_many_subscriptions" {
		t.Fatalf("6th and 7th subscriptions with max_subscriptions 6: want subscribed and too_many_subscriptions, got %v", got)
	}
	// Private grants count the same.
	p := uniq("private-user")
	c.Send(map[string]any{"type": "realtime:subscribe", "channel": p, "token": validToken(t, p)})
	c.ExpectError("too_many_subscriptions", p)
	// Unsubscribing frees a slot.
	c.Send(map[string]any{"type": "realtime:unsubscribe", "channel": names[0]})
	c.Expect("realtime:unsubscribed")
	c.Send(map[string]any{"type": "realtime:subscribe", "channel": seventh})
	c.ExpectSubscribed(seventh)
	// Connecting with more channels than a connection may hold is refused
	// before upgrading, rather than answered with an error per channel.
	var many []string
	for i := 0; i < 7; i++ {
		many = append(many, uniq("many"))
	}
	resp := expectRefused(t, "/realtime/ws?channels="+strings.Join(many, ","), nil, http.StatusBadRequest)
	if a := mustJSONAnswer(t, resp); a.Code != "too_many_subscriptions" {
		t.Fatalf("connect with 7 channels, max_subscriptions 6: code %q, want too_many_subscriptions", a.Code)
	}
	d := dial(t, "/realtime/ws?channels="+strings.Join(many[:6], ","), nil)
	d.WaitSubscribed(many[:6]...)
}

// expectRefused dials and requires a refused handshake with status and a
// JSON body.
func expectRefused(t *testing.T, path string, h http.Header, status int) *response {
	t.Helper()
	c, hr, err := rtclient.TryDial(t, wsBase+path, rtclient.Options{Header: h})
	if err == nil {
		c.Close()
		t.Fatalf("dial %s: want %d before upgrading, got 101", path, status)
	}
	if hr == nil {
		t.Fatalf("dial %s: want %d, got %v", path, status, err)
	}
	r := fromHandshake(hr)
	expectError(t, r, status)
	return r
}

func TestWSOriginDefaultSameOrigin(t *testing.T) {
	loadMain(t)
	for _, o := range []string{"", httpBase, strings.ToUpper(httpBase)} {
		t.Run("allowed "+o, func(t *testing.T) {
			h := http.Header{}
			if o != "" {
				h.Set("Origin", o)
			}
			dial(t, "/realtime/ws", h).Expect("realtime:welcome")
		})
	}
	port := fmt.Sprint(httpPort)
	for _, o := range []string{"http://evil.example", fmt.Sprintf("http://localhost:%d", httpPort+1), "https://localhost:" + port, "http://localhost", "http://localhost.evil.example:" + port, "null"} {
		t.Run("refused "+o, func(t *testing.T) {
			expectRefused(t, "/realtime/ws", http.Header{"Origin": {o}}, http.StatusForbidden)
		})
	}
}

func TestWSAllowedOrigins(t *testing.T) {
	loadMain(t) // allowed_origins https://app.example.org https://*.example.com
	for _, o := range []string{"", "https://app.example.org", "https://app.example.org:443", "https://www.example.com", "https://a.b.example.com"} {
		t.Run("allowed "+o, func(t *testing.T) {
			h := http.Header{}
			if o != "" {
				h.Set("Origin", o)
			}
			dial(t, "/ws/origins", h).Expect("realtime:welcome")
		})
	}
	for _, o := range []string{
		httpBase, // the list replaces same-origin
		"http://app.example.org",
		"https://app.example.org:8443",
		"https://example.com",
		"https://evilexample.com",
		"https://www.example.com.evil.org",
		"http://www.example.com",
		"https://www.example.com:8443",
	} {
		t.Run("refused "+o, func(t *testing.T) {
			expectRefused(t, "/ws/origins", http.Header{"Origin": {o}}, http.StatusForbidden)
		})
	}
}

func TestWSMaxConnections(t *testing.T) {
	loadMain(t) // /ws/capped: max_connections 2
	waitFor(t, 3*time.Second, "hub capped to have no connections", func() bool { return statInt(t, "capped", "connections") == 0 })
	a := dial(t, "/ws/capped", nil)
	a.Expect("realtime:welcome")
	b := dial(t, "/ws/capped", nil)
	b.Expect("realtime:welcome")
	r := expectRefused(t, "/ws/capped", nil, http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	// A closed connection frees its slot.
	a.Close()
	waitFor(t, 3*time.Second, "a freed connection slot", func() bool {
		c, _, err := rtclient.TryDial(t, wsBase+"/ws/capped", rtclient.Options{})
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

func TestWSMaxConnectionsPerIP(t *testing.T) {
	loadMain(t) // /ws/perip: max_connections_per_ip 2
	waitFor(t, 3*time.Second, "hub perip to have no connections", func() bool { return statInt(t, "perip", "connections") == 0 })
	a := dial(t, "/ws/perip", nil)
	a.Expect("realtime:welcome")
	b := dial(t, "/ws/perip", nil)
	b.Expect("realtime:welcome")
	expectRefused(t, "/ws/perip", nil, http.StatusTooManyRequests)
	b.Close()
	waitFor(t, 3*time.Second, "a freed per-IP slot", func() bool {
		c, _, err := rtclient.TryDial(t, wsBase+"/ws/perip", rtclient.Options{})
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

func TestWSNonUpgradeGet426(t *testing.T) {
	loadMain(t)
	r := request(t, http.MethodGet, httpBase+"/realtime/ws", nil, "Accept", "text/html")
	expectError(t, r, http.StatusUpgradeRequired)
	if !strings.EqualFold(r.header.Get("Upgrade"), "websocket") {
		t.Fatalf("426 without Upgrade: websocket, got %q", r.header.Get("Upgrade"))
	}
}

// hubStats reads one hub's entry of the admin API's GET /realtime/hubs.
func hubStats(t *testing.T, name string) map[string]any {
	t.Helper()
	r := request(t, http.MethodGet, adminBase+"/realtime/hubs", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /realtime/hubs: %s", r)
	}
	var out struct {
		Hubs []map[string]any `json:"hubs"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("GET /realtime/hubs: %v: %s", err, r)
	}
	for _, h := range out.Hubs {
		if h["name"] == name {
			return h
		}
	}
	t.Fatalf("GET /realtime/hubs: no hub %q in %s", name, r)
	return nil
}

func statInt(t *testing.T, hub, key string) int {
	t.Helper()
	v, ok := hubStats(t, hub)[key].(float64)
	if !ok {
		t.Fatalf("hub %s: no numeric %q", hub, key)
	}
	return int(v)
}

// TestWSSlowConsumer: a client that never reads, while large events are
// published, is disconnected as a slow consumer (its writes block for
// write_timeout, then the socket is closed); the other subscribers receive
// every event, in order, and publishing never stalls.
func TestWSSlowConsumer(t *testing.T) {
	loadMain(t) // /ws/slow: hub slow, send_queue 8, write_timeout 2s
	waitFor(t, 3*time.Second, "hub slow to have no connections", func() bool { return statInt(t, "slow", "connections") == 0 })
	before := statInt(t, "slow", "slow_consumer_disconnects")

	fast1 := rtclient.Dial(t, wsBase+"/ws/slow", rtclient.Options{})
	fast1.Welcome("firehose")
	fast2 := rtclient.Dial(t, wsBase+"/ws/slow", rtclient.Options{})
	fast2.Welcome("firehose")

	// The slow client reads its welcome, then nothing ever again.
	slow := rtclient.Dial(t, wsBase+"/ws/slow", rtclient.Options{Manual: true})
	for _, want := range []string{"realtime:welcome", "realtime:subscribed"} {
		f, err := slow.ReadOne(5 * time.Second)
		if err != nil || !strings.Contains(f.String(), want) {
			t.Fatalf("slow client: want %s, got %s %v", want, f, err)
		}
	}
	waitFor(t, 3*time.Second, "3 connections on hub slow", func() bool { return statInt(t, "slow", "connections") == 3 })

	payload := strings.Repeat("z", 48<<10)
	published := 0
	var slowest time.Duration
	disconnected := func() bool { return statInt(t, "slow", "slow_consumer_disconnects") > before }
	for published < 600 {
		start := time.Now()
		publishTo(t, httpBase+"/broadcast/slow", fmt.Sprintf(`{"channel":"firehose","type":"e%d","payload":%q}`, published, payload))
		slowest = max(slowest, time.Since(start))
		published++
		if published%10 == 0 && disconnected() {
			break
		}
	}
	// Its writes block from the moment its socket buffers are full, so it
	// is gone within write_timeout (2s) of that.
	waitFor(t, 5*time.Second, fmt.Sprintf("slow_consumer_disconnects to move after %d events of 48 KiB to a client that never reads", published), disconnected)
	// Publishing went on while the slow client's writes were stuck: a
	// publish that waited for them would take write_timeout (2s).
	if slowest > time.Second {
		t.Errorf("a publish took %v while a client was stuck: publishing blocked on a slow consumer", slowest)
	}
	for i := 0; i < 5; i++ {
		publishTo(t, httpBase+"/broadcast/slow", fmt.Sprintf(`{"channel":"firehose","type":"e%d","payload":%q}`, published, payload))
		published++
	}
	t.Logf("slow consumer dropped after %d events of 48 KiB", published-5)

	for _, c := range []*rtclient.Client{fast1, fast2} {
		for i := 0; i < published; i++ {
			f := c.Next(10 * time.Second)
			if f.Type != fmt.Sprintf("e%d", i) {
				t.Fatalf("fast subscriber: want event e%d, got %.80s", i, f.Raw)
			}
		}
		c.Ping()
	}

	// The slow client's socket is closed: reading what was buffered ends
	// with the 1013 close frame or, if it could not be written in time, the
	// end of the stream; never with a read timeout.
	deadline := time.Now().Add(10 * time.Second)
	got := 0
	var err error
	for {
		if _, err = slow.ReadOne(time.Until(deadline)); err != nil {
			break
		}
		got++
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("slow client still connected after %d buffered events: %v", got, err)
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseTryAgainLater && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("slow client: want close 1013 (or the socket closed), got %v", err)
	}
	if got >= published {
		t.Fatalf("slow client received all %d events: it was not slow", got)
	}
	t.Logf("slow client read %d buffered events, then %v", got, err)
	waitFor(t, 5*time.Second, "the slow connection to be gone", func() bool { return statInt(t, "slow", "connections") == 2 })
}

// TestWSIdleLongerThanWriteTimeout: write_timeout bounds each write; a
// connection idle for longer still gets the next event (a deadline left
// over from an earlier write must not fail a later one).
func TestWSIdleLongerThanWriteTimeout(t *testing.T) {
	loadMain(t) // /ws/idle: hub default, write_timeout 200ms
	ch := uniq("idle")
	c := dial(t, "/ws/idle?channels="+ch, nil)
	c.Welcome(ch)
	for i := 0; i < 2; i++ {
		time.Sleep(400 * time.Millisecond)
		typ := fmt.Sprintf("after_idle_%d", i)
		publish(t, event(ch, typ))
		c.ExpectEvent(ch, typ)
		c.Ping()
	}
}

// TestWSProtocolPing: the server sends protocol pings every ping_interval;
// a client that answers stays, one that never answers is dropped after
// about two intervals.
func TestWSProtocolPing(t *testing.T) {
	loadMain(t) // /ws/ping: ping_interval 300ms
	alive := rtclient.Dial(t, wsBase+"/ws/ping", rtclient.Options{})
	w := alive.Welcome("default")
	if w.PingInterval == nil {
		t.Fatalf("welcome without ping_interval: %s", w)
	}
	start := time.Now()
	deaf := rtclient.Dial(t, wsBase+"/ws/ping", rtclient.Options{Deaf: true})
	deaf.Welcome("default")
	select {
	case <-deaf.Done():
	case <-time.After(3 * time.Second):
		t.Fatalf("a client that never answers pings is still connected after 3s (10 intervals)")
	}
	lasted := time.Since(start)
	if deaf.Pings() == 0 {
		t.Fatalf("the deaf client received no protocol ping before it was dropped")
	}
	if lasted < 450*time.Millisecond {
		t.Fatalf("the deaf client was dropped after %v, before 2 intervals", lasted)
	}
	t.Logf("deaf client: %d pings, dropped after %v (%v)", deaf.Pings(), lasted, deaf.Err())
	// The client that answers pongs is still here, several intervals later.
	if time.Since(start) < 1500*time.Millisecond {
		time.Sleep(1500*time.Millisecond - time.Since(start))
	}
	if n := alive.Pings(); n < 3 {
		t.Fatalf("answering client: want a ping every 300ms, got %d in %v", n, time.Since(start))
	}
	alive.Ping()
}

// TestWSRawFrames: frames written by hand. UTF-8 is checked on the whole
// message, not per fragment; a frame that only declares a length over
// max_message_size is refused with 1009 at once, before any payload.
func TestWSRawFrames(t *testing.T) {
	loadMain(t)
	t.Run("valid UTF-8 split across fragments", func(t *testing.T) {
		c := rtclient.RawDial(t, wsBase+"/realtime/ws?channels="+uniq("raw"))
		c.ExpectText("realtime:subscribed")
		c.WriteFrame(false, rtclient.OpText, []byte(`{"type":"realtime:ping","x":"caf`+"\xc3"), -1)
		c.WriteFrame(true, rtclient.OpContinuation, []byte("\xa9\"}"), -1)
		c.ExpectText("realtime:pong")
	})
	t.Run("invalid UTF-8 split across fragments", func(t *testing.T) {
		c := rtclient.RawDial(t, wsBase+"/realtime/ws?channels="+uniq("raw"))
		c.ExpectText("realtime:subscribed")
		c.WriteFrame(false, rtclient.OpText, []byte(`{"type":"realtime:ping","x":"caf`+"\xc3"), -1)
		c.WriteFrame(true, rtclient.OpContinuation, []byte("(\"}"), -1)
		c.ExpectClose(websocket.CloseInvalidFramePayloadData)
	})
	t.Run("declared length of 1 GiB", func(t *testing.T) {
		c := rtclient.RawDial(t, wsBase+"/realtime/ws?channels="+uniq("raw"))
		c.ExpectText("realtime:subscribed")
		c.WriteFrame(true, rtclient.OpText, []byte(`{"type":`), 1<<30)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.ExpectClose(websocket.CloseMessageTooBig)
	})
}
