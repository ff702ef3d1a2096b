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

// gapConn records the close code a session sends.
type gapConn struct {
	mu   sync.Mutex
	code int
}

func (c *gapConn) WriteFrames(frames [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range frames {
		if f[0]&0x0f == 8 && len(f) >= 4 {
			c.code = int(f[2])<<8 | int(f[3])
		}
	}
	return nil
}

func (c *gapConn) Close() error { return nil }

func (c *gapConn) closeCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code
}

// A log that reports a gap gets every session closed with 1012, so that
// clients resume from their cursors instead of missing events silently.
func TestGapClosesSessions(t *testing.T) {
	l := &gapLog{MemoryLog: NewMemoryLog(10, time.Hour)}
	h, err := New("gap", l, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(CloseGoingAway, "", 0, time.Second)
	if l.onGap == nil {
		t.Fatal("the hub did not give the log a gap function")
	}
	p := &Policy{SendQueue: 16}
	conns := []*gapConn{{}, {}, {}}
	for _, c := range conns {
		if _, err := h.Connect(c, p, ConnectOptions{Channels: []string{"c"}}); err != nil {
			t.Fatal(err)
		}
	}
	l.gap()
	deadline := time.Now().Add(2 * time.Second)
	for _, c := range conns {
		for c.closeCode() != CloseServiceRestart {
			if time.Now().After(deadline) {
				t.Fatalf("session closed with %d, want %d", c.closeCode(), CloseServiceRestart)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
