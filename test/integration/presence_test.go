package integration

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

// The presence config: hub pres with the room.* pattern, no leave delay
// (members leave as soon as their last connection does), three members
// listed at most, and a webhook to this process's receiver.

const hookSecret = "hook-secret-3c9e1a77"

// hooks is the webhook receiver of the presence tests, started once: the
// config names its URL, so that every presence test loads the same config.
var hooks = sync.OnceValue(func() *hookReceiver {
	r := &hookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
})

func presenceConfig() string {
	return `{` + globalOptions + `
	realtime {
		hub pres {
			presence room.*
			presence_leave_delay 0s
			presence_max_members 3
			webhook ` + hooks().srv.URL + `/hook {
				secret ` + hookSecret + `
			}
		}
	}
}

` + httpBase + ` {
	realtime_ws /ws/pres {
		hub pres
		default_channels lobby
		token_secret ` + tokenSecret + `
		ping_interval 30s
	}
	realtime_broadcast /broadcast/pres {
		hub pres
		secret ` + secretA + `
		signature_tolerance 30s
	}
	respond "<html>not the hub</html>" 404
}
`
}

func loadPresence(t *testing.T) { t.Helper(); loadConfig(t, presenceConfig()) }

var presQueryURL = func() string { return httpBase + "/broadcast/pres" }

// userToken signs a token of user sub, with info {"name": "User <sub>"},
// granting presence-* and room.*.
func userToken(t *testing.T, sub string) string {
	return rtclient.UserToken(t, tokenSecret, sub, map[string]string{"name": "User " + sub}, []string{"presence-*", "room.*"}, time.Now().Add(time.Hour))
}

// joinPresence connects user sub to channel with its token in the
// Authorization header and takes the welcome, realtime:subscribed and the
// snapshot, which it returns.
func joinPresence(t *testing.T, sub, channel string) (*rtclient.Client, presenceFrame) {
	t.Helper()
	c := rtclient.Dial(t, wsBase+"/ws/pres?channels="+url.QueryEscape(channel), rtclient.Options{Header: http.Header{"Authorization": {"Bearer " + userToken(t, sub)}}})
	c.Welcome(channel)
	return c, parsePresence(t, c.Expect("realtime:presence"))
}

// presenceFrame is a presence message: a snapshot, a member event or a count.
type presenceFrame struct {
	Type    string         `json:"type"`
	Channel string         `json:"channel"`
	Count   int            `json:"count"`
	Members *[]memberFrame `json:"members"`
	Member  memberFrame    `json:"member"`
}

type memberFrame struct {
	ID   string          `json:"id"`
	Info json.RawMessage `json:"info"`
}

func parsePresence(t *testing.T, f rtclient.Frame) presenceFrame {
	t.Helper()
	var p presenceFrame
	if err := json.Unmarshal(f.Raw, &p); err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	return p
}

