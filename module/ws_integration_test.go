package module_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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
	if c.resp.status != http.StatusSwitchingProtocols {
		t.Fatalf("want 101, got %d", c.resp.status)
	}
	if !strings.EqualFold(c.resp.header.Get("Upgrade"), "websocket") {
		t.Fatalf("101 without Upgrade: websocket: %v", c.resp.header)
	}
	c.welcome("nolog")
	publish(t, event("nolog", "through"))
	c.expectEvent("nolog", "through")
}

var cursorRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,64}$`)

func TestWSWelcomeFirst(t *testing.T) {
	loadMain(t)
	c := dial(t, "/realtime/ws", nil)
	w := c.next(5 * time.Second)
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
	if w2 := other.expect("realtime:welcome"); w2.ConnectionID == w.ConnectionID {
		t.Fatalf("two connections share connection_id %q", w.ConnectionID)
	}
}

// TestWSWelcomeCursorUsableAsSince: the welcome cursor resumes with
// recovered:true, and an event published after it is replayed.
func TestWSWelcomeCursorUsableAsSince(t *testing.T) {
	loadMain(t)
	ch := uniq("since")
	c := dial(t, "/realtime/ws?channels="+ch, nil)
	w := c.welcome(ch)
	c.close()
	publish(t, event(ch, "missed"))
	r := dial(t, "/realtime/ws?channels="+ch+"&since="+url.QueryEscape(w.Cursor), nil)
	r.expect("realtime:welcome")
	s := r.expect("realtime:subscribed")
	if s.Channel != ch || s.Recovered == nil || !*s.Recovered {
		t.Fatalf("resume from the welcome cursor: want recovered:true for %s, got %s", ch, s)
	}
	r.expectEvent(ch, "missed")
}

func TestWSDefaultChannels(t *testing.T) {
	loadMain(t)
	c := dial(t, "/realtime/ws", nil) // default_channels default news
	c.expect("realtime:welcome")
	for _, ch := range []string{"default", "news"} {
		f := c.expect("realtime:subscribed")
		if f.Channel != ch || f.Recovered == nil || *f.Recovered {
			t.Fatalf("want realtime:subscribed %s recovered:false, got %s", ch, f)
		}
	}
	publish(t, event("news", "headline"))
	c.expectEvent("news", "headline")
	publish(t, event("default", "general"))
	c.expectEvent("default", "general")
}

func TestWSQueryChannels(t *testing.T) {
	loadMain(t)
	a, b := uniq("qa"), uniq("qb")
	c := dial(t, "/realtime/ws?channels="+a+","+b, nil)
	c.welcome(a, b)
	publish(t, event("default", "not_joined"))
	publish(t, event(a, "to_a"))
	publish(t, event(b, "to_b"))
	// Naming channels replaces the defaults: the default event never comes.
	c.expectEvent(a, "to_a")
	c.expectEvent(b, "to_b")
}

func TestWSSubscribeUnsubscribe(t *testing.T) {
	loadMain(t)
	home, x, y, z := uniq("home"), uniq("sx"), uniq("sy"), uniq("sz")
	c := dial(t, "/realtime/ws?channels="+home, nil)
	c.welcome(home)

	c.send(map[string]any{"type": "realtime:subscribe", "channel": x})
	c.expectSubscribed(x)
	c.send(map[string]any{"type": "realtime:subscribe", "channels": []string{y, z}})
	c.expectSubscribed(y, z)
	publish(t, event(x, "on_x"))
	c.expectEvent(x, "on_x")
	publish(t, event(z, "on_z"))
	c.expectEvent(z, "on_z")

	c.send(map[string]any{"type": "realtime:unsubscribe", "channel": x})
	if f := c.expect("realtime:unsubscribed"); f.Channel != x {
		t.Fatalf("want realtime:unsubscribed for %s, got %s", x, f)
	}
	c.send(map[string]any{"type": "realtime:unsubscribe", "channels": []string{y}})
	if f := c.expect("realtime:unsubscribed"); f.Channel != y {
		t.Fatalf("want realtime:unsubscribed for %s, got %s", y, f)
	}
	publish(t, event(x, "after_unsubscribe"))
	publish(t, event(y, "after_unsubscribe"))
	publish(t, event(z, "still_here"))
	c.expectEvent(z, "still_here")
}

func TestWSAppPingPong(t *testing.T) {
	loadMain(t)
	c := dial(t, "/realtime/ws?channels="+uniq("pp"), nil)
	c.expect("realtime:welcome")
	c.expect("realtime:subscribed")
	for i := 0; i < 3; i++ {
		c.send(map[string]string{"type": "realtime:ping"})
		c.expect("realtime:pong")
	}
}

// TestWSBadRequestKeepsConnection: junk and unknown frames get bad_request,
// and the connection carries on.
func TestWSBadRequestKeepsConnection(t *testing.T) {
	loadMain(t)
	ch := uniq("junk")
	c := dial(t, "/realtime/ws?channels="+ch, nil)
	c.welcome(ch)
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
		c.sendRaw(websocket.TextMessage, []byte(junk))
		c.expectError("bad_request", "")
	}
	c.send(map[string]any{"type": "realtime:subscribe", "channel": "bad name!"})
	c.expectError("bad_request", "")
	c.ping()
	publish(t, event(ch, "still_open"))
	c.expectEvent(ch, "still_open")
}

func TestWSBinaryFrameCloses1003(t *testing.T) {
	loadMain(t)
	c := dial(t, "/realtime/ws?channels="+uniq("bin"), nil)
	c.expect("realtime:welcome")
	c.sendRaw(websocket.BinaryMessage, []byte(`{"type":"realtime:ping"}`))
	c.expect("realtime:subscribed")
	c.expectClose(websocket.CloseUnsupportedData)
}

func TestWSInvalidUTF8Closes1007(t *testing.T) {
	loadMain(t)
	c := dial(t, "/realtime/ws?channels="+uniq("utf"), nil)
	c.expect("realtime:welcome")
	c.expect("realtime:subscribed")
	c.sendRaw(websocket.TextMessage, []byte("{\"type\":\"realtime:subscribe\",\"channel\":\"caf\xe9\"}"))
	c.expectClose(websocket.CloseInvalidFramePayloadData)
}

func TestWSOversizeFrameCloses1009(t *testing.T) {
	loadMain(t) // max_message_size 1KiB
	ch := uniq("big")
	c := dial(t, "/realtime/ws?channels="+ch, nil)
	c.welcome(ch)
	// A frame just under the limit is fine.
	under := fmt.Sprintf(`{"type":"realtime:ping","pad":%q}`, strings.Repeat("p", 950))
	if len(under) > 1024 {
		t.Fatalf("test bug: %d bytes", len(under))
	}
	c.sendRaw(websocket.TextMessage, []byte(under))
	c.expect("realtime:pong")
	c.sendRaw(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"realtime:ping","pad":%q}`, strings.Repeat("p", 2048))))
	c.expectClose(websocket.CloseMessageTooBig)
}

