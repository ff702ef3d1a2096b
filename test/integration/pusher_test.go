package integration

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

// The edges of realtime_pusher that the npm clients (test/pusher) do not
// reach: handshake refusals and their close codes, routing next to a site,
// keep-alive, the HTTP API's routes, path prefixes and idempotency keys.

const (
	pusherKey    = "pusher-key-9d1c"
	pusherSecret = "pusher-secret-40ef"
)

func pusherConfig() string {
	return `{` + globalOptions + `
	realtime {
		hub pusherhub
	}
}

` + httpBase + ` {
	realtime_pusher {
		hub pusherhub
		app_id 7
		key ` + pusherKey + `
		secret ` + pusherSecret + `
		allowed_origins https://app.example.org
		activity_timeout 2s
		client_events on
	}
	realtime_pusher /prefixed/* {
		hub pusherhub
		app_id 8
		key ` + pusherKey + `-prefixed
		secret ` + pusherSecret + `
	}
	realtime_ws /realtime/ws {
		hub pusherhub
	}
	respond "the site" 200
}
`
}

// pusherMsg is a Pusher protocol message.
type pusherMsg struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

func decodePusher(t *testing.T, f rtclient.Frame) pusherMsg {
	t.Helper()
	var m pusherMsg
	if err := json.Unmarshal(f.Raw, &m); err != nil {
		t.Fatalf("not a Pusher message: %q", f.Raw)
	}
	return m
}

// nextPusher reads the next Pusher message.
func nextPusher(t *testing.T, c *rtclient.Client) pusherMsg {
	t.Helper()
	return decodePusher(t, c.Next(5*time.Second))
}

// dialPusher connects and reads pusher:connection_established, returning
// the socket id.
func dialPusher(t *testing.T, path string, o rtclient.Options) (*rtclient.Client, string) {
	t.Helper()
	c := rtclient.Dial(t, wsBase+path, o)
	m := nextPusher(t, c)
	var s string
	var data struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}
	if m.Event != "pusher:connection_established" || json.Unmarshal(m.Data, &s) != nil || json.Unmarshal([]byte(s), &data) != nil || !socketID.MatchString(data.SocketID) || data.ActivityTimeout < 1 {
		t.Fatalf("want connection_established first, got %s %s", m.Event, m.Data)
	}
	return c, data.SocketID
}

func TestPusherHandshakeRefusals(t *testing.T) {
	loadConfig(t, pusherConfig())
	for _, tc := range []struct {
		name, path, origin string
		code               int
	}{
		{"unknown key", "/app/nope?protocol=7", "", 4001},
		{"no protocol", "/app/" + pusherKey, "", 4008},
		{"old protocol", "/app/" + pusherKey + "?protocol=6", "", 4007},
		{"origin not allowed", "/app/" + pusherKey + "?protocol=7", "https://evil.example", 4009},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rtclient.Dial(t, wsBase+tc.path, rtclient.Options{Origin: tc.origin})
			// A pusher:error with the code, then the close frame with it.
			m := nextPusher(t, c)
			var data struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if m.Event != "pusher:error" || json.Unmarshal(m.Data, &data) != nil || data.Code != tc.code || data.Message == "" {
				t.Fatalf("got %s %s, want pusher:error %d", m.Event, m.Data, tc.code)
			}
			c.ExpectClose(tc.code)
		})
	}
	// Allowed: an allowed origin, no Origin (pusher-js in Node), and a
	// wsPath prefix before /app/<key>.
	dialPusher(t, "/app/"+pusherKey+"?protocol=7&client=js&version=8.6.0&flash=false", rtclient.Options{Origin: "https://app.example.org"})
	dialPusher(t, "/app/"+pusherKey+"?protocol=7", rtclient.Options{})
	dialPusher(t, "/prefixed/app/"+pusherKey+"-prefixed?protocol=7", rtclient.Options{})
}

// realtime_pusher sits in the site without a matcher: what is not its
// own goes on to the next handler.
func TestPusherPassesOtherRequestsOn(t *testing.T) {
	loadConfig(t, pusherConfig())
	for path, want := range map[string]string{
		"/":                      "200 the site",
		"/wp-admin/app/settings": "200 the site",
		"/app/" + pusherKey:      "426",
		"/apps/9/events":         "200 the site",
		"/apps/9/events?x=1":     "200 the site",
		"/apps/9/events?auth_key=k&auth_signature=s": "404",
		"/apps/7/channels":                           "401",
	} {
		r := request(t, http.MethodGet, httpBase+path, nil)
		if !strings.HasPrefix(r.String(), want) {
			t.Errorf("GET %s: %s, want %s", path, r, want)
		}
	}
}

