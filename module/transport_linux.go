//go:build linux

package module

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
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
	// A deadline left by an earlier blocking write (Write sets one each
	// time) would make this write fail once it has passed.
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

// Write implements hub.Transport for plain TCP: writev through the raw
// connection, waiting in the runtime poller (under the write deadline)
// while the socket is full. net.Buffers would do the same through the
// net package, which keeps an iovec array per connection from then on: an
// idle connection that once wrote a burst would hold it for good.
func (t *tcpTransport) Write(msgs [][]byte) error {
	t.lc.mu.Lock()
	defer t.lc.mu.Unlock()
	if err := t.lc.SetWriteDeadline(time.Now().Add(t.writeTimeout)); err != nil {
		return err
	}
	for len(msgs) > 0 {
		part := msgs
		if len(part) > maxIovec {
			part = part[:maxIovec]
		}
		var n int
		var werr error
		err := t.raw.Write(func(fd uintptr) bool {
			n, werr = unix.Writev(int(fd), part)
			return !errors.Is(werr, unix.EAGAIN) // EAGAIN: wait for room, then again
		})
		if err == nil && werr != nil && !errors.Is(werr, unix.EINTR) {
			err = werr
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("%w: %w", hub.ErrWriteTimeout, err)
			}
			return err
		}
		msgs = advance(msgs, max(n, 0))
	}
	return nil
}

// advance drops the first n bytes of msgs.
func advance(msgs [][]byte, n int) [][]byte {
	for len(msgs) > 0 && n >= len(msgs[0]) {
		n -= len(msgs[0])
		msgs = msgs[1:]
	}
	if n > 0 {
		msgs = append([][]byte{msgs[0][n:]}, msgs[1:]...)
	}
	return msgs
}

// tlsTransport lets the hub's flusher write small batches through TLS
// itself, instead of waking a writer goroutine for every flush. crypto/tls
// cannot write without blocking, but a few kilobytes into a socket whose
// send queue is empty (nothing unsent or unacknowledged, TIOCOUTQ) cannot
// block: the send buffer holds at least that much. Anything else (a larger
// batch, a socket with a backlog) goes to the session's writer goroutine,
// as it always did.
type tlsTransport struct {
	*transport
	raw syscall.RawConn // the TCP socket under TLS
}

// tlsInlineMax is the largest batch the flusher writes through TLS itself.
const tlsInlineMax = 4 << 10

// TryWrite implements hub.TryWriter: all of msgs, or nothing.
func (t *tlsTransport) TryWrite(msgs [][]byte) (int, error) {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	if n > tlsInlineMax || !t.sendQueueEmpty() {
		return 0, nil
	}
	t.lc.mu.Lock()
	defer t.lc.mu.Unlock()
	if err := t.lc.SetWriteDeadline(time.Now().Add(t.writeTimeout)); err != nil {
		return 0, err
	}
	if err := t.writeLocked(msgs); err != nil {
		return 0, err
	}
	return n, nil
}

// sendQueueEmpty reports whether the socket has no bytes waiting to be
// sent or acknowledged.
func (t *tlsTransport) sendQueueEmpty() bool {
	outq, ierr := -1, error(nil)
	if err := t.raw.Control(func(fd uintptr) { outq, ierr = unix.IoctlGetInt(int(fd), unix.TIOCOUTQ) }); err != nil || ierr != nil {
		return false
	}
	return outq == 0
}

// platformTransport upgrades t when its connection is TCP, or TLS over TCP.
func platformTransport(t *transport) hub.Transport {
	switch c := t.lc.Conn.(type) {
	case *net.TCPConn:
		if raw, err := c.SyscallConn(); err == nil {
			return &tcpTransport{transport: t, raw: raw}
		}
	case *tls.Conn:
		if tc, ok := c.NetConn().(*net.TCPConn); ok {
			if raw, err := tc.SyscallConn(); err == nil {
				return &tlsTransport{transport: t, raw: raw}
			}
		}
	}
	return t // others: blocking writes on a writer goroutine
}

var (
	_ hub.TryWriter = (*tcpTransport)(nil)
	_ hub.TryWriter = (*tlsTransport)(nil)
)
