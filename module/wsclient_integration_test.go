package module_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// frame is any server text frame: a control frame or an event.
type frame struct {
	Type         string          `json:"type"`
	Channel      string          `json:"channel"`
	Cursor       string          `json:"cursor"`
	ConnectionID string          `json:"connection_id"`
	PingInterval *int            `json:"ping_interval"`
	Recovered    *bool           `json:"recovered"`
	Code         string          `json:"code"`
	Message      string          `json:"message"`
	Payload      json.RawMessage `json:"payload"`
	Timestamp    string          `json:"timestamp"`
	ID           string          `json:"id"`

	raw []byte
}

func (f frame) String() string { return string(f.raw) }

var wsDialer = &websocket.Dialer{
	NetDialContext:   loopbackDial,
	HandshakeTimeout: 5 * time.Second,
}

// tryDial opens a WebSocket; on a refused handshake it returns the
// response (with up to 1 KiB of its body) and ErrBadHandshake.
func tryDial(d *websocket.Dialer, url string, h http.Header) (*websocket.Conn, *response, error) {
	conn, resp, err := d.Dial(url, h)
	var r *response
	if resp != nil {
		r = &response{status: resp.StatusCode, proto: resp.ProtoMajor, header: resp.Header}
		if resp.Body != nil {
			r.body, _ = io.ReadAll(resp.Body)
		}
	}
	return conn, r, err
}

// wsClient is a test client: a goroutine reads every frame into a channel
// (answering protocol pings, as browsers do), so a test can wait for a
// frame with a timeout without breaking the connection.
type wsClient struct {
	t      *testing.T
	conn   *websocket.Conn
	resp   *response
	frames chan frame
	stop   chan struct{}
	done   chan struct{}
	err    error // why the reader stopped; read after done
	pings  atomic.Int32
	wmu    sync.Mutex
}

type dialOpts struct {
	dialer *websocket.Dialer
	header http.Header
	// deaf: count protocol pings and never answer them.
	deaf bool
}

// dial connects to path on the main site and requires the upgrade.
func dial(t *testing.T, path string, h http.Header) *wsClient {
	t.Helper()
	return dialWith(t, wsBase+path, dialOpts{header: h})
}

func dialWith(t *testing.T, url string, o dialOpts) *wsClient {
	t.Helper()
	d := o.dialer
	if d == nil {
		d = wsDialer
	}
	conn, r, err := tryDial(d, url, o.header)
	if err != nil {
		if r != nil {
			t.Fatalf("dial %s: %v: %s", url, err, r)
		}
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &wsClient{
		t:      t,
		conn:   conn,
		resp:   r,
		frames: make(chan frame, 4096),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if o.deaf {
		conn.SetPingHandler(func(string) error { c.pings.Add(1); return nil })
	} else {
		conn.SetPingHandler(func(data string) error {
			c.pings.Add(1)
			err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
			if errors.Is(err, websocket.ErrCloseSent) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return err
		})
	}
	go c.read()
	t.Cleanup(c.close)
	return c
}

func (c *wsClient) read() {
	defer close(c.done)
	for {
		mt, data, err := c.conn.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		f := frame{raw: data}
		if mt != websocket.TextMessage {
			f.Type = "<binary frame>"
		} else if err := json.Unmarshal(data, &f); err != nil {
			f.Type = "<not JSON>"
		}
		select {
		case c.frames <- f:
		case <-c.stop:
			return
		}
	}
}

// close ends the connection politely and waits for the reader.
func (c *wsClient) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	select {
	case <-c.done:
	case <-time.After(time.Second):
	}
	_ = c.conn.Close()
	<-c.done
}

// send writes v as a JSON text frame.
func (c *wsClient) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(websocket.TextMessage, b)
}

func (c *wsClient) sendRaw(mt int, b []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.conn.WriteMessage(mt, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame, failing the test after timeout.
func (c *wsClient) next(timeout time.Duration) frame {
	c.t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-c.done:
		// Frames read before the end are still in the channel.
		select {
		case f := <-c.frames:
			return f
		default:
		}
		c.t.Fatalf("connection ended while waiting for a frame: %v", c.err)
	case <-time.After(timeout):
		c.t.Fatalf("no frame within %v", timeout)
	}
	return frame{}
}

// expect returns the next frame and requires its type.
func (c *wsClient) expect(typ string) frame {
	c.t.Helper()
	f := c.next(5 * time.Second)
	if f.Type != typ {
		c.t.Fatalf("want a %s frame, got %s", typ, f)
	}
	return f
}

// expectSubscribed requires realtime:subscribed frames for channels, in order.
func (c *wsClient) expectSubscribed(channels ...string) {
	c.t.Helper()
	for _, ch := range channels {
		f := c.expect("realtime:subscribed")
		if f.Channel != ch {
			c.t.Fatalf("want realtime:subscribed for %q, got %s", ch, f)
		}
	}
}

// expectError requires a realtime:error with code (and channel, if given).
func (c *wsClient) expectError(code, channel string) frame {
	c.t.Helper()
	f := c.expect("realtime:error")
	if f.Code != code || (channel != "" && f.Channel != channel) {
		c.t.Fatalf("want realtime:error %s for channel %q, got %s", code, channel, f)
	}
	if f.Message == "" {
		c.t.Fatalf("realtime:error without a message: %s", f)
	}
	return f
}

// expectEvent requires the next frame to be event typ on channel.
func (c *wsClient) expectEvent(channel, typ string) frame {
	c.t.Helper()
	f := c.next(5 * time.Second)
	if f.Type != typ || f.Channel != channel {
		c.t.Fatalf("want event %s on %q, got %s", typ, channel, f)
	}
	if f.Cursor == "" {
		c.t.Fatalf("event without a cursor: %s", f)
	}
	return f
}

// welcome reads the welcome frame and the subscribed frames of channels.
func (c *wsClient) welcome(channels ...string) frame {
	c.t.Helper()
	w := c.expect("realtime:welcome")
	c.expectSubscribed(channels...)
	return w
}

// ping round-trips realtime:ping, proving the connection is open and
// everything sent before it has been read.
func (c *wsClient) ping() {
	c.t.Helper()
	c.send(map[string]string{"type": "realtime:ping"})
	c.expect("realtime:pong")
}

// expectClose waits for the server to end the connection with code.
func (c *wsClient) expectClose(code int) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.t.Fatalf("connection still open 5s after it should have closed with %d", code)
	}
	var ce *websocket.CloseError
	if !errors.As(c.err, &ce) {
		c.t.Fatalf("want close frame %d, connection ended with %v", code, c.err)
	}
	if ce.Code != code {
		c.t.Fatalf("want close code %d, got %d (%q)", code, ce.Code, ce.Text)
	}
}

// makeToken signs a subscriber token with the HS256 secret.
func makeToken(t *testing.T, secret string, channels []string, exp time.Time) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": "42", "exp": exp.Unix(), "channels": channels}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validToken(t *testing.T, channels ...string) string {
	return makeToken(t, tokenSecret, channels, time.Now().Add(time.Hour))
}

// tlsDialer dials wss:// as a browser does: a connection of its own whose
// ALPN offers only http/1.1.
func tlsDialer(cfg *tls.Config) *websocket.Dialer {
	c := cfg.Clone()
	c.NextProtos = []string{"http/1.1"}
	return &websocket.Dialer{NetDialContext: loopbackDial, HandshakeTimeout: 5 * time.Second, TLSClientConfig: c}
}
