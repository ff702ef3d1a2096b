//go:build linux

package module

import (
	"crypto/tls"
	"errors"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wprealtime/caddy-realtime/module/hub"
	"github.com/wprealtime/caddy-realtime/module/internal/wsframe"
)

// An idle WebSocket costs a goroutine and its stack when a reader waits on
// it. Here a connection instead waits in an epoll set: when it becomes
// readable, a short-lived goroutine reads what is there without blocking,
// parses it with wsframe.Reader and hands it to the session, then re-arms the
// connection. An idle connection holds no goroutine and no buffer; read
// deadlines become a sweep once a second.
//
// TLS connections wait in the same set, on their TCP socket: crypto/tls
// reads through the runtime poller, so see readableTLS for how its reads
// are kept from blocking.

// poller is the process's epoll set of idle WebSocket connections and
// taken-over Server-Sent Events streams. Its goroutine exists only while
// connections are registered.
type poller struct {
	epfd    int
	mu      sync.Mutex
	conns   map[int32]*polledConn
	running bool
}

var (
	pollerOnce sync.Once
	thePoller  *poller
	pollerErr  error
)

func getPoller() (*poller, error) {
	pollerOnce.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			pollerErr = err
			return
		}
		thePoller = &poller{epfd: fd, conns: make(map[int32]*polledConn)}
	})
	return thePoller, pollerErr
}

// polledConn is one connection in the epoll set.
type polledConn struct {
	p       *poller
	fd      int32
	raw     syscall.RawConn
	tls     *tls.Conn // nil for plain TCP
	s       *hub.Session
	t       *transport
	fr      wsframe.Reader
	onText  func(*hub.Session, []byte) // the protocol's handler of a text message
	idle    time.Duration
	expires atomic.Int64 // unix nanoseconds; no read by then: the client is gone
	gone    bool         // out of the set for good; guarded by p.mu
	stream  bool         // a Server-Sent Events stream: never swept, its bytes dropped
}

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// newPolledConn prepares a session's connection for the epoll set, if it
// is TCP or TLS over TCP; nil means the caller must read on a goroutine
// instead. Call it before the session starts (the transport's close hook
// must be in place before any writer can close it), and register after.
func newPolledConn(s *hub.Session, t *transport, handle func(*hub.Session, []byte), maxMessage int64, pingInterval time.Duration) *polledConn {
	pc := newPolled(s, t)
	if pc == nil {
		return nil
	}
	pc.fr, pc.onText, pc.idle = wsframe.Reader{MaxMessage: maxMessage}, handle, 2*pingInterval
	pc.touch()
	return pc
}

// newPolledStream prepares a Server-Sent Events stream for the epoll set,
// like newPolledConn. Its client sends nothing, so it is watched only for
// the end of the connection, and never swept for idleness: a peer that
// vanished shows when the keep-alives go unacknowledged for deadPeer
// (TCP_USER_TIMEOUT), which errors the socket.
func newPolledStream(s *hub.Session, t *transport, deadPeer time.Duration) *polledConn {
	pc := newPolled(s, t)
	if pc == nil {
		return nil
	}
	pc.stream = true
	pc.expires.Store(math.MaxInt64)
	if ms := deadPeer.Milliseconds(); ms > 0 && ms <= math.MaxInt32 {
		_ = pc.raw.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(ms))
		})
	}
	return pc
}

// newPolled is what both kinds of polled connection share.
func newPolled(s *hub.Session, t *transport) *polledConn {
	var tlsConn *tls.Conn
	c := t.lc.Conn
	if tc, ok := c.(*tls.Conn); ok {
		tlsConn, c = tc, tc.NetConn()
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	p, err := getPoller()
	if err != nil {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	var fd int32 = -1
	_ = raw.Control(func(f uintptr) { fd = int32(f) })
	if fd < 0 {
		return nil
	}
	pc := &polledConn{p: p, fd: fd, raw: raw, tls: tlsConn, s: s, t: t}
	t.onClose = pc.unregister
	return pc
}

// register adds the connection to the epoll set, unless it was closed
// meanwhile.
func (pc *polledConn) register() {
	p := pc.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if pc.gone {
		return
	}
	p.conns[pc.fd] = pc
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(pc.fd), &unix.EpollEvent{Events: pollEvents, Fd: pc.fd}); err != nil {
		delete(p.conns, pc.fd)
		go pc.s.Finish()
		return
	}
	if !p.running {
		p.running = true
		go p.loop()
	}
}

func (pc *polledConn) touch() { pc.expires.Store(time.Now().Add(pc.idle).UnixNano()) }

// unregister takes the connection out of the epoll set; the transport
// calls it just before closing the socket, so the descriptor is never in
// the set once it can be reused.
func (pc *polledConn) unregister() {
	p := pc.p
	p.mu.Lock()
	if pc.gone {
		p.mu.Unlock()
		return
	}
	pc.gone = true
	if p.conns[pc.fd] == pc {
		delete(p.conns, pc.fd)
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(pc.fd), nil)
	}
	p.mu.Unlock()
	// The session may have been closed from its own side (a close frame
	// written, a slow consumer): it has no reader to finish it.
	go pc.s.Finish()
}