func TestWSPrivateWithoutTokenForbidden(t *testing.T) {
	loadMain(t)
	p := uniq("private-room")
	c := dial(t, "/realtime/ws?channels="+p, nil)
	c.expect("realtime:welcome")
	c.expectError("forbidden", p)
	c.send(map[string]any{"type": "realtime:subscribe", "channel": p})
	c.expectError("forbidden", p)
	publish(t, event(p, "secret_event"))
	c.ping() // the connection is open and nothing was delivered before the pong
	// Without token_secret there are no private channels at all, even with a
	// token.
	o := dial(t, "/ws/origins", http.Header{"Authorization": {"Bearer " + validToken(t, "*")}})
	o.welcome("default")
	o.send(map[string]any{"type": "realtime:subscribe", "channel": p})
	o.expectError("forbidden", p)
}

// privateRoundTrip checks that c holds a live subscription to channel.
func privateRoundTrip(t *testing.T, c *wsClient, channel string) {
	t.Helper()
	publish(t, event(channel, "private_event"))
	c.expectEvent(channel, "private_event")
}

func TestWSTokenInAuthorizationHeader(t *testing.T) {
	loadMain(t)
	p := uniq("private-user")
	c := dial(t, "/realtime/ws?channels="+p, http.Header{"Authorization": {"Bearer " + validToken(t, p)}})
	c.welcome(p)
	privateRoundTrip(t, c, p)
}

