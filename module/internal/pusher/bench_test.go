package pusher

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// countingConn is a transport that counts the frames written and keeps
// none of them.
type countingConn struct{ frames atomic.Int64 }

func (c *countingConn) Write(msgs [][]byte) error {
	c.frames.Add(int64(len(msgs)))
	return nil
}

func (c *countingConn) Close() error { return nil }

// BenchmarkIdleSessionMemory is the heap an idle Pusher session costs, with
// its protocol state (Conn): 10,000 sessions over 100 channels of 100 users
// each, subscribed with a pusher:subscribe as pusher-js sends it, on a
// public channel, a private one (auth signature) and a presence one (auth
// signature over channel_data with a 90-byte user_info; the channel's
// mirror and snapshot are shared by its sessions). Reported: bytes per
// session; the socket's own buffers are not in it.
func BenchmarkIdleSessionMemory(b *testing.B) {
	const sessions, perChannel = 10000, 100
	for _, kind := range []string{"public", "private", "presence"} {
		b.Run(kind, func(b *testing.B) {
			var total float64
			for i := 0; i < b.N; i++ {
				total += idleSessionBytes(b, kind, sessions, perChannel)
			}
			b.ReportMetric(total/float64(b.N), "bytes/session")
		})
	}
}

func idleSessionBytes(b *testing.B, kind string, sessions, perChannel int) float64 {
	h := hub.New("bench", hub.NewMemoryLog(100, time.Hour))
	if err := h.Start(); err != nil {
		b.Fatal(err)
	}
	defer h.Close(hub.DisconnectShutdown, 0, time.Second)
	h.SetPresence(hub.PresenceConfig{MaxMembers: 100})
	e := &Endpoint{
		Policy:          &hub.Policy{SendQueue: 64, MaxSubscriptions: 10, Tokens: Authorizer{Key: testKey, Secret: []byte(testSecret)}},
		ClientEventRate: 10,
	}
	codec := Codec{ActivityTimeout: time.Minute}
	conns := make([]*countingConn, sessions)
	protos := make([]*Conn, sessions)
	for i := range conns {
		conns[i] = &countingConn{}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, c := range conns {
		s, err := h.Connect(c, e.Policy, codec, "", hub.ConnectOptions{Channels: []string{}})
		if err != nil {
			b.Fatal(err)
		}
		protos[i] = e.NewConn()
		user := i % perChannel
		data := map[string]any{"auth": "", "channel": fmt.Sprintf("%s-%d", kind, i/perChannel)}
		switch kind {
		case "private":
			data["channel"] = "private-" + data["channel"].(string)
			data["auth"] = SignChannel(testKey, []byte(testSecret), s.ID(), data["channel"].(string), "")
		case "presence":
			cd := fmt.Sprintf(`{"user_id":%d,"user_info":{"name":"User %d","avatar":"https://example.com/wp-content/avatars/%d.png?s=96"}}`, user, user, user)
			data["channel_data"] = cd
			data["auth"] = SignChannel(testKey, []byte(testSecret), s.ID(), data["channel"].(string), cd)
		}
		msg, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": data})
		protos[i].Handle(s, msg)
	}
	deadline := time.Now().Add(time.Minute)
	for _, c := range conns {
		// The welcome and subscription_succeeded (with the members on a
		// presence channel).
		for c.frames.Load() < 2 {
			if time.Now().After(deadline) {
				b.Fatal("the sessions did not settle")
			}
			time.Sleep(time.Millisecond)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(sessions)
	runtime.KeepAlive(conns)
	runtime.KeepAlive(protos)
	return per
}
