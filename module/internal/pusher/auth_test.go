package pusher

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Pusher's documented credentials (auth-signatures.md, rest-api.md).
const (
	docKey    = "278d425bdf160c739803"
	docSecret = "7ad3773142a6692b25b8"
	docSocket = "1234.1234"
)

func TestChannelAuthWorkedExamples(t *testing.T) {
	for _, c := range []struct {
		name, channel, data, want string
	}{
		// auth-signatures.md, private channel.
		{"private (docs)", "private-foobar", "", "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"},
		// auth-signatures.md, presence channel: the printed signature is
		// for "Mr. Pusher", although the text was renamed "Mr. Channels".
		{"presence (docs signature)", "presence-foobar", `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`, "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"},
		// The docs' text as printed, signed by the pusher SDK (5.3.4).
		{"presence (docs text)", "presence-foobar", `{"user_id":10,"user_info":{"name":"Mr. Channels"}}`, "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"},
		// The shared secret of an encrypted channel is not signed.
		{"private-encrypted", "private-encrypted-foobar", "", "e6a18892d037c5d5e76a2265df4f086ffc38631605530dfd214aa5bff495f533"},
	} {
		t.Run(c.name, func(t *testing.T) {
			auth := SignChannel(docKey, []byte(docSecret), docSocket, c.channel, c.data)
			if want := docKey + ":" + c.want; auth != want {
				t.Fatalf("auth %s, want %s", auth, want)
			}
			sub := Subscription{Channel: c.channel, Auth: auth, ChannelData: c.data, HasChannelData: c.data != ""}
			if err := VerifyChannel(docKey, []byte(docSecret), docSocket, sub); err != nil {
				t.Fatalf("documented signature refused: %v", err)
			}
		})
	}
}

