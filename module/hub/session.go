package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// Transport is what a session needs from its connection. The Caddy layer
// implements it over a hijacked WebSocket connection.
type Transport interface {
	// WriteFrames writes whole WebSocket frames, in order, within the write
	// timeout. It is called by one goroutine at a time.
	WriteFrames(frames [][]byte) error
	// Close closes the connection at once. It may be called more than once.
	Close() error
}

// TryWriter is implemented by transports that can write without blocking
// (plain TCP on Linux). The hub then writes fan-out frames from a flusher
// that serves many sessions, and a session only gets a goroutine of its own
// while its connection would block.
type TryWriter interface {
	// TryWriteFrames writes as much of frames as the connection takes at
	// once, without waiting, and returns the number of bytes written.
	TryWriteFrames(frames [][]byte) (int, error)
}

// ConnectOptions describe a new session.
type ConnectOptions struct {
	IP       string   // client address, for max_connections_per_ip
	Channels []string // channels named at connect; nil joins the policy's defaults
	Since    string   // cursor to resume from; "" for live only
	Token    string   // token from the Authorization header or the cookie
}

// Session is one client connection of a hub. Its frames go through one
// bounded queue drained by a writer goroutine that exists only while there
// is something to write, so an idle session holds no goroutine of its own
// beyond its transport's reader.
type Session struct {
	hub    *Hub
	t      Transport
	policy *Policy
	ip     string
	id     string

	mu        sync.Mutex
	queue     [][]byte
	spare     [][]byte
	events    int  // event frames in queue, counted against policy.SendQueue
	writing   bool // a writer goroutine is draining queue
	closing   bool // a close frame is queued: nothing more will be
	space     chan struct{}
	done      chan struct{}
	flushed   chan struct{} // closed once the close frame was written (or failed)
	flushOnce sync.Once
	doneOnce  sync.Once
	pinger    *time.Timer

	// Guarded by hub.mu.
	subs map[string]*subscription // every subscription, live or catching up

	// Only touched by the goroutine that calls HandleText.
	grants   []*Grant
	tokenErr error // why the latest token was refused, if it was
}

// subscription is one channel of a session; while it catches up from
// history it is not yet among the channel's live subscribers.
type subscription struct {
	channel string
	live    bool // among the channel's subscribers in hub.channels
}

// controlSlack is how many control frames may queue beyond SendQueue events
// before a session that does not read counts as a slow consumer.
const controlSlack = 64

// idleQueueCap is the queue capacity an idle session may keep.
const idleQueueCap = 16

// maxStalls bounds the catch-up steps in a row that make no progress (1 ms
// apart) before the subscription gives up with recovered:false.
const maxStalls = 1000

// replayBatch is how many history events one Range call returns.
const replayBatch = 256

// Admit counts a new session against the policy's connection limits. Call
// it before upgrading the connection, so that a refusal can still be an
// HTTP answer; then Start the session, or Cancel it if the upgrade failed.
func (h *Hub) Admit(p *Policy, ip string) (*Session, error) {
	s := &Session{
		hub:     h,
		policy:  p,
		ip:      ip,
		id:      newSessionID(),
		space:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		flushed: make(chan struct{}),
		subs:    make(map[string]*subscription),
	}
	if err := h.admit(s, ip, p.MaxConnections, p.MaxConnectionsPerIP); err != nil {
		return nil, err
	}
	return s, nil
}

// Cancel releases an admitted session that never started.
func (s *Session) Cancel() {
	s.doneOnce.Do(func() {
		s.hub.remove(s)
		close(s.done)
	})
}

// Start attaches the session to its transport, queues the welcome frame and
// subscribes it to its channels. From then on the caller must call
// HandleText for each client text frame and Finish when the connection ends.
func (s *Session) Start(t Transport, o ConnectOptions) {
	h, p := s.hub, s.policy
	s.mu.Lock()
	s.t = t
	closing := s.closing
	s.mu.Unlock()
	if closing {
		// The hub closed between Admit and Start.
		_ = t.Close()
		return
	}
	if o.Token != "" {
		_ = s.addToken(o.Token)
	}
	h.mu.Lock()
	s.queueControl(controlFrame(welcomeFrame{
		Type:         "realtime:welcome",
		ConnectionID: s.id,
		Cursor:       h.head.String(),
		PingInterval: int(p.PingInterval / time.Second),
	}))
	h.mu.Unlock()
	channels := o.Channels
	if channels == nil {
		channels = p.DefaultChannels
	}
	s.subscribe(channels, o.Since, o.Since != "", nil)
	if p.PingInterval > 0 {
		s.mu.Lock()
		if !s.closing {
			s.pinger = time.AfterFunc(p.PingInterval, s.ping)
		}
		s.mu.Unlock()
	}
}

