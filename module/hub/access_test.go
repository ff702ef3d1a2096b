package hub

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeTokens is a TokenVerifier over a table, so that engine tests need no
// JWT library; module/internal/token tests the real one.
type fakeTokens map[string]*Grant

func (f fakeTokens) Verify(tok string) (*Grant, error) {
	switch g, ok := f[tok]; {
	case tok == "expired":
		return nil, ErrTokenExpired
	case !ok:
		return nil, ErrTokenInvalid
	default:
		return g, nil
	}
}

func TestGlob(t *testing.T) {
	cases := []struct {
		pat, name string
		want      bool
	}{
		{"private-user.42", "private-user.42", true},
		{"private-user.42", "private-user.420", false},
		{"private-post.*", "private-post.7", true},
		{"private-post.*", "private-post.7.comments", true},
		{"user.*", "user.", true},
		{"*", "anything.at:all", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"*.x", "a.b.x", true},
		{"", "", true},
		{"", "a", false},
	}
	for _, c := range cases {
		if got := Glob(c.pat, c.name); got != c.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", c.pat, c.name, got, c.want)
		}
	}
}

func TestPrivateChannelAccess(t *testing.T) {
	h, _ := newTestHub(t, 10)
	p := testPolicy()
	p.Private = []string{"user.*"}
	p.Tokens = fakeTokens{"tok": {Subject: "1", Channels: []string{"private-user.1", "user.1"}, Expires: time.Now().Add(time.Minute)}}

	s, c := connect(t, h, p, ConnectOptions{Channels: []string{"public"}})
	s.Subscribe([]string{"private-user.1"}, SubscribeOptions{})
	s.Subscribe([]string{"user.1"}, SubscribeOptions{})
	s.Subscribe([]string{"private-user.1"}, SubscribeOptions{Token: "garbage"})
	s.Subscribe([]string{"private-user.1"}, SubscribeOptions{Token: "expired"})
	s.Subscribe([]string{"private-user.2"}, SubscribeOptions{Token: "tok"})
	s.Subscribe([]string{"private-user.1", "user.1"}, SubscribeOptions{})
	waitFor(t, "answers", func() bool { return len(c.msgs()) >= 9 })
	var codes []string
	for _, m := range c.msgs()[2:] {
		if m["type"] == "realtime:error" {
			codes = append(codes, m["code"].(string)+":"+m["channel"].(string))
		} else {
			codes = append(codes, "ok:"+m["channel"].(string))
		}
	}
	want := "forbidden:private-user.1 forbidden:user.1 token_invalid:private-user.1 token_expired:private-user.1 forbidden:private-user.2 ok:private-user.1 ok:user.1"
	if got := strings.Join(codes, " "); got != want {
		t.Fatalf("answers:\n got %s\nwant %s", got, want)
	}

	// Without token_secret there are no private channels at all.
	p2 := testPolicy()
	_, c2 := connect(t, h, p2, ConnectOptions{Channels: []string{"private-x"}, Token: "tok"})
	waitFor(t, "error", func() bool { return len(c2.msgs()) >= 2 })
	if m := c2.msgs()[1]; m["code"] != CodeForbidden {
		t.Fatalf("private channel without token_secret: %v", m)
	}

	// A handshake token (header or cookie) grants at connect.
	_, c3 := connect(t, h, p, ConnectOptions{Channels: []string{"private-user.1"}, Token: "tok"})
	waitFor(t, "subscribed", func() bool { return len(c3.msgs()) >= 2 })
	if m := c3.msgs()[1]; m["type"] != "realtime:subscribed" {
		t.Fatalf("handshake token: %v", m)
	}
}

