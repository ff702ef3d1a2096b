package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A minimal RFC 6455 client, enough for a subscriber: handshake, unmasked
// server frames read in place from a bufio.Reader (no allocation per frame),
// pong for ping, close code. The load generator shares the 2 cores with the
// server under test, so its per-frame cost matters; gorilla/websocket costs an
// allocation per message and hides the buffered bytes behind its reader.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

type wsConn struct {
	c      net.Conn
	br     *bufio.Reader
	body   io.ReadCloser // -transport sse -h2: the stream, read through net/http (c and br are nil)
	chunk  bool          // -transport sse: the body has chunked framing
	msg    []byte        // reassembly buffer for fragmented or oversize messages
	mask   [4]byte
	wbuf   [2 + 4 + 125 + 8]byte
	closed int // close code received, 0 when none

	pendingDiscard int // bytes of the last in-place message still in br
}

type handshakeError struct {
	Status int
	Body   string
}

func (e *handshakeError) Error() string {
	return fmt.Sprintf("handshake: HTTP %d %s", e.Status, e.Body)
}

// wsDial connects to u (ws:// or wss://) from local address laddr.
// hdr holds extra header lines, each ending in CRLF.
func wsDial(ctx context.Context, u *url.URL, laddr net.IP, tlsConf *tls.Config, readBuf, rcvBuf int, hdr string) (*wsConn, error) {
	c, err := dialConn(ctx, u, laddr, tlsConf, rcvBuf)
	if err != nil {
		return nil, err
	}
	var key [16]byte
	rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + k +
		"\r\nSec-WebSocket-Version: 13\r\n" + hdr + "\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, readBuf)
	head, err := readHead(br)
	if err != nil {
		c.Close()
		return nil, err
	}
	if head.status != 101 {
		c.Close()
		return nil, head.refusal(br)
	}
	sum := sha1.Sum([]byte(k + wsGUID))
	if head.get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		c.Close()
		return nil, errors.New("handshake: bad Sec-WebSocket-Accept")
	}
	c.SetDeadline(time.Time{})
	w := &wsConn{c: c, br: br}
	rand.Read(w.mask[:])
	return w, nil
}

