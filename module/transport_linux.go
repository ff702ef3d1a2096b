//go:build linux

package module

import (
	"errors"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// tcpTransport adds non-blocking vectored writes to a plain TCP connection,
// so that the hub's fan-out writes from its flusher instead of waking a
// goroutine per connection per event.
type tcpTransport struct {
	*transport
	raw syscall.RawConn
}

// maxIovec stays under the kernel's IOV_MAX (1024).
const maxIovec = 1000

// TryWrite implements hub.TryWriter: one writev that takes what the socket
// buffer has room for, never waiting.
func (t *tcpTransport) TryWrite(frames [][]byte) (int, error) {
	t.lc.mu.Lock()
	defer t.lc.mu.Unlock()
	if len(frames) > maxIovec {
		frames = frames[:maxIovec]
	}
	var n int
	var werr error
	// A deadline left by an earlier blocking write (WriteFrames sets one
	// each time) would make this write fail once it has passed.
	if t.lc.writeDeadline.Load() {
		_ = t.lc.SetWriteDeadline(time.Time{})
	}
	err := t.raw.Write(func(fd uintptr) bool {
		n, werr = unix.Writev(int(fd), frames)
		return true // one attempt: never park in the poller
	})
	if err != nil {
		return 0, err
	}
	if errors.Is(werr, unix.EAGAIN) || errors.Is(werr, unix.EINTR) {
		return max(n, 0), nil
	}
	return max(n, 0), werr
}

// platformTransport upgrades t when its connection is plain TCP.
func platformTransport(t *transport) hub.Transport {
	tc, ok := t.lc.Conn.(*net.TCPConn)
	if !ok {
		return t // TLS and others: blocking writes on a writer goroutine
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return t
	}
	return &tcpTransport{transport: t, raw: raw}
}

var _ hub.TryWriter = (*tcpTransport)(nil)
