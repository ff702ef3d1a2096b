package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The -transport sse client: an EventSource as the load generator can
// afford it. Over HTTP/1.1 (http:// or https://) it is a raw TCP
// connection with a hand-written GET, read like a WebSocket subscriber (in
// an epoll set, or a goroutine), its body parsed in place: lines on LF (a
// trailing CR dropped), comments counted as keep-alives, data lines joined,
// and at each blank line the data goes to run.handle, the same accounting
// as a WebSocket message (the module's data line is exactly its WebSocket
// message, nchan's the published body). Chunked bodies (a stream that
// net/http serves rather than the module taking it over) are de-chunked on
// the way. With -h2 the streams go through net/http's HTTP/2 client, many
// per TLS connection, one goroutine each: what a browser does over HTTP/2,
// and what the module cannot take over.

// sseState is a subscriber's parser state between reads.
type sseState struct {
	chunked bool
	chunk   int    // chunked: payload bytes left in the current chunk; -1 between chunks
	crlf    int    // chunked: bytes of the CRLF after a chunk still to skip
	size    []byte // chunked: a chunk-size line read so far
	line    []byte // a line read so far
	data    []byte // the data of the event being read
	hasData bool
	pings   int // comment lines (keep-alives)
}

var errStreamEnd = errors.New("event stream ended (last chunk)")

// parseInput parses what the epoll reader read into s.rbuf: WebSocket
// frames, or a piece of an event stream (consumed whole: its partial lines
// are kept in s.sse).
func (r *run) parseInput(s *sub) error {
	if !r.sse {
		return r.parseFrames(s)
	}
	err := r.parseSSE(s, s.rbuf)
	s.rbuf = s.rbuf[:0]
	return err
}

// parseSSE consumes b, a piece of s's stream.
func (r *run) parseSSE(s *sub, b []byte) error {
	st := &s.sse
	if !st.chunked {
		r.sseBytes(s, b)
		return nil
	}
	for len(b) > 0 {
		switch {
		case st.crlf > 0:
			n := min(st.crlf, len(b))
			st.crlf -= n
			b = b[n:]
		case st.chunk > 0:
			n := min(st.chunk, len(b))
			r.sseBytes(s, b[:n])
			st.chunk -= n
			b = b[n:]
			if st.chunk == 0 {
				st.chunk, st.crlf = -1, 2
			}
		default: // a chunk-size line
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				st.size = append(st.size, b...)
				return nil
			}
			line := b[:i]
			if len(st.size) > 0 {
				line = append(st.size, line...)
				st.size = st.size[:0]
			}
			b = b[i+1:]
			line = bytes.TrimRight(line, "\r")
			if j := bytes.IndexByte(line, ';'); j >= 0 {
				line = line[:j]
			}
			n, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 31)
			if err != nil {
				return fmt.Errorf("bad chunk size %q", line)
			}
			if n == 0 {
				return errStreamEnd
			}
			st.chunk = int(n)
		}
	}
	return nil
}

// sseBytes splits body bytes into lines.
func (r *run) sseBytes(s *sub, b []byte) {
	st := &s.sse
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			st.line = append(st.line, b...)
			return
		}
		line := b[:i]
		if len(st.line) > 0 {
			st.line = append(st.line, line...)
			line = st.line
		}
		b = b[i+1:]
		r.sseLine(s, line)
		st.line = st.line[:0]
	}
}

var sseData = []byte("data:")

// sseLine handles one line of the stream.
func (r *run) sseLine(s *sub, line []byte) {
	st := &s.sse
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	switch {
	case len(line) == 0:
		if st.hasData {
			r.handle(s, st.data)
			st.data, st.hasData = st.data[:0], false
		}
	case line[0] == ':':
		st.pings++
	case bytes.HasPrefix(line, sseData):
		v := line[len(sseData):]
		if len(v) > 0 && v[0] == ' ' {
			v = v[1:]
		}
		if st.hasData {
			st.data = append(st.data, '\n')
		}
		st.data = append(st.data, v...)
		st.hasData = true
	}
	// id: is the cursor, which handle reads from the data (realtime);
	// event: and retry: change nothing here.
}

// sseDial opens an event stream over HTTP/1.1 from local address laddr,
// resuming after lastID (Last-Event-ID) when it is not nil.
func sseDial(ctx context.Context, u *url.URL, laddr net.IP, tlsConf *tls.Config, readBuf, rcvBuf int, lastID []byte) (*wsConn, error) {
	c, err := dialConn(ctx, u, laddr, tlsConf, rcvBuf)
	if err != nil {
		return nil, err
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
	if lastID != nil {
		req += "Last-Event-ID: " + string(lastID) + "\r\n"
	}
	req += "\r\n"
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
	if mt, _, _ := mime.ParseMediaType(head.get("Content-Type")); head.status != 200 || mt != "text/event-stream" {
		c.Close()
		return nil, head.refusal(br)
	}
	c.SetDeadline(time.Time{})
	return &wsConn{c: c, br: br, chunk: strings.EqualFold(head.get("Transfer-Encoding"), "chunked")}, nil
}

// h2Client returns the HTTP/2 client of -h2: its connections come from
// the spread source addresses, and each carries up to the server's
// concurrent-stream limit (250 for Caddy) before another is opened.
func (r *run) h2Client() *http.Client {
	var next atomic.Int64
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     r.tlsConf.Clone(),
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 1024,
		DisableCompression:  true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dd := *d
			dd.LocalAddr = &net.TCPAddr{IP: r.srcIP(int(next.Add(1)))}
			return dd.DialContext(ctx, network, addr)
		},
	}}
}

// h2Dial opens an event stream through the HTTP/2 client.
func (r *run) h2Dial(ctx context.Context, u *url.URL, lastID []byte) (*wsConn, error) {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if lastID != nil {
		req.Header.Set("Last-Event-ID", string(lastID))
	}
	type answer struct {
		resp *http.Response
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		resp, err := r.h2.Do(req)
		ch <- answer{resp, err}
	}()
	var a answer
	select {
	case a = <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if a.err != nil {
		return nil, a.err
	}
	if mt, _, _ := mime.ParseMediaType(a.resp.Header.Get("Content-Type")); a.resp.StatusCode != 200 || mt != "text/event-stream" {
		b, _ := io.ReadAll(io.LimitReader(a.resp.Body, 4096))
		a.resp.Body.Close()
		return nil, &handshakeError{Status: a.resp.StatusCode, Body: string(b)}
	}
	if a.resp.ProtoMajor != 2 {
		a.resp.Body.Close()
		return nil, fmt.Errorf("-h2: the stream came over HTTP/%d", a.resp.ProtoMajor)
	}
	return &wsConn{body: a.resp.Body}, nil
}

// sseReadLoop reads s's stream on a goroutine until it ends: what the
// dial buffered first, then the connection (or, with -h2, the body).
func (r *run) sseReadLoop(s *sub) {
	defer r.wg.Done()
	w := s.conn
	src := io.Reader(w.body)
	if w.body == nil {
		src = w.br
	}
	buf := make([]byte, r.cfg.readBuf)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if perr := r.parseSSE(s, buf[:n]); perr != nil {
				err = perr
			}
			if s.slow && !s.pausd && r.measuring.Load() {
				s.pausd = true
				select {
				case <-time.After(r.cfg.slowPause):
				case <-r.ctx.Done():
				}
			}
		}
		if err == nil {
			continue
		}
		w.close()
		if r.stopping.Load() {
			return
		}
		r.lost(s, err)
		return
	}
}