// The hub's private patterns apply to every endpoint: a session whose
// policy has none is refused a channel the hub makes private, and a token
// that grants it lets it in.
func TestHubPrivatePatterns(t *testing.T) {
	h, _ := newTestHub(t, 10)
	h.SetPrivate([]string{"user.*"})
	p := testPolicy()
	p.Tokens = fakeTokens{"tok": {Subject: "1", Channels: []string{"user.1"}, Expires: time.Now().Add(time.Minute)}}
	s, c := connect(t, h, p, ConnectOptions{Channels: []string{}})
	if !s.IsPrivate("user.1") || !s.IsPrivate("private-x") || s.IsPrivate("public") {
		t.Fatal("IsPrivate does not combine the policy's and the hub's patterns")
	}
	s.Subscribe([]string{"user.1", "public"}, SubscribeOptions{})
	s.Subscribe([]string{"user.1"}, SubscribeOptions{Token: "tok"})
	waitFor(t, "answers", func() bool { return len(c.msgs()) >= 4 })
	var got []string
	for _, m := range c.msgs()[1:] {
		got = append(got, fmt.Sprint(m["type"], ":", m["channel"]))
	}
	want := "realtime:error:user.1 realtime:subscribed:public realtime:subscribed:user.1"
	if strings.Join(got, " ") != want {
		t.Fatalf("answers:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	h.SetPrivate(nil)
	if s.IsPrivate("user.1") {
		t.Fatal("SetPrivate(nil) kept the patterns")
	}
}

// A single-use token grants its request and is not kept: a later request
// without a token is refused, and a single-use refusal is not what later
// errors report.
func TestSingleUseToken(t *testing.T) {
	h, _ := newTestHub(t, 10)
	p := testPolicy()
	p.Tokens = fakeTokens{"tok": {Subject: "1", Channels: []string{"private-a", "private-b"}, Expires: time.Now().Add(time.Minute)}}
	s, c := connect(t, h, p, ConnectOptions{Channels: []string{}})
	s.Subscribe([]string{"private-a"}, SubscribeOptions{Token: "tok", SingleUse: true})
	s.Subscribe([]string{"private-b"}, SubscribeOptions{})
	s.Subscribe([]string{"private-b"}, SubscribeOptions{Token: "garbage", SingleUse: true})
	s.Subscribe([]string{"private-b"}, SubscribeOptions{})
	waitFor(t, "answers", func() bool { return len(c.msgs()) >= 5 })
	var got []string
	for _, m := range c.msgs()[1:] {
		got = append(got, fmt.Sprint(m["type"], ":", m["code"], ":", m["channel"]))
	}
	want := "realtime:subscribed:<nil>:private-a realtime:error:forbidden:private-b realtime:error:token_invalid:private-b realtime:error:forbidden:private-b"
	if strings.Join(got, " ") != want {
		t.Fatalf("answers:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if len(s.grants) != 0 {
		t.Fatalf("%d grants kept", len(s.grants))
	}
}

// A grant that covers the channel but has expired answers token_expired,
// not forbidden: the client should fetch a new token, not give up.
func TestExpiredGrantIsTokenExpired(t *testing.T) {
	h, _ := newTestHub(t, 10)
	p := testPolicy()
	p.Tokens = fakeTokens{"old": {Channels: []string{"private-a"}, Expires: time.Now().Add(-time.Second)}}
	s, c := connect(t, h, p, ConnectOptions{Channels: []string{}, Token: "old"})
	s.Subscribe([]string{"private-a"}, SubscribeOptions{})
	waitFor(t, "error", func() bool { return lastMsg(c)["type"] == "realtime:error" })
	if m := lastMsg(c); m["code"] != CodeTokenExpired {
		t.Fatalf("got %v, want token_expired", m)
	}
}

// Tokens a client sends are bounded per session: a flood of subscribe
// requests, each with a valid token, keeps at most maxGrants grants, and a
// renewed token replaces the one it renews.
func TestGrantsAreBounded(t *testing.T) {
	h, _ := newTestHub(t, 10)
	p := testPolicy()
	tokens := fakeTokens{}
	for i := 0; i < 1000; i++ {
		tokens[strconv.Itoa(i)] = &Grant{Subject: strconv.Itoa(i), Channels: []string{"private-" + strconv.Itoa(i)}, Expires: time.Now().Add(time.Minute)}
	}
	tokens["renewed"] = &Grant{Subject: "999", Channels: []string{"private-999"}, Expires: time.Now().Add(time.Hour)}
	p.Tokens = tokens
	s, c := connect(t, h, p, ConnectOptions{Channels: []string{}})
	for i := 0; i < 1000; i++ {
		s.Subscribe([]string{"public"}, SubscribeOptions{Token: strconv.Itoa(i)})
	}
	if len(s.grants) != maxGrants {
		t.Fatalf("%d grants kept after 1000 tokens, want %d", len(s.grants), maxGrants)
	}
	s.Subscribe([]string{"private-999"}, SubscribeOptions{Token: "renewed"})
	if len(s.grants) != maxGrants || s.grants[maxGrants-1].Expires != tokens["renewed"].Expires {
		t.Fatalf("renewal did not replace its grant: %d grants", len(s.grants))
	}
	s.Subscribe([]string{"private-0"}, SubscribeOptions{})
	waitFor(t, "answer", func() bool { return lastMsg(c)["channel"] == "private-0" })
	if m := lastMsg(c); m["code"] != CodeForbidden {
		t.Fatalf("the oldest grant still works after eviction: %v", m)
	}
}

func TestParsePublish(t *testing.T) {
	ok := []string{
		`{"type":"post_published","payload":{"id":7},"timestamp":"2026-11-26 16:00:00"}`,
		`{"channel":"posts","type":"x"}`,
		`{"channels":["a","b","a"],"type":"x","id":"k"}`,
		`[{"type":"a"},{"type":"b","channel":"c"}]`,
		`{"type":"x","payload":null}`,
	}
	for _, b := range ok {
		if _, err := ParsePublish([]byte(b), 100); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	p, _ := ParsePublish([]byte(`{"type":"x"}`), 1)
	if p[0].Channels[0] != DefaultChannel || p[0].Payload != nil {
		t.Fatalf("defaults: %+v", p[0])
	}
	p, _ = ParsePublish([]byte(`{"channels":["a","b","a"],"type":"x"}`), 1)
	if len(p[0].Channels) != 2 {
		t.Fatalf("channels not deduplicated: %v", p[0].Channels)
	}
	bad := map[string]string{
		`{}`:                           "type",
		`{"type":""}`:                  "type",
		`{"type":"realtime:welcome"}`:  "type",
		`{"type":1}`:                   "type",
		`{"type":"x","channel":"a b"}`: "channel",
		`{"type":"x","channel":"a","channels":["b"]}`: "channels",
		`{"type":"x","channels":[]}`:                  "channels",
		`{"type":"x","channels":["ok","no!"]}`:        "channels[1]",
		`{"type":"x","id":""}`:                        "id",
		`[{"type":"x"},{"type":""}]`:                  "[1].type",
		`[]`:                                          "body",
		`"str"`:                                       "event",
		`{"type":"x"`:                                 "body",
		"{\"type\":\"\xff\"}":                         "body",
		``:                                            "body",
	}
	for b, field := range bad {
		_, err := ParsePublish([]byte(b), 100)
		pe, ok := err.(*PublishError)
		if !ok || pe.Field != field {
			t.Errorf("%q: err = %v, want field %s", b, err, field)
		}
	}
	_, err := ParsePublish([]byte(`[{"type":"a"},{"type":"b"},{"type":"c"}]`), 2)
	if pe, ok := err.(*PublishError); !ok || !pe.TooMany {
		t.Fatalf("over max_batch: %v", err)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := Cursor{Epoch: NewEpoch(), Pos: Position{Hi: 1700000000000, Lo: 42}}
	got, err := ParseCursor(c.String())
	if err != nil || got != c || len(c.String()) > 64 {
		t.Fatalf("round trip of %v: %v, %v", c, got, err)
	}
	for _, s := range []string{"", "-", "a-1", "a-1-", "A-1-1", "a-x-1", "a-1-1-1", strings.Repeat("a", 17) + "-1-1"} {
		if _, err := ParseCursor(s); err == nil {
			t.Errorf("ParseCursor(%q) accepted", s)
		}
	}
}