// The server pings after most of activity_timeout without hearing from the
// client; a client that answers stays, one that says nothing is dropped.
func TestPusherKeepAlive(t *testing.T) {
	loadConfig(t, pusherConfig())
	live, _ := dialPusher(t, "/app/"+pusherKey+"?protocol=7", rtclient.Options{})
	dead, _ := dialPusher(t, "/app/"+pusherKey+"?protocol=7", rtclient.Options{})
	for range 3 {
		if m := nextPusher(t, live); m.Event != "pusher:ping" {
			t.Fatalf("want pusher:ping, got %s", m.Event)
		}
		live.Send(map[string]any{"event": "pusher:pong", "data": map[string]any{}})
	}
	select {
	case <-dead.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a client that answers nothing was not dropped")
	}
	live.Send(map[string]any{"event": "pusher:ping", "data": map[string]any{}})
	if !live.WaitFor(5*time.Second, func(fs []rtclient.Frame) bool {
		for _, f := range fs {
			if strings.Contains(string(f.Raw), `"pusher:pong"`) {
				return true
			}
		}
		return false
	}) {
		t.Fatal("no pong: the answering client was dropped too")
	}
}

var socketID = regexp.MustCompile(`^\d+\.\d+$`)

// signedURL signs an HTTP API request as the Pusher SDKs do (rest-api.md):
// auth_key, auth_timestamp, auth_version, body_md5, and auth_signature =
// hex HMAC-SHA256 of "METHOD\nPATH\nsorted query" (written here again,
// apart from the server's code, so that the two check each other).
func signedURL(method, path string, params map[string]string, body []byte) string {
	return httpBase + path + "?" + signQuery(pusherKey, method, path, params, body)
}

func signQuery(key, method, signedPath string, params map[string]string, body []byte) string {
	q := map[string]string{"auth_key": key, "auth_timestamp": strconv.FormatInt(time.Now().Unix(), 10), "auth_version": "1.0"}
	for k, v := range params {
		q[k] = v
	}
	if len(body) > 0 {
		sum := md5.Sum(body)
		q["body_md5"] = hex.EncodeToString(sum[:])
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = k + "=" + q[k]
	}
	m := hmac.New(sha256.New, []byte(pusherSecret))
	m.Write([]byte(method + "\n" + signedPath + "\n" + strings.Join(pairs, "&")))
	v := url.Values{}
	for k, val := range q {
		v.Set(k, val)
	}
	v.Set("auth_signature", hex.EncodeToString(m.Sum(nil)))
	return v.Encode()
}

