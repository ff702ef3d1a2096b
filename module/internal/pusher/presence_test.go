package pusher

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// join subscribes cl to a presence channel as the member channelData
// names, signed as the application's auth endpoint would.
func (cl *client) join(channel, channelData string) {
	auth := SignChannel(testKey, []byte(testSecret), cl.s.ID(), channel, channelData)
	cl.send(map[string]any{"event": "pusher:subscribe", "data": map[string]any{"channel": channel, "auth": auth, "channel_data": channelData}})
}

// presenceData is the presence object of a subscription_succeeded.
type presenceData struct {
	IDs   []string                   `json:"ids"`
	Hash  map[string]json.RawMessage `json:"hash"`
	Count int                        `json:"count"`
}

func (cl *client) snapshot(channel string) presenceData {
	cl.t.Helper()
	m := cl.c.waitFor(cl.t, "subscription_succeeded on "+channel, isEvent("pusher_internal:subscription_succeeded", channel))
	var d struct {
		Presence presenceData `json:"presence"`
	}
	if err := json.Unmarshal([]byte(m["data"].(string)), &d); err != nil {
		cl.t.Fatalf("presence data %v: %v", m["data"], err)
	}
	return d.Presence
}

// memberEvents lists the member_added and member_removed of channel as
// "+id info" and "-id".
func (cl *client) memberEvents(channel string) []string {
	var out []string
	for _, m := range cl.c.messages(cl.t) {
		if m["channel"] != channel {
			continue
		}
		var d struct {
			UserID   string          `json:"user_id"`
			UserInfo json.RawMessage `json:"user_info"`
		}
		switch m["event"] {
		case "pusher_internal:member_added":
			_ = json.Unmarshal([]byte(m["data"].(string)), &d)
			out = append(out, "+"+d.UserID+" "+string(d.UserInfo))
		case "pusher_internal:member_removed":
			_ = json.Unmarshal([]byte(m["data"].(string)), &d)
			out = append(out, "-"+d.UserID)
		}
	}
	return out
}

func presenceHub(t *testing.T, cfg hub.PresenceConfig) *hub.Hub {
	h := newHub(t)
	h.SetPresence(cfg)
	return h
}

// TestPresence: a joiner's subscription_succeeded lists every member, the
// joiner included (pusher-js finds members.me there); the others get one
// member_added per user, with user_info, whatever the user's connections;
// numeric and string ids are one user; a client event on the channel
// carries its sender's user_id; the last connection's leave is one
// member_removed.
func TestPresence(t *testing.T) {
	h := presenceHub(t, hub.PresenceConfig{MaxMembers: 100})
	e := newEndpoint(true, 100)
	const ch = "presence-room"
	a := connect(t, h, e)
	a.join(ch, `{"user_id":1,"user_info":{"name":"A"}}`)
	if p := a.snapshot(ch); p.Count != 1 || fmt.Sprint(p.IDs) != "[1]" || string(p.Hash["1"]) != `{"name":"A"}` {
		t.Fatalf("first snapshot %+v", p)
	}
	b := connect(t, h, e)
	b.join(ch, `{"user_id":"2","user_info":{"name":"B"}}`)
	if p := b.snapshot(ch); p.Count != 2 || fmt.Sprint(p.IDs) != "[1 2]" || string(p.Hash["2"]) != `{"name":"B"}` {
		t.Fatalf("second snapshot %+v", p)
	}
	a.c.waitFor(t, "member_added", isEvent("pusher_internal:member_added", ch))
	// Subscribing again is acknowledged again, with the members.
	a.join(ch, `{"user_id":1,"user_info":{"name":"A"}}`)
	a.c.waitFor(t, "a second subscription_succeeded", func(map[string]any) bool {
		return a.c.count(t, isEvent("pusher_internal:subscription_succeeded", ch)) == 2
	})
	var last map[string]any
	for _, m := range a.c.messages(t) {
		if isEvent("pusher_internal:subscription_succeeded", ch)(m) {
			last = m
		}
	}
	if d, _ := last["data"].(string); !strings.Contains(d, `"count":2`) {
		t.Fatalf("the second subscription_succeeded: %v", last)
	}
	// Two more connections of user 2 (one sending the id as a number),
	// one of user 3 without info.
	b2 := connect(t, h, e)
	b2.join(ch, `{"user_id":2,"user_info":{"name":"B"}}`)
	if p := b2.snapshot(ch); p.Count != 2 {
		t.Fatalf("a second connection of user 2: %+v", p)
	}
	c := connect(t, h, e)
	c.join(ch, `{"user_id":"3"}`)
	if p := c.snapshot(ch); p.Count != 3 || string(p.Hash["3"]) != "null" {
		t.Fatalf("user 3's snapshot %+v", p)
	}
	a.c.waitFor(t, "user 3 added", func(map[string]any) bool { return len(a.memberEvents(ch)) == 2 })
	if got := fmt.Sprint(a.memberEvents(ch)); got != `[+2 {"name":"B"} +3 null]` {
		t.Fatalf("a saw %s", got)
	}
	if n := len(b.memberEvents(ch)); n != 1 {
		t.Fatalf("b saw %v: its own join announced to itself?", b.memberEvents(ch))
	}

	// A client event names its sender.
	b2.send(map[string]any{"event": "client-typing", "channel": ch, "data": map[string]any{"x": 1}})
	m := a.c.waitFor(t, "client event", isEvent("client-typing", ch))
	if m["user_id"] != "2" || m["data"] != `{"x":1}` {
		t.Fatalf("client event %v", m)
	}

	// User 2 leaves with its last connection; 3 leaves by unsubscribing.
	b.s.Finish()
	a.sync()
	if n := len(a.memberEvents(ch)); n != 2 {
		t.Fatalf("a saw %v with a connection of user 2 left", a.memberEvents(ch))
	}
	b2.s.Finish()
	c.send(map[string]any{"event": "pusher:unsubscribe", "data": map[string]any{"channel": ch}})
	a.c.waitFor(t, "two removals", func(map[string]any) bool { return len(a.memberEvents(ch)) == 4 })
	if got := fmt.Sprint(a.memberEvents(ch)[2:]); got != "[-2 -3]" && got != "[-3 -2]" {
		t.Fatalf("a saw %s", got)
	}
	st, err := h.Presence(context.Background(), ch)
	if err != nil || st.Count != 1 || st.Members[0].ID != "1" {
		t.Fatalf("hub presence %+v, %v", st, err)
	}
}