func TestWSTokenInCookie(t *testing.T) {
	loadMain(t)
	p := uniq("private-user")
	cookie := (&http.Cookie{Name: "realtime_token", Value: validToken(t, p)}).String()
	c := dial(t, "/realtime/ws?channels="+p, http.Header{"Cookie": {"theme=dark; " + cookie}})
	c.welcome(p)
	privateRoundTrip(t, c, p)
	// Another cookie name is not read.
	q := uniq("private-user")
	other := (&http.Cookie{Name: "wordpress_logged_in", Value: validToken(t, q)}).String()
	d := dial(t, "/realtime/ws?channels="+q, http.Header{"Cookie": {other}})
	d.expect("realtime:welcome")
	d.expectError("forbidden", q)
}

func TestWSTokenInSubscribeFrame(t *testing.T) {
	loadMain(t)
	p := uniq("private-user")
	c := dial(t, "/realtime/ws?channels="+uniq("pub"), nil)
	c.expect("realtime:welcome")
	c.expect("realtime:subscribed")
	c.send(map[string]any{"type": "realtime:subscribe", "channel": p, "token": validToken(t, p)})
	c.expectSubscribed(p)
	privateRoundTrip(t, c, p)
}

func TestWSTokenInQueryIgnored(t *testing.T) {
	loadMain(t)
	p := uniq("private-user")
	tok := validToken(t, p)
	for _, name := range []string{"token", "access_token", "jwt", "auth"} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, "/realtime/ws?channels="+p+"&"+name+"="+url.QueryEscape(tok), nil)
			c.expect("realtime:welcome")
			c.expectError("forbidden", p)
		})
	}
}

func TestWSTokenExpired(t *testing.T) {
	loadMain(t)
	p := uniq("private-user")
	expired := makeToken(t, tokenSecret, []string{p}, time.Now().Add(-time.Minute))
	t.Run("subscribe frame", func(t *testing.T) {
		c := dial(t, "/realtime/ws?channels="+uniq("pub"), nil)
		c.expect("realtime:welcome")
		c.expect("realtime:subscribed")
		c.send(map[string]any{"type": "realtime:subscribe", "channel": p, "token": expired})
		c.expectError("token_expired", p)
	})
	t.Run("handshake", func(t *testing.T) {
		c := dial(t, "/realtime/ws?channels="+p, http.Header{"Authorization": {"Bearer " + expired}})
		c.expect("realtime:welcome")
		c.expectError("token_expired", p)
	})
}

func TestWSTokenBadSignature(t *testing.T) {
	loadMain(t)
	p := uniq("private-user")
	forged := makeToken(t, "not-the-token-secret", []string{p}, time.Now().Add(time.Hour))
	good := validToken(t, p)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	for name, tok := range map[string]string{"other secret": forged, "tampered signature": tampered, "garbage": "not.a.jwt"} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, "/realtime/ws?channels="+uniq("pub"), nil)
			c.expect("realtime:welcome")
			c.expect("realtime:subscribed")
			c.send(map[string]any{"type": "realtime:subscribe", "channel": p, "token": tok})
			c.expectError("token_invalid", p)
		})
	}
	t.Run("handshake", func(t *testing.T) {
		c := dial(t, "/realtime/ws?channels="+p, http.Header{"Authorization": {"Bearer " + forged}})
		c.expect("realtime:welcome")
		c.expectError("token_invalid", p)
	})
}

// TestWSPrivatePatterns: `private user.*` makes user.* need a token too;
// other channels stay public.
func TestWSPrivatePatterns(t *testing.T) {
	loadMain(t)
	u := uniq("user")
	c := dial(t, "/realtime/ws?channels="+uniq("pub"), nil)
	c.expect("realtime:welcome")
	c.expect("realtime:subscribed")
	for _, ch := range []string{u + ".42", u + ".42.inbox"} {
		c.send(map[string]any{"type": "realtime:subscribe", "channel": "user." + ch})
		c.expectError("forbidden", "user."+ch)
	}
	c.send(map[string]any{"type": "realtime:subscribe", "channel": "users." + u})
	c.expectSubscribed("users." + u)
	ch := "user." + u
	c.send(map[string]any{"type": "realtime:subscribe", "channel": ch, "token": validToken(t, ch)})
	c.expectSubscribed(ch)
	privateRoundTrip(t, c, ch)
}