func TestPusherAPIRoutes(t *testing.T) {
	loadConfig(t, pusherConfig())
	sub, _ := dialPusher(t, "/app/"+pusherKey+"?protocol=7", rtclient.Options{})
	sub.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]any{"channel": "api-test", "auth": ""}})
	if m := nextPusher(t, sub); m.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("got %s", m.Event)
	}
	trigger := []byte(`{"name":"e","data":"{\"n\":1}","channels":["api-test"]}`)
	for _, tc := range []struct {
		method, path string
		params       map[string]string
		body         []byte
		want         string
	}{
		{"GET", "/apps/7/events", nil, nil, "405"},
		{"POST", "/apps/7/channels", nil, []byte("{}"), "405"},
		{"GET", "/apps/7/nothing", nil, nil, "404"},
		{"GET", "/apps/7/channels/api-test/more", nil, nil, "404"},
		{"GET", "/apps/7/channels/bad%20name", nil, nil, "400"},
		{"GET", "/apps/7/channels/api-test", map[string]string{"info": "user_count"}, nil, "400"},
		{"GET", "/apps/7/channels/api-test", map[string]string{"info": "bogus"}, nil, "400"},
		{"GET", "/apps/7/channels", map[string]string{"info": "user_count"}, nil, "400"},
		{"GET", "/apps/7/channels/api-test", map[string]string{"info": "subscription_count"}, nil, `200 {"occupied":true,"subscription_count":1}`},
		{"GET", "/apps/7/channels/api-test/users", nil, nil, "400"},
		{"GET", "/apps/7/channels/presence-room/users", nil, nil, `200 {"users":[]}`},
		{"POST", "/apps/7/users/42/terminate_connections", nil, []byte("{}"), "200 {}"},
		{"POST", "/apps/7/events", nil, []byte("not json"), "400"},
	} {
		r := request(t, tc.method, signedURL(tc.method, tc.path, tc.params, tc.body), tc.body, jsonCT...)
		if !strings.HasPrefix(r.String(), tc.want) {
			t.Errorf("%s %s %v: %s, want %s", tc.method, tc.path, tc.params, r, tc.want)
		}
		if r.status >= 400 && r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: error answered as %s", tc.method, tc.path, r.header.Get("Content-Type"))
		}
	}

	// An Idempotency-Key makes a retried trigger deliver once.
	for range 2 {
		r := request(t, "POST", signedURL("POST", "/apps/7/events", nil, trigger), trigger, "Content-Type", "application/json", "Idempotency-Key", "order-7-shipped")
		if r.status != 200 {
			t.Fatalf("trigger: %s", r)
		}
	}
	marker := []byte(`{"name":"marker","data":"{}","channel":"api-test"}`)
	request(t, "POST", signedURL("POST", "/apps/7/events", nil, marker), marker, jsonCT...)
	var got []string
	for {
		m := nextPusher(t, sub)
		got = append(got, m.Event)
		if m.Event == "marker" {
			break
		}
	}
	if strings.Join(got, " ") != "e marker" {
		t.Fatalf("events %v, want one e then the marker", got)
	}

	// Under a route prefix, pusher-http-php signs the path without it; a
	// client that signs the full path is accepted too.
	for _, signed := range []string{"/apps/8/channels", "/prefixed/apps/8/channels"} {
		u := httpBase + "/prefixed/apps/8/channels?" + signQuery(pusherKey+"-prefixed", "GET", signed, nil, nil)
		if r := request(t, "GET", u, nil); r.status != 200 {
			t.Errorf("prefix, signed over %s: %s", signed, r)
		}
	}
}

// TestPusherPresenceAPI: a member joined over the Pusher protocol is what
// the HTTP API counts and lists: user_count, users, the presence channel
// list with user_count, and a trigger's info.
func TestPusherPresenceAPI(t *testing.T) {
	loadConfig(t, pusherConfig())
	const ch = "presence-api-room"
	var ids []string
	for _, user := range []string{`42`, `"42"`, `"7"`} {
		c, id := dialPusher(t, "/app/"+pusherKey+"?protocol=7", rtclient.Options{})
		data := `{"user_id":` + user + `,"user_info":{"name":"n"}}`
		m := hmac.New(sha256.New, []byte(pusherSecret))
		m.Write([]byte(id + ":" + ch + ":" + data))
		c.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]any{"channel": ch, "auth": pusherKey + ":" + hex.EncodeToString(m.Sum(nil)), "channel_data": data}})
		if got := nextPusher(t, c); got.Event != "pusher_internal:subscription_succeeded" {
			t.Fatalf("join as %s: %s %s", user, got.Event, got.Data)
		}
		ids = append(ids, id)
	}
	trigger := []byte(`{"name":"e","data":"x","channels":["` + ch + `"],"info":"user_count,subscription_count"}`)
	for _, tc := range []struct {
		method, path string
		params       map[string]string
		body         []byte
		want         string
	}{
		{"GET", "/apps/7/channels/" + ch, map[string]string{"info": "user_count,subscription_count"}, nil, `200 {"occupied":true,"subscription_count":3,"user_count":2}`},
		{"GET", "/apps/7/channels/" + ch + "/users", nil, nil, `200 {"users":[{"id":"42"},{"id":"7"}]}`},
		{"GET", "/apps/7/channels", map[string]string{"filter_by_prefix": "presence-api-", "info": "user_count"}, nil, `200 {"channels":{"` + ch + `":{"user_count":2}}}`},
		{"GET", "/apps/7/channels/presence-api-empty", map[string]string{"info": "user_count"}, nil, `200 {"occupied":false,"user_count":0}`},
		{"POST", "/apps/7/events", nil, trigger, `200 {"channels":{"` + ch + `":{"subscription_count":3,"user_count":2}}}`},
	} {
		r := request(t, tc.method, signedURL(tc.method, tc.path, tc.params, tc.body), tc.body, jsonCT...)
		if strings.TrimSpace(r.String()) != tc.want {
			t.Errorf("%s %s %v:\n got %s\nwant %s", tc.method, tc.path, tc.params, r, tc.want)
		}
	}
}