// ids lists a snapshot's member ids, sorted.
func (p presenceFrame) ids() string {
	if p.Members == nil {
		return "<counts only>"
	}
	var ids []string
	for _, m := range *p.Members {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// TestPresenceProtocol: the joiner's snapshot lists it with its info,
// after realtime:subscribed; the others get one member_added per user
// (two tabs are one member) and one member_removed when its last tab is
// gone, with its info and the count.
func TestPresenceProtocol(t *testing.T) {
	loadPresence(t)
	ch := uniq("presence-room")
	a := rtclient.Dial(t, wsBase+"/ws/pres?channels=lobby", rtclient.Options{})
	a.Welcome("lobby")
	a.Send(map[string]any{"type": "realtime:subscribe", "channel": ch, "token": userToken(t, "1")})
	a.ExpectSubscribed(ch)
	snap := parsePresence(t, a.Expect("realtime:presence"))
	if snap.Channel != ch || snap.Count != 1 || snap.ids() != "1" || string((*snap.Members)[0].Info) != `{"name":"User 1"}` {
		t.Fatalf("first snapshot: %+v", snap)
	}

	b, snap := joinPresence(t, "2", ch)
	if snap.Count != 2 || snap.ids() != "1,2" {
		t.Fatalf("second joiner's snapshot: %+v", snap)
	}
	added := parsePresence(t, a.Expect("realtime:member_added"))
	if added.Member.ID != "2" || string(added.Member.Info) != `{"name":"User 2"}` || added.Count != 2 || added.Channel != ch {
		t.Fatalf("member_added: %+v", added)
	}
	b2, snap := joinPresence(t, "2", ch) // user 2's second tab
	if snap.Count != 2 || snap.ids() != "1,2" {
		t.Fatalf("second tab's snapshot: %+v", snap)
	}
	b.Close()
	a.Ping() // nothing for a: user 2 still has a tab
	b2.Close()
	removed := parsePresence(t, a.Expect("realtime:member_removed"))
	if removed.Member.ID != "2" || string(removed.Member.Info) != `{"name":"User 2"}` || removed.Count != 1 {
		t.Fatalf("member_removed: %+v", removed)
	}
	a.Ping() // one removal for two tabs: the next message is the pong
	// A channel of the hub's presence patterns is a presence channel too.
	room := "room." + uniq("r")
	_, snap = joinPresence(t, "3", room)
	if snap.ids() != "3" {
		t.Fatalf("room.* snapshot: %+v", snap)
	}
}

// TestPresenceRefused: presence channels need a token with a sub that
// grants them; an info over 1 KiB makes the token invalid; a client
// cannot announce anybody but its token's user.
func TestPresenceRefused(t *testing.T) {
	loadPresence(t)
	ch := uniq("presence-refused")
	c := rtclient.Dial(t, wsBase+"/ws/pres?channels=lobby", rtclient.Options{})
	c.Welcome("lobby")
	exp := time.Now().Add(time.Hour)
	for _, tc := range []struct{ name, token, code string }{
		{"no token", "", "forbidden"},
		{"no sub", rtclient.UserToken(t, tokenSecret, "", map[string]string{"name": "x"}, []string{"presence-*"}, exp), "forbidden"},
		{"not granted", rtclient.UserToken(t, tokenSecret, "5", nil, []string{"presence-other"}, exp), "forbidden"},
		{"info over 1 KiB", rtclient.UserToken(t, tokenSecret, "5", map[string]string{"bio": strings.Repeat("x", 1100)}, []string{"presence-*"}, exp), "token_invalid"},
		{"info not an object", rtclient.UserToken(t, tokenSecret, "5", "Ana", []string{"presence-*"}, exp), "token_invalid"},
	} {
		c.Send(map[string]any{"type": "realtime:subscribe", "channel": ch, "token": tc.token})
		if f := c.ExpectError(tc.code, ch); f.Code != tc.code {
			t.Fatalf("%s: %s", tc.name, f)
		}
	}
	// Anything but the token naming a member is ignored.
	c.Send(map[string]any{"type": "realtime:subscribe", "channel": ch, "token": userToken(t, "6"),
		"member": map[string]any{"id": "99", "info": map[string]string{"name": "Mallory"}}, "user_id": "99"})
	c.ExpectSubscribed(ch)
	if snap := parsePresence(t, c.Expect("realtime:presence")); snap.ids() != "6" || string((*snap.Members)[0].Info) != `{"name":"User 6"}` {
		t.Fatalf("the member must come from the token: %+v", snap)
	}
	if st := presenceQuery(t, ch); st.ids() != "6" {
		t.Fatalf("query after refusals: %+v", st)
	}
}

// TestPresenceCountsOnly: above presence_max_members snapshots carry only
// the count and member events give way to realtime:presence_count; back
// under it, the members are listed again.
func TestPresenceCountsOnly(t *testing.T) {
	loadPresence(t) // presence_max_members 3
	ch := uniq("presence-big")
	a, _ := joinPresence(t, "1", ch)
	var others []*rtclient.Client
	for _, u := range []string{"2", "3"} {
		c, _ := joinPresence(t, u, ch)
		others = append(others, c)
		a.Expect("realtime:member_added")
	}
	c4, snap := joinPresence(t, "4", ch)
	if snap.Members != nil || snap.Count != 4 {
		t.Fatalf("snapshot above the limit: %+v", snap)
	}
	if cnt := parsePresence(t, a.Expect("realtime:presence_count")); cnt.Count != 4 {
		t.Fatalf("presence_count: %+v", cnt)
	}
	c4.Close()
	back := parsePresence(t, a.Expect("realtime:presence"))
	if back.Count != 3 || back.ids() != "1,2,3" {
		t.Fatalf("back under the limit: %+v", back)
	}
	_ = others
}

// presenceAnswer is the answer of a presence query.
type presenceAnswer struct {
	Channel string        `json:"channel"`
	Count   int           `json:"count"`
	Members []memberFrame `json:"members"`
}

func (p presenceAnswer) ids() string {
	var ids []string
	for _, m := range p.Members {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

func presenceQuery(t *testing.T, channel string) presenceAnswer {
	t.Helper()
	r := request(t, http.MethodGet, presQueryURL()+"?presence="+url.QueryEscape(channel), nil, "Authorization", "Bearer "+secretA)
	return decodePresence(t, r)
}

func decodePresence(t *testing.T, r *response) presenceAnswer {
	t.Helper()
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("presence query: want 200 JSON, got %s", r)
	}
	var a presenceAnswer
	if err := json.Unmarshal(r.body, &a); err != nil || a.Members == nil {
		t.Fatalf("presence answer %s: %v", r, err)
	}
	return a
}

// TestPresenceQueries: GET <broadcast>?presence=<channel> with a
// publisher's credentials (bearer, or a signature over "<t>.<raw query>")
// and the admin API's GET /realtime/hubs/<name>/presence/<channel> answer
// who is on the channel.
func TestPresenceQueries(t *testing.T) {
	loadPresence(t)
	ch := uniq("presence-query")
	a, _ := joinPresence(t, "7", ch)
	want := `{"channel":"` + ch + `","count":1,"members":[{"id":"7","info":{"name":"User 7"}}]}`
	query := "presence=" + url.QueryEscape(ch)
	r := request(t, http.MethodGet, presQueryURL()+"?"+query, nil, "Authorization", "Bearer "+secretA)
	if strings.TrimSpace(string(r.body)) != want {
		t.Fatalf("bearer query: got %s, want %s", r, want)
	}
	now := time.Now().Unix()
	r = request(t, http.MethodGet, presQueryURL()+"?"+query, nil, "X-Realtime-Signature", sign(secretA, now, []byte(query)))
	if strings.TrimSpace(string(r.body)) != want {
		t.Fatalf("signed query: got %s, want %s", r, want)
	}
	r = request(t, http.MethodGet, adminBase+"/realtime/hubs/pres/presence/"+ch, nil)
	if strings.TrimSpace(string(r.body)) != want {
		t.Fatalf("admin query: got %s, want %s", r, want)
	}
	for name, headers := range map[string][]string{
		"no credentials":      nil,
		"wrong bearer":        {"Authorization", "Bearer nope"},
		"signature of a body": {"X-Realtime-Signature", sign(secretA, now, nil)},
		"stale signature":     {"X-Realtime-Signature", sign(secretA, now-3600, []byte(query))},
	} {
		r := request(t, http.MethodGet, presQueryURL()+"?"+query, nil, headers...)
		if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") || strings.Contains(string(r.body), `"7"`) {
			t.Fatalf("%s: want 401 with a challenge and no members, got %s", name, r)
		}
	}
	for _, q := range []string{"lobby", "bad name", ""} {
		r := request(t, http.MethodGet, presQueryURL()+"?presence="+url.QueryEscape(q), nil, "Authorization", "Bearer "+secretA)
		expectError(t, r, http.StatusBadRequest)
	}
	if r := request(t, http.MethodPost, adminBase+"/realtime/hubs/pres/presence/"+ch, nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET" {
		t.Fatalf("admin POST on presence: %s", r)
	}
	if r := request(t, http.MethodGet, adminBase+"/realtime/hubs/nohub/presence/"+ch, nil); r.status != http.StatusNotFound {
		t.Fatalf("admin query of an unknown hub: %s", r)
	}
	a.Close()
	waitFor(t, 3*time.Second, "the member to leave", func() bool { return presenceQuery(t, ch).Count == 0 })
	if got := presenceQuery(t, ch); got.ids() != "" || got.Members == nil {
		t.Fatalf("after the last member left: %+v", got)
	}
}

// TestPresenceMetrics: the admin stats and /metrics count presence per
// hub, never per channel.
func TestPresenceMetrics(t *testing.T) {
	loadPresence(t)
	ch := uniq("presence-metrics")
	joinPresence(t, "8", ch)
	joinPresence(t, "9", ch)
	if statInt(t, "pres", "presence_members") < 2 || statInt(t, "pres", "presence_channels") < 1 {
		t.Fatalf("admin stats: %v", hubStats(t, "pres"))
	}
	r := request(t, http.MethodGet, adminBase+"/metrics", nil)
	for _, re := range []string{`(?m)^caddy_realtime_presence_members\{hub="pres"\} [1-9]`, `(?m)^caddy_realtime_presence_channels\{hub="pres"\} [1-9]`} {
		if !regexp.MustCompile(re).Match(r.body) {
			t.Errorf("/metrics: no line matching %s", re)
		}
	}
	if strings.Contains(string(r.body), ch) {
		t.Error("/metrics names a channel")
	}
}

// hookReceiver is a webhook receiver that checks every POST the way a
// receiver should (exact content type, a valid signature within the
// tolerance), can be made to fail, and keeps what it got.
type hookReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	down     bool
	refused  int // POSTs answered 503 while down
	problems []string
	events   []hookEvent // every event of every accepted POST, resends included
}

type hookEvent struct {
	Name    string `json:"name"`
	Channel string `json:"channel"`
	UserID  string `json:"user_id"`
	ID      string `json:"id"`
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if problem := checkHook(r, body); problem != "" {
		h.problems = append(h.problems, problem)
		http.Error(w, problem, http.StatusBadRequest)
		return
	}
	if h.down {
		h.refused++
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var b struct {
		TimeMS *int64      `json:"time_ms"`
		Events []hookEvent `json:"events"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.TimeMS == nil || len(b.Events) == 0 {
		h.problems = append(h.problems, "bad body: "+string(body))
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	h.events = append(h.events, b.Events...)
}

// checkHook returns what is wrong with a webhook POST, or "".
func checkHook(r *http.Request, body []byte) string {
	if r.Method != http.MethodPost || r.URL.Path != "/hook" {
		return "want POST /hook, got " + r.Method + " " + r.URL.Path
	}
	if ct := r.Header.Values("Content-Type"); len(ct) != 1 || ct[0] != "application/json" {
		return fmt.Sprintf("Content-Type %q", ct)
	}
	var ts int64
	var sig string
	for _, part := range strings.Split(r.Header.Get("X-Realtime-Signature"), ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts, _ = strconv.ParseInt(v, 10, 64)
		case "v1":
			sig = v
		}
	}
	m := hmac.New(sha256.New, []byte(hookSecret))
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	if !hmac.Equal([]byte(sig), []byte(hex.EncodeToString(m.Sum(nil)))) {
		return "bad signature: " + r.Header.Get("X-Realtime-Signature")
	}
	if d := time.Since(time.Unix(ts, 0)); d > time.Minute || d < -time.Minute {
		return "signature time off by " + d.String()
	}
	return ""
}

// of returns the events received for channel, resends included, and any
// problem seen.
func (h *hookReceiver) of(channel string) ([]hookEvent, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookEvent
	for _, e := range h.events {
		if e.Channel == channel {
			out = append(out, e)
		}
	}
	return out, append([]string(nil), h.problems...)
}

// distinct checks that each id always names the same event and returns
// the events once each, in the order first received, as "name:user".
func distinct(t *testing.T, evs []hookEvent) []string {
	t.Helper()
	seen := map[string]hookEvent{}
	var out []string
	for _, e := range evs {
		if e.ID == "" {
			t.Fatalf("event without an id: %+v", e)
		}
		if prev, ok := seen[e.ID]; ok {
			if prev != e {
				t.Fatalf("id %s names two events: %+v and %+v", e.ID, prev, e)
			}
			continue
		}
		seen[e.ID] = e
		out = append(out, e.Name+":"+e.UserID)
	}
	return out
}

// TestWebhookDelivery: joins and leaves reach the application signed, as
// channel_occupied, member_added, member_removed and channel_vacated, once
// per transition, each with its own id.
func TestWebhookDelivery(t *testing.T) {
	loadPresence(t)
	h := hooks()
	ch := uniq("presence-hook")
	a, _ := joinPresence(t, "1", ch)
	b, _ := joinPresence(t, "2", ch)
	b2, _ := joinPresence(t, "2", ch)
	b.Close()
	b2.Close()
	if !a.WaitFor(5*time.Second, func(fs []rtclient.Frame) bool {
		_, ok := a.Find("realtime:member_removed")
		return ok
	}) {
		t.Fatal("no member_removed for user 2")
	}
	a.Close()
	want := "channel_occupied: member_added:1 member_added:2 member_removed:2 member_removed:1 channel_vacated:"
	var got []string
	waitFor(t, 10*time.Second, "the webhooks", func() bool {
		evs, problems := h.of(ch)
		if len(problems) > 0 {
			t.Fatalf("receiver: %v", problems)
		}
		got = distinct(t, evs)
		return len(got) >= 6
	})
	if strings.Join(got, " ") != want {
		t.Fatalf("webhooks: got %v, want %s", got, want)
	}
}

// TestWebhookReceiverDownThenUp: while the receiver answers 503 the events
// wait and are retried; once it is back it gets every one of them, at
// least once, each always under the same unique id.
func TestWebhookReceiverDownThenUp(t *testing.T) {
	loadPresence(t)
	h := hooks()
	h.mu.Lock()
	h.down = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.down = false
		h.mu.Unlock()
	}()
	ch := uniq("presence-down")
	var want []string
	for i := 0; i < 5; i++ {
		u := strconv.Itoa(10 + i)
		c, _ := joinPresence(t, u, ch)
		c.Close()
		waitFor(t, 3*time.Second, "the member to leave", func() bool { return presenceQuery(t, ch).Count == 0 })
		want = append(want, "channel_occupied:", "member_added:"+u, "member_removed:"+u, "channel_vacated:")
	}
	waitFor(t, 10*time.Second, "a refused delivery", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.refused >= 2
	})
	h.mu.Lock()
	h.down = false
	h.mu.Unlock()
	var got []string
	waitFor(t, 30*time.Second, "every event", func() bool {
		evs, problems := h.of(ch)
		if len(problems) > 0 {
			t.Fatalf("receiver: %v", problems)
		}
		got = distinct(t, evs)
		return len(got) >= len(want)
	})
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after the receiver came back: got %v, want %v", got, want)
	}
}