func TestWSGlobClaims(t *testing.T) {
	loadMain(t)
	post := uniq("private-post")
	tok := validToken(t, post+".*", "private-user.42")
	c := dial(t, "/realtime/ws?channels="+uniq("pub"), http.Header{"Authorization": {"Bearer " + tok}})
	c.expect("realtime:welcome")
	c.expect("realtime:subscribed")
	for _, ch := range []string{post + ".7", post + ".7.comments", "private-user.42"} {
		c.send(map[string]any{"type": "realtime:subscribe", "channel": ch})
		c.expectSubscribed(ch)
	}
	for _, ch := range []string{post, "private-user.43", "private-user.420", uniq("private-post") + ".7"} {
		c.send(map[string]any{"type": "realtime:subscribe", "channel": ch})
		c.expectError("forbidden", ch)
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
	c.welcome(names...)
	sixth, seventh := uniq("cap"), uniq("cap")
	c.send(map[string]any{"type": "realtime:subscribe", "channels": []string{sixth, seventh}})
	// The answers to one frame may come in any order: match by channel.
	got := map[string]string{}
	for i := 0; i < 2; i++ {
		f := c.next(5 * time.Second)
		got[f.Channel] = f.Type + " " + f.Code
	}
	if got[sixth] != "realtime:subscribed " || got[seventh] != "realtime:error too_many_subscriptions" {
		t.Fatalf("6th and 7th subscriptions with max_subscriptions 6: want subscribed and too_many_subscriptions, got %v", got)
	}
	// Private grants count the same.
	p := uniq("private-user")
	c.send(map[string]any{"type": "realtime:subscribe", "channel": p, "token": validToken(t, p)})
	c.expectError("too_many_subscriptions", p)
	// Unsubscribing frees a slot.
	c.send(map[string]any{"type": "realtime:unsubscribe", "channel": names[0]})
	c.expect("realtime:unsubscribed")
	c.send(map[string]any{"type": "realtime:subscribe", "channel": seventh})
	c.expectSubscribed(seventh)
	// Connecting with more channels than allowed is refused per channel.
	var many []string
	for i := 0; i < 7; i++ {
		many = append(many, uniq("many"))
	}
	d := dial(t, "/realtime/ws?channels="+strings.Join(many, ","), nil)
	d.expect("realtime:welcome")
	answers := map[string]string{}
	for range many {
		f := d.next(5 * time.Second)
		answers[f.Channel] = f.Type + " " + f.Code
	}
	for i, ch := range many {
		want := "realtime:subscribed "
		if i == 6 {
			want = "realtime:error too_many_subscriptions"
		}
		if answers[ch] != want {
			t.Fatalf("connect with 7 channels, max_subscriptions 6: want %q for channel %d, got %v", want, i+1, answers)
		}
	}
}

// expectRefused dials and requires a refused handshake with status and a
// JSON body.
func expectRefused(t *testing.T, path string, h http.Header, status int) *response {
	t.Helper()
	conn, r, err := tryDial(wsDialer, wsBase+path, h)
	if err == nil {
		conn.Close()
		t.Fatalf("dial %s: want %d before upgrading, got 101", path, status)
	}
	if r == nil {
		t.Fatalf("dial %s: want %d, got %v", path, status, err)
	}
	expectError(t, r, status)
	return r
}

func TestWSOriginDefaultSameOrigin(t *testing.T) {
	loadMain(t)
	for _, o := range []string{"", "http://localhost:9080", "HTTP://LOCALHOST:9080"} {
		t.Run("allowed "+o, func(t *testing.T) {
			h := http.Header{}
			if o != "" {
				h.Set("Origin", o)
			}
			dial(t, "/realtime/ws", h).expect("realtime:welcome")
		})
	}
	for _, o := range []string{"http://evil.example", "http://localhost:9081", "https://localhost:9080", "http://localhost", "http://localhost.evil.example:9080", "null"} {
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
			dial(t, "/ws/origins", h).expect("realtime:welcome")
		})
	}
	for _, o := range []string{
		"http://localhost:9080", // the list replaces same-origin
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
	a.expect("realtime:welcome")
	b := dial(t, "/ws/capped", nil)
	b.expect("realtime:welcome")
	r := expectRefused(t, "/ws/capped", nil, http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	// A closed connection frees its slot.
	a.close()
	waitFor(t, 3*time.Second, "a freed connection slot", func() bool {
		conn, _, err := tryDial(wsDialer, wsBase+"/ws/capped", nil)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
}

func TestWSMaxConnectionsPerIP(t *testing.T) {
	loadMain(t) // /ws/perip: max_connections_per_ip 2
	waitFor(t, 3*time.Second, "hub perip to have no connections", func() bool { return statInt(t, "perip", "connections") == 0 })
	a := dial(t, "/ws/perip", nil)
	a.expect("realtime:welcome")
	b := dial(t, "/ws/perip", nil)
	b.expect("realtime:welcome")
	expectRefused(t, "/ws/perip", nil, http.StatusTooManyRequests)
	b.close()
	waitFor(t, 3*time.Second, "a freed per-IP slot", func() bool {
		conn, _, err := tryDial(wsDialer, wsBase+"/ws/perip", nil)
		if err != nil {
			return false
		}
		conn.Close()
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
// published, is disconnected (send queue overflow -> 1013, the close frame
// attempted for write_timeout, then the socket closed); the other
// subscribers receive every event, in order, and publishing never stalls.
func TestWSSlowConsumer(t *testing.T) {
	loadMain(t) // /ws/slow: hub slow, send_queue 8, write_timeout 2s
	waitFor(t, 3*time.Second, "hub slow to have no connections", func() bool { return statInt(t, "slow", "connections") == 0 })
	before := statInt(t, "slow", "slow_consumer_disconnects")

	fast1 := dialWith(t, wsBase+"/ws/slow", dialOpts{})
	fast1.welcome("firehose")
	fast2 := dialWith(t, wsBase+"/ws/slow", dialOpts{})
	fast2.welcome("firehose")

	// The slow client reads its welcome, then nothing ever again.
	slow, r, err := tryDial(wsDialer, wsBase+"/ws/slow", nil)
	if err != nil {
		t.Fatalf("dial: %v %v", err, r)
	}
	defer slow.Close()
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{"realtime:welcome", "realtime:subscribed"} {
		_, data, err := slow.ReadMessage()
		if err != nil || !strings.Contains(string(data), want) {
			t.Fatalf("slow client: want %s, got %s %v", want, data, err)
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
	if !disconnected() {
		t.Fatalf("%d events of 48 KiB to a client that never reads: slow_consumer_disconnects did not move (hub slow: %v)", published, hubStats(t, "slow"))
	}
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

	for _, c := range []*wsClient{fast1, fast2} {
		for i := 0; i < published; i++ {
			f := c.next(10 * time.Second)
			if f.Type != fmt.Sprintf("e%d", i) {
				t.Fatalf("fast subscriber: want event e%d, got %.80s", i, f.raw)
			}
		}
		c.ping()
	}

	// The slow client's socket is closed: reading what was buffered ends
	// with the 1013 close frame or, if it could not be written in time, the
	// end of the stream; never with a read timeout.
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := 0
	for {
		_, _, err = slow.ReadMessage()
		if err != nil {
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
	c.welcome(ch)
	for i := 0; i < 2; i++ {
		time.Sleep(400 * time.Millisecond)
		typ := fmt.Sprintf("after_idle_%d", i)
		publish(t, event(ch, typ))
		c.expectEvent(ch, typ)
		c.ping()
	}
}

// TestWSProtocolPing: the server sends protocol pings every ping_interval;
// a client that answers stays, one that never answers is dropped after
// about two intervals.
func TestWSProtocolPing(t *testing.T) {
	loadMain(t) // /ws/ping: ping_interval 300ms
	alive := dialWith(t, wsBase+"/ws/ping", dialOpts{})
	w := alive.welcome("default")
	if w.PingInterval == nil {
		t.Fatalf("welcome without ping_interval: %s", w)
	}
	start := time.Now()
	deaf := dialWith(t, wsBase+"/ws/ping", dialOpts{deaf: true})
	deaf.welcome("default")
	select {
	case <-deaf.done:
	case <-time.After(3 * time.Second):
		t.Fatalf("a client that never answers pings is still connected after 3s (10 intervals)")
	}
	lasted := time.Since(start)
	if deaf.pings.Load() == 0 {
		t.Fatalf("the deaf client received no protocol ping before it was dropped")
	}
	if lasted < 450*time.Millisecond {
		t.Fatalf("the deaf client was dropped after %v, before 2 intervals", lasted)
	}
	t.Logf("deaf client: %d pings, dropped after %v (%v)", deaf.pings.Load(), lasted, deaf.err)
	// The client that answers pongs is still here, several intervals later.
	if time.Since(start) < 1500*time.Millisecond {
		time.Sleep(1500*time.Millisecond - time.Since(start))
	}
	if n := alive.pings.Load(); n < 3 {
		t.Fatalf("answering client: want a ping every 300ms, got %d in %v", n, time.Since(start))
	}
	alive.ping()
}

// rawConn is a hand-driven WebSocket client, for frames gorilla will not
// write.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func rawDial(t *testing.T, path string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:9080", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: localhost:9080\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", path)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw upgrade: want 101, got %d", resp.StatusCode)
	}
	return &rawConn{t: t, conn: conn, br: br}
}

// writeFrame writes one masked client frame; length overrides the
// declared payload length when >= 0.
func (c *rawConn) writeFrame(fin bool, op byte, payload []byte, length int64) {
	c.t.Helper()
	if length < 0 {
		length = int64(len(payload))
	}
	b := []byte{op}
	if fin {
		b[0] |= 0x80
	}
	switch {
	case length < 126:
		b = append(b, 0x80|byte(length))
	case length <= 0xFFFF:
		b = append(b, 0x80|126, byte(length>>8), byte(length))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(length))
	}
	mask := []byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, mask...)
	for i, x := range payload {
		b = append(b, x^mask[i%4])
	}
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("raw write: %v", err)
	}
}

// readFrame reads one server frame (servers never mask).
func (c *rawConn) readFrame() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		if _, err = io.ReadFull(c.br, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err = io.ReadFull(c.br, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return h[0] & 0x0F, payload, err
}

// expectText skips to the next text frame containing want.
func (c *rawConn) expectText(want string) {
	c.t.Helper()
	for {
		op, p, err := c.readFrame()
		if err != nil {
			c.t.Fatalf("raw: waiting for %s: %v", want, err)
		}
		if op == 0x8 {
			c.t.Fatalf("raw: waiting for %s, got close %v", want, p)
		}
		if op == 0x1 && strings.Contains(string(p), want) {
			return
		}
	}
}

// expectClose skips to the close frame and requires its code.
func (c *rawConn) expectClose(code int) {
	c.t.Helper()
	for {
		op, p, err := c.readFrame()
		if err != nil {
			c.t.Fatalf("raw: want close %d, connection ended: %v", code, err)
		}
		if op != 0x8 {
			continue
		}
		if len(p) < 2 || int(binary.BigEndian.Uint16(p)) != code {
			c.t.Fatalf("raw: want close %d, got close frame %v", code, p)
		}
		return
	}
}

// TestWSRawFrames: frames written by hand. UTF-8 is checked on the whole
// message, not per fragment; a frame that only declares a length over
// max_message_size is refused with 1009 at once, before any payload.
func TestWSRawFrames(t *testing.T) {
	loadMain(t)
	t.Run("valid UTF-8 split across fragments", func(t *testing.T) {
		c := rawDial(t, "/realtime/ws?channels="+uniq("raw"))
		c.expectText("realtime:subscribed")
		c.writeFrame(false, 0x1, []byte(`{"type":"realtime:ping","x":"caf`+"\xc3"), -1)
		c.writeFrame(true, 0x0, []byte("\xa9\"}"), -1)
		c.expectText("realtime:pong")
	})
	t.Run("invalid UTF-8 split across fragments", func(t *testing.T) {
		c := rawDial(t, "/realtime/ws?channels="+uniq("raw"))
		c.expectText("realtime:subscribed")
		c.writeFrame(false, 0x1, []byte(`{"type":"realtime:ping","x":"caf`+"\xc3"), -1)
		c.writeFrame(true, 0x0, []byte("(\"}"), -1)
		c.expectClose(websocket.CloseInvalidFramePayloadData)
	})
	t.Run("declared length of 1 GiB", func(t *testing.T) {
		c := rawDial(t, "/realtime/ws?channels="+uniq("raw"))
		c.expectText("realtime:subscribed")
		c.writeFrame(true, 0x1, []byte(`{"type":`), 1<<30)
		_ = c.conn.SetDeadline(time.Now().Add(3 * time.Second))
		c.expectClose(websocket.CloseMessageTooBig)
	})
}
