package module

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// writeBufferPool lets gorilla borrow a write buffer for the rare frame it
// writes itself (a protocol-error close) instead of keeping one per
// connection.
var writeBufferPool sync.Pool

// hijacker gives gorilla a Hijack method whatever Caddy wrapped the
// ResponseWriter in: Caddy's idle-timeout writer unwraps but does not
// hijack, which makes a plain Upgrade fail with 500 (see NOTES.md).
type hijacker struct{ http.ResponseWriter }

// Hijack hijacks the innermost writer, past Caddy's wrappers: with access
// logging on, Caddy's response recorder wraps the hijacked connection to
// count its bytes in plain fields that it reads once ServeHTTP returns,
// while this handler returns as soon as the session starts and the session
// goes on reading and writing (a data race under -race).
func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w := h.ResponseWriter
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return &lockedConn{Conn: c}, brw, nil
}

// lockedConn serializes writes: the hub writes frames in batches through
// the transport, gorilla writes its own protocol-error close frames, and a
// frame of one must never land inside a frame of the other.
type lockedConn struct {
	net.Conn
	mu sync.Mutex
	// writeDeadline says a write deadline is set, so the non-blocking
	// write path clears it only when needed: SetWriteDeadline modifies a
	// runtime timer, and that path runs for every flush.
	writeDeadline atomic.Bool
}

// SetWriteDeadline records whether a deadline is set, whoever sets it (the
// transport, or gorilla writing a close frame).
func (c *lockedConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(!t.IsZero())
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines; see SetWriteDeadline.
func (c *lockedConn) SetDeadline(t time.Time) error {
	c.writeDeadline.Store(!t.IsZero())
	return c.Conn.SetDeadline(t)
}

func (c *lockedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Write(p)
}

// transport implements hub.Transport over a hijacked connection: a
// WebSocket, or a Server-Sent Events stream taken over after its headers.
type transport struct {
	// No reference to gorilla's Conn: on the epoll path nothing reads
	// through it, and it would keep its read buffer alive.
	lc           *lockedConn
	writeTimeout time.Duration
	closeOnce    sync.Once
	onClose      func() // runs before the socket closes (epoll deregistration)
}

func newTransport(lc *lockedConn, writeTimeout time.Duration) *transport {
	return &transport{lc: lc, writeTimeout: writeTimeout}
}

// Write writes encoded messages with one vectored write where the
// connection supports it (plain TCP), under the write deadline.
func (t *transport) Write(msgs [][]byte) error {
	t.lc.mu.Lock()
	defer t.lc.mu.Unlock()
	if err := t.lc.SetWriteDeadline(time.Now().Add(t.writeTimeout)); err != nil {
		return err
	}
	return t.writeLocked(msgs)
}

// writeLocked writes msgs under t.lc.mu. A TLS connection gets them joined
// into one buffer: crypto/tls has no vectored write, so net.Buffers would
// make a record and a syscall of every message, and a coalesced batch is
// the point of batching.
func (t *transport) writeLocked(msgs [][]byte) error {
	var err error
	if _, isTLS := t.lc.Conn.(*tls.Conn); isTLS && len(msgs) > 1 {
		bp := joinBufPool.Get().(*[]byte)
		b := (*bp)[:0]
		for _, m := range msgs {
			b = append(b, m...)
		}
		_, err = t.lc.Conn.Write(b)
		if cap(b) <= maxPooledJoin {
			*bp = b
			joinBufPool.Put(bp)
		}
	} else {
		bufs := net.Buffers(msgs)
		_, err = bufs.WriteTo(t.lc.Conn)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %w", hub.ErrWriteTimeout, err)
	}
	return err
}

// joinBufPool holds the buffers a TLS write joins a batch into; one larger
// than maxPooledJoin is left to the garbage collector.
var joinBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

const maxPooledJoin = 256 << 10

// Close closes the connection.
func (t *transport) Close() error {
	var err error
	t.closeOnce.Do(func() {
		if t.onClose != nil {
			t.onClose()
		}
		err = t.lc.Conn.Close()
	})
	return err
}

var _ hub.Transport = (*transport)(nil)
