package hub

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Hub fans events out to the sessions subscribed to their channels. It owns
// its sessions, so they outlive any one transport configuration.
type Hub struct {
	name   string
	log    Log
	logger *zap.Logger
	stats  Stats

	mu       sync.Mutex
	head     Cursor // last event delivered to live subscribers
	channels map[string]*channel
	sessions map[*Session]struct{}
	perIP    map[string]int
	closed   bool
	ready    []*Session // sessions the flusher must write for
	flushing bool       // a flusher goroutine is running

	lastFlush time.Time     // when the flusher last began writing
	urgent    chan struct{} // cuts the flusher's coalescing wait short
}

// channel is the set of live subscribers of one channel, as a slice because
// fan-out iterates it far more often than it changes.
type channel struct {
	subs  []*Session
	index map[*Session]int
}

// New makes a hub over log and starts the log's delivery.
func New(name string, log Log, logger *zap.Logger) (*Hub, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	h := &Hub{
		name:     name,
		log:      log,
		logger:   logger,
		channels: make(map[string]*channel),
		sessions: make(map[*Session]struct{}),
		perIP:    make(map[string]int),
		urgent:   make(chan struct{}, 1),
	}
	if head, err := log.Head(context.Background()); err == nil {
		h.head = head
	}
	if g, ok := log.(GapReporter); ok {
		g.OnGap(h.resync)
	}
	if err := log.Start(h.deliver); err != nil {
		return nil, err
	}
	return h, nil
}

// Name returns the hub's name.
func (h *Hub) Name() string { return h.name }

// Stats returns the hub's counters.
func (h *Hub) Stats() *Stats { return &h.stats }

// Log returns the hub's log.
func (h *Hub) Log() Log { return h.log }

// Head returns the cursor of the last event delivered on this node.
func (h *Hub) Head() Cursor {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.head
}

// SetRetention changes the history limits in place.
func (h *Hub) SetRetention(size int, ttl time.Duration) { h.log.SetRetention(size, ttl) }

// Publish accepts publications into the log. Live delivery follows from the
// log; an error means nothing was accepted and the publisher must retry.
func (h *Hub) Publish(ctx context.Context, pubs []*Publication) ([]Appended, error) {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	out, err := h.log.Append(ctx, pubs)
	if err != nil {
		return nil, err
	}
	for _, a := range out {
		if a.Duplicate {
			h.stats.Duplicates.Add(1)
		} else {
			h.stats.Published.Add(int64(len(a.Cursors)))
		}
	}
	return out, nil
}

// deliver is the log's delivery callback: it queues each event to the live
// subscribers of its channel without ever blocking on one of them, then
// lets the flusher write. Sessions that were already waiting for a write
// just get the frame appended, so a busy channel coalesces frames into
// fewer, larger writes by itself.
func (h *Hub) deliver(head Cursor, events []*Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n int64
	wake := false
	for _, e := range events {
		ch := h.channels[e.Channel]
		if ch == nil {
			continue
		}
		for _, s := range ch.subs {
			flush, urgent := s.queueEvent(e.frame)
			if flush {
				h.ready = append(h.ready, s)
			}
			wake = wake || urgent
		}
		n += int64(len(ch.subs))
	}
	h.head = head
	h.stats.Deliveries.Add(n)
	if len(h.ready) > 0 && !h.flushing {
		h.flushing = true
		go h.flushLoop()
	}
	if wake {
		select {
		case h.urgent <- struct{}{}:
		default:
		}
	}
}

// flushChunk is how many sessions one flusher goroutine writes for in a
// row; a large fan-out is split over the processors.
const flushChunk = 512

// coalesceWindow is the least time between two flushes of a busy hub. The
// first event after a quiet spell is written at once; while events keep
// coming, the flusher waits out the rest of the window, so each connection
// gets the window's events in one write instead of one write (a syscall of
// a few microseconds) per event. A session whose queue gets half full cuts
// the wait short, so coalescing never causes a 1013.
const coalesceWindow = time.Millisecond

// flushLoop writes for the sessions that deliveries made ready, until there
// are none; it exists only while there is fan-out to write.
func (h *Hub) flushLoop() {
	var batch []*Session
	var timer *time.Timer
	for {
		h.mu.Lock()
		if len(h.ready) == 0 {
			h.flushing = false
			if cap(h.ready) > 4*flushChunk {
				h.ready = nil
			}
			h.mu.Unlock()
			return
		}
		if wait := coalesceWindow - time.Since(h.lastFlush); wait > 0 {
			h.mu.Unlock()
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-h.urgent:
				timer.Stop()
			}
			h.mu.Lock()
		}
		h.lastFlush = time.Now()
		batch, h.ready = h.ready, batch[:0]
		h.mu.Unlock()
		flushAll(batch)
		clear(batch)
	}
}

