package rtclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// Options change how a Client connects and reads.
type Options struct {
	// Header is sent with the handshake.
	Header http.Header
	// Origin, when set, is sent as the Origin header.
	Origin string
	// TLS is the client's TLS config for wss:// URLs. Its ALPN offers only
	// http/1.1, as a browser's does for a WebSocket of its own.
	TLS *tls.Config
	// RcvBuf sets SO_RCVBUF of the client's socket before it connects (0
	// keeps the system's autotuned default), so that a client that stops
	// reading fills its socket quickly.
	RcvBuf int
	// Dialer replaces the dialer built from TLS and RcvBuf. Its connections
	// should go to loopback too (see LoopbackDial).
	Dialer *websocket.Dialer
	// Manual starts no reader goroutine: read with ReadOne, or call Start.
	Manual bool
	// Deaf counts protocol pings and never answers them.
	Deaf bool
}

// Response is an HTTP answer read in full: a refused handshake's.
type Response struct {
	Status int
	Proto  int
	Header http.Header
	Body   []byte
}

func (r *Response) String() string {
	return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body))
}

// handshakeTimeout bounds a dial and its handshake.
const handshakeTimeout = 5 * time.Second

// LoopbackDial connects to 127.0.0.1 on addr's port whatever addr's host, as
// caddytest's own transport does: a URL can name a site ("localhost",
// "app.example") and the Host header keeps that name, while nothing leaves
// the machine.
func LoopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	return loopbackDial(ctx, &net.Dialer{Timeout: handshakeTimeout}, addr)
}

func loopbackDial(ctx context.Context, d *net.Dialer, addr string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
}

// dialer returns the websocket.Dialer the options describe.
func (o Options) dialer() *websocket.Dialer {
	if o.Dialer != nil {
		return o.Dialer
	}
	nd := &net.Dialer{Timeout: handshakeTimeout}
	if o.RcvBuf > 0 {
		nd.Control = rcvBufControl(o.RcvBuf)
	}
	d := &websocket.Dialer{
		HandshakeTimeout: handshakeTimeout,
		NetDialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return loopbackDial(ctx, nd, addr)
		},
	}
	if o.TLS != nil {
		c := o.TLS.Clone()
		c.NextProtos = []string{"http/1.1"}
		d.TLSClientConfig = c
	}
	return d
}

// header returns the handshake's headers.
func (o Options) header() http.Header {
	h := o.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if o.Origin != "" {
		h.Set("Origin", o.Origin)
	}
	return h
}

// handshakeResponse reads a handshake's answer (and up to 64 KiB of its
// body, for a refusal's JSON).
func handshakeResponse(resp *http.Response) *Response {
	if resp == nil {
		return nil
	}
	r := &Response{Status: resp.StatusCode, Proto: resp.ProtoMajor, Header: resp.Header}
	if resp.Body != nil {
		r.Body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	return r
}
