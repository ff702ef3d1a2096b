package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 26, 16, 0, 0, 0, time.UTC)

// benchCodec sends events' JSON as it is, like a codec that frames in the
// event's headroom: no copy per event.
type benchCodec struct{ testCodec }

var benchFormat = NewFormat()

func (benchCodec) Format() Format        { return benchFormat }
func (benchCodec) Event(e *Event) []byte { return e.Data() }

// countingConn is a Transport that only counts what it is given, so the
// benchmark measures the hub, not a network.
type countingConn struct{ frames atomic.Int64 }

func (c *countingConn) Write(f [][]byte) error { c.frames.Add(int64(len(f))); return nil }
func (c *countingConn) Close() error           { return nil }

// BenchmarkFanOut publishes 200-byte events to one channel with n
// subscribers. Reported: events/s published, deliveries/s, and
// allocations per delivery (allocs/op divided by n).
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			benchFanOut(b, NewMemoryLog(1000, time.Hour), n)
		})
	}
}

// benchFanOut runs the fan-out benchmark over any log, so a backplane
// can be compared with the in-memory one on the same terms.
func benchFanOut(b *testing.B, log Log, n int) {
	h := New("bench", log)
	if err := h.Start(); err != nil {
		b.Fatal(err)
	}
	p := &Policy{SendQueue: 1 << 20, MaxSubscriptions: 10}
	conns := make([]*countingConn, n)
	for i := range conns {
		conns[i] = &countingConn{}
		s, err := h.Admit(p, benchCodec{}, "")
		if err != nil {
			b.Fatal(err)
		}
		s.Start(conns[i], ConnectOptions{Channels: []string{"bench"}})
	}
	waitFor(b, "welcomes", func() bool {
		for _, c := range conns {
			if c.frames.Load() < 2 {
				return false
			}
		}
		return true
	})
	payload := json.RawMessage(`{"title":"` + string(make([]byte, 0)) + fmt.Sprintf("%0180d", 0) + `"}`)
	pub := []*Publication{{Channels: []string{"bench"}, Type: "bench", Payload: payload}}
	base := make([]int64, n)
	for i, c := range conns {
		base[i] = c.frames.Load()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := h.Publish(context.Background(), pub); err != nil {
			b.Fatal(err)
		}
	}
	// Wait until every subscriber has been handed every event.
	want := int64(b.N)
	waitFor(b, "deliveries", func() bool {
		for i, c := range conns {
			if c.frames.Load()-base[i] < want {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(b.N)*float64(n)/elapsed.Seconds(), "deliveries/s")
	h.Close(DisconnectShutdown, 0, time.Second)
}
