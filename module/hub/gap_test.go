package hub

import (
	"sync"
	"testing"
	"time"
)

// gapLog is a memory log that can report a delivery gap, as a backplane
// reader does when its stream was trimmed before it read it.
type gapLog struct {
	*MemoryLog
	mu    sync.Mutex
	onGap func()
}

func (l *gapLog) OnGap(f func()) {
	l.mu.Lock()
	l.onGap = f
	l.mu.Unlock()
}

func (l *gapLog) gap() {
	l.mu.Lock()
	f := l.onGap
	l.mu.Unlock()
	f()
}

// A log that reports a gap gets every session closed with 1012, so that
// clients resume from their cursors instead of missing events silently.
func TestGapClosesSessions(t *testing.T) {
	l := &gapLog{MemoryLog: NewMemoryLog(10, time.Hour)}
	h := New("gap", l)
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	defer h.Close(DisconnectShutdown, 0, time.Second)
	if l.onGap == nil {
		t.Fatal("the hub did not give the log a gap function")
	}
	p := &Policy{SendQueue: 16}
	var conns []*fakeConn
	for range 3 {
		_, c := connect(t, h, p, ConnectOptions{Channels: []string{"c"}})
		conns = append(conns, c)
	}
	l.gap()
	// An event after the gap reaches none of them: their cursors stay
	// before the gap.
	publish(t, h, "c", "after-gap", "")
	deadline := time.Now().Add(2 * time.Second)
	for _, c := range conns {
		for c.closeCode() != DisconnectGap.Code {
			if time.Now().After(deadline) {
				t.Fatalf("session closed with %d, want %d", c.closeCode(), DisconnectGap.Code)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if evs := c.events(); len(evs) != 0 {
			t.Fatalf("a session got %d events after the gap", len(evs))
		}
	}
	if n := h.Stats().Subscriptions.Load(); n != 0 {
		t.Fatalf("%d subscriptions counted after the gap", n)
	}
}
