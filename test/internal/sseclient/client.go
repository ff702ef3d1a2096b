// Package sseclient is the Server-Sent Events client of the Go test suites
// that read realtime_ws as an event stream: it opens a stream with net/http
// (HTTP/1.1 or HTTP/2), parses it the way a browser's EventSource does
// (lines ending in CR, LF or CRLF; data lines joined with LF; comments
// ignored, but counted; an event dispatched at a blank line when it has
// data), and queues each event with its id, name and the protocol message
// its data carries. Helpers that fail do so on the test that opened the
// stream.
package sseclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprealtime/caddy-realtime/test/internal/rtclient"
)

// Message is one event of a stream.
type Message struct {
	ID    string // the id: field; "" when the event set none (see HasID)
	HasID bool
	Event string // the event: field; "" for an unnamed event (EventSource's "message")
	Retry int    // the retry: field in milliseconds; -1 when none
	Data  string
	// Frame is the protocol message the data carries (its Type is
	// rtclient.TypeNotJSON when the data is not JSON).
	Frame rtclient.Frame
}

func (m Message) String() string {
	var b strings.Builder
	if m.HasID {
		fmt.Fprintf(&b, "id: %s | ", m.ID)
	}
	if m.Event != "" {
		fmt.Fprintf(&b, "event: %s | ", m.Event)
	}
	b.WriteString(m.Data)
	return b.String()
}

// Options change how a stream is opened.
type Options struct {
	// Header is sent with the request (Accept: text/event-stream is
	// always set).
	Header http.Header
	// Client replaces the default client (HTTP/1.1 over loopback); use it
	// for HTTP/2.
	Client *http.Client
	// RcvBuf sets SO_RCVBUF of the client's socket (default client only).
	RcvBuf int
	// Manual starts no reader: call Start once the test wants to read.
	Manual bool
}

// Stream is one open event stream.
type Stream struct {
	t    testing.TB
	url  string
	resp *http.Response

	mu       sync.Mutex
	queue    []Message
	all      []Message // every message read, also those taken
	lastID   string
	comments int
	err      error         // why the reader stopped
	more     chan struct{} // a token after each message queued
	done     chan struct{} // closed when the reader has stopped
	started  bool
	cancel   context.CancelFunc
}

// Open opens url as an event stream and fails the test unless the answer
// is 200 with Content-Type text/event-stream. The stream is closed when the
// test ends.
func Open(t testing.TB, url string, o Options) *Stream {
	t.Helper()
	s, r, err := TryOpen(t, url, o)
	if err != nil {
		t.Fatalf("open %s: %v (answer %v)", url, err, r)
	}
	return s
}

// TryOpen opens url as an event stream; a refusal returns the answer read
// in full and an error.
func TryOpen(t testing.TB, url string, o Options) (*Stream, *rtclient.Response, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	for k, v := range o.Header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	client := o.Client
	if client == nil {
		client = newClient(o.RcvBuf)
	}
	// The answer's headers come at once; only they are bounded.
	timer := time.AfterFunc(10*time.Second, cancel)
	resp, err := client.Do(req)
	timer.Stop()
	if err != nil {
		cancel()
		return nil, nil, err
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || mt != "text/event-stream" {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cancel()
		r := &rtclient.Response{Status: resp.StatusCode, Proto: resp.ProtoMajor, Header: resp.Header, Body: body}
		return nil, r, fmt.Errorf("not an event stream: %s", r)
	}
	s := &Stream{t: t, url: url, resp: resp, more: make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel}
	t.Cleanup(s.Close)
	if !o.Manual {
		s.Start()
	}
	return s, nil, nil
}

// newClient returns an HTTP/1.1 client whose connections go to loopback
// and are never reused: a stream is one connection.
func newClient(rcvBuf int) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if rcvBuf > 0 {
		d.Control = rcvBufControl(rcvBuf)
	}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}}
}

// Response is the stream's HTTP answer (its body is the stream).
func (s *Stream) Response() *http.Response { return s.resp }

// Start starts the reader of a Manual stream.
func (s *Stream) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	go s.read()
}

// read parses the stream until it ends.
func (s *Stream) read() {
	br := bufio.NewReader(s.resp.Body)
	var data []string
	cur := Message{Retry: -1}
	hasData := false
	var err error
	for {
		var line string
		line, err = readLine(br)
		if err != nil {
			break
		}
		if line == "" {
			if hasData {
				cur.Data = strings.Join(data, "\n")
				s.push(cur)
			}
			cur, data, hasData = Message{Retry: -1}, nil, false
			continue
		}
		if line[0] == ':' {
			s.mu.Lock()
			s.comments++
			s.mu.Unlock()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			cur.ID, cur.HasID = value, true
			s.mu.Lock()
			s.lastID = value // EventSource keeps it at the blank line, data or not
			s.mu.Unlock()
		case "event":
			cur.Event = value
		case "data":
			data, hasData = append(data, value), true
		case "retry":
			if n, perr := strconv.Atoi(value); perr == nil {
				cur.Retry = n
			}
		}
	}
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.done)
}

