package hub

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func sign(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
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

func TestTokenVerify(t *testing.T) {
	v := NewTokenVerifier("s3cret")
	exp := time.Now().Add(time.Minute).Unix()
	good := sign(t, "s3cret", jwt.MapClaims{"sub": "42", "exp": exp, "channels": []string{"private-user.42"}})
	g, err := v.Verify(good)
	if err != nil || g.Subject != "42" || !g.Allows("private-user.42", time.Now()) || g.Allows("private-user.43", time.Now()) {
		t.Fatalf("good token: %+v, %v", g, err)
	}
	if _, err := v.Verify(sign(t, "other", jwt.MapClaims{"exp": exp})); err != ErrTokenInvalid {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := v.Verify(sign(t, "s3cret", jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})); err != ErrTokenExpired {
		t.Fatalf("expired: %v", err)
	}
	if _, err := v.Verify(sign(t, "s3cret", jwt.MapClaims{"sub": "1"})); err != ErrTokenInvalid {
		t.Fatalf("no exp: %v", err)
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"exp": exp})
	ns, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if _, err := v.Verify(ns); err != ErrTokenInvalid {
		t.Fatalf("alg none: %v", err)
	}
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"exp": exp}).SignedString([]byte("s3cret"))
	if _, err := v.Verify(hs512); err != ErrTokenInvalid {
		t.Fatalf("HS512: %v", err)
	}
}

func TestPrivateChannelAccess(t *testing.T) {
	h, _ := newTestHub(t, 10)
	p := testPolicy()
	p.Private = []string{"user.*"}
	p.Tokens = NewTokenVerifier("k")
	exp := time.Now().Add(time.Minute).Unix()
	tok := sign(t, "k", jwt.MapClaims{"exp": exp, "channels": []string{"private-user.1", "user.1"}})
	expired := sign(t, "k", jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix(), "channels": []string{"*"}})

	s, c := connect(t, h, p, ConnectOptions{Channels: []string{"public"}})
	s.HandleText([]byte(`{"type":"realtime:subscribe","channel":"private-user.1"}`))
	s.HandleText([]byte(`{"type":"realtime:subscribe","channel":"user.1"}`))
	s.HandleText([]byte(`{"type":"realtime:subscribe","channel":"private-user.1","token":"garbage"}`))
	s.HandleText([]byte(`{"type":"realtime:subscribe","channel":"private-user.1","token":"` + expired + `"}`))
	s.HandleText([]byte(`{"type":"realtime:subscribe","channel":"private-user.2","token":"` + tok + `"}`))
	s.HandleText([]byte(`{"type":"realtime:subscribe","channels":["private-user.1","user.1"]}`))
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
	_, c2 := connect(t, h, p2, ConnectOptions{Channels: []string{"private-x"}, Token: tok})
	waitFor(t, "error", func() bool { return len(c2.msgs()) >= 2 })
	if m := c2.msgs()[1]; m["code"] != CodeForbidden {
		t.Fatalf("private channel without token_secret: %v", m)
	}

	// A handshake token (header or cookie) grants at connect.
	_, c3 := connect(t, h, p, ConnectOptions{Channels: []string{"private-user.1"}, Token: tok})
	waitFor(t, "subscribed", func() bool { return len(c3.msgs()) >= 2 })
	if m := c3.msgs()[1]; m["type"] != "realtime:subscribed" {
		t.Fatalf("handshake token: %v", m)
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
