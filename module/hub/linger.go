package hub

import (
	"container/heap"
	"time"
)

// lingerEntry is a hold whose last connection left: at `at` the hold is let
// go, unless a connection came back (the hold's lingerGen is no longer gen).
type lingerEntry struct {
	at  time.Time
	key holdKey
	gen uint64
}

// lingerQueue orders lingering holds by deadline: one timer serves a hub's
// leave delays, however many users are leaving. Cancelled entries stay in
// it until their deadline (a reload within the delay is cheap: no heap
// surgery) and are skipped then.
type lingerQueue []lingerEntry

func (q lingerQueue) Len() int { return len(q) }
func (q lingerQueue) Less(i, j int) bool {
	// Equal deadlines go in the order they were set: a member's leave
	// before its channel's vacate.
	return q[i].at.Before(q[j].at) || q[i].at.Equal(q[j].at) && q[i].gen < q[j].gen
}
func (q lingerQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *lingerQueue) Push(x any)   { *q = append(*q, x.(lingerEntry)) }
func (q *lingerQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// lingerLocked starts the leave delay of a hold that has no connection
// left. h.mu is held.
func (h *Hub) lingerLocked(hd *hold) {
	p := &h.presence
	p.gen++
	hd.lingerGen = p.gen
	heap.Push(&p.lingers, lingerEntry{at: time.Now().Add(h.pconfig.Load().LeaveDelay), key: hd.key, gen: p.gen})
	h.armLingerLocked()
}

// armLingerLocked sets the timer for the earliest deadline. h.mu is held.
func (h *Hub) armLingerLocked() {
	p := &h.presence
	if len(p.lingers) == 0 || h.closed {
		return
	}
	next := p.lingers[0].at
	if !p.timerAt.IsZero() && !next.Before(p.timerAt) {
		return // the timer fires at or before next
	}
	p.timerAt = next
	d := time.Until(next)
	if p.timer == nil {
		p.timer = time.AfterFunc(d, h.lingerExpired)
		return
	}
	p.timer.Reset(d)
}

// lingerExpired lets go of the holds whose leave delay is over: each that
// still has no connection becomes a Leave (or Vacate) of the store.
func (h *Hub) lingerExpired() {
	h.mu.Lock()
	p := &h.presence
	p.timerAt = time.Time{}
	now := time.Now()
	var ops []*presenceOp
	for len(p.lingers) > 0 && !p.lingers[0].at.After(now) {
		e := heap.Pop(&p.lingers).(lingerEntry)
		hd := p.holds[e.key]
		if hd == nil || hd.lingerGen != e.gen {
			continue // a connection came back, or it is gone already
		}
		hd.lingerGen = 0
		if op := h.reconcileLocked(hd); op != nil {
			ops = append(ops, op)
		}
	}
	if len(p.lingers) == 0 && cap(p.lingers) > 1024 {
		p.lingers = nil // give back a burst's array
	}
	h.armLingerLocked()
	h.mu.Unlock()
	h.runPresenceOps(ops)
}

// stopLingerLocked stops the timer of a closing hub. h.mu is held.
func (h *Hub) stopLingerLocked() {
	if h.presence.timer != nil {
		h.presence.timer.Stop()
	}
	h.presence.timerAt = time.Time{}
}

var _ heap.Interface = (*lingerQueue)(nil)
