package hub

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Hub fans events out to the sessions subscribed to their channels. It owns
// its sessions, so they outlive any one configuration of the endpoints that
// accepted them.
type Hub struct {
	name  string
	log   Log
	stats Stats

	startOnce sync.Once
	startErr  error

	mu       sync.Mutex
	limits   Limits
	head     Cursor // last event delivered to live subscribers
	channels map[string]*channel
	sessions map[*Session]struct{}
	perIP    map[string]int
	closed   bool
	ready    []*Session // sessions the flusher must write for
	flushing bool       // a flusher goroutine is running

	lastFlush time.Time     // when the flusher last began writing
	urgent    chan struct{} // cuts the flusher's coalescing wait short

	pconfig  atomic.Pointer[PresenceConfig]
	presence presenceState            // guarded by mu (presence_local.go)
	private  atomic.Pointer[[]string] // the hub's private patterns (access.go)
}

// Limits bound a hub's sessions on this node; 0 is unlimited.
type Limits struct {
	MaxConnections      int
	MaxConnectionsPerIP int
}

// New makes a hub over log. It does not start the log: Start does, so that
// a hub can be made (and a configuration validated) without touching a
// backplane. The engine logs nothing itself: what goes wrong reaches the
// caller as errors, disconnects and counters.
func New(name string, log Log) *Hub {
	h := &Hub{
		name:     name,
		log:      log,
		channels: make(map[string]*channel),
		sessions: make(map[*Session]struct{}),
		perIP:    make(map[string]int),
		urgent:   make(chan struct{}, 1),
	}
	h.initPresence(log)
	return h
}

// Start starts the log's delivery to the hub's sessions. Only the first
// call does anything; later ones return its result.
func (h *Hub) Start() error {
	h.startOnce.Do(func() {
		if head, err := h.log.Head(context.Background()); err == nil {
			h.mu.Lock()
			h.head = head
			h.mu.Unlock()
		}
		if g, ok := h.log.(GapReporter); ok {
			g.OnGap(h.resync)
		}
		if err := h.startPresence(); err != nil {
			h.startErr = err
			return
		}
		h.startErr = h.log.Start(h.deliver)
	})
	return h.startErr
}

// Name returns the hub's name.
func (h *Hub) Name() string { return h.name }

// Stats returns the hub's counters.
func (h *Hub) Stats() *Stats { return &h.stats }

// Log returns the hub's log.
func (h *Hub) Log() Log { return h.log }

// SetLimits changes the hub's limits; they apply to new sessions.
func (h *Hub) SetLimits(l Limits) {
	h.mu.Lock()
	h.limits = l
	h.mu.Unlock()
}

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

// Limits returns the hub's limits.
func (h *Hub) Limits() Limits {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.limits
}

// admit counts a new session against the hub's limits, or the endpoint's
// own when it has them (0 means unlimited).
func (h *Hub) admit(s *Session, ip string, p *Policy) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	lim := h.limits
	if p.Limits != nil {
		lim = *p.Limits
	}
	if lim.MaxConnections > 0 && len(h.sessions) >= lim.MaxConnections {
		return ErrTooManyConnections
	}
	if ip != "" && lim.MaxConnectionsPerIP > 0 && h.perIP[ip] >= lim.MaxConnectionsPerIP {
		return ErrTooManyConnectionsPerIP
	}
	h.sessions[s] = struct{}{}
	if ip != "" {
		h.perIP[ip]++
	}
	h.stats.Connections.Add(1)
	h.stats.byFormat[s.codec.Format()].Add(1)
	return nil
}

// remove forgets a finished session and its subscriptions.
func (h *Hub) remove(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.detached = true
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
	h.dropSubscriptionsLocked(s)
	h.stats.Connections.Add(-1)
	h.stats.byFormat[s.codec.Format()].Add(-1)
}

// dropSubscriptionsLocked ends every subscription of s: off the live sets,
// out of presence, and marked gone so that a catch-up still running for one
// stops and never subscribes it again. h.mu is held.
func (h *Hub) dropSubscriptionsLocked(s *Session) {
	for _, sub := range s.subs {
		sub.gone.Store(true)
		if sub.live {
			h.unsubscribeLocked(s, sub.channel)
		}
		h.dropSubscriptionLocked(s, sub)
	}
	h.stats.Subscriptions.Add(-int64(len(s.subs)))
	clear(s.subs)
	s.subs = nil
}

// Sessions returns the number of open sessions.
func (h *Hub) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// allSessions copies the open sessions.
func (h *Hub) allSessions() []*Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		out = append(out, s)
	}
	return out
}

// Close refuses new sessions and publishes, then ends every session with d,
// each at a random moment within spread so that clients do not all
// reconnect at once. It returns when every session is gone or wait has
// passed, then stops the log.
func (h *Hub) Close(d Disconnect, spread, wait time.Duration) {
	h.mu.Lock()
	h.closed = true
	h.stopLingerLocked()
	h.mu.Unlock()
	defer h.presence.store.Close()
	sessions := h.allSessions()
	for _, s := range sessions {
		if spread <= 0 {
			s.Disconnect(d)
			continue
		}
		time.AfterFunc(rand.N(spread), func() { s.Disconnect(d) })
	}
	deadline := time.NewTimer(spread + wait)
	defer deadline.Stop()
	for _, s := range sessions {
		select {
		case <-s.Done():
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

// resync ends every session with DisconnectGap, spread out, so that clients
// resume from their cursors: the log skipped events they would otherwise
// miss. The sessions leave their channels at once: an event after the gap
// that reached a session before its close would move its cursor past the
// gap, and it would resume as if nothing were missing. It takes only h.mu,
// so a log may call it under its own lock, before it delivers the events
// after the gap (see GapReporter).
func (h *Hub) resync() {
	h.mu.Lock()
	sessions := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		s.detached = true
		h.dropSubscriptionsLocked(s)
		sessions = append(sessions, s)
	}
	h.mu.Unlock()
	spread := ShutdownSpread(len(sessions))
	for _, s := range sessions {
		time.AfterFunc(rand.N(spread), func() { s.Disconnect(DisconnectGap) })
	}
}

// ShutdownSpread is how long a hub spreads its close messages: 1 ms per
// session, at most 2 s.
func ShutdownSpread(sessions int) time.Duration {
	return min(time.Duration(sessions)*time.Millisecond, 2*time.Second)
}
