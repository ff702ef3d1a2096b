//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// The epoll reader: after the handshake, a subscriber's socket is dup'ed out of
// Go's netpoller into one of a few level-triggered epoll sets, each served by
// one goroutine. Per readiness this costs one read(2), and epoll_wait returns
// many ready sockets at once; Go's netpoller would add a wake-up, a goroutine
// switch and a second read(2) ending in EAGAIN per frame. On a 2-core machine
// that the server shares, the difference is CPU taken from the server.

const epollAvailable = true

const maxFD = 1 << 16

type poller struct {
	r    *run
	epfd int
}

type epollSet struct {
	pollers []*poller
	subs    []atomic.Pointer[sub] // by fd
	wg      sync.WaitGroup
}

func newEpollSet(r *run, n int) (*epollSet, error) {
	es := &epollSet{subs: make([]atomic.Pointer[sub], maxFD)}
	for i := 0; i < n; i++ {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return nil, err
		}
		p := &poller{r: r, epfd: fd}
		es.pollers = append(es.pollers, p)
		es.wg.Add(1)
		go p.loop(es)
	}
	return es, nil
}

// attach moves w's socket into an epoll set. Bytes already buffered by the
// handshake reader are processed first, before the poller can see the fd.
func (es *epollSet) attach(r *run, s *sub, w *wsConn) error {
	tc, ok := w.c.(*net.TCPConn)
	if !ok {
		return errors.New("epoll reader needs a plain TCP connection")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	nfd := -1
	var derr error
	raw.Control(func(fd uintptr) { nfd, derr = syscall.Dup(int(fd)) })
	if derr != nil {
		return derr
	}
	if nfd >= maxFD {
		syscall.Close(nfd)
		return errors.New("fd too large")
	}
	pending := w.br.Buffered()
	if cap(s.rbuf) < r.cfg.readBuf {
		s.rbuf = make([]byte, 0, r.cfg.readBuf)
	}
	s.rbuf = s.rbuf[:0]
	if pending > 0 {
		b, _ := w.br.Peek(pending)
		s.rbuf = append(s.rbuf, b...)
	}
	w.c.Close() // leaves Go's netpoller; the dup keeps the socket open
	syscall.SetNonblock(nfd, true)
	s.fd = nfd
	s.mask = w.mask
	if len(s.rbuf) > 0 {
		if err := r.parseInput(s); err != nil {
			syscall.Close(nfd)
			s.fd = -1
			return err
		}
	}
	es.subs[nfd].Store(s)
	p := es.pollers[s.id%len(es.pollers)]
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(nfd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, nfd, &ev); err != nil {
		es.subs[nfd].Store(nil)
		syscall.Close(nfd)
		s.fd = -1
		return err
	}
	return nil
}

func (p *poller) loop(es *epollSet) {
	defer es.wg.Done()
	r := p.r
	events := make([]syscall.EpollEvent, 256)
	for i := 0; i < 1<<40; i++ {
		if r.stopping.Load() {
			return
		}
		n, err := syscall.EpollWait(p.epfd, events, 100)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			s := es.subs[fd].Load()
			if s == nil || s.fd != fd {
				continue
			}
			if err := p.readOnce(s); err != nil {
				syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
				es.subs[fd].Store(nil)
				syscall.Close(fd)
				s.fd = -1
				if !r.stopping.Load() {
					r.lost(s, err)
				}
			}
		}
	}
}

func (p *poller) readOnce(s *sub) error {
	if len(s.rbuf) == cap(s.rbuf) {
		nb := make([]byte, len(s.rbuf), 2*cap(s.rbuf))
		copy(nb, s.rbuf)
		s.rbuf = nb
	}
	n, err := syscall.Read(s.fd, s.rbuf[len(s.rbuf):cap(s.rbuf)])
	if err != nil {
		if err == syscall.EAGAIN || err == syscall.EINTR {
			return nil
		}
		return err
	}
	if n == 0 {
		return errEOF
	}
	s.rbuf = s.rbuf[:len(s.rbuf)+n]
	return p.r.parseInput(s)
}

var errEOF = errors.New("EOF")

// parseFrames consumes every complete frame in s.rbuf and keeps the rest.
func (r *run) parseFrames(s *sub) error {
	b := s.rbuf
	off := 0
	for {
		rest := b[off:]
		if len(rest) < 2 {
			break
		}
		fin := rest[0]&0x80 != 0
		op := rest[0] & 0x0f
		masked := rest[1]&0x80 != 0
		n := uint64(rest[1] & 0x7f)
		h := 2
		switch n {
		case 126:
			if len(rest) < 4 {
				goto partial
			}
			n = uint64(binary.BigEndian.Uint16(rest[2:]))
			h = 4
		case 127:
			if len(rest) < 10 {
				goto partial
			}
			n = binary.BigEndian.Uint64(rest[2:])
			h = 10
		}
		if masked {
			h += 4
		}
		if n > 16<<20 {
			return errors.New("frame too large")
		}
		if uint64(len(rest)) < uint64(h)+n {
			goto partial
		}
		{
			p := rest[h : h+int(n)]
			if masked {
				mk := rest[h-4 : h]
				for i := range p {
					p[i] ^= mk[i&3]
				}
			}
			off += h + int(n)
			switch op {
			case 0x1, 0x2:
				if fin && len(s.frag) == 0 {
					r.handle(s, p)
				} else {
					s.frag = append(s.frag, p...)
					if fin {
						r.handle(s, s.frag)
						s.frag = s.frag[:0]
					}
				}
			case 0x0:
				s.frag = append(s.frag, p...)
				if fin {
					r.handle(s, s.frag)
					s.frag = s.frag[:0]
				}
			case 0x8:
				s.closeCode = 1005
				if len(p) >= 2 {
					s.closeCode = int(binary.BigEndian.Uint16(p))
				}
				return errClosed
			case 0x9:
				if len(p) <= 125 {
					var f [2 + 4 + 125]byte
					f[0], f[1] = 0x8A, 0x80|byte(len(p))
					copy(f[2:6], s.mask[:])
					for i, x := range p {
						f[6+i] = x ^ s.mask[i&3]
					}
					syscall.Write(s.fd, f[:6+len(p)])
				}
			case 0xA:
			default:
				return errors.New("unknown opcode")
			}
		}
	}
partial:
	if off > 0 {
		m := copy(b, b[off:])
		s.rbuf = b[:m]
	}
	return nil
}

func (es *epollSet) stop() {
	es.wg.Wait()
	for _, p := range es.pollers {
		syscall.Close(p.epfd)
	}
}

func closeFD(fd int) { syscall.Close(fd) }

func writeFD(fd int, b []byte) error {
	_, err := syscall.Write(fd, b)
	return err
}