// TestPresenceLimit: a join over the hub's presence_max_members is a
// pusher:subscription_error LimitReached 4100, as with Pusher and Soketi,
// and nobody hears of it; a member's second connection still joins.
func TestPresenceLimit(t *testing.T) {
	h := presenceHub(t, hub.PresenceConfig{MaxMembers: 2})
	e := newEndpoint(false, 10)
	const ch = "presence-small"
	a, b, c, a2 := connect(t, h, e), connect(t, h, e), connect(t, h, e), connect(t, h, e)
	a.join(ch, `{"user_id":"a"}`)
	a.snapshot(ch)
	b.join(ch, `{"user_id":"b"}`)
	b.snapshot(ch)
	c.join(ch, `{"user_id":"c"}`)
	m := c.c.waitFor(t, "subscription_error", isEvent("pusher:subscription_error", ch))
	if d := m["data"].(map[string]any); d["type"] != "LimitReached" || d["status"] != float64(4100) {
		t.Fatalf("refusal %v", m)
	}
	a2.join(ch, `{"user_id":"a"}`)
	if p := a2.snapshot(ch); p.Count != 2 {
		t.Fatalf("a's second connection: %+v", p)
	}
	a.sync()
	if got := a.memberEvents(ch); fmt.Sprint(got) != "[+b null]" {
		t.Fatalf("a saw %v", got)
	}
	if c.s.Closing() {
		t.Fatal("the refused connection was closed")
	}
}

// TestClientEventWebhook: with a webhook that wants client_event, each
// relayed client event is queued with its channel, name, data, socket_id
// and, on a presence channel, user_id; refused ones are not.
func TestClientEventWebhook(t *testing.T) {
	h := presenceHub(t, hub.PresenceConfig{MaxMembers: 100})
	e := newEndpoint(true, 100)
	a, b := connect(t, h, e), connect(t, h, e)
	a.subscribe("private-x", true)
	a.subscribed("private-x")
	a.join("presence-y", `{"user_id":7}`)
	a.snapshot("presence-y")
	b.subscribe("private-x", true)
	b.subscribed("private-x")

	a.send(map[string]any{"event": "client-before", "channel": "private-x", "data": 1})
	b.c.waitFor(t, "client-before", isEvent("client-before", "private-x"))
	h.SetWebhooks(hub.WebhookClientEvent)
	a.send(map[string]any{"event": "client-a", "channel": "private-x", "data": map[string]any{"k": "v"}})
	a.send(map[string]any{"event": "client-b", "channel": "presence-y", "data": "plain"})
	a.send(map[string]any{"event": "client-c", "channel": "private-other", "data": 1}) // not subscribed: refused
	a.sync()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	evs, err := h.Webhooks().Read(ctx, "test", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%s %s %s %s %t %s", ev.Name, ev.Channel, ev.Event, ev.Data, ev.SocketID == a.s.ID(), ev.UserID))
		if ev.ID == "" {
			t.Errorf("event without id: %+v", ev)
		}
	}
	want := fmt.Sprint([]string{`client_event private-x client-a {"k":"v"} true `, `client_event presence-y client-b plain true 7`})
	if fmt.Sprint(got) != want {
		t.Fatalf("webhook events\n got %v\nwant %v", got, want)
	}
}

// TestHubPrivatePatternsApplyToPusher: a channel the hub makes private
// needs a signature from Pusher clients too, although pusher-js takes it
// for public (and the endpoint's own policy does not list it).
func TestHubPrivatePatternsApplyToPusher(t *testing.T) {
	h := newHub(t)
	h.SetPrivate([]string{"account.*"})
	cl := connect(t, h, newEndpoint(false, 10))
	cl.subscribe("account.1", false)
	m := cl.c.waitFor(t, "subscription_error", isEvent("pusher:subscription_error", "account.1"))
	if d := m["data"].(map[string]any); d["type"] != "AuthError" {
		t.Fatalf("refusal %v", m)
	}
	cl.subscribe("account.2", true)
	cl.subscribed("account.2")
}