// dialConn connects to u's host (TCP, then TLS for wss:// and https://)
// from local address laddr, under ctx's deadline, which it leaves set.
func dialConn(ctx context.Context, u *url.URL, laddr net.IP, tlsConf *tls.Config, rcvBuf int) (net.Conn, error) {
	secure := u.Scheme == "wss" || u.Scheme == "https"
	host := u.Host
	if u.Port() == "" {
		if secure {
			host = net.JoinHostPort(u.Hostname(), "443")
		} else {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if laddr != nil {
		d.LocalAddr = &net.TCPAddr{IP: laddr}
	}
	if rcvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			rc.Control(func(fd uintptr) { serr = setRcvBuf(fd, rcvBuf) })
			return serr
		}
	}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if secure {
		tc := tls.Client(c, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	return c, nil
}

// respHead is the status and headers of an HTTP/1.1 answer.
type respHead struct {
	status  int
	headers [][2]string // name, value
}

func (h *respHead) get(name string) string {
	for _, kv := range h.headers {
		if strings.EqualFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}

// refusal reads a refused handshake's body (when its length is given and
// small) into a handshakeError.
func (h *respHead) refusal(br *bufio.Reader) error {
	body := ""
	if clen, _ := strconv.Atoi(h.get("Content-Length")); clen > 0 && clen < 4096 {
		b := make([]byte, clen)
		io.ReadFull(br, b)
		body = string(b)
	}
	return &handshakeError{Status: h.status, Body: body}
}

// readHead reads an answer's status line and headers.
func readHead(br *bufio.Reader) (*respHead, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	h := &respHead{}
	if f := bytes.Fields(line); len(f) >= 2 {
		h.status, _ = strconv.Atoi(string(f[1]))
	}
	for i := 0; i < 100; i++ {
		l, err := br.ReadSlice('\n')
		if err != nil {
			return nil, fmt.Errorf("handshake headers: %w", err)
		}
		l = bytes.TrimRight(l, "\r\n")
		if len(l) == 0 {
			return h, nil
		}
		name, val, ok := bytes.Cut(l, []byte(":"))
		if ok {
			h.headers = append(h.headers, [2]string{string(name), string(bytes.TrimSpace(val))})
		}
	}
	return nil, errors.New("handshake: too many headers")
}

// writeControl sends a masked control frame (payload <= 125 bytes).
func (w *wsConn) writeControl(op byte, payload []byte) error {
	if len(payload) > 125 {
		payload = payload[:125]
	}
	b := w.wbuf[:0]
	b = append(b, 0x80|op, 0x80|byte(len(payload)))
	b = append(b, w.mask[:]...)
	for i, x := range payload {
		b = append(b, x^w.mask[i&3])
	}
	w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := w.c.Write(b)
	return err
}

// writeText sends a masked text frame.
func (w *wsConn) writeText(payload []byte) error {
	w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := w.c.Write(maskedText(w.mask, payload))
	return err
}

// maskedText frames payload as a client's text frame, masked with mask.
func maskedText(mask [4]byte, payload []byte) []byte {
	b := make([]byte, 0, 14+len(payload))
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x81, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x81, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x81, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, mask[:]...)
	for i, x := range payload {
		b = append(b, x^mask[i&3])
	}
	return b
}

var errClosed = errors.New("websocket closed by server")

// next returns the next complete text or binary message. The slice is valid
// until the following call. Pings are answered, pongs ignored; a close frame
// returns errClosed with w.closed set.
func (w *wsConn) next() ([]byte, error) {
	if w.pendingDiscard > 0 {
		w.br.Discard(w.pendingDiscard)
		w.pendingDiscard = 0
	}
	w.msg = w.msg[:0]
	fragmented := false
	for {
		var hdr [2]byte
		b, err := w.br.Peek(2)
		if err != nil {
			return nil, err
		}
		hdr[0], hdr[1] = b[0], b[1]
		w.br.Discard(2)
		fin := hdr[0]&0x80 != 0
		op := hdr[0] & 0x0f
		masked := hdr[1]&0x80 != 0
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			b, err := w.br.Peek(2)
			if err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b))
			w.br.Discard(2)
		case 127:
			b, err := w.br.Peek(8)
			if err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b)
			w.br.Discard(8)
		}
		var mk [4]byte
		if masked {
			b, err := w.br.Peek(4)
			if err != nil {
				return nil, err
			}
			copy(mk[:], b)
			w.br.Discard(4)
		}
		if n > 16<<20 {
			return nil, fmt.Errorf("frame of %d bytes", n)
		}
		// Payload: in place when it fits the buffer and needs no reassembly.
		var p []byte
		inPlace := !masked && fin && !fragmented && int(n) <= w.br.Size() && op != 0
		if inPlace {
			p, err = w.br.Peek(int(n))
			if err != nil {
				return nil, err
			}
		} else {
			start := len(w.msg)
			if cap(w.msg)-start < int(n) {
				nm := make([]byte, start, start+int(n)+1024)
				copy(nm, w.msg)
				w.msg = nm
			}
			w.msg = w.msg[:start+int(n)]
			if _, err := io.ReadFull(w.br, w.msg[start:]); err != nil {
				return nil, err
			}
			if masked {
				for i := range w.msg[start:] {
					w.msg[start+i] ^= mk[i&3]
				}
			}
			p = w.msg[start:]
		}
		switch op {
		case 0x8: // close
			code := 1005
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			w.closed = code
			if inPlace {
				w.br.Discard(int(n))
			}
			return nil, errClosed
		case 0x9: // ping
			var tmp [125]byte
			m := copy(tmp[:], p)
			if inPlace {
				w.br.Discard(int(n))
			} else {
				w.msg = w.msg[:len(w.msg)-int(n)]
			}
			if err := w.writeControl(0xA, tmp[:m]); err != nil {
				return nil, err
			}
			continue
		case 0xA: // pong
			if inPlace {
				w.br.Discard(int(n))
			} else {
				w.msg = w.msg[:len(w.msg)-int(n)]
			}
			continue
		case 0x1, 0x2:
			if inPlace {
				// The caller consumes p before the next call; discard then.
				w.pendingDiscard = int(n)
				return p, nil
			}
			if fin {
				return w.msg, nil
			}
			fragmented = true
		case 0x0:
			if fin {
				return w.msg, nil
			}
		default:
			return nil, fmt.Errorf("unknown opcode %d", op)
		}
	}
}

func (w *wsConn) close() {
	if w.body != nil {
		w.body.Close()
		return
	}
	w.c.Close()
}

// interrupt makes a reader goroutine blocked on the connection return.
func (w *wsConn) interrupt() {
	if w.body != nil {
		w.body.Close()
		return
	}
	w.c.SetDeadline(time.Now())
}
