package pusher

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

func TestParseChannelData(t *testing.T) {
	for _, c := range []struct {
		data, id, info string
		err            error
	}{
		{`{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`, "10", `{"name":"Mr. Pusher"}`, nil},
		{`{"user_id":"10","user_info":{ "name" : "A" }}`, "10", `{"name":"A"}`, nil},
		{`{"user_id":"ana"}`, "ana", "", nil},
		{`{"user_id":"ana","user_info":null}`, "ana", "", nil},
		{`{"user_id":-3,"user_info":"plain"}`, "-3", `"plain"`, nil},
		{`{"user_id":"1","user_info":[1,2]}`, "1", `[1,2]`, nil},
		{`{"user_id":""}`, "", "", ErrChannelData},
		{`{"user_id":null}`, "", "", ErrChannelData},
		{`{"user_id":true}`, "", "", ErrChannelData},
		{`{"user_id":{"a":1}}`, "", "", ErrChannelData},
		{`{"user_info":{}}`, "", "", ErrChannelData},
		{`[]`, "", "", ErrChannelData},
		{`nope`, "", "", ErrChannelData},
		{`{"user_id":"` + strings.Repeat("x", 129) + `"}`, "", "", ErrUserIDTooLong},
		{`{"user_id":"1","user_info":{"bio":"` + strings.Repeat("x", 1024) + `"}}`, "", "", ErrUserInfoTooBig},
	} {
		m, err := ParseChannelData(c.data)
		if !errors.Is(err, c.err) || err == nil && (m.ID != c.id || string(m.Info) != c.info) {
			t.Errorf("ParseChannelData(%.40s) = %q %s, %v; want %q %s, %v", c.data, m.ID, m.Info, err, c.id, c.info, c.err)
		}
	}
}

// The docs' presence worked example, through the engine's verifier: the
// grant is the member channel_data names.
func TestAuthorizerGrantsTheSignedMember(t *testing.T) {
	a := Authorizer{Key: docKey, Secret: []byte(docSecret)}
	data := `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`
	sub := Subscription{Channel: "presence-foobar", Auth: docKey + ":afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c", ChannelData: data, HasChannelData: true}
	g, err := a.Verify(Credential(docSocket, sub))
	if err != nil {
		t.Fatal(err)
	}
	if g.Subject != "10" || string(g.Info) != `{"name":"Mr. Pusher"}` || !g.Covers("presence-foobar") || g.Covers("presence-foobaz") {
		t.Fatalf("grant %+v", g)
	}
	// Another member with the same signature is refused.
	sub.ChannelData = `{"user_id":11,"user_info":{"name":"Mr. Pusher"}}`
	if _, err := a.Verify(Credential(docSocket, sub)); !errors.Is(err, ErrAuthSignature) {
		t.Fatalf("a forged member: %v", err)
	}
	// A private channel's grant has no member.
	priv := Subscription{Channel: "private-foobar", Auth: docKey + ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"}
	if g, err := a.Verify(Credential(docSocket, priv)); err != nil || g.Subject != "" {
		t.Fatalf("private grant %+v, %v", g, err)
	}
}

// FuzzChannelData: whatever a client signs as channel_data, a member
// that is accepted has a non-empty id of at most 128 bytes and an info
// that is compact JSON of at most 1 KiB, and the codec's presence frames
// built from it are JSON.
func FuzzChannelData(f *testing.F) {
	for _, s := range []string{
		`{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`, `{"user_id":"a\u0000b"}`, `{"user_id":1e400}`,
		`{"user_id":"1","user_info":"x"}`, `{"user_id":-0.5,"user_info":[{},null]}`, `{"user_id":"1","user_info":{"a":"\ud800"}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		m, err := ParseChannelData(data)
		if err != nil {
			return
		}
		if m.ID == "" || len(m.ID) > MaxUserIDLen {
			t.Fatalf("id %q", m.ID)
		}
		if m.Info != nil && (len(m.Info) > hub.MaxInfoSize || !json.Valid(m.Info)) {
			t.Fatalf("info %q", m.Info)
		}
		snap := hub.PresenceSnapshot{Count: 1, Members: []hub.Member{m}}
		for _, frame := range [][]byte{Codec{}.Presence("presence-x", snap), Codec{}.MemberAdded("presence-x", m, 1), Codec{}.MemberRemoved("presence-x", m, 0)} {
			msg := decode(t, frame)
			if !json.Valid([]byte(msg["data"].(string))) {
				t.Fatalf("data of %v is not JSON", msg)
			}
		}
	})
}
