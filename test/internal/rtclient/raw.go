package rtclient

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Opcodes of RFC 6455 frames, for RawConn.
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

// RawConn is a hand-driven WebSocket client, for frames a well-behaved
// client library will not write (split UTF-8, lying lengths).
type RawConn struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

// RawDial upgrades a plain ws:// URL by hand, over a connection to
// 127.0.0.1, and requires 101. Its reads and writes must finish within
// 10 s (see SetDeadline); the connection is closed when the test ends.
func RawDial(t testing.TB, wsURL string) *RawConn {
	t.Helper()
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", u.Port()), handshakeTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", u.RequestURI(), u.Host)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw upgrade: want 101, got %d", resp.StatusCode)
	}
	return &RawConn{t: t, conn: conn, br: br}
}

// SetDeadline sets the connection's read and write deadline.
func (c *RawConn) SetDeadline(d time.Time) { _ = c.conn.SetDeadline(d) }

// WriteFrame writes one masked client frame; length, when >= 0, replaces
// the declared payload length.
func (c *RawConn) WriteFrame(fin bool, op byte, payload []byte, length int64) {
	c.t.Helper()
	c.Write(AppendFrame(nil, fin, op, payload, length))
}

// Write writes bytes as they are: several frames made with AppendFrame in
// one TCP write, say. It fails the test on an error, so call it from the
// test's goroutine; a writer goroutine uses TryWrite.
func (c *RawConn) Write(b []byte) {
	c.t.Helper()
	if err := c.TryWrite(b); err != nil {
		c.t.Fatalf("raw write: %v", err)
	}
}

// TryWrite writes bytes as they are and returns the error.
func (c *RawConn) TryWrite(b []byte) error {
	_, err := c.conn.Write(b)
	return err
}

// AppendFrame appends one masked client frame to b; length, when >= 0,
// replaces the declared payload length.
func AppendFrame(b []byte, fin bool, op byte, payload []byte, length int64) []byte {
	if length < 0 {
		length = int64(len(payload))
	}
	if fin {
		op |= 0x80
	}
	b = append(b, op)
	switch {
	case length < 126:
		b = append(b, 0x80|byte(length))
	case length <= 0xFFFF:
		b = append(b, 0x80|126, byte(length>>8), byte(length))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(length))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, mask[:]...)
	for i, x := range payload {
		b = append(b, x^mask[i%4])
	}
	return b
}

// ReadFrame reads one server frame (servers never mask).
func (c *RawConn) ReadFrame() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		if _, err = io.ReadFull(c.br, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err = io.ReadFull(c.br, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return h[0] & 0x0F, payload, err
}

// ExpectText skips to the next text frame containing want.
func (c *RawConn) ExpectText(want string) {
	c.t.Helper()
	for {
		op, p, err := c.ReadFrame()
		if err != nil {
			c.t.Fatalf("raw: waiting for %s: %v", want, err)
		}
		if op == OpClose {
			c.t.Fatalf("raw: waiting for %s, got close %v", want, p)
		}
		if op == OpText && strings.Contains(string(p), want) {
			return
		}
	}
}

// ExpectClose skips to the close frame and requires its code.
func (c *RawConn) ExpectClose(code int) {
	c.t.Helper()
	for {
		op, p, err := c.ReadFrame()
		if err != nil {
			c.t.Fatalf("raw: want close %d, connection ended: %v", code, err)
		}
		if op != OpClose {
			continue
		}
		if len(p) < 2 || int(binary.BigEndian.Uint16(p)) != code {
			c.t.Fatalf("raw: want close %d, got close frame %v", code, p)
		}
		return
	}
}