// Connect is Admit followed by Start.
func (h *Hub) Connect(t Transport, p *Policy, o ConnectOptions) (*Session, error) {
	s, err := h.Admit(p, o.IP)
	if err != nil {
		return nil, err
	}
	s.Start(t, o)
	return s, nil
}

func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ID returns the session's connection id.
func (s *Session) ID() string { return s.id }

// Done is closed when the session has finished.
func (s *Session) Done() <-chan struct{} { return s.done }

// HandleText handles one text frame from the client.
func (s *Session) HandleText(data []byte) {
	f, err := ParseClientFrame(data)
	if err != nil {
		s.sendError(CodeBadRequest, err.Error(), "")
		return
	}
	switch f.Type {
	case TypePing:
		s.queueControl(pongMessage)
	case TypeSubscribe:
		var tokenErr error
		if f.Token != "" {
			tokenErr = s.addToken(f.Token)
		}
		s.subscribe(f.Channels, f.Since, f.HasSince, tokenErr)
	case TypeUnsubscribe:
		s.unsubscribe(f.Channels)
	}
}

// addToken verifies a token and keeps its grant.
func (s *Session) addToken(token string) error {
	if s.policy.Tokens == nil {
		s.tokenErr = ErrTokenInvalid
		return s.tokenErr
	}
	g, err := s.policy.Tokens.Verify(token)
	if err != nil {
		s.tokenErr = err
		return err
	}
	// The latest token's verdict is the one errors report.
	s.tokenErr = nil
	s.grants = append(s.grants, g)
	return nil
}

// access returns "" when the session may subscribe to channel, else the
// error code to answer with.
func (s *Session) access(channel string, tokenErr error) (code, msg string) {
	if !s.policy.IsPrivate(channel) {
		return "", ""
	}
	if s.policy.Tokens == nil {
		return CodeForbidden, "private channels are not enabled"
	}
	now := time.Now()
	for _, g := range s.grants {
		if g.Allows(channel, now) {
			return "", ""
		}
	}
	if tokenErr == nil {
		tokenErr = s.tokenErr
	}
	if tokenErr != nil {
		return TokenErrorCode(tokenErr), tokenErr.Error()
	}
	return CodeForbidden, "no token grants this channel"
}

// subscribe checks and registers channels. Without since they join live at
// the current head; with since they first catch up from history.
func (s *Session) subscribe(channels []string, since string, resumed bool, tokenErr error) {
	h := s.hub
	var subs []*subscription
	for _, name := range channels {
		if !ValidChannel(name) {
			s.sendError(CodeBadRequest, "invalid channel name: "+channelRule, truncate(name, 128))
			continue
		}
		if code, msg := s.access(name, tokenErr); code != "" {
			s.sendError(code, msg, name)
			continue
		}
		h.mu.Lock()
		_, dup := s.subs[name]
		full := !dup && s.policy.MaxSubscriptions > 0 && len(s.subs) >= s.policy.MaxSubscriptions
		if !dup && !full {
			sub := &subscription{channel: name}
			s.subs[name] = sub
			subs = append(subs, sub)
			h.stats.Subscriptions.Add(1)
		}
		h.mu.Unlock()
		switch {
		case dup:
			// Already subscribed: acknowledge, it keeps receiving.
			s.queueControl(controlFrame(subscribedFrame{Type: "realtime:subscribed", Channel: name, Recovered: resumed}))
		case full:
			s.sendError(CodeTooManySubscriptions, "subscription limit reached", name)
		}
	}
	if len(subs) == 0 {
		return
	}
	from := h.Head()
	if resumed {
		c, err := ParseCursor(since)
		if err != nil {
			s.goLive(subs, false, true)
			return
		}
		from = c
	}
	s.catchUp(subs, from, resumed)
}