func TestChannelAuthRefusals(t *testing.T) {
	secret := []byte(docSecret)
	data := `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`
	good := Subscription{Channel: "presence-foobar", Auth: SignChannel(docKey, secret, docSocket, "presence-foobar", data), ChannelData: data, HasChannelData: true}
	flip := func(s string) string {
		b := []byte(s)
		if b[len(b)-1] == '0' {
			b[len(b)-1] = '1'
		} else {
			b[len(b)-1] = '0'
		}
		return string(b)
	}
	for _, c := range []struct {
		name   string
		socket string
		mod    func(*Subscription)
		want   error
	}{
		{"last hex digit changed", docSocket, func(s *Subscription) { s.Auth = flip(s.Auth) }, ErrAuthSignature},
		{"another socket", "1234.1235", func(*Subscription) {}, ErrAuthSignature},
		{"another channel", docSocket, func(s *Subscription) { s.Channel = "presence-foobaz" }, ErrAuthSignature},
		{"channel_data re-encoded", docSocket, func(s *Subscription) { s.ChannelData = strings.ReplaceAll(data, ":", ": ") }, ErrAuthSignature},
		{"channel_data missing", docSocket, func(s *Subscription) { s.ChannelData, s.HasChannelData = "", false }, ErrChannelDataNone},
		{"another key", docSocket, func(s *Subscription) { s.Auth = "x" + s.Auth }, ErrAuthWrongKey},
		{"no key", docSocket, func(s *Subscription) { s.Auth = strings.SplitN(s.Auth, ":", 2)[1] }, ErrAuthMalformed},
		{"not hex", docSocket, func(s *Subscription) { s.Auth = docKey + ":" + strings.Repeat("zz", 32) }, ErrAuthMalformed},
		{"short", docSocket, func(s *Subscription) { s.Auth = s.Auth[:len(s.Auth)-2] }, ErrAuthMalformed},
		{"empty", docSocket, func(s *Subscription) { s.Auth = "" }, ErrAuthMissing},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := good
			c.mod(&s)
			if err := VerifyChannel(docKey, secret, c.socket, s); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// A private channel's signature does not cover channel_data, which a
	// client may send anyway.
	priv := Subscription{Channel: "private-foobar", Auth: SignChannel(docKey, secret, docSocket, "private-foobar", ""), ChannelData: "{}", HasChannelData: true}
	if err := VerifyChannel(docKey, secret, docSocket, priv); err != nil {
		t.Fatal(err)
	}
}

// docRequest is rest-api.md's worked example: POST /apps/3/events signed at
// 1353088179.
const (
	docBody = `{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`
	docTime = 1353088179
)

func TestAPISignatureWorkedExample(t *testing.T) {
	if md5 := BodyMD5([]byte(docBody)); md5 != "ec365a775a4cd0599faeb73354201b6f" {
		t.Fatalf("body_md5 %s", md5)
	}
	c := APICredentials{Key: docKey, Secret: []byte(docSecret)}
	q := c.SignQuery("POST", "/apps/3/events", nil, []byte(docBody), time.Unix(docTime, 0))
	v, _ := url.ParseQuery(q)
	if got := v.Get("auth_signature"); got != "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c" {
		t.Fatalf("auth_signature %s", got)
	}
	// Exactly the documented query, in the documented order.
	raw := "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
	req := SignedRequest{Method: "POST", Paths: []string{"/apps/3/events"}, RawQuery: raw, Body: []byte(docBody)}
	if err := c.Verify(req, time.Unix(docTime+10, 0)); err != nil {
		t.Fatalf("documented request refused: %v", err)
	}
}

// More vectors, computed with the pusher SDK 5.3.4's createSignedQueryString
// (same credentials and timestamp).
func TestAPISignatureSDKVectors(t *testing.T) {
	c := APICredentials{Key: docKey, Secret: []byte(docSecret)}
	for _, v := range []struct {
		method, path string
		params       map[string]string
		body         string
		want         string
	}{
		{"GET", "/apps/3/channels", map[string]string{"filter_by_prefix": "presence-", "info": "user_count"}, "", "16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291"},
		{"GET", "/apps/3/channels/presence-foobar/users", nil, "", "5567dd30e7f8575e66be615d2aac3f608a0c311c31ddab8513a278b022e9597e"},
		{"POST", "/apps/3/batch_events", nil, `{"batch":[{"channel":"a","name":"e1","data":"{\"x\":1}"}]}`, "34c4099fa3b17de536762be2ab3ce125bbc56a22939a76d5616f0646b24ba820"},
	} {
		q := c.SignQuery(v.method, v.path, v.params, []byte(v.body), time.Unix(docTime, 0))
		vals, _ := url.ParseQuery(q)
		if got := vals.Get("auth_signature"); got != v.want {
			t.Errorf("%s %s: %s, want %s", v.method, v.path, got, v.want)
		}
		if err := c.Verify(SignedRequest{Method: v.method, Paths: []string{v.path}, RawQuery: q, Body: []byte(v.body)}, time.Unix(docTime, 0)); err != nil {
			t.Errorf("%s %s refused: %v", v.method, v.path, err)
		}
	}
}

func TestAPISignatureRefusals(t *testing.T) {
	c := APICredentials{Key: docKey, Secret: []byte(docSecret)}
	body := []byte(docBody)
	signed := func(at int64) string {
		return c.SignQuery("POST", "/apps/3/events", map[string]string{"info": "user_count,subscription_count"}, body, time.Unix(at, 0))
	}
	now := time.Unix(docTime, 0)
	ok := func(q string, b []byte, at time.Time, paths ...string) *APIError {
		if len(paths) == 0 {
			paths = []string{"/apps/3/events"}
		}
		return c.Verify(SignedRequest{Method: "POST", Paths: paths, RawQuery: q, Body: b}, at)
	}
	if err := ok(signed(docTime), body, now); err != nil {
		t.Fatalf("good request refused: %v", err)
	}
	// The signing gem accepts 599 s of skew and refuses 600.
	if err := ok(signed(docTime-599), body, now); err != nil {
		t.Fatalf("599 s old refused: %v", err)
	}
	if err := ok(signed(docTime+599), body, now); err != nil {
		t.Fatalf("599 s ahead refused: %v", err)
	}
	for name, err := range map[string]*APIError{
		"600 s old":          ok(signed(docTime-600), body, now),
		"600 s ahead":        ok(signed(docTime+600), body, now),
		"body changed":       ok(signed(docTime), append([]byte(nil), append(body[:len(body)-1], ' ', '}')...), now),
		"body dropped":       ok(strings.Replace(signed(docTime), "body_md5=", "x=", 1), body, now),
		"another path":       ok(signed(docTime), body, now, "/apps/4/events"),
		"another method":     c.Verify(SignedRequest{Method: "PUT", Paths: []string{"/apps/3/events"}, RawQuery: signed(docTime), Body: body}, now),
		"another key":        APICredentials{Key: "other", Secret: c.Secret}.Verify(SignedRequest{Method: "POST", Paths: []string{"/apps/3/events"}, RawQuery: signed(docTime), Body: body}, now),
		"another secret":     APICredentials{Key: docKey, Secret: []byte("x")}.Verify(SignedRequest{Method: "POST", Paths: []string{"/apps/3/events"}, RawQuery: signed(docTime), Body: body}, now),
		"no signature":       ok(strings.Replace(signed(docTime), "auth_signature=", "x=", 1), body, now),
		"wrong version":      ok(strings.Replace(signed(docTime), "auth_version=1.0", "auth_version=2.0", 1), body, now),
		"parameter twice":    ok(signed(docTime)+"&info=user_count", body, now),
		"parameter added":    ok(signed(docTime)+"&extra=1", body, now),
		"info value changed": ok(strings.Replace(signed(docTime), "user_count%2Csubscription_count", "user_count", 1), body, now),
	} {
		if err == nil || err.Status != 401 {
			t.Errorf("%s: got %v, want a 401", name, err)
		}
	}
}

// pusher-http-php percent-encodes commas; the Node SDK sends them raw. Both
// sign the decoded value.
func TestAPISignatureDecodesTheQuery(t *testing.T) {
	c := APICredentials{Key: docKey, Secret: []byte(docSecret)}
	q := c.SignQuery("GET", "/apps/3/channels/presence-x", map[string]string{"info": "user_count,subscription_count"}, nil, time.Unix(docTime, 0))
	if !strings.Contains(q, "%2C") {
		t.Fatalf("expected an encoded comma in %s", q)
	}
	for _, raw := range []string{q, strings.ReplaceAll(q, "%2C", ",")} {
		if err := c.Verify(SignedRequest{Method: "GET", Paths: []string{"/apps/3/channels/presence-x"}, RawQuery: raw}, time.Unix(docTime, 0)); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
	// A prefix the signer left out (pusher-http-php's path option) is
	// tried first; the full path second.
	full := c.SignQuery("GET", "/pusher/apps/3/channels", nil, nil, time.Unix(docTime, 0))
	if err := c.Verify(SignedRequest{Method: "GET", Paths: []string{"/apps/3/channels", "/pusher/apps/3/channels"}, RawQuery: full}, time.Unix(docTime, 0)); err != nil {
		t.Errorf("full path: %v", err)
	}
}
