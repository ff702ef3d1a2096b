//go:build linux

package integration

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
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
// connections hold no goroutine, and client frames are all read
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
			raw, err := rtclient.LoopbackDial(ctx, network, addr)
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
	waitFor(t, 10*time.Second, "the TLS site to accept a wss connection", func() bool {
		c, _, err := rtclient.TryDial(t, wssBase+"/realtime/ws", rtclient.Options{TLS: tc})
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	// Idle wss connections wait in epoll and hold no goroutine: five more
	// of them leave the number of the module's goroutines where one left
	// it, while a reader goroutine per connection would add five for good.
	idle := []*rtclient.Client{rtclient.Dial(t, wssBase+"/realtime/ws", rtclient.Options{TLS: tc})}
	idle[0].Welcome("default")
	base := fewestGoroutines(300 * time.Millisecond)
	for i := 0; i < 5; i++ {
		c := rtclient.Dial(t, wssBase+"/realtime/ws", rtclient.Options{TLS: tc})
		c.Welcome("default")
		idle = append(idle, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for n := len(ourGoroutines()); n > base; n = len(ourGoroutines()) {
		if time.Now().After(deadline) {
			t.Fatalf("6 idle wss connections hold %d goroutines of the module, 1 held %d: a goroutine per idle connection?\n%s",
				n, base, strings.Join(ourGoroutines(), "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}

	first := uniq("tls-first")
	c := rtclient.Dial(t, wssBase+"/realtime/ws?channels="+first, rtclient.Options{Dialer: d})
	c.Welcome(first)
	bc.batch()
	chans := []string{uniq("tls-a"), uniq("tls-b"), uniq("tls-c")}
	for _, ch := range chans {
		c.Send(map[string]any{"type": "realtime:subscribe", "channel": ch})
	}
	// One frame of about 3 KiB: three records of gorilla's 1 KiB writes.
	long := uniq("tls-long")
	c.Send(map[string]any{"type": "realtime:subscribe", "channel": long, "pad": strings.Repeat("p", 3000)})
	if err := bc.flush(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		c.ExpectSubscribed(ch)
	}
	c.ExpectSubscribed(long)
	c.Ping()
	for _, ic := range idle {
		ic.Ping()
	}
}