// flushAll flushes sessions, over up to GOMAXPROCS goroutines.
func flushAll(sessions []*Session) {
	workers := min(runtime.GOMAXPROCS(0), (len(sessions)+flushChunk-1)/flushChunk)
	if workers <= 1 {
		for _, s := range sessions {
			s.flush()
		}
		return
	}
	var wg sync.WaitGroup
	per := (len(sessions) + workers - 1) / workers
	for i := 0; i < len(sessions); i += per {
		part := sessions[i:min(i+per, len(sessions))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, s := range part {
				s.flush()
			}
		}()
	}
	wg.Wait()
}

// admit counts a new session against the limits (0 means unlimited).
func (h *Hub) admit(s *Session, ip string, maxConns, maxPerIP int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if maxConns > 0 && len(h.sessions) >= maxConns {
		return ErrTooManyConnections
	}
	if maxPerIP > 0 && ip != "" && h.perIP[ip] >= maxPerIP {
		return ErrTooManyConnectionsPerIP
	}
	h.sessions[s] = struct{}{}
	if ip != "" {
		h.perIP[ip]++
	}
	h.stats.Connections.Add(1)
	return nil
}

// remove forgets a finished session and its subscriptions.
func (h *Hub) remove(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.sessions[s]; !ok {
		return
	}
	delete(h.sessions, s)
	if s.ip != "" {
		if h.perIP[s.ip] <= 1 {
			delete(h.perIP, s.ip)
		} else {
			h.perIP[s.ip]--
		}
	}
	for name, sub := range s.subs {
		if sub.live {
			h.unsubscribeLocked(s, name)
		}
	}
	h.stats.Subscriptions.Add(-int64(len(s.subs)))
	clear(s.subs)
	h.stats.Connections.Add(-1)
}

// subscribeLocked adds s to a channel's live subscribers. h.mu is held.
func (h *Hub) subscribeLocked(s *Session, name string) {
	ch := h.channels[name]
	if ch == nil {
		ch = &channel{index: make(map[*Session]int)}
		h.channels[name] = ch
	}
	if _, ok := ch.index[s]; ok {
		return
	}
	ch.index[s] = len(ch.subs)
	ch.subs = append(ch.subs, s)
	if sub := s.subs[name]; sub != nil {
		sub.live = true
	}
}

// unsubscribeLocked removes s from a channel's live subscribers. h.mu is held.
func (h *Hub) unsubscribeLocked(s *Session, name string) {
	if sub := s.subs[name]; sub != nil {
		sub.live = false
	}
	ch := h.channels[name]
	if ch == nil {
		return
	}
	i, ok := ch.index[s]
	if !ok {
		return
	}
	last := len(ch.subs) - 1
	ch.subs[i] = ch.subs[last]
	ch.index[ch.subs[i]] = i
	ch.subs[last] = nil
	ch.subs = ch.subs[:last]
	delete(ch.index, s)
	if len(ch.subs) == 0 {
		delete(h.channels, name)
	}
}

// Sessions returns the number of open sessions.
func (h *Hub) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// Channels returns the number of channels with live subscribers.
func (h *Hub) Channels() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.channels)
}

// Close refuses new sessions and publishes, then closes every session with
// code, each at a random moment within spread so that clients do not all
// reconnect at once. It returns when every session is gone or wait has
// passed, then stops the log.
func (h *Hub) Close(code int, reason string, spread, wait time.Duration) {
	h.mu.Lock()
	h.closed = true
	sessions := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		sessions = append(sessions, s)
	}
	h.mu.Unlock()

	for _, s := range sessions {
		s := s
		if spread <= 0 {
			s.CloseWith(code, reason)
			continue
		}
		time.AfterFunc(rand.N(spread), func() { s.CloseWith(code, reason) })
	}
	deadline := time.NewTimer(spread + wait)
	defer deadline.Stop()
	for _, s := range sessions {
		select {
		case <-s.done:
		case <-deadline.C:
			for _, s := range sessions {
				s.abort()
			}
			_ = h.log.Close()
			return
		}
	}
	_ = h.log.Close()
}

// resync closes every session with 1012, spread out, so that clients resume
// from their cursors: the log skipped events they would otherwise miss.
func (h *Hub) resync() {
	h.mu.Lock()
	sessions := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		sessions = append(sessions, s)
	}
	h.mu.Unlock()
	spread := ShutdownSpread(len(sessions))
	for _, s := range sessions {
		s := s
		time.AfterFunc(rand.N(spread), func() {
			s.CloseWith(CloseServiceRestart, "events were lost by the backplane; resume with your last cursor")
		})
	}
}

// ShutdownSpread is how long a hub spreads its close frames: 1 ms per
// session, at most 2 s.
func ShutdownSpread(sessions int) time.Duration {
	return min(time.Duration(sessions)*time.Millisecond, 2*time.Second)
}
