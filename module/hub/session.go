package hub

import (
	"crypto/rand"
	"encoding/binary"
	"strconv"
	"sync"
	"time"
)

// ConnectOptions describe a new session.
type ConnectOptions struct {
	Channels []string // channels named at connect; nil joins the policy's defaults
	Since    string   // cursor to resume from; "" for live only
	Token    string   // token from the Authorization header or the cookie
}

// Session is one client connection of a hub, in one wire format (its
// codec). Its messages go through one bounded queue (queue.go) drained by
// the hub's flusher or by a writer goroutine that exists only while there
// is something to write, so an idle session holds no goroutine of its own.
type Session struct {
	hub    *Hub
	codec  Codec
	fmt    Format // codec.Format(), kept for fan-out
	policy *Policy
	ip     string
	id     string

	mu      sync.Mutex
	t       Transport
	queue   [][]byte
	spare   [][]byte
	events  int           // event messages in queue, counted against policy.SendQueue
	writing bool          // a flush or writer goroutine is draining queue
	closing bool          // the last message is queued: nothing more will be
	lagging bool          // found full by the delivery under way: it gets no more of it
	room    chan struct{} // closed after a write, when somebody waits for room
	done    signal        // the session has finished
	flushed signal        // the last message was written, or could not be
	ending  bool          // Finish or Cancel has begun
	pinger  *time.Timer

	// Guarded by hub.mu.
	subs subscriptions // every subscription, live or catching up
	// detached is set when the session leaves the hub (remove) or loses
	// its subscriptions to a resync: it subscribes to nothing more, so
	// that a subscribe racing its end leaves no subscription, presence
	// hold or live membership behind, and none made in a resync's window
	// moves the client's cursor past the gap before its 1012.
	detached bool

	// Only touched by the goroutine that handles client messages.
	grants   []*Grant
	tokenErr error // why the latest token was refused, if it was
}

// Admit counts a new session of wire format c against the hub's limits and
// the policy's caps. Call it before upgrading the connection, so that a
// refusal can still be an HTTP answer; then Start the session, or Cancel it
// if the upgrade failed.
func (h *Hub) Admit(p *Policy, c Codec, ip string) (*Session, error) {
	s := &Session{
		hub:    h,
		codec:  c,
		fmt:    c.Format(),
		policy: p,
		ip:     ip,
		id:     newSessionID(),
	}
	if err := h.admit(s, ip, p); err != nil {
		return nil, err
	}
	return s, nil
}

// Connect is Admit followed by Start.
func (h *Hub) Connect(t Transport, p *Policy, c Codec, ip string, o ConnectOptions) (*Session, error) {
	s, err := h.Admit(p, c, ip)
	if err != nil {
		return nil, err
	}
	s.Start(t, o)
	return s, nil
}

// Cancel releases an admitted session that never started.
func (s *Session) Cancel() {
	if !s.beginEnd() {
		return
	}
	s.hub.remove(s)
	s.endDone()
}

// beginEnd marks the session as ending; only its first caller goes on.
func (s *Session) beginEnd() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ending {
		return false
	}
	s.ending = true
	return true
}

// endDone fires Done, once the session is out of the hub.
func (s *Session) endDone() {
	s.mu.Lock()
	s.done.fireLocked()
	s.mu.Unlock()
}

// Start attaches the session to its transport, queues the welcome and
// subscribes it to its channels. From then on the caller hands it the
// client's messages (through its protocol) and calls Finish, or End, when
// the connection ends.
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
	s.queueControl(s.codec.Welcome(Welcome{ConnectionID: s.id, Cursor: h.head, PingInterval: p.PingInterval, Resuming: o.Since != ""}))
	h.mu.Unlock()
	channels := o.Channels
	if channels == nil {
		channels = p.DefaultChannels
	}
	s.Subscribe(channels, SubscribeOptions{Since: o.Since, Resume: o.Since != ""})
	if p.PingInterval > 0 && s.codec.KeepAlive() != nil {
		s.mu.Lock()
		if !s.closing {
			s.pinger = time.AfterFunc(p.PingInterval, s.ping)
		}
		s.mu.Unlock()
	}
}

