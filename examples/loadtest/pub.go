package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// A small keep-alive HTTP/1.1 client for the publishers: one prebuilt request
// write, a status line and headers parsed in place, the body read into a
// reused buffer. net/http's client costs several times more CPU per request,
// which on a shared 2-core machine would be taken from the server under test.

type httpConn struct {
	u       *url.URL
	addr    string
	tlsConf *tls.Config
	timeout time.Duration
	c       net.Conn
	br      *bufio.Reader
	req     []byte
	body    []byte
	// uri, when set, gives each request's URI from its body (a signed
	// Pusher HTTP API request); else the URL's.
	uri func(body []byte) string
}

func newHTTPConn(u *url.URL, tlsConf *tls.Config, timeout time.Duration) *httpConn {
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	return &httpConn{u: u, addr: addr, tlsConf: tlsConf, timeout: timeout}
}

func (h *httpConn) dial() error {
	c, err := net.DialTimeout("tcp", h.addr, h.timeout)
	if err != nil {
		return err
	}
	if h.u.Scheme == "https" {
		tc := tls.Client(c, h.tlsConf)
		tc.SetDeadline(time.Now().Add(h.timeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return err
		}
		c = tc
	}
	h.c = c
	if h.br == nil {
		h.br = bufio.NewReaderSize(c, 4096)
	} else {
		h.br.Reset(c)
	}
	return nil
}

func (h *httpConn) reset() {
	if h.c != nil {
		h.c.Close()
		h.c = nil
	}
}

// post sends body with the given extra header lines (each ending in \r\n) and
// returns the status and the response body (valid until the next call).
func (h *httpConn) post(extra string, body []byte) (int, []byte, error) {
	for attempt := 0; attempt < 2; attempt++ {
		fresh := false
		if h.c == nil {
			if err := h.dial(); err != nil {
				return 0, nil, err
			}
			fresh = true
		}
		h.req = h.req[:0]
		h.req = append(h.req, "POST "...)
		if h.uri != nil {
			h.req = append(h.req, h.uri(body)...)
		} else {
			h.req = append(h.req, h.u.RequestURI()...)
		}
		h.req = append(h.req, " HTTP/1.1\r\nHost: "...)
		h.req = append(h.req, h.u.Host...)
		h.req = append(h.req, "\r\nContent-Type: application/json\r\nContent-Length: "...)
		h.req = strconv.AppendInt(h.req, int64(len(body)), 10)
		h.req = append(h.req, "\r\n"...)
		h.req = append(h.req, extra...)
		h.req = append(h.req, "\r\n"...)
		h.req = append(h.req, body...)
		h.c.SetDeadline(time.Now().Add(h.timeout))
		if _, err := h.c.Write(h.req); err != nil {
			h.reset()
			if !fresh {
				continue // a kept-alive connection the server had closed
			}
			return 0, nil, err
		}
		st, b, keep, err := h.readResponse()
		if err != nil {
			h.reset()
			if !fresh && st == 0 && errors.Is(err, io.EOF) {
				continue
			}
			return st, nil, err
		}
		if !keep {
			h.reset()
		}
		return st, b, nil
	}
	return 0, nil, errors.New("connection closed twice")
}

func (h *httpConn) readResponse() (status int, body []byte, keep bool, err error) {
	line, err := h.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, false, err
	}
	f := bytes.Fields(line)
	if len(f) < 2 {
		return 0, nil, false, fmt.Errorf("bad status line %q", line)
	}
	status, _ = strconv.Atoi(string(f[1]))
	keep = bytes.Equal(f[0], []byte("HTTP/1.1"))
	clen := -1
	chunked := false
	for i := 0; ; i++ {
		if i > 200 {
			return status, nil, false, errors.New("too many headers")
		}
		l, err := h.br.ReadSlice('\n')
		if err != nil {
			return status, nil, false, err
		}
		l = bytes.TrimRight(l, "\r\n")
		if len(l) == 0 {
			break
		}
		name, val, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			clen, _ = strconv.Atoi(string(val))
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.Contains(bytes.ToLower(val), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(val, []byte("close")) {
				keep = false
			}
		}
	}
	h.body = h.body[:0]
	switch {
	case status == 204 || status == 304 || status < 200:
	case chunked:
		for i := 0; ; i++ {
			if i > 100000 {
				return status, nil, false, errors.New("too many chunks")
			}
			l, err := h.br.ReadSlice('\n')
			if err != nil {
				return status, nil, false, err
			}
			l = bytes.TrimRight(l, "\r\n")
			if k := bytes.IndexByte(l, ';'); k >= 0 {
				l = l[:k]
			}
			n, err := strconv.ParseInt(string(l), 16, 64)
			if err != nil || n > 1<<20 {
				return status, nil, false, fmt.Errorf("bad chunk size %q", l)
			}
			if n == 0 {
				for j := 0; j < 100; j++ { // trailers until the blank line
					t, err := h.br.ReadSlice('\n')
					if err != nil {
						return status, nil, false, err
					}
					if len(bytes.TrimRight(t, "\r\n")) == 0 {
						break
					}
				}
				break
			}
			if err := h.readN(int(n)); err != nil {
				return status, nil, false, err
			}
			if _, err := h.br.Discard(2); err != nil {
				return status, nil, false, err
			}
		}
	case clen >= 0:
		if clen > 1<<20 {
			return status, nil, false, fmt.Errorf("body of %d bytes", clen)
		}
		if err := h.readN(clen); err != nil {
			return status, nil, false, err
		}
	default: // until close
		keep = false
		b, err := io.ReadAll(io.LimitReader(h.br, 1<<20))
		if err != nil {
			return status, nil, false, err
		}
		h.body = append(h.body, b...)
	}
	return status, h.body, keep, nil
}

func (h *httpConn) readN(n int) error {
	start := len(h.body)
	h.body = slices.Grow(h.body, n)[:start+n]
	_, err := io.ReadFull(h.br, h.body[start:])
	return err
}
