package hub

import (
	"errors"
	"sync/atomic"
)

// The send queue. Every message to a client (events, replays, control
// messages, the close) goes through one queue, in order, so a message is
// never written in the middle of another. Events are counted against the
// policy's SendQueue; control messages are not, but are bounded.

// queueResult tells deliver what queueing an event did.
type queueResult uint8

const (
	queued            queueResult = iota // queued; a write is already under way
	queuedFlush                          // queued; the flusher must write for the session
	queuedUrgent                         // queued; the queue is half full: flush soon
	queuedFlushUrgent                    // both
	queueFull                            // not queued: the session must catch up from the log
	queueSkipped                         // not queued: closing, or found full earlier in this delivery
)

// idleQueueCap is the queue capacity an idle session may keep: enough for
// the next event without an allocation, while what a burst grew (a
// presence snapshot and its member events, a replay) is given back, since
// every idle connection would otherwise hold it.
const idleQueueCap = 4

// controlBurst is how many control messages may queue beyond twice the
// SendQueue before a session counts as not reading. Client requests wait
// for room before they are handled (WaitForRoom), so only a client that
// stops reading while the server keeps talking to it gets there.
const controlBurst = 1024

// queueEvent queues a live event. It never blocks: a session whose queue is
// full is reported so that it catches up from the log instead.
func (s *Session) queueEvent(msg []byte) queueResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.lagging {
		return queueSkipped
	}
	if s.events >= s.policy.SendQueue {
		s.lagging = true
		return queueFull
	}
	s.events++
	s.queue = append(s.queue, msg)
	r := queued
	if !s.writing && s.t != nil {
		s.writing = true
		r = queuedFlush
	}
	if s.events > s.policy.SendQueue/2 {
		r |= queuedUrgent // queuedUrgent or queuedFlushUrgent
	}
	return r
}

// queueControl queues a control message (welcome, acknowledgements, errors,
// pongs, keep-alives); nil queues nothing.
func (s *Session) queueControl(msg []byte) {
	if msg == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	if len(s.queue) >= 2*s.policy.SendQueue+controlBurst {
		s.overflowLocked()
		return
	}
	s.pushLocked(msg)
}

// queueNotice queues a presence message for the flusher to write, like an
// event, but not counted against the SendQueue: presence messages are few,
// and a session must get every one of them to keep its member list right.
// A session that stops reading while they pile up overflows as it would
// with control messages.
func (s *Session) queueNotice(msg []byte) queueResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return queueSkipped
	}
	if len(s.queue) >= 2*s.policy.SendQueue+controlBurst {
		s.overflowLocked()
		return queueSkipped
	}
	s.queue = append(s.queue, msg)
	if !s.writing && s.t != nil {
		s.writing = true
		return queuedFlush
	}
	return queued
}

// QueueControl queues bytes a transport sends in order with the rest, such
// as a WebSocket pong frame.
func (s *Session) QueueControl(msg []byte) { s.queueControl(msg) }

// WaitForRoom waits until the session's queue is at most half the
// SendQueue, so that a client pipelining requests is answered at the pace
// it reads rather than overflowing the queue with replies. Protocols call
// it before handling each client message. It returns false when the
// session is closing.
func (s *Session) WaitForRoom() bool {
	limit := max(s.policy.SendQueue/2, 1)
	return s.waitRoom(func() bool { return len(s.queue) < limit })
}

// queueReplay queues a history event, waiting while the queue holds more
// than half the SendQueue's events, so that a resume never overflows it.
// An event whose subscription is gone by the time it would be queued is
// dropped (checked under the session's lock, so that it never follows the
// unsubscribed answer). It returns false when the session is closing.
func (s *Session) queueReplay(msg []byte, gone *atomic.Bool) bool {
	limit := max(s.policy.SendQueue/2, 1)
	for {
		if !s.waitRoom(func() bool { return s.events < limit || gone.Load() }) {
			return false
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return false
		}
		if gone.Load() {
			s.mu.Unlock()
			return true
		}
		if s.events < limit {
			s.events++
			s.pushLocked(msg)
			s.mu.Unlock()
			return true
		}
		s.mu.Unlock()
	}
}