// A reload that changes realtime_pusher keeps its connections, which keep
// working.
func TestPusherReloadKeepsConnections(t *testing.T) {
	loadConfig(t, pusherConfig())
	c, id := dialPusher(t, "/app/"+pusherKey+"?protocol=7", rtclient.Options{})
	c.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]any{"channel": "reload-test", "auth": ""}})
	nextPusher(t, c)
	loadConfig(t, strings.Replace(pusherConfig(), "activity_timeout 2s", "activity_timeout 3s", 1))
	body := []byte(`{"name":"after","data":"x","channel":"reload-test"}`)
	if r := request(t, "POST", signedURL("POST", "/apps/7/events", nil, body), body, jsonCT...); r.status != 200 {
		t.Fatal(r)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		m := nextPusher(t, c)
		if m.Event == "pusher:ping" {
			c.Send(map[string]any{"event": "pusher:pong", "data": map[string]any{}})
			continue
		}
		if m.Event != "after" || string(m.Data) != `"x"` {
			t.Fatalf("socket %s after the reload: %s %s", id, m.Event, m.Data)
		}
		return
	}
	t.Fatalf("socket %s: the event published after the reload did not arrive within 10 s", id)
}

// TestPusherWebhookAcrossReload: realtime_pusher's webhook is signed the
// Pusher way (the app key, hex HMAC-SHA256 of the body with the app
// secret, Content-Type exactly application/json), and keeps posting after
// a reload that changes the handler.
func TestPusherWebhookAcrossReload(t *testing.T) {
	type post struct {
		key, sig, ct string
		body         []byte
	}
	posts := make(chan post, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		posts <- post{r.Header.Get("X-Pusher-Key"), r.Header.Get("X-Pusher-Signature"), r.Header.Get("Content-Type"), b}
	}))
	defer srv.Close()
	withHook := func(activity string) string {
		return strings.Replace(pusherConfig(), "activity_timeout 2s", "activity_timeout "+activity+"\n\t\twebhook "+srv.URL+"/hook {\n\t\t\tevents member_added\n\t\t}", 1)
	}
	// join subscribes a new connection to a presence channel as user.
	join := func(ch, user string) {
		c, id := dialPusher(t, "/app/"+pusherKey+"?protocol=7", rtclient.Options{})
		data := `{"user_id":"` + user + `"}`
		m := hmac.New(sha256.New, []byte(pusherSecret))
		m.Write([]byte(id + ":" + ch + ":" + data))
		c.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]any{"channel": ch, "auth": pusherKey + ":" + hex.EncodeToString(m.Sum(nil)), "channel_data": data}})
		if got := nextPusher(t, c); got.Event != "pusher_internal:subscription_succeeded" {
			t.Fatalf("join: %s %s", got.Event, got.Data)
		}
	}
	// added waits for the member_added of user.
	added := func(user string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case p := <-posts:
				m := hmac.New(sha256.New, []byte(pusherSecret))
				m.Write(p.body)
				if p.key != pusherKey || p.sig != hex.EncodeToString(m.Sum(nil)) || p.ct != "application/json" {
					t.Fatalf("webhook signed %q %q as %q: %s", p.key, p.sig, p.ct, p.body)
				}
				var hook struct {
					Events []struct {
						Name   string `json:"name"`
						UserID string `json:"user_id"`
					} `json:"events"`
				}
				if err := json.Unmarshal(p.body, &hook); err != nil {
					t.Fatal(err)
				}
				for _, e := range hook.Events {
					if e.Name == "member_added" && e.UserID == user {
						return
					}
				}
			case <-deadline:
				t.Fatalf("no member_added for %s", user)
			}
		}
	}
	loadConfig(t, withHook("2s"))
	join("presence-hooked", "before")
	added("before")
	loadConfig(t, withHook("3s"))
	join("presence-hooked", "after")
	added("after")
}