// catchUp replays history after from for subs, then makes them live with no
// gap and no duplicate: a subscription joins the live set only under the
// hub lock, at the moment the hub's head is where the replay ended. The
// first step runs on the caller's goroutine; if there is history to send,
// the rest runs on its own goroutine, flow-controlled by the send queue.
func (s *Session) catchUp(subs []*subscription, from Cursor, resumed bool) {
	h := s.hub
	match := func(channel string) bool {
		for _, sub := range subs {
			if sub.channel == channel {
				return true
			}
		}
		return false
	}
	pos := from
	first := true
	stalls := 0
	step := func() (done bool) {
		upTo := h.Head()
		events, next, complete, err := h.log.Range(context.Background(), pos, upTo, replayBatch, match)
		if complete && err == nil && len(events) == 0 && next == pos && next != upTo {
			// The log made no progress towards the head: give it a moment,
			// but never spin forever on a log that cannot catch up.
			if stalls++; stalls > maxStalls {
				complete = false
			} else {
				time.Sleep(time.Millisecond)
			}
		}
		if err != nil || !complete {
			// The log cannot prove the replay complete: from the start
			// (old or foreign cursor) or because history moved past it.
			s.goLive(subs, false, first || resumed)
			return true
		}
		if first {
			first = false
			for _, sub := range subs {
				s.queueControl(controlFrame(subscribedFrame{Type: "realtime:subscribed", Channel: sub.channel, Recovered: resumed}))
			}
		}
		for _, e := range events {
			if !s.queueReplay(e.frame) {
				return true
			}
		}
		h.stats.Replayed.Add(int64(len(events)))
		pos = next
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.head != pos {
			return false
		}
		for _, sub := range subs {
			if s.subs[sub.channel] == sub {
				h.subscribeLocked(s, sub.channel)
			}
		}
		return true
	}
	if step() {
		return
	}
	go func() {
		for !step() {
		}
	}()
}

// goLive makes subs live at the current head and announces them; recovered
// is what their realtime:subscribed frames say. failed counts a recovery
// the client asked for and did not get.
func (s *Session) goLive(subs []*subscription, recovered, failed bool) {
	h := s.hub
	if failed {
		h.stats.FailedRecoveries.Add(1)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sub := range subs {
		if s.subs[sub.channel] != sub {
			continue
		}
		h.subscribeLocked(s, sub.channel)
		s.queueControl(controlFrame(subscribedFrame{Type: "realtime:subscribed", Channel: sub.channel, Recovered: recovered}))
	}
}

func (s *Session) unsubscribe(channels []string) {
	h := s.hub
	for _, name := range channels {
		h.mu.Lock()
		if _, ok := s.subs[name]; ok {
			delete(s.subs, name)
			h.unsubscribeLocked(s, name)
			h.stats.Subscriptions.Add(-1)
		}
		h.mu.Unlock()
		if ValidChannel(name) {
			s.queueControl(controlFrame(unsubscribedFrame{Type: "realtime:unsubscribed", Channel: name}))
		}
	}
}

func (s *Session) sendError(code, msg, channel string) {
	s.queueControl(controlFrame(errorFrame{Type: "realtime:error", Code: code, Message: msg, Channel: channel}))
}

// queueEvent queues a live event frame. It never blocks: a session whose
// queue is full is closed with 1013 and resumes from its cursor. It
// reports whether the session needs a flush (nobody is writing for it yet);
// the hub's flusher then writes it, after the whole fan-out. urgent says
// the queue is half full, so the flusher must not wait out its coalescing
// window.
func (s *Session) queueEvent(frame []byte) (flush, urgent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false, false
	}
	if s.events >= s.policy.SendQueue {
		s.overflowLocked()
		return false, false
	}
	s.events++
	s.queue = append(s.queue, frame)
	urgent = s.events > s.policy.SendQueue/2
	if s.writing || s.t == nil {
		return false, urgent
	}
	s.writing = true
	return true, urgent
}

// queueControl queues a control frame (welcome, acknowledgements, errors,
// pongs, pings). They do not count as events, but a client that lets them
// pile up is as slow as one that lets events pile up.
func (s *Session) queueControl(frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	if len(s.queue) >= s.policy.SendQueue+controlSlack {
		s.overflowLocked()
		return
	}
	s.pushLocked(frame)
}

// queueReplay queues a history event, waiting while the queue is more than
// half full so that a resume never overflows it. It returns false when the
// session is closing.
func (s *Session) queueReplay(frame []byte) bool {
	limit := max(s.policy.SendQueue/2, 1)
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return false
		}
		if s.events < limit {
			s.events++
			s.pushLocked(frame)
			s.mu.Unlock()
			return true
		}
		s.mu.Unlock()
		select {
		case <-s.space:
		case <-s.done:
			return false
		}
	}
}

// overflowLocked drops what is queued and closes with 1013. s.mu is held.
func (s *Session) overflowLocked() {
	s.hub.stats.SlowDisconnects.Add(1)
	clear(s.queue)
	s.queue = s.queue[:0]
	s.events = 0
	s.closeLocked(CloseTryAgainLater, "send queue overflow; resume with your last cursor")
}

func (s *Session) pushLocked(frame []byte) {
	s.queue = append(s.queue, frame)
	if !s.writing && s.t != nil {
		s.writing = true
		go s.writeLoop(nil, false)
	}
}

