package hub

import (
	"runtime"
	"sync"
	"time"
)

// laggard is a session that a delivery found too far behind to queue more
// events for: from is the cursor just before the first event it did not get.
type laggard struct {
	s    *Session
	from Cursor
}

// deliver is the log's delivery callback: it queues each event to the live
// subscribers of its channel without ever blocking on one of them, then
// lets the flusher write. Sessions that were already waiting for a write
// just get the message appended, so a busy channel coalesces messages into
// fewer, larger writes by itself.
//
// A session whose queue is full is not disconnected: it leaves the live
// set and catches up from the log at its own pace, flow-controlled like a
// resume, then rejoins (see Session.lag). One large delivery therefore
// never costs a reading client its connection.
func (h *Hub) deliver(head Cursor, events []*Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n int64
	wake := false
	var lagging []laggard
	prev := h.head
	for _, e := range events {
		if ch := h.channels[e.Channel]; ch != nil {
			// The event's encoding per format, looked up once per event
			// here: subscribers of several formats interleave in ch.subs.
			var wires [maxFormats][]byte
			for _, s := range ch.subs {
				if e.Exclude != "" && s.id == e.Exclude {
					continue
				}
				f := s.fmt
				wire := wires[f]
				if wire == nil {
					wire = e.Wire(s.codec)
					wires[f] = wire
				}
				switch s.queueEvent(wire) {
				case queuedFlush:
					h.ready = append(h.ready, s)
				case queuedUrgent:
					wake = true
				case queuedFlushUrgent:
					h.ready = append(h.ready, s)
					wake = true
				case queueFull:
					lagging = append(lagging, laggard{s: s, from: prev})
				}
			}
			n += int64(len(ch.subs))
		}
		prev = e.Cursor
	}
	h.head = head
	for _, l := range lagging {
		l.s.lagLocked(l.from)
	}
	h.stats.Deliveries.Add(n)
	h.startFlushLocked()
	if wake {
		select {
		case h.urgent <- struct{}{}:
		default:
		}
	}
}

// startFlushLocked starts the flusher when sessions are ready to write and
// none runs. h.mu is held.
func (h *Hub) startFlushLocked() {
	if len(h.ready) > 0 && !h.flushing {
		h.flushing = true
		go h.flushLoop()
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
// the wait short.
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
