package pusher

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// What pusher-js 8.6.0 sends, byte for byte.
func TestParseMessagesOfPusherJS(t *testing.T) {
	m, err := ParseMessage([]byte(`{"event":"pusher:subscribe","data":{"auth":"app-key:9f2a","channel_data":"{\"user_id\":1,\"user_info\":{\"name\":\"A\"}}","channel":"presence-room"}}`))
	if err != nil || m.Event != EventSubscribe {
		t.Fatal(m, err)
	}
	s, err := ParseSubscription(m.Data)
	if err != nil || s.Channel != "presence-room" || s.Auth != "app-key:9f2a" || !s.HasChannelData || s.ChannelData != `{"user_id":1,"user_info":{"name":"A"}}` {
		t.Fatalf("%+v %v", s, err)
	}
	s, err = ParseSubscription(json.RawMessage(`{"auth":"","channel":"public-x"}`))
	if err != nil || s.Channel != "public-x" || s.Auth != "" || s.HasChannelData {
		t.Fatalf("%+v %v", s, err)
	}
	// Older clients send the data as a JSON string.
	s, err = ParseSubscription(json.RawMessage(`"{\"channel\":\"c\",\"auth\":\"k:s\"}"`))
	if err != nil || s.Channel != "c" || s.Auth != "k:s" {
		t.Fatalf("%+v %v", s, err)
	}
	m, err = ParseMessage([]byte(`{"event":"client-typing","data":{"x":1},"channel":"private-x"}`))
	if err != nil || m.Event != "client-typing" || m.Channel != "private-x" || string(m.Data) != `{"x":1}` {
		t.Fatal(m, err)
	}
	m, err = ParseMessage([]byte(`{"event":"pusher:ping","data":{}}`))
	if err != nil || m.Event != EventPing {
		t.Fatal(m, err)
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{}`, `{"event":""}`, `{"event":5}`, `{"event":"x","channel":7}`, `{"event":"x"`} {
		if _, err := ParseMessage([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	for _, bad := range []string{`null`, `{}`, `{"channel":""}`, `{"channel":"c","auth":5}`, `{"channel":"c","channel_data":{}}`, `"nope"`, `[]`} {
		if _, err := ParseSubscription(json.RawMessage(bad)); err == nil {
			t.Errorf("subscription %s accepted", bad)
		}
	}
}

func TestChannelKinds(t *testing.T) {
	for ch, want := range map[string][4]bool{ // private, presence, encrypted, client events
		"public":                 {},
		"private-x":              {true, false, false, true},
		"private-encrypted-x":    {true, false, true, false},
		"presence-x":             {true, true, false, true},
		"privatex":               {},
		"presence.x":             {},
		"private-encrypted-":     {true, false, true, false},
		"cache-x":                {},
		"private-cache-x":        {true, false, false, true},
		"presence-cache-x":       {true, true, false, true},
		"private-encrypted-cach": {true, false, true, false},
	} {
		got := [4]bool{IsPrivate(ch), IsPresence(ch), IsEncrypted(ch), ClientEventsAllowed(ch)}
		if got != want {
			t.Errorf("%s: %v, want %v", ch, got, want)
		}
	}
}

func TestParseTrigger(t *testing.T) {
	// What the Node SDK sends.
	tr, err := ParseTrigger([]byte(`{"name":"App\\Events\\OrderShipped","data":"{\"id\":1}","channels":["a","presence-b","a"],"socket_id":"1.2","info":"user_count,subscription_count"}`))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Name != `App\Events\OrderShipped` || string(tr.Payload) != `{"id":1}` || strings.Join(tr.Channels, " ") != "a presence-b" || tr.SocketID != "1.2" || len(tr.Info) != 2 {
		t.Fatalf("%+v", tr)
	}
	// What pusher-http-php sends for one channel.
	tr, err = ParseTrigger([]byte(`{"name":"e","data":"hello","channel":"c"}`))
	if err != nil || string(tr.Payload) != `"hello"` || tr.Channels[0] != "c" {
		t.Fatalf("%+v %v", tr, err)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("c%d", i)
	}
	manyJSON, _ := json.Marshal(many)
	hundredJSON, _ := json.Marshal(many[:100])
	for body, status := range map[string]int{
		`{"name":"e","data":"` + strings.Repeat("x", MaxDataSize) + `","channel":"c"}`:   0,
		`{"name":"e","data":"` + strings.Repeat("x", MaxDataSize+1) + `","channel":"c"}`: 413,
		`{"name":"e","data":"x","channels":` + string(hundredJSON) + `}`:                 0,
		`{"name":"e","data":"x","channels":` + string(manyJSON) + `}`:                    400,
		`{"name":"pusher:x","data":"x","channel":"c"}`:                                   400,
		`{"name":"pusher_internal:member_added","data":"x","channel":"c"}`:               400,
		`{"name":"realtime:welcome","data":"x","channel":"c"}`:                           400,
		`{"name":"` + strings.Repeat("n", 201) + `","data":"x","channel":"c"}`:           400,
		`{"data":"x","channel":"c"}`:                                                     400,
		`{"name":"e","channel":"c"}`:                                                     400,
		`{"name":"e","data":"x"}`:                                                        400,
		`{"name":"e","data":"x","channel":"#server-to-user-1"}`:                          400,
		`{"name":"e","data":"x","channel":"a b"}`:                                        400,
		`{"name":"e","data":"x","channel":"c","socket_id":"1234"}`:                       400,
		`{"name":"e","data":"x","channel":"c","socket_id":"1.2.3"}`:                      400,
		`{"name":"e","data":"x","channel":"c","info":"bogus"}`:                           400,
		`[]`:         400,
		`{"name":`:   400,
		"\xff":       400,
		`{"name":1}`: 400,
	} {
		_, err := ParseTrigger([]byte(body))
		switch {
		case status == 0 && err != nil:
			t.Errorf("%.80s: %v", body, err)
		case status != 0 && (err == nil || err.Status != status):
			t.Errorf("%.80s: got %v, want %d", body, err, status)
		}
	}
}

func TestParseBatch(t *testing.T) {
	b, err := ParseBatch([]byte(`{"batch":[{"channel":"a","name":"e1","data":"{\"x\":1}"},{"channel":"b","name":"e2","data":"y","socket_id":"3.4"}]}`))
	if err != nil || len(b) != 2 || b[1].SocketID != "3.4" || string(b[1].Payload) != `"y"` {
		t.Fatalf("%+v %v", b, err)
	}
	items := make([]string, 11)
	for i := range items {
		items[i] = `{"channel":"a","name":"e","data":"x"}`
	}
	for body, status := range map[string]int{
		`{"batch":[` + strings.Join(items[:10], ",") + `]}`: 0,
		`{"batch":[` + strings.Join(items, ",") + `]}`:      400,
		`{"batch":[]}`: 400,
		`{}`:           400,
		`{"batch":[{"channel":"a","name":"e","data":"x"},{"channel":"a","data":"x"}]}`:                                    400,
		`{"batch":[{"channel":"a","name":"e","data":"` + strings.Repeat("x", MaxDataSize+1) + `"}]}`:                      413,
		`{"batch":[{"channel":"a","name":"e","data":"x"},5]}`:                                                             400,
		`{"batch":[{"channel":"a","name":"pusher:e","data":"x"}]}`:                                                        400,
		`{"batch":[{"channel":"a","name":"e","data":"x","socket_id":"x"}]}`:                                               400,
		`{"batch":[{"channels":["a","b"],"name":"e","data":"x"}],"extra":1}`:                                              0,
		`{"batch":[{"channel":"a","name":"e","data":{"not":"a string"}}]}`:                                                0,
		`{"batch":[{"channel":"a","name":"e","data":"` + strings.Repeat("\\u00e9", MaxDataSize/2+1) + `"}]}`:              413,
		`{"batch":[{"channel":"a","name":"e","data":"` + strings.Repeat("\\u0041", MaxDataSize) + `"}]}`:                  0,
		`{"batch":[{"channel":"a","name":"e","data":"` + strings.Repeat("\\u0041", MaxDataSize) + `x"}]}`:                 413,
		`{"batch":[{"channel":"a","name":"e","data":"x"}]} trailing`:                                                      400,
		`{"batch":[{"channel":"a","name":"e","data":"x","info":"subscription_count,user_count,user_count"}]}`:             0,
		`{"batch":[{"channel":"a","name":"e","data":"x","info":"subscription_count,"}]}`:                                  400,
		`{"batch":[{"channel":"a","name":"e\u0000","data":"x"}]}`:                                                         400,
		`{"batch":[{"channel":"` + strings.Repeat("c", 165) + `","name":"e","data":"x"}]}`:                                400,
		`{"batch":[{"channel":"` + strings.Repeat("c", 164) + `","name":"` + strings.Repeat("é", 200) + `","data":"x"}]}`: 0,
	} {
		_, err := ParseBatch([]byte(body))
		switch {
		case status == 0 && err != nil:
			t.Errorf("%.100s: %v", body, err)
		case status != 0 && (err == nil || err.Status != status):
			t.Errorf("%.100s: got %v, want %d", body, err, status)
		}
	}
}

func TestDataPayload(t *testing.T) {
	for data, want := range map[string]string{
		`{"id":7}`:  `{"id":7}`,
		`{"id": 7}`: `{"id": 7}`, // kept byte for byte
		`123`:       `123`,
		`hello`:     `"hello"`,
		`{"broken"`: `"{\"broken\""`,
		``:          `""`,
		`"quoted"`:  `"quoted"`,
	} {
		if got := string(DataPayload(data)); got != want {
			t.Errorf("%q: %s, want %s", data, got, want)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		`{"event":"pusher:subscribe","data":{"auth":"k:s","channel_data":"{}","channel":"presence-x"}}`,
		`{"event":"pusher:subscribe","data":"{\"channel\":\"c\"}"}`,
		`{"event":"client-x","channel":"private-x","data":{"a":[1,2]}}`,
		`{"event":"pusher:ping","data":{}}`, `{"event":5}`, `[]`, `{"event":"x","data":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		if m.Event == "" {
			t.Fatal("accepted a message without an event")
		}
		if m.Data != nil && !json.Valid(m.Data) {
			t.Fatalf("data %q is not JSON", m.Data)
		}
		s, err := ParseSubscription(m.Data)
		if err != nil {
			return
		}
		if s.Channel == "" {
			t.Fatal("accepted a subscription without a channel")
		}
		// Whatever was parsed, a signature made for it verifies, and one
		// for another socket does not.
		secret := []byte("s")
		s.Auth = SignChannel("k", secret, "1.2", s.Channel, s.ChannelData)
		if IsPresence(s.Channel) && !s.HasChannelData {
			return
		}
		if err := VerifyChannel("k", secret, "1.2", s); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if err := VerifyChannel("k", secret, "1.3", s); err == nil {
			t.Fatal("signature for another socket accepted")
		}
	})
}

// FuzzAPIRequest feeds arbitrary queries and bodies to the HTTP API's
// signature check and body parsers: nothing panics, nothing unsigned gets
// through, and what the parsers accept is within Pusher's limits.
func FuzzAPIRequest(f *testing.F) {
	c := APICredentials{Key: docKey, Secret: []byte(docSecret)}
	now := time.Unix(docTime, 0)
	f.Add(c.SignQuery("POST", "/apps/3/events", nil, []byte(docBody), now), []byte(docBody), false)
	f.Add("auth_key=278d425bdf160c739803&auth_timestamp=x&auth_version=1.0&auth_signature=zz", []byte(`{"batch":[{"channel":"a","name":"e","data":"x"}]}`), true)
	f.Add("a=%zz&&=&auth_key", []byte(`{"name":"e","data":"\u0000","channels":["a","a"]}`), false)
	f.Fuzz(func(t *testing.T, query string, body []byte, batch bool) {
		if err := c.Verify(SignedRequest{Method: "POST", Paths: []string{"/apps/3/events"}, RawQuery: query, Body: body}, now); err == nil {
			// Only a query signed with the secret passes: re-sign what
			// was accepted and compare (hex digits in either case are the
			// same signature).
			params, perr := parseQuery(query)
			if perr != nil || !strings.EqualFold(params["auth_signature"], fmt.Sprintf("%x", c.mac("POST", "/apps/3/events", canonicalQuery(params)))) {
				t.Fatalf("unsigned request accepted: %q", query)
			}
		} else if err.Status != 401 {
			t.Fatalf("status %d", err.Status)
		}
		var trs []Trigger
		if batch {
			var err *APIError
			if trs, err = ParseBatch(body); err != nil {
				if err.Status != 400 && err.Status != 413 {
					t.Fatalf("status %d", err.Status)
				}
				return
			}
			if len(trs) == 0 || len(trs) > MaxBatchEvents {
				t.Fatalf("accepted a batch of %d", len(trs))
			}
		} else {
			tr, err := ParseTrigger(body)
			if err != nil {
				if err.Status != 400 && err.Status != 413 {
					t.Fatalf("status %d", err.Status)
				}
				return
			}
			trs = []Trigger{tr}
		}
		for _, tr := range trs {
			if !hub.ValidType(tr.Name) || hub.IsControlType(tr.Name) {
				t.Fatalf("accepted name %q", tr.Name)
			}
			if len(tr.Channels) == 0 || len(tr.Channels) > MaxTriggerChannels {
				t.Fatalf("accepted %d channels", len(tr.Channels))
			}
			for _, ch := range tr.Channels {
				if !hub.ValidChannel(ch) {
					t.Fatalf("accepted channel %q", ch)
				}
			}
			if !json.Valid(tr.Payload) {
				t.Fatalf("payload %q is not JSON", tr.Payload)
			}
			if tr.SocketID != "" && !ValidSocketID(tr.SocketID) {
				t.Fatalf("accepted socket id %q", tr.SocketID)
			}
		}
	})
}
