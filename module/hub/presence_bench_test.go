package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchInfo is a member's info as the WordPress plugin sends it: a name
// and an avatar URL.
func benchInfo(user int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"name":"User %d","avatar":"https://example.com/wp-content/avatars/%d.png?s=96"}`, user, user))
}

// benchVerifier grants every channel to the token's user, with benchInfo.
type benchVerifier struct{}

func (benchVerifier) Verify(tok string) (*Grant, error) {
	n, _ := strconv.Atoi(tok)
	return &Grant{Subject: tok, Channels: []string{"*"}, Info: benchInfo(n), Expires: time.Now().Add(time.Hour)}, nil
}

// BenchmarkIdleSessionMemory is the heap an idle session costs: 10,000
// sessions over 100 channels of 100 users each, on a public channel, a
// private channel (with the token that grants it) and a presence channel
// (the same token, a member with a 90-byte info, and the mirror and
// snapshot of each channel shared by its sessions). Reported: bytes per
// session; the transport's own buffers are not in it.
//
// A presence session has had a burst of messages (the member_added of the
// users who joined after it), and like any session it keeps the send
// queue's arrays that a burst grew, up to idleQueueCap entries;
// "public-burst" is a public session after a like burst of events (50, as
// many as the average member_added), the like-for-like baseline.
func BenchmarkIdleSessionMemory(b *testing.B) {
	const sessions, perChannel = 10000, 100
	for _, kind := range []string{"public", "public-burst", "private", "presence"} {
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
	h := New("bench", NewMemoryLog(100, time.Hour))
	if err := h.Start(); err != nil {
		b.Fatal(err)
	}
	h.SetPresence(PresenceConfig{MaxMembers: 100})
	p := &Policy{SendQueue: 64, MaxSubscriptions: 10, Tokens: benchVerifier{}}
	conns := make([]*countingConn, sessions)
	for i := range conns {
		conns[i] = &countingConn{}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, c := range conns {
		ch := kind + "-" + strconv.Itoa(i/perChannel)
		o := ConnectOptions{Channels: []string{ch}}
		if !strings.HasPrefix(kind, "public") {
			o.Token = strconv.Itoa(i % perChannel)
		}
		s, err := h.Admit(p, benchCodec{}, "")
		if err != nil {
			b.Fatal(err)
		}
		s.Start(c, o)
	}
	want := int64(2) // welcome, subscribed
	if kind == "presence" {
		want = 3 // and the snapshot
	}
	settle := func() {
		waitFor(b, "the sessions to settle", func() bool {
			for _, c := range conns {
				if c.frames.Load() < want {
					return false
				}
			}
			return true
		})
	}
	settle()
	if kind == "public-burst" {
		for ch := 0; ch < sessions/perChannel; ch++ {
			for e := 0; e < perChannel/2; e++ {
				publishBench(b, h, kind+"-"+strconv.Itoa(ch))
			}
		}
		want += int64(perChannel / 2)
		settle()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(sessions)
	runtime.KeepAlive(conns)
	h.Close(DisconnectShutdown, 0, time.Second)
	return per
}

// BenchmarkPresenceTransition is the CPU of one presence transition (a
// user's first connection joining, or its last leaving) on the in-memory
// store, with n members already on the channel who get each member event.
// One op is a join and a leave; ns/transition is half of it.
func BenchmarkPresenceTransition(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			h := New("bench", NewMemoryLog(100, time.Hour))
			if err := h.Start(); err != nil {
				b.Fatal(err)
			}
			h.SetPresence(PresenceConfig{MaxMembers: 1000}) // no leave delay
			p := &Policy{SendQueue: 1 << 20, MaxSubscriptions: 10}
			const ch = "presence-bench"
			for i := 0; i < n; i++ {
				s, err := h.Admit(p, benchCodec{}, "")
				if err != nil {
					b.Fatal(err)
				}
				s.Start(&countingConn{}, ConnectOptions{Channels: []string{}})
				s.Subscribe([]string{ch}, SubscribeOptions{Member: &Member{ID: "watcher" + strconv.Itoa(i), Info: benchInfo(i)}})
			}
			s, err := h.Admit(p, benchCodec{}, "")
			if err != nil {
				b.Fatal(err)
			}
			s.Start(&countingConn{}, ConnectOptions{Channels: []string{}})
			members := make([]Member, b.N)
			for i := range members {
				members[i] = Member{ID: strconv.Itoa(i), Info: benchInfo(i)}
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				s.Subscribe([]string{ch}, SubscribeOptions{Member: &members[i]})
				s.Unsubscribe([]string{ch})
			}
			waitFor(b, "the leaves", func() bool {
				st, err := h.Presence(context.Background(), ch)
				return err == nil && st.Count == n
			})
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(2*b.N), "ns/transition")
			h.Close(DisconnectShutdown, 0, time.Second)
		})
	}
}

// publishBench publishes a small event to channel.
func publishBench(b *testing.B, h *Hub, channel string) {
	if _, err := h.Publish(context.Background(), []*Publication{{Channels: []string{channel}, Type: "e", Payload: json.RawMessage(`{"n":1}`)}}); err != nil {
		b.Fatal(err)
	}
}
