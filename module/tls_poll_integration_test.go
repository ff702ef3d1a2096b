//go:build linux

package module_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// batchConn holds back what is written to it while batching is on, then
// sends it in one write: several TLS records then reach the server in one
// TCP segment, and crypto/tls reads them in one go.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      []byte
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batching {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *batchConn) batch() {
	c.mu.Lock()
	c.batching = true
	c.mu.Unlock()
}

func (c *batchConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batching = false
	_, err := c.Conn.Write(c.buf)
	c.buf = nil
	return err
}

// TestTLSConnectionsWaitInEpoll checks the TLS read path on Linux: idle wss
// connections hold no reader goroutine, and client frames are all read
// whether several TLS records arrive at once or one frame spans several
// records, which is where crypto/tls keeps data that epoll cannot see.
func TestTLSConnectionsWaitInEpoll(t *testing.T) {
	loadConfig(t, tlsConfig)
	tc := &tls.Config{RootCAs: internalRoots(t), ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	var bc *batchConn
	d := &websocket.Dialer{
		HandshakeTimeout: 5 * time.Second,
		WriteBufferSize:  1024, // a 3 KiB frame goes out as several TLS records
		NetDialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := loopbackDial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			bc = &batchConn{Conn: raw}
			c := tls.Client(bc, tc)
			if err := c.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return c, nil
		},
	}
	var idle []*wsClient
	waitFor(t, 10*time.Second, "the TLS site to accept a wss connection", func() bool {
		_, _, err := tryDial(tlsDialer(tc), "wss://localhost:9443/realtime/ws", nil)
		return err == nil
	})
	for i := 0; i < 5; i++ {
		c := dialWith(t, "wss://localhost:9443/realtime/ws", dialOpts{dialer: tlsDialer(tc)})
		c.welcome("default")
		idle = append(idle, c)
	}
	waitFor(t, 5*time.Second, "no reader goroutine for idle wss connections", func() bool {
		for _, g := range ourGoroutines() {
			if strings.Contains(g, "module.serveSession") {
				return false
			}
		}
		return true
	})

	first := uniq("tls-first")
	c := dialWith(t, "wss://localhost:9443/realtime/ws?channels="+first, dialOpts{dialer: d})
	c.welcome(first)
	bc.batch()
	chans := []string{uniq("tls-a"), uniq("tls-b"), uniq("tls-c")}
	for _, ch := range chans {
		c.send(map[string]any{"type": "realtime:subscribe", "channel": ch})
	}
	// One frame of about 3 KiB: three records of gorilla's 1 KiB writes.
	long := uniq("tls-long")
	c.send(map[string]any{"type": "realtime:subscribe", "channel": long, "pad": strings.Repeat("p", 3000)})
	if err := bc.flush(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		c.expectSubscribed(ch)
	}
	c.expectSubscribed(long)
	c.ping()
	for _, ic := range idle {
		ic.ping()
	}
}