// waitRoom waits until ok (called with s.mu held) holds or the session
// closes; it reports whether ok holds.
func (s *Session) waitRoom(ok func() bool) bool {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return false
		}
		if ok() {
			s.mu.Unlock()
			return true
		}
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room, done := s.room, s.done.waitLocked()
		s.mu.Unlock()
		select {
		case <-room:
		case <-done:
			return false
		}
	}
}

// overflowLocked drops what is queued and ends the session as a slow
// consumer. s.mu is held.
func (s *Session) overflowLocked() {
	clear(s.queue)
	s.queue = s.queue[:0]
	s.events = 0
	s.disconnectLocked(DisconnectSlowConsumer)
}

func (s *Session) pushLocked(msg []byte) {
	if msg == nil {
		if s.closing && !s.writing && s.t != nil {
			// A close with no message of its own: end the connection once
			// what is queued is out.
			s.writing = true
			go s.writeLoop(nil, false)
		}
		return
	}
	s.queue = append(s.queue, msg)
	if !s.writing && s.t != nil {
		s.writing = true
		go s.writeLoop(nil, false)
	}
}

// takeLocked takes the queued messages as one batch. s.mu is held.
func (s *Session) takeLocked() (batch [][]byte, last bool) {
	batch = s.queue
	s.queue = s.spare[:0]
	s.spare = nil
	s.events = 0
	return batch, s.closing // the close is the last message ever queued
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

// written recycles a batch, wakes whoever waits for room, and reports
// whether writing goes on.
func (s *Session) written(batch [][]byte, last bool, err error) bool {
	clear(batch)
	s.mu.Lock()
	s.spare = batch[:0]
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
	if err == nil && !last {
		s.mu.Unlock()
		return true
	}
	// Nothing more can be written: drop the rest, and let waiters go.
	if errors.Is(err, ErrWriteTimeout) && !s.closing {
		s.hub.stats.countDisconnect(DisconnectSlowConsumer.Name)
	}
	s.closing = true
	clear(s.queue)
	s.queue, s.spare, s.writing = nil, nil, false
	s.mu.Unlock()
	_ = s.t.Close()
	s.mu.Lock()
	s.flushed.fireLocked()
	s.mu.Unlock()
	return false
}

// writeLoop drains the queue in batches until it is empty, then exits.
// pending is a batch (or its unwritten rest) to write first.
func (s *Session) writeLoop(pending [][]byte, last bool) {
	for {
		if pending == nil {
			s.mu.Lock()
			if len(s.queue) == 0 && !s.closing {
				s.idleLocked()
				s.mu.Unlock()
				return
			}
			pending, last = s.takeLocked()
			s.mu.Unlock()
		}
		var err error
		if len(pending) > 0 {
			err = s.t.Write(pending)
		}
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
		if len(s.queue) == 0 && !s.closing {
			s.idleLocked()
			s.mu.Unlock()
			return
		}
		batch, last := s.takeLocked()
		s.mu.Unlock()
		n, err := tw.TryWrite(batch)
		if err == nil && n < messagesLen(batch) {
			go s.writeLoop(unwritten(batch, n), last)
			return
		}
		if !s.written(batch, last, err) {
			return
		}
	}
}

func messagesLen(msgs [][]byte) int {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	return n
}

// unwritten returns what is left of msgs after n bytes were written.
func unwritten(msgs [][]byte, n int) [][]byte {
	for i, m := range msgs {
		if n < len(m) {
			return append([][]byte{m[n:]}, msgs[i+1:]...)
		}
		n -= len(m)
	}
	return [][]byte{}
}