// newSessionID returns "<digits>.<digits>": opaque to the module's own
// protocol, and the socket id form that the Pusher protocol requires.
func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[:4])), 10) + "." +
		strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[4:])), 10)
}

// ID returns the session's connection id.
func (s *Session) ID() string { return s.id }

// Hub returns the session's hub.
func (s *Session) Hub() *Hub { return s.hub }

// Codec returns the session's wire format.
func (s *Session) Codec() Codec { return s.codec }

// IsSubscribed reports whether the session is subscribed to channel (live,
// or still catching up). The Pusher protocol lets only subscribers send
// client events to a channel.
func (s *Session) IsSubscribed(channel string) bool {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.subs.get(channel) != nil
}

// SubscribedAs reports whether the session is subscribed to channel, and
// as which member on a presence channel ("" on any other): the Pusher
// protocol names the sender of a client event on a presence channel.
func (s *Session) SubscribedAs(channel string) (user string, ok bool) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	sub := s.subs.get(channel)
	if sub == nil {
		return "", false
	}
	return sub.user, true
}

// Done is closed when the session has finished.
func (s *Session) Done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done.waitLocked()
}

// Disconnect queues d's close message after what is already queued; the
// connection is closed once it is written or the write times out.
func (s *Session) Disconnect(d Disconnect) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disconnectLocked(d)
}

func (s *Session) disconnectLocked(d Disconnect) {
	if s.closing {
		return
	}
	s.closing = true
	if s.pinger != nil {
		s.pinger.Stop()
	}
	s.hub.stats.countDisconnect(d.Name)
	s.pushLocked(s.codec.Close(d))
}

// ping sends the codec's keep-alive every ping interval.
func (s *Session) ping() {
	s.queueControl(s.codec.KeepAlive())
	s.mu.Lock()
	if !s.closing && s.pinger != nil {
		s.pinger.Reset(s.policy.PingInterval)
	}
	s.mu.Unlock()
}

// Flushed is closed once the session's close message has been written, or
// could not be.
func (s *Session) Flushed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushed.waitLocked()
}

// Closing reports whether the session's last message has been queued.
func (s *Session) Closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// End is what a transport calls when its reader stops: it lets a queued
// close message out (waiting at most wait) so that closing the socket does
// not cut it off, then finishes the session.
func (s *Session) End(wait time.Duration) {
	if s.Closing() {
		t := time.NewTimer(wait)
		select {
		case <-s.Flushed():
		case <-t.C:
		}
		t.Stop()
	}
	s.Finish()
}

// abort closes the connection without a close message; for sessions that
// did not finish in time.
func (s *Session) abort() {
	s.mu.Lock()
	t := s.t
	s.mu.Unlock()
	if t != nil {
		_ = t.Close()
	}
}

// Finish ends the session at once: the transport calls it when its
// connection is gone, whatever the reason. It is safe to call more than
// once.
func (s *Session) Finish() {
	s.mu.Lock()
	if s.ending {
		s.mu.Unlock()
		return
	}
	s.ending = true
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
	s.endDone()
}

// signal is a one-time event, like a channel that is closed once, whose
// channel is made only when somebody waits: most sessions end without
// anybody waiting, and every idle connection would otherwise hold a
// channel (about 100 bytes) for each. Its methods run under Session.mu.
type signal struct {
	fired bool
	ch    chan struct{}
}

// waitLocked returns a channel that is closed once the signal fires.
func (g *signal) waitLocked() <-chan struct{} {
	if g.ch == nil {
		g.ch = make(chan struct{})
		if g.fired {
			close(g.ch)
		}
	}
	return g.ch
}

// fireLocked fires the signal; later calls do nothing.
func (g *signal) fireLocked() {
	if g.fired {
		return
	}
	g.fired = true
	if g.ch != nil {
		close(g.ch)
	}
}