// loop waits for readable connections and sweeps idle ones, until none is
// left.
func (p *poller) loop() {
	events := make([]unix.EpollEvent, 128)
	lastSweep := time.Now()
	for {
		n, err := unix.EpollWait(p.epfd, events, 1000)
		if err != nil && !errors.Is(err, unix.EINTR) {
			n = 0
		}
		p.mu.Lock()
		for _, ev := range events[:max(n, 0)] {
			if pc := p.conns[ev.Fd]; pc != nil {
				go pc.readable()
			}
		}
		var expired []*polledConn
		if now := time.Now(); now.Sub(lastSweep) >= time.Second {
			lastSweep = now
			for _, pc := range p.conns {
				if now.UnixNano() > pc.expires.Load() {
					expired = append(expired, pc)
				}
			}
		}
		if len(p.conns) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for _, pc := range expired {
			// Nothing, not even a pong, for two ping intervals.
			go pc.s.Finish()
		}
	}
}

var readBufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// readable reads what the socket holds, parses and handles it, then re-arms
// the connection. One-shot registration means one goroutine at a time per
// connection, so frames are handled in order.
func (pc *polledConn) readable() {
	if pc.tls != nil {
		pc.readableTLS()
		return
	}
	bp := readBufPool.Get().(*[]byte)
	defer readBufPool.Put(bp)
	buf := *bp
	for range 16 { // then let others have a turn
		var n int
		var rerr error
		err := pc.raw.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			return true // one attempt: never park in the runtime poller
		})
		switch {
		case err != nil:
			pc.end()
			return
		case errors.Is(rerr, unix.EAGAIN):
			pc.rearm()
			return
		case errors.Is(rerr, unix.EINTR):
			continue
		case rerr != nil || n == 0:
			pc.end()
			return
		}
		if !pc.handle(buf[:n]) {
			return
		}
		if n < len(buf) {
			break
		}
	}
	pc.rearm()
}

// handle parses bytes read from the client and acts on its frames. It
// reports false when the connection is done: a protocol error (answered
// with its close code) or the client's close frame. What an SSE client
// sends is dropped.
func (pc *polledConn) handle(b []byte) bool {
	if pc.stream {
		return true
	}
	pc.touch()
	if code, reason := pc.fr.Feed(b, pc); code != 0 {
		pc.s.Disconnect(hub.ProtocolViolation(code, reason))
		pc.end()
		return false
	}
	if pc.fr.Closed() {
		pc.end()
		return false
	}
	return true
}

// tlsRecordWait bounds how long a readable TLS connection's first read may
// wait for the rest of a record that has only partly arrived.
const tlsRecordWait = 5 * time.Second

// aLongTimeAgo is a read deadline in the past: a read then returns only
// what is already buffered, without touching the socket.
var aLongTimeAgo = time.Unix(1, 0)

// readableTLS reads a TLS connection that epoll found readable.
// crypto/tls reads from the socket through the runtime poller and may pull
// in more than one record at a time, keeping the rest where epoll cannot
// see it. So the first read may wait (up to tlsRecordWait) for a whole
// record, and the following ones run with a deadline in the past: they
// return records crypto/tls already holds and stop at the first one that
// would need the socket. A timeout is not fatal to a tls.Conn (a partial
// record stays buffered), and whatever is left on the socket makes epoll
// report the connection again once it is re-armed.
func (pc *polledConn) readableTLS() {
	bp := readBufPool.Get().(*[]byte)
	defer readBufPool.Put(bp)
	buf := *bp // 16 KiB: a whole TLS record's plaintext
	c := pc.tls
	_ = c.SetReadDeadline(time.Now().Add(tlsRecordWait))
	for {
		n, err := c.Read(buf)
		if n > 0 && !pc.handle(buf[:n]) {
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			pc.end()
			return
		}
		_ = c.SetReadDeadline(aLongTimeAgo)
	}
	pc.rearm()
}

func (pc *polledConn) rearm() {
	p := pc.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[pc.fd] == pc {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(pc.fd), &unix.EpollEvent{Events: pollEvents, Fd: pc.fd})
	}
}

// end finishes the session once its close frame, if any, is out.
func (pc *polledConn) end() { pc.s.End(pc.t.writeTimeout) }

// Text implements wsframe.Handler.
func (pc *polledConn) Text(msg []byte) { pc.onText(pc.s, msg) }

// Ping implements wsframe.Handler: the pong goes through the ordered
// queue, so it never lands in the middle of another frame, once the queue
// has room, like the answer to any client request: pings pipelined by the
// thousand are answered at the pace the client reads.
func (pc *polledConn) Ping(payload []byte) {
	if pc.s.WaitForRoom() {
		pc.s.QueueControl(wsframe.Pong(payload))
	}
}

// Pong implements wsframe.Handler; reading it already kept the connection
// alive.
func (pc *polledConn) Pong() {}

// Close implements wsframe.Handler: the client's close is echoed after what
// is already queued.
func (pc *polledConn) Close(code int) { pc.s.Disconnect(hub.ClientClosed(code)) }

var _ wsframe.Handler = (*polledConn)(nil)
