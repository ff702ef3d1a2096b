package module

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// heldStream implements hub.Transport over an SSE response that net/http
// owns (HTTP/2, HTTP/3, or an HTTP/1.1 writer that cannot be hijacked).
// The hub writes from its own goroutines while the handler's goroutine
// waits; a ResponseWriter is valid only until the handler returns, so
// finish, which the handler calls last, waits for a write in flight and
// refuses any later one.
type heldStream struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	inner        http.ResponseWriter // the innermost writer, for abort
	writeTimeout time.Duration

	mu       sync.Mutex // held by Write
	finished bool

	closed    chan struct{} // closed by Close: the session is done with the stream
	closeOnce sync.Once
}

func newHeldStream(w http.ResponseWriter, writeTimeout time.Duration) *heldStream {
	return &heldStream{
		w:            w,
		rc:           http.NewResponseController(w),
		inner:        innermost(w),
		writeTimeout: writeTimeout,
		closed:       make(chan struct{}),
	}
}

// innermost unwraps Caddy's response writer wrappers.
func innermost(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// Write writes and flushes messages under the write timeout. The deadline
// is cleared afterwards: on HTTP/2 an armed deadline resets the stream when
// it passes, even with nothing being written.
func (st *heldStream) Write(msgs [][]byte) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.finished {
		return net.ErrClosed
	}
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.writeTimeout))
	defer func() { _ = st.rc.SetWriteDeadline(time.Time{}) }()
	for _, m := range msgs {
		if _, err := st.w.Write(m); err != nil {
			return writeError(err)
		}
	}
	return writeError(st.rc.Flush())
}

func writeError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %w", hub.ErrWriteTimeout, err)
	}
	return err
}

// Close tells the handler that the session is done with the stream; the
// handler's return ends it.
func (st *heldStream) Close() error {
	st.closeOnce.Do(func() { close(st.closed) })
	return nil
}

// abort makes a write stuck on a client that does not read fail now. It
// goes to the innermost writer, whose deadline is safe to set from another
// goroutine (HTTP/2 resets the stream, HTTP/1 sets the socket's deadline),
// unlike the wrappers in between.
func (st *heldStream) abort() {
	_ = http.NewResponseController(st.inner).SetWriteDeadline(time.Unix(1, 0))
}

// finish waits for a write in flight and refuses later ones. The handler
// calls it just before it returns.
func (st *heldStream) finish() {
	st.mu.Lock()
	st.finished = true
	st.mu.Unlock()
}

// readStream waits on a goroutine for the client of a hijacked stream to
// leave, where the epoll set cannot watch its connection. What it sends
// is dropped: an SSE client has nothing to say.
func readStream(s *hub.Session, t *transport) {
	defer s.End(t.writeTimeout)
	buf := make([]byte, 256)
	for {
		if _, err := t.lc.Conn.Read(buf); err != nil {
			return
		}
	}
}

var _ hub.Transport = (*heldStream)(nil)
