package redis

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/wprealtime/caddy-realtime/test/testenv"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// testAddr is the Redis the ordinary tests use.
func testAddr() string {
	if a := os.Getenv("REALTIME_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// strict reports whether a missing Redis fails the tests instead of
// skipping them (CI sets it).

// needRedis skips (or, strict, fails) the test when the test Redis does not
// answer.
func needRedis(t testing.TB) {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: testAddr(), DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := c.Ping(ctx).Err()
	testenv.Require(t, err == nil, fmt.Sprintf("Redis at %s (%v)", testAddr(), err),
		`apt-get install redis-server && redis-server --daemonize yes --save "" (or set REALTIME_TEST_REDIS=host:port)`)
}

// uniquePrefix returns a key prefix of its own for a test and deletes its
// keys when the test ends.
func uniquePrefix(t testing.TB, addr string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "rt-test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() { deleteKeys(addr, prefix) })
	return prefix
}

func deleteKeys(addr, prefix string) {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 500 * time.Millisecond})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		c.Del(ctx, keys[:n]...)
		keys = keys[n:]
	}
}

// newTestLog makes a log on addr; the test closes it at the end.
func newTestLog(t testing.TB, addr, prefix string, size int, ttl time.Duration, tweak ...func(*Config)) *Log {
	t.Helper()
	c := Config{
		Client:     &goredis.Options{Addr: addr},
		Prefix:     prefix,
		Hub:        "test",
		Size:       size,
		TTL:        ttl,
		Block:      500 * time.Millisecond,
		BackoffMin: 20 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond,
	}
	for _, f := range tweak {
		f(&c)
	}
	l, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// recorder collects what a log delivers.
type recorder struct {
	mu     sync.Mutex
	head   hub.Cursor
	events []*hub.Event
	heads  int
}

func (r *recorder) deliver(head hub.Cursor, events []*hub.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.head = head
	r.heads++
	r.events = append(r.events, events...)
}

func (r *recorder) snapshot() (hub.Cursor, []*hub.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.head, append([]*hub.Event(nil), r.events...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func startRecorder(t testing.TB, l *Log) *recorder {
	t.Helper()
	r := &recorder{}
	if err := l.Start(r.deliver); err != nil {
		t.Fatal(err)
	}
	return r
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pub(channel, typ, id string) *hub.Publication {
	return &hub.Publication{Channels: []string{channel}, Type: typ, Payload: json.RawMessage(`{"t":"` + typ + `"}`), ID: id}
}

func appendOne(t testing.TB, l *Log, p *hub.Publication) hub.Appended {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := l.Append(ctx, []*hub.Publication{p})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return out[0]
}

func types(events []*hub.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

// fakeConn is a hub.Transport that decodes the frames it is given.
type fakeConn struct {
	mu     sync.Mutex
	msgs   []map[string]any
	code   int
	closed bool
	frames int64
}

func (c *fakeConn) Write(frames [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range frames {
		c.frames++
		op, payload := decodeFrame(f)
		switch op {
		case 1:
			var m map[string]any
			if json.Unmarshal(payload, &m) == nil {
				c.msgs = append(c.msgs, m)
			}
		case 8:
			if len(payload) >= 2 {
				c.code = int(binary.BigEndian.Uint16(payload))
			}
		}
	}
	return nil
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

// decodeFrame reads an unmasked server frame.
func decodeFrame(f []byte) (op byte, payload []byte) {
	op = f[0] & 0x0f
	n := int(f[1] & 0x7f)
	i := 2
	switch n {
	case 126:
		n = int(binary.BigEndian.Uint16(f[2:]))
		i = 4
	case 127:
		n = int(binary.BigEndian.Uint64(f[2:]))
		i = 10
	}
	return op, f[i : i+n]
}

func (c *fakeConn) all() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.msgs...)
}

// events returns the event frames (not control frames).
func (c *fakeConn) events() []map[string]any {
	var out []map[string]any
	for _, m := range c.all() {
		if t, _ := m["type"].(string); !strings.HasPrefix(t, "realtime:") {
			out = append(out, m)
		}
	}
	return out
}

func (c *fakeConn) find(typ string) map[string]any {
	for _, m := range c.all() {
		if m["type"] == typ {
			return m
		}
	}
	return nil
}

func (c *fakeConn) closeCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code
}

func eventTypes(ms []map[string]any) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i], _ = m["type"].(string)
	}
	return out
}

// proxy is a TCP proxy to Redis that a test can cut, to play a network
// partition between one node and Redis.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		u, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// setCut cuts (closing every connection and refusing new ones) or restores
// the link.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			_ = c.Close()
		}
		clear(p.conns)
	}
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.setCut(true)
	p.wg.Wait()
}

// startServer starts a redis-server of the test's own (port 0: a spare one).
func startServer(t testing.TB, port int) *testenv.RedisServer {
	return testenv.StartRedisServer(t, port)
}

// blackHole returns the address of a listener that accepts connections and
// never answers: a Redis behind a dead network path.
func blackHole(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}