// readLine reads a line ending in LF, CRLF or CR.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			return "", err
		}
		switch c {
		case '\n':
			return string(b), nil
		case '\r':
			if next, err := br.Peek(1); err == nil && next[0] == '\n' {
				_, _ = br.ReadByte()
			}
			return string(b), nil
		}
		b = append(b, c)
	}
}

func (s *Stream) push(m Message) {
	if err := json.Unmarshal([]byte(m.Data), &m.Frame); err != nil {
		m.Frame = rtclient.Frame{Type: rtclient.TypeNotJSON}
	}
	m.Frame.Raw = []byte(m.Data)
	s.mu.Lock()
	s.queue = append(s.queue, m)
	s.all = append(s.all, m)
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// Close ends the stream from the client's side.
func (s *Stream) Close() {
	s.cancel()
	s.resp.Body.Close()
}

// Done is closed when the stream has ended and everything in it is queued.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err is why the stream ended (io.EOF for a clean end); nil while open.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// LastID is the id EventSource would send as Last-Event-ID.
func (s *Stream) LastID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastID
}

// Comments is how many comment lines (keep-alives) were read.
func (s *Stream) Comments() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.comments
}

// All returns every message read so far, taken or not.
func (s *Stream) All() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.all...)
}

func (s *Stream) take() (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return Message{}, false
	}
	m := s.queue[0]
	s.queue = s.queue[1:]
	return m, true
}

// TryNext takes the oldest queued message, waiting up to timeout; it
// returns an error when none comes or the stream ends first.
func (s *Stream) TryNext(timeout time.Duration) (Message, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		if m, ok := s.take(); ok {
			return m, nil
		}
		select {
		case <-s.more:
		case <-s.done:
			if m, ok := s.take(); ok {
				return m, nil
			}
			return Message{}, fmt.Errorf("stream ended: %w", s.Err())
		case <-timer.C:
			return Message{}, errTimeout
		}
	}
}

var errTimeout = errors.New("no message in time")

// IsTimeout reports whether TryNext's error is a timeout.
func IsTimeout(err error) bool { return errors.Is(err, errTimeout) }

// Next is TryNext that fails the test.
func (s *Stream) Next(timeout time.Duration) Message {
	s.t.Helper()
	m, err := s.TryNext(timeout)
	if err != nil {
		s.t.Fatalf("%s: %v", s.url, err)
	}
	return m
}

// expectTimeout is how long the Expect helpers wait.
const expectTimeout = 5 * time.Second

// Expect takes the next message and requires it to be the control message
// named name (event: name, with the same type in its data).
func (s *Stream) Expect(name string) Message {
	s.t.Helper()
	m := s.Next(expectTimeout)
	if m.Event != name || m.Frame.Type != name {
		s.t.Fatalf("%s: want event %s, got %s", s.url, name, m)
	}
	return m
}

// Welcome expects realtime:welcome, then realtime:subscribed for channels
// in order.
func (s *Stream) Welcome(channels ...string) Message {
	s.t.Helper()
	w := s.Expect("realtime:welcome")
	for _, ch := range channels {
		if m := s.Expect("realtime:subscribed"); m.Frame.Channel != ch {
			s.t.Fatalf("%s: want realtime:subscribed for %s, got %s", s.url, ch, m)
		}
	}
	return w
}

// ExpectEvent takes the next message and requires an application event of
// type typ on channel: unnamed, with its cursor as id.
func (s *Stream) ExpectEvent(channel, typ string) Message {
	s.t.Helper()
	m := s.Next(expectTimeout)
	if m.Event != "" || m.Frame.Type != typ || m.Frame.Channel != channel {
		s.t.Fatalf("%s: want an unnamed %s event on %s, got %s", s.url, typ, channel, m)
	}
	if !m.HasID || m.ID != m.Frame.Cursor || m.ID == "" {
		s.t.Fatalf("%s: event id %q is not its cursor %q", s.url, m.ID, m.Frame.Cursor)
	}
	return m
}

// ExpectEnd requires the stream to end within timeout, whatever is still
// queued, and returns the messages that were.
func (s *Stream) ExpectEnd(timeout time.Duration) []Message {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.t.Fatalf("%s: stream still open after %v", s.url, timeout)
	}
	var rest []Message
	for {
		m, ok := s.take()
		if !ok {
			return rest
		}
		rest = append(rest, m)
	}
}