// takeLocked takes the queued frames as one batch. s.mu is held.
func (s *Session) takeLocked() (batch [][]byte, last bool) {
	batch = s.queue
	s.queue = s.spare[:0]
	s.spare = nil
	s.events = 0
	return batch, s.closing // the close frame is the last frame ever queued
}

// idleLocked ends a writing turn once the queue is empty. s.mu is held.
func (s *Session) idleLocked() {
	s.writing = false
	// An idle session keeps small queues for its next burst, but gives
	// back what a large burst grew.
	if cap(s.queue) > idleQueueCap {
		s.queue = nil
	}
	if cap(s.spare) > idleQueueCap {
		s.spare = nil
	}
}

// written recycles a batch and reports whether writing goes on.
func (s *Session) written(batch [][]byte, last bool, err error) bool {
	clear(batch)
	s.mu.Lock()
	s.spare = batch[:0]
	s.mu.Unlock()
	select {
	case s.space <- struct{}{}:
	default:
	}
	if err == nil && !last {
		return true
	}
	s.mu.Lock()
	// Nothing more can be written: drop the rest, and let waiters go.
	s.closing = true
	clear(s.queue)
	s.queue, s.spare, s.writing = nil, nil, false
	s.mu.Unlock()
	_ = s.t.Close()
	s.flushOnce.Do(func() { close(s.flushed) })
	return false
}

// writeLoop drains the queue in batches until it is empty, then exits.
// pending is a batch (or its unwritten rest) to write first.
func (s *Session) writeLoop(pending [][]byte, last bool) {
	for {
		if pending == nil {
			s.mu.Lock()
			if len(s.queue) == 0 {
				s.idleLocked()
				s.mu.Unlock()
				return
			}
			pending, last = s.takeLocked()
			s.mu.Unlock()
		}
		err := s.t.WriteFrames(pending)
		if !s.written(pending, last, err) {
			return
		}
		pending = nil
	}
}

// flush writes what the session has queued without blocking, when its
// transport allows; whatever the connection does not take at once is
// handed to a writer goroutine of the session's own.
func (s *Session) flush() {
	tw, ok := s.t.(TryWriter)
	if !ok {
		go s.writeLoop(nil, false)
		return
	}
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.idleLocked()
			s.mu.Unlock()
			return
		}
		batch, last := s.takeLocked()
		s.mu.Unlock()
		n, err := tw.TryWriteFrames(batch)
		if err == nil && n < framesLen(batch) {
			go s.writeLoop(unwritten(batch, n), last)
			return
		}
		if !s.written(batch, last, err) {
			return
		}
	}
}

func framesLen(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

// unwritten returns what is left of frames after n bytes were written.
func unwritten(frames [][]byte, n int) [][]byte {
	for i, f := range frames {
		if n < len(f) {
			rest := append([][]byte{f[n:]}, frames[i+1:]...)
			return rest
		}
		n -= len(f)
	}
	return nil
}

// CloseWith queues a close frame after what is already queued; the
// connection is closed once it is written or the write times out.
func (s *Session) CloseWith(code int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked(code, reason)
}

func (s *Session) closeLocked(code int, reason string) {
	if s.closing {
		return
	}
	s.closing = true
	if s.pinger != nil {
		s.pinger.Stop()
	}
	s.pushLocked(CloseFrame(code, reason))
}

// QueuePong answers a protocol ping through the ordered queue, so a pong
// never lands in the middle of another frame.
func (s *Session) QueuePong(data []byte) { s.queueControl(PongFrame(data)) }

func (s *Session) ping() {
	s.queueControl(pingFrame)
	s.mu.Lock()
	if !s.closing && s.pinger != nil {
		s.pinger.Reset(s.policy.PingInterval)
	}
	s.mu.Unlock()
}

// Flushed is closed once the session's close frame has been written, or
// could not be. A transport waits for it before finishing, so that a close
// frame is not cut off by closing the socket under it.
func (s *Session) Flushed() <-chan struct{} { return s.flushed }

// Closing reports whether a close frame has been queued.
func (s *Session) Closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// abort closes the connection without a close frame; for sessions that
// did not finish in time.
func (s *Session) abort() {
	s.mu.Lock()
	t := s.t
	s.mu.Unlock()
	if t != nil {
		_ = t.Close()
	}
}

// Finish ends the session: the transport calls it when its reader stops,
// whatever the reason. It is safe to call more than once.
func (s *Session) Finish() {
	s.doneOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		if s.pinger != nil {
			s.pinger.Stop()
		}
		t := s.t
		s.mu.Unlock()
		if t != nil {
			_ = t.Close()
		}
		s.hub.remove(s)
		close(s.done)
	})
}
